// The shipped playbooks as a district starts from them: severity decides how loud a report is, and
// the mandated report follows a state's law, in two documented variants (issue 24, item 9).
import Foundation
import MusterCore
import MusterPlaybooks
import MusterTestSupport
import Testing

@Suite("Shipped playbooks: severity and state law")
struct ShippedPlaybookTests {
    /// Tuesday 2026-12-01, 22:00 at Lincoln High (America/Chicago): a school day, after hours.
    let tuesdayNight = instant("2026-12-01T22:00:00-06:00")
    let wednesdayOpening = instant("2026-12-02T07:30:00-06:00")

    func start(_ type: IncidentTypeID, _ severity: Severity, at: Date) throws -> (playbook: PlaybookID, state: IncidentState, sent: [NotificationID]) {
        let playbook = try #require(shippedCatalog.playbooks.playbook(type: type, severity: severity, site: "lincoln-high"))
        let engine = EscalationEngine(playbook: playbook, directory: shippedCatalog.directory)
        var effects: [Effect] = []
        let report = Report(type: type, severity: severity, site: "lincoln-high", reporter: .person("jmwangi"), summary: "s", receivedAt: at)
        let state = engine.start(Incident(id: "inc-1", number: 1, report: report), now: at, effects: &effects)
        return (playbook.id, state, effects.compactMap { if case .notify(let n) = $0 { n.id } else { nil } })
    }

    @Test("a low or moderate concern at night sends one email and waits for school to open; high and imminent page at once",
          arguments: [("suicide-risk", "suicide-risk-concern", "suicide-risk"), ("bullying-or-harassment", "generic-concern", "generic")])
    func severityDecidesTheNight(type: String, concern: String, urgent: String) throws {
        for severity in [Severity.low, .moderate] {
            let (playbook, state, sent) = try start(IncidentTypeID(type), severity, at: tuesdayNight)
            #expect(playbook.rawValue == concern)
            #expect(!sent.isEmpty && sent.allSatisfy { $0.channel == .email }, "\(type) \(severity) at night: \(sent)")
            #expect(state.timers.contains(ScheduledTimer(key: .ackDeadline(step: 0, round: 0), due: wednesdayOpening)))
        }
        for severity in [Severity.high, .imminent] {
            let (playbook, state, sent) = try start(IncidentTypeID(type), severity, at: tuesdayNight)
            #expect(playbook.rawValue == urgent)
            #expect(sent.contains { $0.channel == .voice }, "\(type) \(severity) at night is a phone call: \(sent)")
            #expect(state.timers.contains { $0.key == .ackDeadline(step: 0, round: 0) && $0.due < tuesdayNight.addingTimeInterval(3600) })
        }
    }

    @Test("the abuse-disclosure playbook ships in two variants, each owed by the reporter and each telling the district to check its state's law")
    func abuseDisclosureVariants() throws {
        let folder = repositoryRoot.appendingPathComponent("playbooks")
        let shippedText = try String(contentsOf: folder.appendingPathComponent("abuse-disclosure.yaml"), encoding: .utf8)
        let variantText = try String(contentsOf: folder.appendingPathComponent("variants/abuse-disclosure-phone-then-written.yaml"), encoding: .utf8)
        for text in [shippedText, variantText] { #expect(text.contains("THE DISTRICT MUST CHECK ITS OWN STATE'S LAW")) }

        // The shipped variant: one personal report within 48 hours, reminded a day and four hours before.
        let shipped = try #require(shippedCatalog.playbooks[PlaybookID("abuse-disclosure")])
        let report = try #require(shipped.tasks.first { $0.id == "mandated-report" })
        #expect(report.due == .hours(48) && report.after == .report && report.owner == .reporter)
        #expect(report.remindBefore == [.hours(24), .hours(4)])

        // The other, in place of the shipped file: by telephone within the hour, then in writing within 36 hours.
        var files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") && $0 != "directory.yaml" }
            .map { ($0, try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8)) }
        files.removeAll { $0.0 == "abuse-disclosure.yaml" }
        let loaded = PlaybookLoader.load(directory: ("directory.yaml", try String(contentsOf: folder.appendingPathComponent("directory.yaml"), encoding: .utf8)),
                                         playbooks: files + [("abuse-disclosure.yaml", variantText)])
        #expect(loaded.diagnostics.isEmpty, "\(loaded.diagnostics)")
        let variant = try #require(loaded.catalog?.playbooks[PlaybookID("abuse-disclosure")])
        let stages = variant.tasks.filter { $0.id.rawValue.hasPrefix("mandated-report") }
        #expect(stages.map(\.id) == ["mandated-report", "mandated-report-written"])
        #expect(stages.map(\.due) == [.hours(1), .hours(36)])
        #expect(stages.map(\.follows) == [nil, "mandated-report"])
        #expect(stages.allSatisfy { $0.owner == .reporter && $0.after == .report })
    }
}
