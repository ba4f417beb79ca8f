// The stored forms read back exactly: every state an incident passes through, and every notification.
import Foundation
import MusterAudit
import MusterCore
import MusterTestSupport
@testable import MusterStore
import Testing

@Suite("Binary codec")
struct BinaryCodecTests {
    @Test("every intermediate state of every shipped playbook round-trips, and so does every queued notification",
          arguments: shippedCatalog.playbooks.playbooks.map(\.id))
    func roundTrip(playbookID: PlaybookID) throws {
        let engine = try #require(shippedCatalog.engines[playbookID])
        let playbook = engine.playbook
        let type = playbook.match.types.sorted().first ?? shippedCatalog.directory.incidentTypes[0].id
        let site = playbook.match.sites.sorted().first ?? "lincoln-high"
        for at in [schoolMorning, schoolMorning.addingTimeInterval(9.5 * 3600 + 0.25)] {
            let incident = Incident(id: IncidentID("inc-\(playbookID)"), number: 7, report: Report(
                type: type, severity: .imminent, site: site, reporter: .integration("alertmanager"), summary: "the summary",
                subject: "S-1", flags: Set(playbook.flags.keys), receivedAt: at, drill: at != schoolMorning))
            var effects: [Effect] = []
            var state = engine.start(incident, now: at, effects: &effects)
            let events: [IncidentEvent] = [
                .timerFired(.ackDeadline(step: 0, round: 0)), .acknowledged(by: .person("dchen"), path: .sms, step: 0),
                .noteAdded(by: .person("dchen"), text: "note"), .reassigned(to: "aokafor", by: .person("dchen")),
                .resolved(by: .person("aokafor"), note: nil), .reopened(by: .system, reason: "again"),
            ]
            for (offset, event) in events.enumerated() {
                let decoded = try StateCodec.decode(StateCodec.encode(state).bytes, summary: state.incident.summary, subject: state.incident.subject)
                #expect(decoded == state)
                try? engine.apply(event, to: &state, now: at.addingTimeInterval(Double(offset + 1) * 301), effects: &effects)
            }
            for case .notify(let notification) in effects {
                #expect(try BinaryCodec.decodeNotification(BinaryCodec.encode(notification)) == notification)
                #expect(notification.drill == (at != schoolMorning), "a drill's notifications say so")
            }
        }
    }

    @Test("sealed flags replace the clear list: the record holds only the sealed bytes, which the opener turns back into flags")
    func sealedFlags() throws {
        var effects: [Effect] = []
        let engine = try #require(shippedCatalog.engines["suicide-risk"])
        var state = engine.start(Incident(id: "inc-1", number: 1, report: report()), now: schoolMorning, effects: &effects)
        state.incident.flags = ["guardian-contact-unsafe"]
        state.incident.drill = true
        let key = DataKey.generate()
        let sealed = try #require(SealedText.sealFlags(state.incident.flags, key: key, context: SealedText.incidentFlags("inc-1")))
        let bytes = StateCodec.encode(state, sealedFlags: sealed).bytes
        #expect(Data(bytes).range(of: Data("guardian-contact-unsafe".utf8)) == nil)
        #expect(Data(StateCodec.encode(state).bytes).range(of: Data("guardian-contact-unsafe".utf8)) != nil, "the search above can fail")
        let opened = try StateCodec.decode(bytes, summary: state.incident.summary, subject: state.incident.subject) {
            SealedText.flags(try Seal.open($0, key: key, context: SealedText.incidentFlags("inc-1")))
        }
        #expect(opened == state)
        #expect(try StateCodec.decode(bytes, summary: "", subject: nil).incident.flags.isEmpty, "no key, no flags")
        #expect(try StateCodec.decode(bytes, summary: "", subject: nil).incident.drill)
        #expect(throws: (any Error).self) {
            try StateCodec.decode(bytes, summary: "", subject: nil) { SealedText.flags(try Seal.open($0, key: DataKey.generate(), context: "other")) }
        }
        #expect(SealedText.sealFlags([], key: key, context: "c") == nil)
    }

    @Test("truncated or altered records are refused, never misread")
    func malformed() throws {
        var effects: [Effect] = []
        let engine = try #require(shippedCatalog.engines["suicide-risk"])
        let state = engine.start(Incident(id: "inc-1", number: 1, report: report()), now: schoolMorning, effects: &effects)
        let bytes = StateCodec.encode(state).bytes
        for cut in [0, 1, bytes.count / 2, bytes.count - 1] {
            #expect(throws: (any Error).self) { try StateCodec.decode(Array(bytes.prefix(cut)), summary: "", subject: nil) }
        }
        #expect(throws: (any Error).self) { try StateCodec.decode(bytes + [0], summary: "", subject: nil) }
        #expect(throws: (any Error).self) { try StateCodec.decode([9] + bytes.dropFirst(), summary: "", subject: nil) }
    }
}
