// The loaded playbooks: which one an incident runs under, and how its reports group.
import Foundation

public struct PlaybookSet: Sendable {
    public let playbooks: [Playbook]

    public init(_ playbooks: [Playbook]) { self.playbooks = playbooks }

    public subscript(id: PlaybookID) -> Playbook? { playbooks.first { $0.id == id } }

    /// The most specific playbook that matches; ties are rejected when the set is loaded.
    public func playbook(type: IncidentTypeID, severity: Severity, site: SiteID) -> Playbook? {
        var best: Playbook?
        for playbook in playbooks where playbook.match.matches(type: type, severity: severity, site: site) {
            if best.map({ playbook.match.specificity > $0.match.specificity }) ?? true { best = playbook }
        }
        return best
    }

    /// The key under which a report merges into an open incident, or nil when it never groups
    /// (the playbook has no grouping, or groups by subject and the report names none).
    public static func groupingKey(for report: Report, playbook: Playbook) -> String? {
        guard let grouping = playbook.grouping else { return nil }
        var key = playbook.id.rawValue
        for field in grouping.by {
            switch field {
            case .site: key += "|site=\(report.site)"
            case .type: key += "|type=\(report.type)"
            case .reporter: key += "|reporter=\(report.reporter)"
            case .subject:
                guard let subject = report.subject, !subject.isEmpty else { return nil }
                key += "|subject=\(subject)"
            }
        }
        // An integration's reports group only with that integration's: a door alarm never joins a
        // teacher's report, so the integration's "resolve" can never close what a person raised.
        if case .integration(let name) = report.reporter { key += "|raised-by=integration:\(name)" }
        // A drill never joins a real incident, nor a real report a drill.
        if report.drill { key += "|drill" }
        return key
    }
}
