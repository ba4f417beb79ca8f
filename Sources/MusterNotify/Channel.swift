// One small protocol for every way of reaching a person: a channel turns a notification into a
// receipt or a typed failure that says whether trying again can help.
import Foundation
import MusterCore

public protocol Channel: Sendable {
    /// The texts `deliver` reads for this notification; only these are rendered. All, unless a channel says otherwise.
    func forms(for notification: QueuedNotification) -> Set<MessageForm>
    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt
}

extension Channel {
    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { MessageForm.all }
}

public struct DeliveryReceipt: Sendable, Hashable {
    /// The provider's reference (a message id, an SMS sid), when it gives one.
    public var reference: String?
    /// The provider only took the message: its status callback will say whether it reached the person
    /// (a carrier's delivery report, a call a person answered), so it is not counted as delivered yet.
    public var awaitsStatus: Bool
    /// Written to the demonstration inbox, not sent to anyone: never counted as delivered.
    public var demonstration: Bool

    public init(reference: String? = nil, awaitsStatus: Bool = false, demonstration: Bool = false) {
        self.reference = reference
        self.awaitsStatus = awaitsStatus
        self.demonstration = demonstration
    }
}

public struct DeliveryFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: String, Sendable, Hashable {
        /// The provider refused the request as malformed or unauthorised (4xx): retrying will not help.
        case clientError = "client_error"
        /// The provider failed (5xx): retrying may help.
        case serverError = "server_error"
        case rateLimited = "rate_limited"
        case timeout
        /// Nothing answered (connection refused, DNS, TLS).
        case unreachable
        /// The recipient's address cannot be used (a number not in service).
        case badAddress = "bad_address"
        /// No channel is configured for this kind.
        case notConfigured = "not_configured"
    }

    /// When a provider that refused to take a message now (`429`) says to try again.
    public enum RetryAfter: Sendable, Hashable {
        case seconds(TimeInterval)
        case date(Date)

        public func instant(from now: Date) -> Date {
            switch self {
            case .seconds(let seconds): now.addingTimeInterval(seconds)
            case .date(let date): date
            }
        }
    }

    public var reason: Reason
    public var detail: String
    /// The provider's own word on when to try again (a `429`'s Retry-After).
    public var retryAfter: RetryAfter?
    /// Set when nothing was spent on this message: the provider was not asked (its circuit is open,
    /// or it asked every sender to wait), so the message waits until then without counting an attempt.
    public var deferredUntil: Date?
    /// The provider's answer code ("HTTP 400", "SMTP 550"), when it gave one.
    public var code: String?

    public init(_ reason: Reason, _ detail: String, retryAfter: RetryAfter? = nil, deferredUntil: Date? = nil, code: String? = nil) {
        self.code = code
        self.reason = reason
        self.detail = detail
        self.retryAfter = retryAfter
        self.deferredUntil = deferredUntil
    }

    public var retryable: Bool {
        switch reason {
        case .serverError, .rateLimited, .timeout, .unreachable: true
        case .clientError, .badAddress, .notConfigured: false
        }
    }

    public var description: String { "\(reason.rawValue): \(detail)" }

    /// What the permanent audit log keeps of a failure: its kind and the provider's code, never the
    /// provider's own words (they can hold a phone number or an address; `description` goes only to
    /// the purgeable delivery-attempt rows).
    public var summary: String { reason.rawValue + (code.map { " (\($0))" } ?? "") }
}

/// Sends each notification over the channel configured for its kind.
public struct ChannelRouter: Channel {
    private let channels: [ChannelKind: any Channel]
    private let fallback: (any Channel)?

    /// `fallback` takes kinds with no channel of their own (the demonstration and test setups).
    public init(_ channels: [ChannelKind: any Channel], fallback: (any Channel)? = nil) {
        self.channels = channels
        self.fallback = fallback
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> {
        (channels[notification.channel] ?? fallback)?.forms(for: notification) ?? MessageForm.all
    }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        guard let channel = channels[message.notification.channel] ?? fallback else {
            throw DeliveryFailure(.notConfigured, "no \(message.notification.channel.rawValue) channel is configured")
        }
        return try await channel.deliver(message)
    }
}
