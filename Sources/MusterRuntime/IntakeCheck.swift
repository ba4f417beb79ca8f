// The one check of a report against the loaded directory and playbooks: its type, site, severity,
// flags and subject. The API, the integrations and the command line call it before they submit a
// report, each naming the problem in its own terms (a JSON pointer, a label, an option); the
// dispatcher calls it too, so a report that skipped it is refused the same way.
import Foundation
import MusterCore
import MusterPlaybooks

/// What is wrong with one field of a report, with a suggestion where one fits.
public struct IntakeProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Field: String, Sendable, Hashable {
        case type, severity, site, flags, subject
    }

    public var field: Field
    /// The position of the flag in the list the client sent (flags only).
    public var index: Int?
    public var detail: String

    public var description: String { detail }
}

/// Everything wrong with one report, in field order.
public struct IntakeProblems: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [IntakeProblem]

    public init(_ problems: [IntakeProblem]) {
        self.problems = problems
    }

    public var description: String { problems.map(\.detail).joined(separator: "; ") }
}

public struct IntakeCheck: Sendable {
    /// The longest subject reference taken (a student number or initials, never a name or a story).
    public static let subjectLimit = 200

    public let catalog: Catalog

    public init(catalog: Catalog) {
        self.catalog = catalog
    }

    /// A severity from its name, or the problem that names the accepted ones.
    public static func severity(_ text: String) -> Result<Severity, IntakeProblem> {
        guard let severity = Severity(rawValue: text) else {
            return .failure(IntakeProblem(field: .severity, detail: "unknown severity '\(text)'"
                                          + suggestion(for: text, among: Severity.allCases.map(\.rawValue))))
        }
        return .success(severity)
    }

    /// Every problem with the report's fields; empty when the dispatcher can take it. `flags` in the
    /// order the client sent them, so each problem can say which one.
    public func problems(type: IncidentTypeID, severity: Severity, site: SiteID, flags: [IncidentFlag] = [], subject: String? = nil) -> [IntakeProblem] {
        if case .failure(let failed) = check(type: type, severity: severity, site: site, flags: flags, subject: subject) { return failed.problems }
        return []
    }

    /// The playbook the report runs under, or every problem with its fields.
    public func check(type: IncidentTypeID, severity: Severity, site: SiteID, flags: [IncidentFlag] = [],
                      subject: String? = nil) -> Result<Playbook, IntakeProblems> {
        var problems: [IntakeProblem] = []
        let directory = catalog.directory
        if !directory.incidentTypes.contains(where: { $0.id == type }) {
            problems.append(IntakeProblem(field: .type, detail: "unknown incident type '\(type)'"
                                          + suggestion(for: type.rawValue, among: directory.incidentTypes.map(\.id.rawValue))))
        }
        if directory.sites[site] == nil {
            problems.append(IntakeProblem(field: .site, detail: "unknown site '\(site)'"
                                          + suggestion(for: site.rawValue, among: directory.sites.keys.map(\.rawValue).sorted())))
        }
        if let subject, subject.count > Self.subjectLimit {
            problems.append(IntakeProblem(field: .subject, detail: "the subject reference is longer than \(Self.subjectLimit) characters"))
        }
        guard problems.isEmpty else { return .failure(IntakeProblems(problems)) }
        guard let playbook = catalog.playbooks.playbook(type: type, severity: severity, site: site) else {
            return .failure(IntakeProblems([IntakeProblem(field: .type, detail: "no playbook matches \(type) \(severity.rawValue) at \(site)")]))
        }
        for (index, flag) in flags.enumerated() where playbook.flags[flag] == nil {
            problems.append(IntakeProblem(field: .flags, index: index, detail: "the \(playbook.id) playbook has no flag '\(flag)'"
                                          + suggestion(for: flag.rawValue, among: playbook.flags.keys.map(\.rawValue).sorted())))
        }
        return problems.isEmpty ? .success(playbook) : .failure(IntakeProblems(problems))
    }

    /// The same check for a report already built (its flags in a stable order).
    public func check(_ report: Report) -> Result<Playbook, IntakeProblems> {
        check(type: report.type, severity: report.severity, site: report.site, flags: report.flags.sorted { $0.rawValue < $1.rawValue },
              subject: report.subject)
    }
}
