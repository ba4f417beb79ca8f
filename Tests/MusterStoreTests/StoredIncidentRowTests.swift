// How a store opens an incident's row: a purged incident has no data key, whatever the key's row read.
import Foundation
import MusterAudit
import MusterCore
import MusterRuntime
@testable import MusterStore
import MusterTestSupport
import Testing

@Suite("Stored incident rows")
struct StoredIncidentRowTests {
    @Test("a row marked purged opens with no data key and its text purged, even beside a key read before the purge")
    func purgedRowHasNoKey() throws {
        let dispatcher = Dispatcher(catalog: shippedCatalog)
        let commands: [IncidentCommand] = [.report(ReportIntake(report: report()))]
        var snapshot = CommitSnapshot()
        snapshot.numbers = [1]
        let (writes, results) = dispatcher.decide(commands, groupHashes: dispatcher.needs(commands).groupHashes, snapshot: snapshot, now: schoolMorning)
        let ref = try results[0].get().outcome.incident
        let write = try #require(writes.incidents[ref.id])
        let key = try #require(write.dataKey)
        let masterKey = MasterKey.generate()
        func row(purgedAt: Date?) -> StoredIncidentRow {
            StoredIncidentRow(id: ref.id, state: StateCodec.encode(write.state).bytes, legacySummary: "", legacySubject: nil,
                              summarySealed: write.summarySealed, subjectSealed: write.subjectSealed, auditHead: write.auditHead,
                              lastAuditSequence: nil, wrappedKey: masterKey.wrap(key, incident: ref.id.rawValue), purgedAt: purgedAt)
        }
        let open = try row(purgedAt: nil).open(keys: masterKey)
        #expect(open.key != nil && open.state.incident.summary == "Student wrote a goodbye note in class")
        // The key's row as a commit read it before the purge committed, beside the incident's purged row.
        let purged = try row(purgedAt: schoolMorning.addingTimeInterval(86_400)).open(keys: masterKey)
        #expect(purged.key == nil, "a purged incident must take no new sealed text")
        #expect(purged.state.incident.summary.hasPrefix("purged under the retention policy"))
    }
}
