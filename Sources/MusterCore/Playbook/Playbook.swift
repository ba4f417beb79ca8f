// The declarative escalation protocol for a kind of incident, as loaded from a YAML file
// (MusterPlaybooks parses and validates; docs/playbooks.md documents every key).
import Foundation

/// Where a role is looked up: the incident's own site, the district, or a named site.
public enum TargetScope: Hashable, Sendable, Codable, CustomStringConvertible {
    case incidentSite
    case district
    case site(SiteID)

    public var description: String {
        switch self {
        case .incidentSite: "site"
        case .district: "district"
        case .site(let id): id.rawValue
        }
    }
}

/// Who a step alerts.
public enum Target: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Whoever is on call in that role's schedule at that scope.
    case onCall(RoleID, TargetScope)
    /// Everyone who holds the role at that scope.
    case role(RoleID, TargetScope)
    case person(PersonID)
    case partner(PartnerID)
    /// The staff member who reported the incident.
    case reporter

    public var description: String {
        switch self {
        case .onCall(let role, let scope): "on-call:\(role)@\(scope)"
        case .role(let role, let scope): "role:\(role)@\(scope)"
        case .person(let id): "person:\(id)"
        case .partner(let id): "partner:\(id)"
        case .reporter: "reporter"
        }
    }
}

public struct EscalationStep: Hashable, Sendable {
    public var targets: [Target]
    public var channels: [ChannelKind]
    public var ackWithin: TimeSpan
    /// How many times the step pages again before escalating (0: page once).
    public var repeats: Int
    /// Why paging a partner agency is a lawful disclosure (FERPA's health-or-safety emergency): recorded
    /// with every page to a partner. Required when the step names one.
    public var disclosureBasis: String?
    /// The step waits for the site's school hours to begin (`ack_within: school-opens`): a concern
    /// reported at night is sent once, quietly, and escalation goes on in the morning. `ackWithin`
    /// is then only the estimate coverage checks use.
    public var untilSchoolOpens: Bool

    /// What coverage checks take a step that waits for school to open to last.
    public static let overnightEstimate = TimeSpan.hours(12)

    public init(targets: [Target], channels: [ChannelKind], ackWithin: TimeSpan, repeats: Int = 0, disclosureBasis: String? = nil,
                untilSchoolOpens: Bool = false) {
        self.targets = targets
        self.channels = channels
        self.ackWithin = ackWithin
        self.repeats = repeats
        self.disclosureBasis = disclosureBasis
        self.untilSchoolOpens = untilSchoolOpens
    }
}

/// Who is alerted when nobody has acknowledged after the last step; the incident is then flagged
/// unowned, and the fallback is paged again every `repeatEvery` until someone takes it.
public struct Fallback: Hashable, Sendable {
    public static let defaultRepeatEvery = TimeSpan.minutes(5)

    public var targets: [Target]
    public var channels: [ChannelKind]
    public var repeatEvery: TimeSpan
    /// As a step's: required when the fallback names a partner agency.
    public var disclosureBasis: String?
    public init(targets: [Target], channels: [ChannelKind], repeatEvery: TimeSpan = Fallback.defaultRepeatEvery, disclosureBasis: String? = nil) {
        self.targets = targets
        self.channels = channels
        self.repeatEvery = repeatEvery
        self.disclosureBasis = disclosureBasis
    }
}

public enum DeadlineAnchor: String, CaseIterable, Hashable, Sendable, Codable {
    case report
    case acknowledgement
}

public struct OverdueAlert: Hashable, Sendable {
    public var targets: [Target]
    public var channels: [ChannelKind]
    public init(targets: [Target], channels: [ChannelKind]) {
        self.targets = targets
        self.channels = channels
    }
}

/// Who owes a task: whichever responder picks it up, or the reporter personally (in many states each
/// employee who heard a disclosure must report it themselves, and may not hand that on).
public enum TaskOwner: String, Hashable, Sendable, CaseIterable {
    case responders
    case reporter
}

/// A protocol action with a deadline ("parent or guardian notified within 4h of the report").
public struct ProtocolTask: Hashable, Sendable {
    public var id: TaskID
    public var title: String
    public var due: TimeSpan
    public var after: DeadlineAnchor
    /// The task is left out of incidents reported with any of these flags.
    public var unless: Set<IncidentFlag>
    public var overdue: OverdueAlert
    /// Who owes it: only the reporter completes a task the reporter owes, and they are the one reminded
    /// and alerted when it is overdue (besides the overdue alert's own targets).
    public var owner: TaskOwner
    /// Reminders before the deadline while the task is open, longest first ("12h" is 12 hours before).
    public var remindBefore: [TimeSpan]
    /// A later stage of a task (`then:` in the file): the stage before it, which must be completed first.
    /// Every stage's deadline counts from the same anchor ("by phone at once, in writing within 36h").
    public var follows: TaskID?

    public init(id: TaskID, title: String, due: TimeSpan, after: DeadlineAnchor,
                unless: Set<IncidentFlag> = [], overdue: OverdueAlert, owner: TaskOwner = .responders,
                remindBefore: [TimeSpan] = [], follows: TaskID? = nil) {
        self.id = id
        self.title = title
        self.due = due
        self.after = after
        self.unless = unless
        self.overdue = overdue
        self.owner = owner
        self.remindBefore = remindBefore.sorted(by: >)
        self.follows = follows
    }
}

/// How an incident ended, chosen when it is resolved (tip programmes such as Safe2Tell close every
/// tip with its outcome). Some need a reason: "false alarm" says why it was one.
public struct ResolutionOutcome: Hashable, Sendable {
    public var id: String
    public var title: String
    public var needsReason: Bool

    public init(id: String, title: String, needsReason: Bool = false) {
        self.id = id
        self.title = title
        self.needsReason = needsReason
    }

    /// A playbook's outcomes when it names none.
    public static let defaults = [
        ResolutionOutcome(id: "handled-at-school", title: "Handled at school"),
        ResolutionOutcome(id: "referred", title: "Referred to an outside service"),
        ResolutionOutcome(id: "emergency-services", title: "Emergency services involved"),
        ResolutionOutcome(id: "false-alarm", title: "False alarm", needsReason: true),
        ResolutionOutcome(id: "duplicate", title: "Duplicate of another report"),
    ]
}

public struct PlaybookMatch: Hashable, Sendable {
    /// Empty only for the catch-all playbook.
    public var types: Set<IncidentTypeID>
    public var catchAll: Bool
    /// Empty: every severity.
    public var severities: Set<Severity>
    /// Empty: every site.
    public var sites: Set<SiteID>

    public init(types: Set<IncidentTypeID>, catchAll: Bool = false, severities: Set<Severity> = [], sites: Set<SiteID> = []) {
        self.types = types
        self.catchAll = catchAll
        self.severities = severities
        self.sites = sites
    }

    public func matches(type: IncidentTypeID, severity: Severity, site: SiteID) -> Bool {
        (catchAll || types.contains(type))
            && (severities.isEmpty || severities.contains(severity))
            && (sites.isEmpty || sites.contains(site))
    }

    /// More specific playbooks win: a named type beats the catch-all, a site or severity list beats none.
    public var specificity: Int {
        (catchAll ? 0 : 4) + (sites.isEmpty ? 0 : 2) + (severities.isEmpty ? 0 : 1)
    }
}

public enum GroupField: String, CaseIterable, Hashable, Sendable, Codable {
    case site, type, subject, reporter
}

/// How reports about the same thing merge into one open incident.
public struct Grouping: Hashable, Sendable {
    public var by: [GroupField]
    /// A report merges into an open incident whose first report came at most this long before.
    public var within: TimeSpan
    public init(by: [GroupField], within: TimeSpan) {
        self.by = by
        self.within = within
    }
}

/// Which list of steps an incident runs, chosen from the site's calendar when it is reported.
public enum PlanVariant: String, CaseIterable, Hashable, Sendable, Codable {
    case standard
    case outsideSchoolHours = "outside_school_hours"
    case nonSchoolDays = "non_school_days"

    var index: Int {
        switch self {
        case .standard: 0
        case .outsideSchoolHours: 1
        case .nonSchoolDays: 2
        }
    }
}

public struct Playbook: Hashable, Sendable {
    public var id: PlaybookID
    public var title: String
    /// "sha256:…" of the file's bytes: each incident records the exact version it ran under.
    public var version: String
    public var match: PlaybookMatch
    public var grouping: Grouping?
    public var steps: [EscalationStep]
    public var outsideSchoolHours: [EscalationStep]?
    public var nonSchoolDays: [EscalationStep]?
    public var fallback: Fallback
    public var tasks: [ProtocolTask]
    /// Flags a reporter may set for this kind of incident, with the question the form asks.
    public var flags: [IncidentFlag: String]
    /// The flags in the order the file declares them. The audit log names a flag by its place here
    /// ("F2"), never by its name, which can say something about a child's family (see `code(of:)`).
    public var flagOrder: [IncidentFlag]
    /// The report form tells the reporter to call 911 before anything else, whatever the severity
    /// (a medical emergency); imminent reports always are.
    public var callEmergencyFirst: Bool
    /// What a person resolving the incident chooses from.
    public var outcomes: [ResolutionOutcome]

    public init(id: PlaybookID, title: String, version: String, match: PlaybookMatch, grouping: Grouping? = nil,
                steps: [EscalationStep], outsideSchoolHours: [EscalationStep]? = nil,
                nonSchoolDays: [EscalationStep]? = nil, fallback: Fallback, tasks: [ProtocolTask] = [],
                flags: [IncidentFlag: String] = [:], flagOrder: [IncidentFlag]? = nil, callEmergencyFirst: Bool = false,
                outcomes: [ResolutionOutcome] = ResolutionOutcome.defaults) {
        self.callEmergencyFirst = callEmergencyFirst
        self.outcomes = outcomes
        self.id = id
        self.title = title
        self.version = version
        self.match = match
        self.grouping = grouping
        self.steps = steps
        self.outsideSchoolHours = outsideSchoolHours
        self.nonSchoolDays = nonSchoolDays
        self.fallback = fallback
        self.tasks = tasks
        self.flags = flags
        self.flagOrder = flagOrder ?? flags.keys.sorted { $0.rawValue < $1.rawValue }
    }

    /// The neutral code the audit log writes for a flag: "F" and its place in the playbook's list.
    /// Its meaning is in the playbook, not in the log, and the flag itself is sealed with the report.
    public func code(of flag: IncidentFlag) -> String {
        flagOrder.firstIndex(of: flag).map { "F\($0 + 1)" } ?? "F?"
    }

    /// The flag a neutral code stands for, as a page that may show it reads the log.
    public func flag(code: String) -> IncidentFlag? {
        guard code.hasPrefix("F"), let place = Int(code.dropFirst()), flagOrder.indices.contains(place - 1) else { return nil }
        return flagOrder[place - 1]
    }

    /// Non-school days use their own steps if given, else the after-hours steps, else the standard ones.
    public func variant(for time: SchoolTime) -> PlanVariant {
        switch time {
        case .schoolHours: .standard
        case .outsideSchoolHours: outsideSchoolHours == nil ? .standard : .outsideSchoolHours
        case .nonSchoolDay:
            nonSchoolDays != nil ? .nonSchoolDays : (outsideSchoolHours != nil ? .outsideSchoolHours : .standard)
        }
    }

    public func steps(of variant: PlanVariant) -> [EscalationStep] {
        switch variant {
        case .standard: steps
        case .outsideSchoolHours: outsideSchoolHours ?? steps
        case .nonSchoolDays: nonSchoolDays ?? steps
        }
    }
}
