// The JSON shapes the API returns (snake_case keys, instants as ISO 8601 UTC with milliseconds,
// steps 1-based as people count them).
import Foundation
import MusterCore

enum APIJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(instant(date))
        }
        return encoder
    }()

    static func instant(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = ms >= 0 || ms % 1000 == 0 ? ms / 1000 : ms / 1000 - 1
        let fraction = Int(ms - seconds * 1000)
        var text = ZoneRules.utc.iso8601(Date(timeIntervalSince1970: TimeInterval(seconds)))
        // RFC 3339 years have four digits.
        if let dash = text.firstIndex(of: "-"), text.distance(from: text.startIndex, to: dash) < 4 {
            text = String(repeating: "0", count: 4 - text.distance(from: text.startIndex, to: dash)) + text
        }
        return String(text.dropLast()) + (fraction < 10 ? ".00" : fraction < 100 ? ".0" : ".") + "\(fraction)Z"
    }
}

struct IncidentLink: Encodable {
    var id: String
    var number: Int
    var url: String

    init(_ ref: IncidentRef) {
        id = ref.id.rawValue
        number = ref.number
        url = "/api/v1/incidents/" + ref.id.rawValue
    }
}

struct PageView: Encodable, Hashable {
    var recipient: String
    var name: String?
    var channel: String
    var step: Int?
    var kind: String
}

struct ReportAccepted: Encodable {
    /// "created", "merged" or "duplicate".
    var outcome: String
    var incident: IncidentLink
    var paging: [PageView]
    var advice: String?
}

struct IncidentSummaryView: Encodable {
    var id: String
    var number: Int
    var type: String
    var severity: String
    var site: String
    var status: String
    var playbook: String
    var reportedAt: Date
    var reportCount: Int

    init(_ summary: IncidentSummary) {
        id = summary.ref.id.rawValue
        number = summary.ref.number
        type = summary.type.rawValue
        severity = summary.severity.rawValue
        site = summary.site.rawValue
        status = summary.phase
        playbook = summary.playbook.rawValue
        reportedAt = summary.reportedAt
        reportCount = summary.reportCount
    }
}

struct IncidentList: Encodable {
    var incidents: [IncidentSummaryView]
    /// Pass as `before` for the next page; absent on the last page.
    var nextBefore: Int?
}

struct TaskView: Encodable {
    var id: String
    var dueAt: Date?
    var completedAt: Date?
    var completedBy: String?
    var overdue: Bool
}

/// An incident's state without student text: what an action returns.
struct IncidentStatusView: Encodable {
    var id: String
    var number: Int
    var type: String
    var severity: String
    var site: String
    var status: String
    var step: Int?
    var round: Int?
    var owner: String?
    var acknowledgedAt: Date?
    var resolvedAt: Date?
    var reportedAt: Date
    var reportCount: Int
    var playbook: String
    var playbookVersion: String
    var variant: String
    var tasks: [TaskView]
    var drill: Bool

    /// `forReporter`: the status as a reporter may see it, without naming the staff who own the
    /// incident or did its tasks.
    init(_ state: IncidentState, forReporter: Bool = false) {
        id = state.incident.id.rawValue
        number = state.incident.number
        type = state.incident.type.rawValue
        severity = state.incident.severity.rawValue
        site = state.incident.site.rawValue
        status = state.phase.name
        if case .escalating(let step, let round) = state.phase {
            self.step = step + 1
            self.round = round
        }
        owner = forReporter ? nil : state.owner?.description
        acknowledgedAt = state.acknowledgedAt
        resolvedAt = state.resolvedAt
        reportedAt = state.incident.reportedAt
        reportCount = state.reportCount
        playbook = state.playbook.rawValue
        playbookVersion = state.playbookVersion
        variant = state.variant.rawValue
        drill = state.incident.drill
        tasks = state.tasks.map {
            TaskView(id: $0.id.rawValue, dueAt: $0.dueAt, completedAt: $0.completedAt, completedBy: forReporter ? nil : $0.completedBy?.description,
                     overdue: $0.overdue)
        }
    }
}

struct ReportView: Encodable {
    var reporter: String
    var type: String
    var severity: String
    var summary: String
    var subject: String?
    var flags: [String]
    var receivedAt: Date
}

struct TimelineEntryView: Encodable {
    var sequence: Int
    var at: Date
    var actor: String
    var action: String
    var step: Int?
    var round: Int?
    var recipient: String?
    var channel: String?
    var task: String?
    var target: String?
    var notification: String?
    var detail: String?
    /// Student text (a summary, a note), shown only to those allowed to read the incident.
    var text: String?

    init(_ record: AuditRecord) {
        sequence = record.sequence
        at = record.at
        actor = record.actor.description
        action = record.action.rawValue
        step = record.step.map { $0 + 1 }
        round = record.round
        recipient = record.recipient?.description
        channel = record.channel?.rawValue
        task = record.task?.rawValue
        target = record.target
        notification = record.notification?.description
        detail = record.detail
        text = record.sensitive
    }
}

/// Everything about one incident, student text included: reading it is recorded in the audit trail.
struct IncidentDetailView: Encodable {
    var incident: IncidentStatusView
    var summary: String
    var subject: String?
    var flags: [String]
    var reports: [ReportView]
    var timeline: [TimelineEntryView]
}
