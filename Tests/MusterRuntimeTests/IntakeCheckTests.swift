// The one intake check: every front end and the dispatcher refuse the same reports with the same words.
import Foundation
import MusterCore
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

@Suite("Intake check")
struct IntakeCheckTests {
    let check = IntakeCheck(catalog: shippedCatalog)

    @Test("each problem names its field, the flag's position, and a suggestion")
    func problemsNameTheField() {
        let problems = check.problems(type: "suicide-risc", severity: .high, site: "lincon-high", subject: String(repeating: "x", count: 201))
        #expect(problems.map(\.field) == [.type, .site, .subject])
        #expect(problems[0].detail == "unknown incident type 'suicide-risc'; did you mean 'suicide-risk'?")
        #expect(problems[1].detail == "unknown site 'lincon-high'; did you mean 'lincoln-high'?")

        let flags = check.problems(type: "suicide-risk", severity: .high, site: "lincoln-high",
                                   flags: ["guardian-contact-unsafe", "guardian-contact-unsaf"])
        #expect(flags.count == 1)
        #expect(flags.first?.field == .flags && flags.first?.index == 1)
        #expect(flags.first?.detail.hasSuffix("did you mean 'guardian-contact-unsafe'?") == true)

        #expect(check.problems(type: "suicide-risk", severity: .high, site: "lincoln-high", flags: ["guardian-contact-unsafe"]).isEmpty)
        guard case .failure(let severity) = IntakeCheck.severity("hihg") else {
            Issue.record("'hihg' is no severity")
            return
        }
        #expect(severity.field == .severity && severity.detail.contains("did you mean 'high'?"))
    }

    @Test("the dispatcher refuses what the check refuses, from any caller: an unknown flag opens nothing")
    func dispatcherUsesTheCheck() {
        let dispatcher = Dispatcher(catalog: shippedCatalog)
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .integration("door-alarms"),
                            summary: "test", flags: ["no-such-flag"], receivedAt: schoolMorning)
        let commands: [IncidentCommand] = [.report(ReportIntake(report: report))]
        var snapshot = CommitSnapshot()
        snapshot.numbers = [1]
        let (writes, results) = dispatcher.decide(commands, groupHashes: dispatcher.needs(commands).groupHashes, snapshot: snapshot, now: schoolMorning)
        guard case .failure(.invalidReport(let why))? = results.first else {
            Issue.record("expected the report refused, got \(results)")
            return
        }
        #expect(why.contains("has no flag 'no-such-flag'"))
        #expect(writes.isEmpty)
    }
}
