// A small district and playbook that the engine tests run against, loaded through the real loader.
import Foundation
import MusterCore
import MusterPlaybooks
import Testing

enum Fixture {
    static let directoryYAML = """
        district: { id: test, name: Test District, time_zone: America/Chicago,
                    closed: [ { date: 2026-11-26, reason: Thanksgiving } ] }
        incident_types:
          - { id: suicide-risk, title: Suicide risk }
          - { id: other-concern, title: Other concern }
        roles:
          - { id: social-worker, title: Social worker }
          - { id: counselor, title: Counselor }
          - { id: principal, title: Principal }
          - { id: crisis-team, title: District crisis team }
        sites:
          - id: north
            name: North High
            time_zone: America/Chicago
            school_hours: { days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" }
        people:
          - { id: sw1, name: Sam Weller, roles: [social-worker], sites: [north], contacts: [ { sms: "+15555550101" }, { push: sw1-device } ] }
          - { id: sw2, name: Sara Wong, roles: [social-worker], sites: [north], contacts: [ { sms: "+15555550102" }, { push: sw2-device } ] }
          - { id: c1, name: Cole Ames, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550103" } ] }
          - { id: pr1, name: Pat Rivera, roles: [principal], sites: [north], contacts: [ { email: pr1@test.example }, { voice: "+15555550104" } ] }
          - { id: ct1, name: Cam Tate, roles: [crisis-team], sites: [district], contacts: [ { voice: "+15555550105" }, { sms: "+15555550106" } ] }
          - { id: ct2, name: Chris Toll, roles: [crisis-team], sites: [district], contacts: [ { voice: "+15555550107" } ] }
        partners:
          - { id: mcrt, name: Mobile Crisis, contacts: [ { voice: "+15555550199" } ] }
        schedules:
          - id: north-social-work
            role: social-worker
            scope: north
            layers:
              - { id: weekly, rotation: { start: 2026-08-17T08:00, shift: 1w, members: [sw1, sw2] } }
          - id: north-counselor
            role: counselor
            scope: north
            layers:
              - id: school-day
                rotation: { start: 2026-08-17T07:00, shift: 1w, members: [c1] }
                active: [ { days: [mon, tue, wed, thu, fri], from: "07:00", to: "17:00" } ]
          - id: district-crisis
            role: crisis-team
            scope: district
            layers:
              - { id: daily, rotation: { start: 2026-08-17T08:00, shift: 1d, members: [ct1, ct2] } }
        """

    static let playbookYAML = """
        id: suicide-risk
        title: Suicide risk
        match: { types: [suicide-risk] }
        group: { by: [site, subject], within: 30m }
        flags:
          - { id: family-may-be-source, question: Could a family member be the source of harm? }
        steps:
          - { notify: [on-call:social-worker@site], via: [sms, push], ack_within: 5m, repeat: 1 }
          - { notify: [on-call:counselor@site], via: [sms], ack_within: 5m }
          - { notify: [on-call:crisis-team@district, role:principal@site], via: [voice, sms], ack_within: 10m }
        fallback: { notify: [partner:mcrt], via: [voice], disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36" }
        tasks:
          - { id: screening, title: Risk screening, due: 2h, after: acknowledgement }
          - { id: guardian, title: Guardian notified, due: 4h, after: report, unless: [family-may-be-source] }
        overdue: { notify: [role:principal@site], via: [sms, email] }
        """

    static let afterHoursPlaybookYAML = """
        id: other
        title: Other concern
        match: { types: [other-concern] }
        steps:
          - { notify: [on-call:social-worker@site], via: [sms], ack_within: 5m }
        outside_school_hours:
          steps:
            - { notify: [on-call:crisis-team@district], via: [voice], ack_within: 10m }
        non_school_days:
          steps:
            - { notify: [partner:mcrt], via: [voice], ack_within: 15m, disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36" }
        fallback: { notify: [person:pr1], via: [voice] }
        """

    static let catalog: Catalog = {
        let result = PlaybookLoader.load(directory: ("directory.yaml", directoryYAML),
                                         playbooks: [("suicide-risk.yaml", playbookYAML), ("other.yaml", afterHoursPlaybookYAML)])
        guard let catalog = result.catalog else {
            preconditionFailure("the test fixture does not load: \(result.diagnostics)")
        }
        return catalog
    }()

    static var directory: Directory { catalog.directory }
    static var playbook: Playbook { catalog.playbooks[PlaybookID("suicide-risk")]! }
    static var engine: EscalationEngine { EscalationEngine(playbook: playbook, directory: directory) }

    /// An instant given as ISO-8601 with an offset.
    static func instant(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        guard let date = formatter.date(from: text) else { preconditionFailure("bad test instant \(text)") }
        return date
    }

    static func incident(at text: String, type: String = "suicide-risk", severity: Severity = .high,
                         flags: Set<IncidentFlag> = [], reporter: Actor = .person("pr1")) -> Incident {
        Incident(id: IncidentID("inc-1"), number: 4821, report: Report(
            type: IncidentTypeID(type), severity: severity, site: "north", reporter: reporter,
            summary: "Student said they have a plan", subject: "S-1", flags: flags, receivedAt: instant(text)))
    }

    static func simulate(at text: String, playbook: Playbook? = nil, flags: Set<IncidentFlag> = [],
                         _ script: [ScriptedEvent] = []) -> SimulationResult {
        let engine = EscalationEngine(playbook: playbook ?? Self.playbook, directory: directory)
        return Simulator(engine: engine).run(incident(at: text, type: (playbook ?? Self.playbook).match.types.first?.rawValue ?? "suicide-risk", flags: flags), script: script)
    }
}

/// A compact view of a timeline line for table assertions: "+5m page step 1 sw2 sms".
func summary(_ line: TimelineLine) -> String {
    var parts = [formatOffset(line.offsetSeconds), line.kind]
    if let step = line.step { parts.append("step \(step)") }
    if let person = line.person { parts.append(person) }
    if let partner = line.partner { parts.append("partner:\(partner)") }
    if let channel = line.channel { parts.append(channel) }
    if let task = line.task { parts.append(task) }
    return parts.joined(separator: " ")
}

extension SimulationResult {
    /// The lines of the given kinds, summarised.
    func lines(_ kinds: String...) -> [String] {
        lines.filter { kinds.contains($0.kind) }.map(summary)
    }
}
