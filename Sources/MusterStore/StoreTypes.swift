// The rows the workers claim from the store, and what a delivery attempt came to.
import Foundation
import MusterCore

/// A timer a worker has claimed: it must be delivered to the engine as `.timerFired` (its lease
/// expires otherwise, and another worker takes it).
public struct ClaimedTimer: Sendable, Hashable {
    public var incident: IncidentID
    public var key: TimerKey
    public var due: Date

    public init(incident: IncidentID, key: TimerKey, due: Date) {
        self.incident = incident
        self.key = key
        self.due = due
    }
}

/// A notification a delivery worker has claimed.
public struct ClaimedDelivery: Sendable, Hashable {
    public var notification: QueuedNotification
    /// Attempts made before this one.
    public var attempts: Int
}

public enum DeliveryOutcome: Sendable, Hashable {
    case delivered(receipt: String?)
    /// The provider took the message and will report whether it reached the person (an SMS's or a
    /// call's status callback): not yet delivered, and not to be counted as such.
    case accepted(receipt: String?)
    /// Written to the demonstration inbox: nobody was reached (outbox status `demonstrated`).
    case demonstrated
    /// A failed attempt; with `retryAt` another attempt follows, without it the notification failed for good.
    /// `reason` goes to the permanent audit log (a kind and a code, no personal data); `detail`, the
    /// provider's own words, only to the outbox and delivery-attempt rows, which a retention purge clears.
    case failed(reason: String, detail: String? = nil, retryAt: Date?)
}
