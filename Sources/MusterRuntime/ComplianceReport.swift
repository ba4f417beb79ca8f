// The compliance report: for the incidents reported in a period, how fast the first page went out,
// was delivered and acknowledged, how long until resolution, how often it escalated, which protocol
// deadlines were missed and which tasks were done late or never, and how long nobody owned it.
// Computed from the stored record (the incidents and their audit timelines), never from in-memory
// counters: it survives restarts and agrees with the log. Drills are counted apart and left out.
import Foundation
import MusterAudit
import MusterCore
import MusterStore

public struct ComplianceReport: Sendable, Encodable {
    /// One incident's figures; times are seconds since its report, nil when it never happened.
    public struct IncidentRow: Sendable, Encodable, Equatable {
        public var number: Int
        public var id: String
        public var type: String
        public var site: String
        public var severity: String
        public var reportedAt: Date
        public var status: String
        /// The outcome chosen when it was resolved (nil while open, or closed by an integration).
        public var outcome: String?
        public var firstPageSeconds: Double?
        public var firstDeliverySeconds: Double?
        public var acknowledgedSeconds: Double?
        public var resolvedSeconds: Double?
        /// Escalations to the next step or the fallback, for want of an acknowledgement or by hand.
        public var escalations: Int
        /// Task deadlines that passed before the task was done (the log's task_overdue entries).
        public var deadlinesMissed: Int
        public var tasksLate: [String]
        /// Tasks not done although the incident is resolved or their deadline has passed.
        public var tasksNeverDone: [String]
        /// Periods when every step and the fallback had been paged and nobody had taken it.
        public var unownedPeriods: Int
        public var unownedSeconds: Double
    }

    /// Figures summed for one site and incident type (and once for everything: site and type "all").
    public struct Summary: Sendable, Encodable, Equatable {
        public var site: String
        public var type: String
        public var incidents: Int
        public var acknowledged: Int
        public var medianAcknowledgedSeconds: Double?
        public var maxAcknowledgedSeconds: Double?
        public var medianFirstPageSeconds: Double?
        public var resolved: Int
        public var medianResolvedSeconds: Double?
        public var escalations: Int
        public var deadlinesMissed: Int
        public var tasksLate: Int
        public var tasksNeverDone: Int
        public var unownedPeriods: Int
        public var unownedSeconds: Double
    }

    public var from: Date
    public var to: Date
    public var site: String?
    public var type: String?
    /// The instant the figures were taken at (an open incident's unowned period runs until then).
    public var asOf: Date
    /// Drills reported in the period, left out of every figure.
    public var drillsLeftOut: Int
    public var incidents: [IncidentRow]
    public var summary: [Summary]

    /// Reads every incident reported in [from, to) at `site` of `type` (nil: all) from the store.
    public static func build(store: any Store, from: Date, to: Date, site: SiteID?, type: IncidentTypeID?, asOf: Date) async throws -> ComplianceReport {
        var rows: [IncidentRow] = [], drills = 0
        var filter = IncidentFilter(site: site, type: type, reportedFrom: from, reportedBefore: to, limit: 200)
        while true {
            let page = try await store.incidents(filter)
            for summary in page {
                guard let state = try await store.incident(summary.ref.id) else { continue }
                if state.incident.drill {
                    drills += 1
                    continue
                }
                rows.append(row(state, timeline: try await store.timeline(summary.ref.id), asOf: asOf))
            }
            guard page.count == filter.limit, let last = page.last else { break }
            filter.before = last.ref.number
        }
        rows.sort { $0.number < $1.number }
        return ComplianceReport(from: from, to: to, site: site?.rawValue, type: type?.rawValue, asOf: asOf, drillsLeftOut: drills,
                                incidents: rows, summary: summarise(rows))
    }

    /// One incident's figures from its state and its timeline.
    public static func row(_ state: IncidentState, timeline: [AuditRecord], asOf: Date) -> IncidentRow {
        let reported = state.incident.reportedAt
        // Entries keep milliseconds, the report's time more: the first entries may read a fraction before it.
        func after(_ record: AuditRecord) -> Double { max(0, record.at.timeIntervalSince(reported)) }
        func since(_ action: AuditAction, last: Bool = false) -> Double? {
            (last ? timeline.last { $0.action == action } : timeline.first { $0.action == action }).map(after)
        }
        var unownedPeriods = 0, unownedSeconds = 0.0, unownedSince: Date?
        for record in timeline {
            switch record.action {
            case .unowned where unownedSince == nil:
                unownedPeriods += 1
                unownedSince = record.at
            case .acknowledged, .resolved:
                if let start = unownedSince { unownedSeconds += record.at.timeIntervalSince(start) }
                unownedSince = nil
            default: break
            }
        }
        if let start = unownedSince { unownedSeconds += max(0, asOf.timeIntervalSince(start)) }
        let resolved = state.phase == .resolved
        let tasksLate = timeline.filter { $0.action == .taskCompleted && $0.detail == "after its deadline" }.compactMap { $0.task?.rawValue }
        let tasksNeverDone = state.tasks.filter { task in
            task.completedAt == nil && (resolved || (task.dueAt.map { $0 <= asOf } ?? false))
        }.map(\.id.rawValue)
        return IncidentRow(
            number: state.incident.number, id: state.incident.id.rawValue, type: state.incident.type.rawValue, site: state.incident.site.rawValue,
            severity: state.incident.severity.rawValue, reportedAt: reported, status: state.phase.name,
            outcome: resolved ? timeline.last { $0.action == .resolved }?.target : nil,
            firstPageSeconds: timeline.first { $0.action == .paged || $0.action == .fallbackPaged }.map(after),
            firstDeliverySeconds: since(.delivered), acknowledgedSeconds: since(.acknowledged),
            resolvedSeconds: resolved ? since(.resolved, last: true) : nil,
            escalations: timeline.filter { $0.action == .escalated }.count,
            deadlinesMissed: timeline.filter { $0.action == .taskOverdue }.count,
            tasksLate: tasksLate, tasksNeverDone: tasksNeverDone, unownedPeriods: unownedPeriods, unownedSeconds: unownedSeconds)
    }

    static func summarise(_ rows: [IncidentRow]) -> [Summary] {
        let groups = Dictionary(grouping: rows) { "\($0.site)\u{1F}\($0.type)" }
        var result = groups.values.map { summary($0, site: $0[0].site, type: $0[0].type) }.sorted { ($0.site, $0.type) < ($1.site, $1.type) }
        result.append(summary(rows, site: "all", type: "all"))
        return result
    }

    private static func summary(_ rows: [IncidentRow], site: String, type: String) -> Summary {
        let acknowledged = rows.compactMap(\.acknowledgedSeconds), resolved = rows.compactMap(\.resolvedSeconds)
        return Summary(
            site: site, type: type, incidents: rows.count, acknowledged: acknowledged.count, medianAcknowledgedSeconds: median(acknowledged),
            maxAcknowledgedSeconds: acknowledged.max(), medianFirstPageSeconds: median(rows.compactMap(\.firstPageSeconds)),
            resolved: resolved.count, medianResolvedSeconds: median(resolved), escalations: rows.reduce(0) { $0 + $1.escalations },
            deadlinesMissed: rows.reduce(0) { $0 + $1.deadlinesMissed }, tasksLate: rows.reduce(0) { $0 + $1.tasksLate.count },
            tasksNeverDone: rows.reduce(0) { $0 + $1.tasksNeverDone.count }, unownedPeriods: rows.reduce(0) { $0 + $1.unownedPeriods },
            unownedSeconds: rows.reduce(0) { $0 + $1.unownedSeconds })
    }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The period `from`…`to` as instants: a date (YYYY-MM-DD) is a whole day in `zone` (the district's),
    /// `to` included; an RFC 3339 instant is taken as it is, `to` excluded. An error says what is wrong.
    public static func period(from: String, to: String, zone: ZoneRules) -> Result<(from: Date, to: Date), PeriodError> {
        func instant(_ text: String, _ name: String, endOfDay: Bool) -> Result<Date, PeriodError> {
            if let date = LocalDate.parse(text) {
                let day = endOfDay ? LocalDate(dayNumber: date.dayNumber + 1) : date
                return .success(zone.instant(LocalDateTime(date: day, time: LocalTime(hour: 0, minute: 0))))
            }
            if let date = InstantParser.parse(text) { return .success(date) }
            return .failure(PeriodError(field: name, detail: "expected a date (2026-09-01) or an RFC 3339 date-time, found '\(text)'"))
        }
        let start: Date, end: Date
        switch (instant(from, "from", endOfDay: false), instant(to, "to", endOfDay: true)) {
        case (.failure(let error), _), (_, .failure(let error)): return .failure(error)
        case (.success(let first), .success(let last)): (start, end) = (first, last)
        }
        guard start < end else { return .failure(PeriodError(field: "to", detail: "the period ends before it starts")) }
        return .success((start, end))
    }

    public struct PeriodError: Error, Sendable, CustomStringConvertible {
        public var field: String
        public var detail: String
        public var description: String { "\(field): \(detail)" }
    }

    // MARK: Encodings

    public enum Table: String, Sendable, CaseIterable {
        case incidents, summary
    }

    /// JSON with snake_case keys and RFC 3339 instants, both tables in one document.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(AuditEntryEncoding.timestamp(date))
        }
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// One table as CSV (RFC 4180, CRLF); seconds with millisecond precision, empty when it never happened.
    public func csv(_ table: Table) -> String {
        func seconds(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "" }
        var lines: [[String]]
        switch table {
        case .incidents:
            lines = [["number", "id", "type", "site", "severity", "reported_at", "status", "outcome", "first_page_seconds", "first_delivery_seconds",
                      "acknowledged_seconds", "resolved_seconds", "escalations", "deadlines_missed", "tasks_late", "tasks_never_done",
                      "unowned_periods", "unowned_seconds"]]
            for row in incidents {
                lines.append([String(row.number), row.id, row.type, row.site, row.severity, AuditEntryEncoding.timestamp(row.reportedAt), row.status,
                              row.outcome ?? "", seconds(row.firstPageSeconds), seconds(row.firstDeliverySeconds), seconds(row.acknowledgedSeconds),
                              seconds(row.resolvedSeconds), String(row.escalations), String(row.deadlinesMissed), row.tasksLate.joined(separator: " "),
                              row.tasksNeverDone.joined(separator: " "), String(row.unownedPeriods), seconds(row.unownedSeconds)])
            }
        case .summary:
            lines = [["site", "type", "incidents", "acknowledged", "median_acknowledged_seconds", "max_acknowledged_seconds",
                      "median_first_page_seconds", "resolved", "median_resolved_seconds", "escalations", "deadlines_missed", "tasks_late",
                      "tasks_never_done", "unowned_periods", "unowned_seconds"]]
            for row in summary {
                lines.append([row.site, row.type, String(row.incidents), String(row.acknowledged), seconds(row.medianAcknowledgedSeconds),
                              seconds(row.maxAcknowledgedSeconds), seconds(row.medianFirstPageSeconds), String(row.resolved),
                              seconds(row.medianResolvedSeconds), String(row.escalations), String(row.deadlinesMissed), String(row.tasksLate),
                              String(row.tasksNeverDone), String(row.unownedPeriods), seconds(row.unownedSeconds)])
            }
        }
        return lines.map { $0.map { AuditExporter.quoted(AuditExporter.inert($0)) }.joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }
}
