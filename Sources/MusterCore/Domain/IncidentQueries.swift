// What reading incidents gives and takes, whoever serves it: references, list lines and filters, and
// the error a command or a read answers with.
import Foundation

public struct IncidentRef: Sendable, Hashable, Codable {
    public var id: IncidentID
    public var number: Int
    public init(id: IncidentID, number: Int) {
        self.id = id
        self.number = number
    }
}

public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The engine refused the event; nothing was written.
    case rejected(EngineRejection)
    case unknownIncident(IncidentID)
    /// The report names an incident type or a site the directory does not have.
    case invalidReport(String)
    /// No playbook matches the report (the catch-all playbook prevents this in practice).
    case noPlaybook(type: IncidentTypeID, severity: Severity, site: SiteID)
    /// The incident runs under a playbook that is no longer loaded.
    case unknownPlaybook(PlaybookID)
    /// The database could not be reached or did not answer in time. The command may or may not have
    /// been written: retry it (a report with the same idempotency key is recognised).
    case unavailable(String)
    /// The incident's student text was purged under the retention policy: it takes no new text.
    case purged(IncidentID)
    /// A delivery attempt's notification is no longer held by the worker that made it (its lease
    /// lapsed and another worker took it over): nothing of the attempt was recorded.
    case notHeld(NotificationID)
    /// The incident changed between the request's read and its commit (a report joined it): nothing
    /// was written; read it again and retry.
    case changed(IncidentID)

    public var description: String {
        switch self {
        case .rejected(let rejection): rejection.description
        case .invalidReport(let problem): problem
        case .unknownIncident(let id): "no incident \(id)"
        case .noPlaybook(let type, let severity, let site): "no playbook matches \(type) \(severity.rawValue) at \(site)"
        case .unknownPlaybook(let id): "the incident's playbook \(id) is not loaded"
        case .changed(let id): "incident \(id) changed while the request was made; read it again and retry"
        case .unavailable(let reason): "the database is unavailable, retry: \(reason)"
        case .purged(let id): "incident \(id) was purged under the retention policy; it takes no new notes or reports"
        case .notHeld(let id): "notification \(id) is no longer held by this worker; another worker records it"
        }
    }
}

/// A line of the incidents list.
public struct IncidentSummary: Sendable, Hashable {
    public var ref: IncidentRef
    public var type: IncidentTypeID
    public var severity: Severity
    public var site: SiteID
    public var phase: String
    public var playbook: PlaybookID
    public var reportedAt: Date
    public var reportCount: Int

    public init(ref: IncidentRef, type: IncidentTypeID, severity: Severity, site: SiteID, phase: String, playbook: PlaybookID,
                reportedAt: Date, reportCount: Int) {
        self.ref = ref
        self.type = type
        self.severity = severity
        self.site = site
        self.phase = phase
        self.playbook = playbook
        self.reportedAt = reportedAt
        self.reportCount = reportCount
    }
}

public struct IncidentFilter: Sendable, Hashable {
    /// The phases of an incident not yet resolved.
    public static let openPhases: Set<String> = ["escalating", "acknowledged", "unowned"]

    public var phases: Set<String>
    public var site: SiteID?
    /// When set, only incidents at these sites (an account's scope).
    public var scope: Set<SiteID>?
    /// When set, only incidents this actor reported (a reporter's view).
    public var reporter: Actor?
    public var type: IncidentTypeID?
    public var reportedFrom: Date?
    public var reportedBefore: Date?
    /// Incidents numbered below this one (the next page of a newest-first list).
    public var before: Int?
    public var limit: Int

    public init(phases: Set<String> = [], site: SiteID? = nil, scope: Set<SiteID>? = nil, reporter: Actor? = nil, type: IncidentTypeID? = nil,
                reportedFrom: Date? = nil, reportedBefore: Date? = nil, before: Int? = nil, limit: Int = 50) {
        self.phases = phases
        self.site = site
        self.scope = scope
        self.reporter = reporter
        self.type = type
        self.reportedFrom = reportedFrom
        self.reportedBefore = reportedBefore
        self.before = before
        self.limit = limit
    }
}

public extension IncidentPhase {
    /// The phase's name as stored and filtered on.
    var name: String {
        switch self {
        case .escalating: "escalating"
        case .acknowledged: "acknowledged"
        case .unowned: "unowned"
        case .resolved: "resolved"
        }
    }
}
