// What the runtime takes: commands (a report, an event for an incident, a timer that fell due) and
// their outcomes. The dispatcher decides each; the store keeps what it decided.
import Foundation
import MusterCore
import MusterStore

/// A report as it arrives, with the client's idempotency key (a retried POST carries the same one).
public struct ReportIntake: Sendable, Hashable {
    public var report: Report
    public var idempotencyKey: String?
    /// Groups the report by this key instead of its playbook's grouping (a flood of reports from one account).
    public var grouping: ReportGrouping?

    public init(report: Report, idempotencyKey: String? = nil, grouping: ReportGrouping? = nil) {
        self.report = report
        self.idempotencyKey = idempotencyKey
        self.grouping = grouping
    }
}

/// Reports with the same key join the open incident the first of them opened, for `within` after it.
public struct ReportGrouping: Sendable, Hashable {
    public var key: String
    public var within: TimeSpan

    public init(key: String, within: TimeSpan) {
        self.key = key
        self.within = within
    }
}

/// One unit of work, committed all-or-nothing.
public enum IncidentCommand: Sendable, Hashable {
    case report(ReportIntake)
    case event(IncidentID, IncidentEvent)
    /// An event carried by a provider's inbound message (an SMS reply), taken once per message id:
    /// the same message again (a replayed request) is answered `.duplicate` and changes nothing.
    case inbound(IncidentID, IncidentEvent, messageID: String)
    /// An event applied only if the incident still has `reportCount` reports: a decision taken on its
    /// reports as read (an integration may resolve only what it alone reported) is refused with
    /// `.changed` when a report joined in between.
    case eventIfReports(IncidentID, IncidentEvent, reportCount: Int)
    /// A responder joins `source` into `target`: `reports` (the source's, as read) are added to the
    /// target and the source closes, in one transaction. Refused (`.changed`) when the source's reports
    /// changed since they were read.
    case join(source: IncidentID, into: IncidentID, reports: [Report], by: Actor)
    /// A claimed timer falls due. Ignored if the incident has since rescheduled that timer (a late
    /// claim must not fire the new deadline early); its row goes if the incident no longer exists.
    case fireTimer(ClaimedTimer)
    /// A delivery worker's attempt at a notification it claimed: the outbox row, the attempt's row,
    /// its audit entry and the engine's reaction commit together. Refused (`.notHeld`) when the
    /// worker no longer holds the notification. The one exception to all-or-nothing: an attempt is a
    /// fact, so its outbox and attempt rows stay recorded when the engine refuses the event (an
    /// incident whose playbook is no longer loaded); the worker logs that refusal.
    case deliveryAttempt(DeliveryRecord)
}

public enum CommandOutcome: Sendable, Hashable {
    /// A new incident was opened; these notifications were queued.
    case created(IncidentRef, queued: [QueuedNotification])
    /// The report joined an open incident with the same grouping key.
    case merged(IncidentRef)
    /// A report with this idempotency key, or an inbound message with this id, was already taken:
    /// nothing new was written.
    case duplicate(IncidentRef)
    /// An event was applied to an incident.
    case applied(IncidentRef, queued: [QueuedNotification])

    /// The notifications this command queued.
    public var queued: [QueuedNotification] {
        switch self {
        case .created(_, let queued), .applied(_, let queued): queued
        case .merged, .duplicate: []
        }
    }

    public var incident: IncidentRef {
        switch self {
        case .created(let ref, _), .merged(let ref), .duplicate(let ref), .applied(let ref, _): ref
        }
    }
}

/// A command's outcome with the incident as the commit left it, so a caller never reads it again.
public struct Committed: Sendable, Hashable {
    public var outcome: CommandOutcome
    /// The incident's state after this command (for a retried report: as it stands now).
    public var state: IncidentState

    public init(outcome: CommandOutcome, state: IncidentState) {
        self.outcome = outcome
        self.state = state
    }
}
