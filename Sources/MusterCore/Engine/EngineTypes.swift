// The escalation engine's vocabulary: an incident's state, the events that change it and the
// effects it asks the runtime to carry out. All are plain values, so the engine stays pure.
import Foundation

/// A deadline the runtime must deliver back as `.timerFired` when it falls due.
public enum TimerKey: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The acknowledgement window of one round of a step (both 0-based).
    case ackDeadline(step: Int, round: Int)
    case taskDue(TaskID)
    /// A reminder before a task's deadline (`remind_before`, 0 for the first listed).
    case taskReminder(TaskID, index: Int)
    /// While the incident is unowned, when its fallback is paged again (round 1, 2, …).
    case fallbackRepeat(round: Int)

    /// A stable text form, used as the timer's key in the store.
    public var description: String {
        switch self {
        case .ackDeadline(let step, let round): "ack:\(step):\(round)"
        case .taskDue(let task): "task:\(task)"
        case .taskReminder(let task, let index): "remind:\(index):\(task)"
        case .fallbackRepeat(let round): "fallback:\(round)"
        }
    }

    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "ack", let step = Int(parts[1]), let round = Int(parts[2]) {
            self = .ackDeadline(step: step, round: round)
        } else if parts.count == 2, parts[0] == "fallback", let round = Int(parts[1]) {
            self = .fallbackRepeat(round: round)
        } else if parts.count == 3, parts[0] == "remind", let index = Int(parts[1]) {
            self = .taskReminder(TaskID(String(parts[2])), index: index)
        } else if parts.count >= 2, parts[0] == "task" {
            self = .taskDue(TaskID(String(text.dropFirst(5))))
        } else {
            return nil
        }
    }
}

public struct ScheduledTimer: Hashable, Sendable, Codable {
    public var key: TimerKey
    public var due: Date

    public init(key: TimerKey, due: Date) {
        self.key = key
        self.due = due
    }
}

public enum IncidentPhase: Hashable, Sendable, Codable {
    /// Paging a step and waiting for an acknowledgement (step and round are 0-based).
    case escalating(step: Int, round: Int)
    case acknowledged
    /// Every step and the fallback were paged and nobody took ownership.
    case unowned
    case resolved
}

public struct TaskState: Hashable, Sendable, Codable {
    public var id: TaskID
    /// nil until the deadline's anchor happens (an acknowledgement for `after: acknowledgement`).
    public var dueAt: Date?
    public var completedAt: Date?
    public var completedBy: Actor?
    public var overdue: Bool

    public init(id: TaskID, dueAt: Date?, completedAt: Date?, completedBy: Actor?, overdue: Bool) {
        self.id = id
        self.dueAt = dueAt
        self.completedAt = completedAt
        self.completedBy = completedBy
        self.overdue = overdue
    }
}

/// A notification's stable identity: the same page in the same round of the same cycle always has
/// the same id, so a retry after a crash is recognised. Its text form travels with the message.
public struct NotificationID: Hashable, Sendable, Codable, CustomStringConvertible {
    public var incident: IncidentID
    public var cycle: Int
    public var kind: NotificationKind
    /// What distinguishes notifications of one kind: step and round for pages, the task for overdue
    /// alerts, the audit sequence for assignments, 0 for the fallback.
    public var qualifier: Qualifier
    public var recipient: Recipient
    public var channel: ChannelKind

    public enum Qualifier: Hashable, Sendable, Codable {
        case step(Int, round: Int)
        case task(TaskID)
        /// A task's reminder (its place in `remind_before`).
        case reminder(TaskID, Int)
        case sequence(Int)
        /// A fallback paged again while the incident stays unowned (round 1, 2, …; the first is `.none`).
        case round(Int)
        case none
    }

    /// e.g. "inc-1/c0/page/s2r1/person:ann/sms"
    public var description: String {
        let qualifierText: String = switch qualifier {
        case .step(let step, let round): "s\(step + 1)r\(round)"
        case .task(let task): "t:\(task.rawValue)"
        case .reminder(let task, let index): "m\(index):\(task.rawValue)"
        case .sequence(let n): "a\(n)"
        case .round(let n): "r\(n)"
        case .none: "-"
        }
        return "\(incident.rawValue)/c\(cycle)/\(kind.rawValue)/\(qualifierText)/\(recipient)/\(channel.rawValue)"
    }

    public init(incident: IncidentID, cycle: Int, kind: NotificationKind, qualifier: Qualifier, recipient: Recipient, channel: ChannelKind) {
        self.incident = incident
        self.cycle = cycle
        self.kind = kind
        self.qualifier = qualifier
        self.recipient = recipient
        self.channel = channel
    }

    /// Parses the text form back (the SMS and webhook paths carry it).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[1].hasPrefix("c"), let cycle = Int(parts[1].dropFirst()),
              let kind = NotificationKind(rawValue: parts[2]), let channel = ChannelKind(rawValue: parts[5]) else { return nil }
        guard let recipient = Recipient(parts[4]) else { return nil }
        let q = parts[3]
        let qualifier: Qualifier
        if q == "-" {
            qualifier = .none
        } else if q.hasPrefix("t:") {
            qualifier = .task(TaskID(String(q.dropFirst(2))))
        } else if q.hasPrefix("m"), let colon = q.firstIndex(of: ":"), let n = Int(q[q.index(after: q.startIndex)..<colon]) {
            qualifier = .reminder(TaskID(String(q[q.index(after: colon)...])), n)
        } else if q.hasPrefix("a"), let n = Int(q.dropFirst()) {
            qualifier = .sequence(n)
        } else if q.hasPrefix("r"), let n = Int(q.dropFirst()) {
            qualifier = .round(n)
        } else if q.hasPrefix("s"), let r = q.firstIndex(of: "r"), let step = Int(q[q.index(after: q.startIndex)..<r]),
                  let round = Int(q[q.index(after: r)...]), step >= 1 {
            qualifier = .step(step - 1, round: round)
        } else {
            return nil
        }
        self.init(incident: IncidentID(parts[0]), cycle: cycle, kind: kind, qualifier: qualifier, recipient: recipient, channel: channel)
    }
}

/// One page of the current round, kept so that a round nobody can receive escalates at once.
public struct OutstandingPage: Hashable, Sendable, Codable {
    public var notificationID: NotificationID
    public var failed: Bool

    public init(notificationID: NotificationID, failed: Bool) {
        self.notificationID = notificationID
        self.failed = failed
    }
}

public struct IncidentState: Hashable, Sendable, Codable {
    public var incident: Incident
    public var playbook: PlaybookID
    public var playbookVersion: String
    public var variant: PlanVariant
    public var phase: IncidentPhase
    public var owner: Actor?
    public var acknowledgedAt: Date?
    /// The step during which ownership was taken (0-based).
    public var acknowledgedStep: Int?
    public var tasks: [TaskState]
    public var timers: [ScheduledTimer]
    public var currentPages: [OutstandingPage]
    public var reportCount: Int
    /// Each reopening or manual restart starts a new cycle, which keeps notification ids unique.
    public var cycle: Int
    /// The next per-incident audit sequence number (the first entry is 1).
    public var nextAuditSequence: Int
    public var resolvedAt: Date?

    public init(incident: Incident, playbook: PlaybookID, playbookVersion: String, variant: PlanVariant, phase: IncidentPhase,
                owner: Actor?, acknowledgedAt: Date?, acknowledgedStep: Int?, tasks: [TaskState], timers: [ScheduledTimer],
                currentPages: [OutstandingPage], reportCount: Int, cycle: Int, nextAuditSequence: Int, resolvedAt: Date?) {
        self.incident = incident
        self.playbook = playbook
        self.playbookVersion = playbookVersion
        self.variant = variant
        self.phase = phase
        self.owner = owner
        self.acknowledgedAt = acknowledgedAt
        self.acknowledgedStep = acknowledgedStep
        self.tasks = tasks
        self.timers = timers
        self.currentPages = currentPages
        self.reportCount = reportCount
        self.cycle = cycle
        self.nextAuditSequence = nextAuditSequence
        self.resolvedAt = resolvedAt
    }

    public var isOpen: Bool { phase != .resolved }

    /// An empty value to swap in while an event's run holds the real state.
    static let placeholder = IncidentState(
        incident: Incident(id: IncidentID(""), number: 0, report: Report(type: IncidentTypeID(""), severity: .low, site: SiteID(""),
                                                                       reporter: .system, summary: "", receivedAt: Date(epochSeconds: 0))),
        playbook: PlaybookID(""), playbookVersion: "", variant: .standard, phase: .resolved, owner: nil, acknowledgedAt: nil,
        acknowledgedStep: nil, tasks: [], timers: [], currentPages: [], reportCount: 0, cycle: 0, nextAuditSequence: 0, resolvedAt: nil)
}

public enum AckPath: String, Hashable, Sendable, Codable, CaseIterable {
    case link, api, sms, voice, web, integration
}

public enum IncidentEvent: Hashable, Sendable {
    case reported(Incident)
    case reportMerged(Report)
    /// A responder confirms a flag (one a later report proposed, or their own finding): it is added to
    /// the incident and withdraws the open tasks it rules out.
    case flagConfirmed(IncidentFlag, by: Actor)
    /// A responder's decision on a flag (such as "telling the family could endanger the student"), with
    /// why (sealed): setting it withdraws the open tasks it rules out; clearing it restores them.
    case flagDecided(IncidentFlag, set: Bool, by: Actor, reason: String)
    /// A disclosure a person made outside Muster (records handed to the police or child protective
    /// services), with what and why (sealed): kept with the incident, as FERPA asks (34 CFR 99.32).
    case disclosureRecorded(by: Actor, recipient: String, what: String, basis: String)
    /// A responder joined another open incident into this one (an explicit action, audited): its
    /// reports come along, as merged reports do, and so do the flags in force there (`flags`, its
    /// first reporter's and those confirmed), confirmed by whoever joined them. Reports never join
    /// across people and integrations by grouping; only this way.
    case joinedFrom(IncidentRef, reports: [Report], flags: Set<IncidentFlag>, by: Actor)
    /// A responder joined this incident into another: it closes here, and its reports and escalation
    /// carry on in the other.
    case joinedInto(IncidentRef, by: Actor)
    case timerFired(TimerKey)
    /// `step` is the (0-based) step whose page was acknowledged, when known (a link is bound to one).
    case acknowledged(by: Actor, path: AckPath, step: Int?)
    /// A paged person or partner answered that they cannot take the incident ("NO 4821"). When
    /// everyone paged in the current round has declined or cannot be reached, the next step starts.
    case declined(by: Actor, path: AckPath)
    /// A reply from a paged person that Muster did not understand (they were sent the accepted
    /// forms). Kept on the timeline, sealed like a note; never refused, and it changes nothing.
    case replyReceived(from: Actor, path: AckPath, text: String)
    case escalatedByHand(by: Actor, reason: String?)
    case reassigned(to: PersonID, by: Actor)
    case taskCompleted(TaskID, by: Actor)
    case noteAdded(by: Actor, text: String)
    /// `outcome`: one of the playbook's outcomes (people resolving choose one; an integration closing
    /// its own alert and the simulator need not). One that needs a reason needs `note`.
    case resolved(by: Actor, note: String?, outcome: String? = nil)
    case reopened(by: Actor, reason: String?)
    /// A provider took one notification and will report whether it reached the person (`delivered` or
    /// `deliveryFailed` follows, from its status callback); `reference` is its id for the message.
    case sent(notificationID: NotificationID, reference: String?)
    /// A channel delivered one notification; `reference` is the provider's receipt (a message id, an SMS sid).
    case delivered(notificationID: NotificationID, reference: String?)
    /// The notification was written to the demonstration inbox (its channel has no provider, and the
    /// demonstration was switched on): it reached nobody, and is never counted as delivered.
    case demonstrated(notificationID: NotificationID)
    /// The notifier gave up on one notification (`permanent`) or on one attempt of it.
    case deliveryFailed(notificationID: NotificationID, recipient: Recipient, channel: ChannelKind, reason: String, permanent: Bool)
    /// An action someone may not take on this incident was refused (an integration acknowledging or
    /// resolving an incident a person reported). Recorded, never refused, and it changes nothing.
    case refused(by: Actor, action: String, reason: String)
    /// Someone read the incident's details (`from`: where the request came from). Recorded, never refused.
    case accessed(by: Actor, from: String?)
    /// Someone exported the incident's timeline (`format`: "JSON" or "CSV"): an access like any other,
    /// recorded with what was taken. Never refused.
    case exported(by: Actor, format: String, from: String?)
    /// The retention policy destroyed the closed incident's data key: its student text is gone for good.
    case purged(policy: String, closedBefore: Date)
}

public enum NotificationKind: String, Hashable, Sendable, Codable {
    case page
    case fallback
    case taskOverdue = "task_overdue"
    /// A task's deadline is coming and it is still open.
    case taskReminder = "task_reminder"
    case assigned
    /// A test of one contact point ("does my phone get it?"), sent at once and for no incident.
    case test
}

/// One message to one recipient over one channel. Its id is stable, so a retry after a crash is
/// recognised; the id also says whom it is for, over which channel, and why.
public struct QueuedNotification: Hashable, Sendable, Codable {
    public var id: NotificationID
    public var incidentNumber: Int
    public var type: IncidentTypeID
    public var severity: Severity
    public var site: SiteID
    public var address: String
    /// The incident is a drill: the message says so first.
    public var drill: Bool

    public init(id: NotificationID, incidentNumber: Int, type: IncidentTypeID, severity: Severity, site: SiteID, address: String,
                drill: Bool = false) {
        self.drill = drill
        self.id = id
        self.incidentNumber = incidentNumber
        self.type = type
        self.severity = severity
        self.site = site
        self.address = address
    }

    public var incident: IncidentID { id.incident }
    public var recipient: Recipient { id.recipient }
    public var channel: ChannelKind { id.channel }
    public var kind: NotificationKind { id.kind }

    /// The order in which queued notifications are sent when more are due than can go at once (a
    /// provider back after an outage, a wave of reports): pages before other notices, the more severe
    /// incident first, and of one incident the newest step first (the fallback is the newest of all).
    public var deliveryPriority: Int {
        let isPage = kind == .page || kind == .fallback
        let newness = switch id.qualifier {
        case .step(let step, let round): min(step, 98) * 100 + min(round, 99)
        case .none, .round: kind == .fallback ? 9_999 : 0
        case .task, .reminder, .sequence: 0
        }
        return (isPage ? 100_000 : 0) + severity.rank * 10_000 + newness
    }
}

public enum AuditAction: String, Hashable, Sendable, Codable, CaseIterable {
    case reported
    case reportMerged = "report_merged"
    case joined
    case severityRaised = "severity_raised"
    case taskScheduled = "task_scheduled"
    case stepStarted = "step_started"
    case stepRepeated = "step_repeated"
    case paged
    case targetUnresolved = "target_unresolved"
    case channelSubstituted = "channel_substituted"
    case stepSkipped = "step_skipped"
    case stepUnreachable = "step_unreachable"
    case escalated
    case fallbackPaged = "fallback_paged"
    case unowned
    case acknowledged
    case declined
    case replyReceived = "reply_received"
    case escalatedByHand = "escalated_by_hand"
    case reassigned
    case taskCompleted = "task_completed"
    case taskWithdrawn = "task_withdrawn"
    case flagProposed = "flag_proposed"
    case flagConfirmed = "flag_confirmed"
    /// A flag in force from the report, or set by a responder's decision.
    case flagSet = "flag_set"
    case flagCleared = "flag_cleared"
    /// A task a cleared flag had ruled out, put back on the checklist.
    case taskRestored = "task_restored"
    /// Information about the incident left the school: a page to a partner agency, or a disclosure a
    /// person recorded; with the recipient and the basis.
    case disclosed
    case taskOverdue = "task_overdue"
    /// A reminder went to whoever owes a task before its deadline.
    case taskReminded = "task_reminded"
    case noteAdded = "note_added"
    case resolved
    case reopened
    case sent
    case delivered
    case demonstrated
    case deliveryFailed = "delivery_failed"
    case accessed
    case refused
    case purged
}

/// One entry for the audit trail, before the store gives it a log position.
/// `sensitive` holds free text about a student (summaries, notes): it is sealed at rest and never indexed.
public struct AuditRecord: Hashable, Sendable, Codable {
    public var sequence: Int
    public var at: Date
    public var actor: Actor
    public var action: AuditAction
    /// 0-based step, when the entry concerns one.
    public var step: Int?
    public var round: Int?
    public var recipient: Recipient?
    public var channel: ChannelKind?
    public var task: TaskID?
    public var target: String?
    public var notification: NotificationID?
    /// Non-identifying detail: reasons, severities, variants, deadlines.
    public var detail: String?
    public var sensitive: String?

    public init(sequence: Int, at: Date, actor: Actor, action: AuditAction, step: Int? = nil, round: Int? = nil,
                recipient: Recipient? = nil, channel: ChannelKind? = nil, task: TaskID? = nil, target: String? = nil,
                notification: NotificationID? = nil, detail: String? = nil, sensitive: String? = nil) {
        self.sequence = sequence
        self.at = at
        self.actor = actor
        self.action = action
        self.step = step
        self.round = round
        self.recipient = recipient
        self.channel = channel
        self.task = task
        self.target = target
        self.notification = notification
        self.detail = detail
        self.sensitive = sensitive
    }
}

public enum Effect: Hashable, Sendable {
    case audit(AuditRecord)
    case scheduleTimer(TimerKey, at: Date)
    case cancelTimer(TimerKey)
    case notify(QueuedNotification)
}

/// Why the engine refused an event; nothing changed. The API reports these as conflicts.
public enum EngineRejection: Error, Hashable, Sendable, CustomStringConvertible {
    case alreadyReported
    case notReported
    case resolved
    case notResolved
    case alreadyAcknowledged(by: Actor)
    case unknownTask(TaskID)
    case taskAlreadyCompleted(TaskID)
    /// The reporter owes the task personally; nobody else may complete it.
    case taskOwedByReporter(TaskID)
    /// A later stage of a task, while the stage before it is still open.
    case taskStageOpen(TaskID, before: TaskID)
    case unknownPerson(PersonID)
    case joinItself
    case unknownFlag(IncidentFlag)
    case flagNotSet(IncidentFlag)
    /// A purge for incidents closed before a date, of one closed (again) since.
    case closedTooRecently(Date)
    case unknownOutcome(String, allowed: [String])
    case outcomeNeedsReason(String)

    public var description: String {
        switch self {
        case .alreadyReported: "the incident has already been reported"
        case .notReported: "the incident has not been reported yet"
        case .resolved: "the incident is resolved; reopen it first"
        case .notResolved: "the incident is not resolved, so it cannot be reopened"
        case .alreadyAcknowledged(let owner): "the incident is already acknowledged by \(owner)"
        case .unknownTask(let id): "the playbook has no task '\(id)' for this incident"
        case .taskAlreadyCompleted(let id): "task '\(id)' is already completed"
        case .taskOwedByReporter(let id): "task '\(id)' is owed by the reporter personally: only they can complete it"
        case .taskStageOpen(let id, let before): "task '\(id)' is a later stage: complete '\(before)' first"
        case .unknownPerson(let id): "no person '\(id)' in the directory"
        case .joinItself: "an incident cannot join itself"
        case .unknownFlag(let flag): "the incident's playbook has no flag '\(flag)'"
        case .flagNotSet(let flag): "the flag '\(flag)' is not set on this incident"
        case .closedTooRecently(let date): "the incident was closed after \(date), too recently for this purge"
        case .unknownOutcome(let outcome, let allowed):
            "the incident's playbook has no outcome '\(outcome)'; choose one of \(allowed.joined(separator: ", "))"
        case .outcomeNeedsReason(let outcome): "the outcome '\(outcome)' needs a reason: say why in the note"
        }
    }
}
