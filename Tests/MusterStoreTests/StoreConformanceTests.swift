// One conformance suite, run against both stores: what the runtime relies on, case by case.
import Foundation
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

/// Records one delivery attempt as the delivery worker does (through the dispatcher, with the engine's
/// reaction in the same transaction); true when the worker still held the notification.
private func recordDelivery(_ store: any Store, _ notification: QueuedNotification, outcome: DeliveryOutcome, owner: String,
                            at: Date) async throws -> Bool {
    let result = try await Dispatcher(catalog: shippedCatalog)
        .outcomes([.deliveryAttempt(DeliveryRecord(notification: notification, owner: owner, outcome: outcome))], to: store, now: at).first
    if case .failure(.notHeld)? = result { return false }
    _ = try result?.get()
    return true
}

private func created(_ result: Result<CommandOutcome, StoreError>?) throws -> (IncidentRef, [QueuedNotification]) {
    guard case .success(.created(let ref, let queued))? = result else {
        Issue.record("expected a new incident, got \(String(describing: result))")
        throw StoreError.unknownIncident("none")
    }
    return (ref, queued)
}

@Suite("Store conformance")
struct StoreConformanceTests {
    @Test("migrations apply once, record the schema version, and can run again", arguments: Backend.allCases)
    func migrations(backend: Backend) async throws {
        try await withStore(backend) { t in
            try await t.store.migrate()
            let version = try await t.store.schemaVersion()
            #expect(version.applied == version.known)
            #expect(version.known >= 1)
        }
    }

    @Test("a report opens an incident: state, report, audit entries, timers and outbox are all written", arguments: Backend.allCases)
    func reportOpensIncident(backend: Backend) async throws {
        try await withStore(backend) { t in
            let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning)
            let (ref, queued) = try created(results.first)
            #expect(ref.number == 1)
            #expect(!queued.isEmpty, "step 1 pages someone")
            let state = try #require(try await t.store.incident(ref.id))
            #expect(state.incident.summary == "Student wrote a goodbye note in class")
            #expect(state.incident.subject == "S-1042")
            #expect(state.phase == .escalating(step: 0, round: 0))
            let timeline = try await t.store.timeline(ref.id)
            #expect(timeline.first?.action == .reported)
            #expect(timeline.first?.sensitive == "Student wrote a goodbye note in class")
            #expect(timeline.map(\.sequence) == Array(1...timeline.count))
            #expect(timeline.filter { $0.action == .paged }.count == queued.count)
            #expect(try await t.store.reports(ref.id).map(\.summary) == ["Student wrote a goodbye note in class"])
            #expect(try await t.store.outboxCounts()["queued"] == queued.count)
            // The stored bytes are the canonical encoding of the entries, each chained to the one before
            // (`prev`, its leaf hash); the student text is in them only sealed, under the incident's key.
            let bytes = try await t.store.auditBytes(ref.id)
            let key = try #require(try await t.store.dataKey(of: ref.id))
            #expect(bytes.count == timeline.count)
            var prev: [UInt8]?
            for (body, record) in zip(bytes, timeline) {
                let decoded = try AuditEntryEncoding.decode(body)
                var bare = record
                bare.sensitive = nil
                #expect(body == AuditEntryEncoding.encode(bare, incident: ref.id, prev: prev, sealed: decoded.sealed))
                #expect(decoded.prev == prev)
                if let sealed = decoded.sealed {
                    #expect(try Seal.open(sealed, key: key, context: AuditEntryEncoding.sealContext(incident: ref.id, sequence: record.sequence))
                            == record.sensitive)
                } else {
                    #expect(record.sensitive == nil)
                }
                #expect(!String(decoding: body, as: UTF8.self).contains("goodbye"))
                prev = MerkleTree.leafHash(body).bytes
            }
        }
    }

    @Test("the student's text is kept out of the state document and the indexed columns", arguments: Backend.allCases)
    func studentTextSeparate(backend: Backend) async throws {
        try await withStore(backend) { t in
            let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning)
            _ = try created(results.first)
            // Byte-level searches of the stored state for the summary's words and the subject reference.
            for phrase in ["goodbye", "S-1042"] {
                let found = try await t.strings(backend == .postgres
                    ? "SELECT position(convert_to('\(phrase)', 'UTF8') in state) FROM incidents"
                    : "SELECT instr(state, CAST('\(phrase)' AS BLOB)) FROM incidents")
                #expect(found == ["0"], "'\(phrase)' is in the state record")
            }
            // The text columns hold nothing in clear: the text is in the sealed columns only.
            #expect(try await t.strings("SELECT summary FROM incidents") == [""])
            #expect(try await t.strings("SELECT summary FROM reports") == [""])
            #expect(try await t.strings("SELECT COUNT(*) FROM incidents WHERE subject IS NULL AND summary_sealed IS NOT NULL AND subject_sealed IS NOT NULL") == ["1"])
            #expect(try await t.strings("SELECT COUNT(*) FROM incident_keys") == ["1"])
            let hashes = try await t.strings("SELECT group_key_hash FROM incidents")
            #expect(hashes.first?.count == 64, "the grouping key is stored as a hash")
            #expect(!(hashes.first ?? "").contains("S-1042"))
        }
    }

    @Test("a retried report with the same idempotency key returns the same incident and writes nothing", arguments: Backend.allCases)
    func idempotency(backend: Backend) async throws {
        try await withStore(backend) { t in
            let intake = ReportIntake(report: report(subject: nil), idempotencyKey: "client-key-1")
            let first = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(intake)], to: t.store, now: schoolMorning).first).0
            let again = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(intake), .report(intake)], to: t.store, now: schoolMorning.addingTimeInterval(5))
            #expect(again.map { try? $0.get() } == [.duplicate(first), .duplicate(first)])
            #expect(try await t.store.incidents(IncidentFilter()).count == 1)
            #expect(try await t.store.reports(first.id).count == 1)
            // Within one batch, the second use of a new key is a duplicate of the first.
            let fresh = ReportIntake(report: report(subject: nil), idempotencyKey: "client-key-2")
            let batch = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(fresh), .report(fresh)], to: t.store, now: schoolMorning)
            let ref = try created(batch.first).0
            #expect(try batch[1].get() == .duplicate(ref))
        }
    }

    @Test("reports on the same grouping key within the window merge into one open incident", arguments: Backend.allCases)
    func grouping(backend: Backend) async throws {
        try await withStore(backend) { t in
            let first = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            let later = schoolMorning.addingTimeInterval(10 * 60)
            let second = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(summary: "A friend forwarded a message", at: later)))],
                                                  to: t.store, now: later)
            #expect(try second.first?.get() == .merged(first))
            let state = try #require(try await t.store.incident(first.id))
            #expect(state.reportCount == 2)
            #expect(try await t.store.reports(first.id).map(\.summary) == ["Student wrote a goodbye note in class", "A friend forwarded a message"])
            #expect(try await t.store.timeline(first.id).contains { $0.action == .reportMerged && $0.sensitive == "A friend forwarded a message" })
            // Another student, or the same one after the window, opens a new incident.
            let other = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(subject: "S-2000", at: later)))], to: t.store, now: later)
            #expect(try created(other.first).0 != first)
            let afterWindow = schoolMorning.addingTimeInterval(31 * 60)
            let late = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(at: afterWindow)))], to: t.store, now: afterWindow)
            #expect(try created(late.first).0 != first)
        }
    }

    @Test("the grouping key names a student: stored keyed, never as a plain hash of the reference, and cleared at resolution",
          arguments: Backend.allCases)
    func groupKeysAreKeyedAndCleared(backend: Backend) async throws {
        try await withStore(backend) { t in
            let first = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            let stored = try await t.strings("SELECT group_key_hash FROM incidents WHERE group_key_hash IS NOT NULL")
            #expect(stored.count == 1)
            // Anyone could compute the unkeyed hash of "suicide-risk|site=lincoln-high|subject=S-1042" and find the student.
            let plain = GroupKey.hash("suicide-risk|site=lincoln-high|subject=S-1042")
            #expect(!stored.contains(plain))
            #expect(!stored.contains(GroupKey.hash(plain)))
            // Grouping still works on the keyed form.
            let later = schoolMorning.addingTimeInterval(60)
            let merged = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(at: later)))], to: t.store, now: later)
            #expect(try merged.first?.get() == .merged(first))
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(first.id, .resolved(by: .person("aokafor"), note: nil))], to: t.store, now: later)
            #expect(try await t.strings("SELECT group_key_hash FROM incidents WHERE group_key_hash IS NOT NULL").isEmpty, "cleared at resolution")
        }
    }

    @Test("a resolved incident takes no more reports: the next one opens a new incident", arguments: Backend.allCases)
    func noMergeIntoResolved(backend: Backend) async throws {
        try await withStore(backend) { t in
            let first = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            let resolved = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(first.id, .resolved(by: .person("aokafor"), note: nil))], to: t.store, now: schoolMorning)
            #expect(try resolved.first?.get() == .applied(first, queued: []))
            let next = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning.addingTimeInterval(60))
            #expect(try created(next.first).0.number == 2)
        }
    }

    @Test("simultaneous reports on one grouping key make one incident", arguments: Backend.allCases)
    func concurrentGrouping(backend: Backend) async throws {
        try await withStore(backend) { t in
            let second = try await t.another()
            let stores = [t.store, second]
            let results = try await withThrowingTaskGroup(of: [Result<CommandOutcome, StoreError>].self) { group in
                for index in 0..<20 {
                    let store = stores[index % 2]
                    group.addTask {
                        try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(summary: "account \(index)")))], to: store, now: schoolMorning)
                    }
                }
                var all: [Result<CommandOutcome, StoreError>] = []
                for try await batch in group { all += batch }
                return all
            }
            let incidents = Set(try results.map { try $0.get().incident })
            #expect(incidents.count == 1)
            #expect(results.filter { if case .success(.created) = $0 { true } else { false } }.count == 1)
            let only = try #require(incidents.first)
            let state = try #require(try await t.store.incident(only.id))
            #expect(state.reportCount == 20)
        }
    }

    @Test("in a group commit each command is all-or-nothing: a refused one writes nothing and sinks nothing", arguments: Backend.allCases)
    func groupCommitIsolation(backend: Backend) async throws {
        try await withStore(backend) { t in
            let ref = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            let before = try await t.store.timeline(ref.id).count
            let now = schoolMorning.addingTimeInterval(60)
            let results = try await Dispatcher(catalog: shippedCatalog).outcomes([
                .event(ref.id, .acknowledged(by: .person("aokafor"), path: .api, step: 0)),
                .event(IncidentID("no-such-incident"), .resolved(by: .system, note: nil)),
                .event(ref.id, .reopened(by: .system, reason: nil)),
                .event(ref.id, .noteAdded(by: .person("aokafor"), text: "With the student in the counseling office")),
                .report(ReportIntake(report: report("no-such-type"))),
                .report(ReportIntake(report: report(site: "no-such-site"))),
            ], to: t.store, now: now)
            #expect(try results[0].get() == .applied(ref, queued: []))
            #expect(results[1] == .failure(.unknownIncident("no-such-incident")))
            #expect(results[2] == .failure(.rejected(.notResolved)))
            #expect(try results[3].get() == .applied(ref, queued: []))
            #expect(results[4] == .failure(.invalidReport("unknown incident type 'no-such-type'")))
            #expect(results[5] == .failure(.invalidReport("unknown site 'no-such-site'; expected one of: lincoln-high, mesa-academy, washington-elementary")))
            #expect(try await t.store.incidents(IncidentFilter()).map(\.ref) == [ref], "refused reports open nothing")
            let timeline = try await t.store.timeline(ref.id)
            #expect(timeline.map(\.sequence) == Array(1...timeline.count), "no gap from the refused command")
            #expect(timeline.dropFirst(before).map(\.action).contains(.acknowledged))
            #expect(timeline.last?.action == .noteAdded)
            #expect(try await t.store.incident(ref.id)?.phase == .acknowledged)
        }
    }

    @Test("due timers are claimed once per lease, fire through the engine, and their rows go", arguments: Backend.allCases)
    func timers(backend: Backend) async throws {
        try await withStore(backend) { t in
            let ref = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            let state = try #require(try await t.store.incident(ref.id))
            let ack = try #require(state.timers.first { if case .ackDeadline = $0.key { true } else { false } })
            #expect(try await t.store.nextTimerDue(now: schoolMorning) == state.timers.map(\.due).min())
            #expect(try await t.store.claimDueTimers(now: schoolMorning, limit: 10, owner: "a", lease: 30).isEmpty, "nothing is due yet")
            let due = ack.due
            let claimed = try await t.store.claimDueTimers(now: due, limit: 10, owner: "a", lease: 30)
            #expect(claimed == [ClaimedTimer(incident: ref.id, key: ack.key, due: due)])
            #expect(try await t.store.claimDueTimers(now: due, limit: 10, owner: "b", lease: 30).isEmpty, "leased to a")
            let retaken = try await t.store.claimDueTimers(now: due.addingTimeInterval(31), limit: 10, owner: "b", lease: 30)
            #expect(retaken.map(\.key) == [ack.key], "a's lease lapsed: b takes over")
            let fired = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .timerFired(ack.key))], to: t.store, now: due)
            guard case .success(.applied(_, let queued))? = fired.first else {
                Issue.record("the timer did not fire: \(fired)")
                return
            }
            #expect(!queued.isEmpty, "the repeat round pages again")
            let next = try #require(try await t.store.incident(ref.id))
            #expect(next.phase == .escalating(step: 0, round: 1))
            #expect(try await t.store.claimDueTimers(now: due.addingTimeInterval(31), limit: 10, owner: "c", lease: 30).isEmpty,
                    "the fired timer's row is gone")
        }
    }

    @Test("resolving removes every timer row", arguments: Backend.allCases)
    func resolveRemovesTimers(backend: Backend) async throws {
        try await withStore(backend) { t in
            let ref = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            #expect(try await t.strings("SELECT COUNT(*) FROM timers").first != "0")
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .resolved(by: .system, note: nil))], to: t.store, now: schoolMorning)
            #expect(try await t.strings("SELECT COUNT(*) FROM timers") == ["0"])
            #expect(try await t.store.nextTimerDue(now: schoolMorning) == nil)
        }
    }

    @Test("deliveries are claimed, retried at their time, and end sent or failed", arguments: Backend.allCases)
    func deliveries(backend: Backend) async throws {
        try await withStore(backend) { t in
            let (_, queued) = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first)
            let claimed = try await t.store.claimDeliveries(now: schoolMorning, limit: 100, owner: "w1", lease: 30)
            #expect(Set(claimed.map(\.notification)) == Set(queued))
            #expect(claimed.allSatisfy { $0.attempts == 0 })
            #expect(try await t.store.claimDeliveries(now: schoolMorning, limit: 100, owner: "w2", lease: 30).isEmpty)
            let (sent, retried, failed) = (claimed[0].notification.id, claimed[1].notification.id, claimed.count > 2 ? claimed[2].notification.id : nil)
            #expect(try await recordDelivery(t.store, claimed[0].notification, outcome: .delivered(receipt: "SM123"), owner: "w1", at: schoolMorning))
            #expect(try await recordDelivery(t.store, claimed[1].notification, outcome: .failed(reason: "HTTP 503", retryAt: schoolMorning.addingTimeInterval(10)),
                                             owner: "w1", at: schoolMorning))
            if claimed.count > 2 {
                #expect(try await recordDelivery(t.store, claimed[2].notification, outcome: .failed(reason: "HTTP 400", retryAt: nil), owner: "w1", at: schoolMorning))
            }
            #expect(try await t.store.claimDeliveries(now: schoolMorning.addingTimeInterval(5), limit: 100, owner: "w2", lease: 30)
                .map(\.notification.id).filter { $0 == retried }.isEmpty, "not before its retry time")
            let again = try await t.store.claimDeliveries(now: schoolMorning.addingTimeInterval(40), limit: 100, owner: "w2", lease: 30)
            #expect(again.first { $0.notification.id == retried }?.attempts == 1)
            #expect(!again.contains { $0.notification.id == sent })
            let counts = try await t.store.outboxCounts()
            #expect(counts["sent"] == 1)
            #expect(counts["failed", default: 0] == (failed == nil ? 0 : 1))
            #expect(try await t.strings("SELECT COUNT(*) FROM delivery_attempts") == [String(failed == nil ? 2 : 3)])
        }
    }

    @Test("a worker whose lease lapsed records nothing over the worker that took the notification over", arguments: Backend.allCases)
    func staleWorkerRecordsNothing(backend: Backend) async throws {
        try await withStore(backend) { t in
            _ = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first)
            let first = try await t.store.claimDeliveries(now: schoolMorning, limit: 1, owner: "slow", lease: 15)
            let notification = try #require(first.first?.notification)
            let id = notification.id
            // "slow" stalls past its lease; "fast" takes the notification over and delivers it.
            let later = schoolMorning.addingTimeInterval(20)
            let retaken = try await t.store.claimDeliveries(now: later, limit: 10, owner: "fast", lease: 15)
            #expect(retaken.contains { $0.notification.id == id })
            #expect(try await recordDelivery(t.store, notification, outcome: .delivered(receipt: "ok"), owner: "fast", at: later))
            // The slow worker's late failure changes nothing: the page stays sent, and its audit entry is not written.
            #expect(try await recordDelivery(t.store, notification, outcome: .failed(reason: "timeout", retryAt: later.addingTimeInterval(5)),
                                             owner: "slow", at: later) == false)
            let ref = notification.incident
            #expect(try await t.store.timeline(ref).filter { $0.notification == id }.map(\.action).contains(.deliveryFailed) == false)
            #expect(try await t.strings("SELECT status FROM outbox WHERE id = '\(id.description)'") == ["sent"])
            #expect(try await t.strings("SELECT COUNT(*) FROM delivery_attempts WHERE notification_id = '\(id.description)'") == ["1"])
        }
    }

    @Test("a receipt is an outbox update and an audit entry: the incident's row is not rewritten, and the next entry follows it",
          arguments: Backend.allCases)
    func receiptLeavesIncidentRow(backend: Backend) async throws {
        try await withStore(backend) { t in
            let (ref, _) = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first)
            let claimed = try await t.store.claimDeliveries(now: schoolMorning, limit: 1, owner: "w1", lease: 30)
            let notification = try #require(claimed.first?.notification)
            let row = "SELECT \(backend == .postgres ? "encode(state, 'hex')" : "hex(state)") || ':' || phase FROM incidents WHERE id = '\(ref.id.rawValue)'"
            let before = try await t.strings(row)
            let entries = try await t.store.timeline(ref.id).count
            #expect(try await recordDelivery(t.store, notification, outcome: .delivered(receipt: "SM1"), owner: "w1", at: schoolMorning.addingTimeInterval(2)))
            #expect(try await t.strings(row) == before, "the receipt rewrote the incident's row")
            let timeline = try await t.store.timeline(ref.id)
            #expect(timeline.count == entries + 1 && timeline.last?.action == .delivered && timeline.last?.notification == notification.id)
            // The next entry continues the sequence and the chain from the receipt's entry.
            let note = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .noteAdded(by: .person("dchen"), text: "called home"))],
                                                                              to: t.store, now: schoolMorning.addingTimeInterval(3))
            #expect((try? note.first?.get()) != nil)
            let after = try await t.store.timeline(ref.id)
            #expect(after.map(\.sequence) == Array(1...after.count), "no gap and no repeat in the sequence")
            var previous: [UInt8]?
            for body in try await t.store.auditBytes(ref.id) {
                #expect(try EntryFields(body).string("prev") == previous?.hex, "the chain is unbroken")
                previous = MerkleTree.leafHash(body).bytes
            }
        }
    }

    @Test("a page that failed for good and the engine's move to the next contact point commit together", arguments: Backend.allCases)
    func permanentFailureMovesOnInOneCommit(backend: Backend) async throws {
        try await withStore(backend) { t in
            let (ref, _) = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first)
            let claimed = try await t.store.claimDeliveries(now: schoolMorning, limit: 100, owner: "w1", lease: 30)
            // A page whose person has a contact point this round has not used yet.
            let page = try #require(claimed.map(\.notification).first { n in
                let used = Set(claimed.map(\.notification).filter { $0.recipient == n.recipient }.map(\.channel))
                return n.kind == .page && shippedCatalog.directory.contacts(of: n.recipient).contains { !used.contains($0.channel) }
            })
            let queuedBefore = try await t.store.outboxCounts()["queued", default: 0]
            #expect(try await recordDelivery(t.store, page, outcome: .failed(reason: "HTTP 400", retryAt: nil), owner: "w1", at: schoolMorning.addingTimeInterval(1)))
            let actions = try await t.store.timeline(ref.id).filter { $0.notification == page.id }.map(\.action)
            #expect(actions.contains(.deliveryFailed) && actions.contains(.channelSubstituted), "\(actions)")
            #expect(try await t.store.outboxCounts()["queued", default: 0] == queuedBefore, "one failed, its substitute queued in the same commit")
            #expect(try await t.store.outboxCounts()["failed"] == 1)
        }
    }

    @Test("an empty idempotency key is refused; an empty subject names no one", arguments: Backend.allCases)
    func emptyValues(backend: Backend) async throws {
        try await withStore(backend) { t in
            let refused = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(), idempotencyKey: ""))], to: t.store, now: schoolMorning)
            #expect(refused.first == .failure(.invalidReport("the idempotency key is empty")))
            let ref = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(subject: "")))], to: t.store, now: schoolMorning).first).0
            #expect(try await t.store.incident(ref.id)?.incident.subject == nil)
            #expect(try await t.store.reports(ref.id).first?.subject == nil)
        }
    }

    @Test("an acknowledgement cancels the pages still queued; a resolution cancels everything queued", arguments: Backend.allCases)
    func cancelQueued(backend: Backend) async throws {
        try await withStore(backend) { t in
            let (ref, queued) = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first)
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .acknowledged(by: .person("dchen"), path: .api, step: 0))], to: t.store, now: schoolMorning)
            #expect(try await t.store.outboxCounts() == ["cancelled": queued.count])
            #expect(try await t.store.claimDeliveries(now: schoolMorning, limit: 100, owner: "w", lease: 15).isEmpty)
            // A reassignment after the acknowledgement queues a message that a resolution then cancels.
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .reassigned(to: "aokafor", by: .person("dchen")))], to: t.store, now: schoolMorning)
            #expect(try await t.store.outboxCounts()["queued"] == 1)
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .resolved(by: .person("aokafor"), note: nil))], to: t.store, now: schoolMorning)
            #expect(try await t.store.outboxCounts() == ["cancelled": queued.count + 1])
            // Within one batch: a report's pages are never queued if the same batch acknowledges it.
            let both = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(subject: "S-77"), idempotencyKey: "k77"))], to: t.store, now: schoolMorning)
            let second = try created(both.first).0
            let before = try await t.store.outboxCounts()
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(subject: "S-78"))),
                                          .event(second.id, .acknowledged(by: .person("dchen"), path: .api, step: nil))], to: t.store, now: schoolMorning)
            #expect(try await t.store.outboxCounts()["cancelled"] == (before["cancelled"] ?? 0) + (before["queued"] ?? 0))
        }
    }

    @Test("a late claim does not fire a timer that was rescheduled since; a timer of no incident is discarded", arguments: Backend.allCases)
    func staleTimerClaims(backend: Backend) async throws {
        try await withStore(backend) { t in
            let ref = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first).0
            let state = try #require(try await t.store.incident(ref.id))
            let ack = try #require(state.timers.first { $0.key == .ackDeadline(step: 0, round: 0) })
            let claimed = try #require(try await t.store.claimDueTimers(now: ack.due, limit: 10, owner: "slow", lease: 5).first { $0.key == ack.key })
            // Before the slow worker commits, the incident is resolved and reopened: step 1 is paged again
            // and the same timer key gets a later due time.
            let later = ack.due.addingTimeInterval(60)
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(ref.id, .resolved(by: .system, note: nil)), .event(ref.id, .reopened(by: .system, reason: nil))],
                                         to: t.store, now: later)
            let rescheduled = try #require(try await t.store.incident(ref.id)?.timers.first { $0.key == ack.key })
            #expect(rescheduled.due > ack.due)
            let fired = try await Dispatcher(catalog: shippedCatalog).outcomes([.fireTimer(claimed)], to: t.store, now: later)
            #expect(try fired.first?.get() == .applied(ref, queued: []), "the stale firing is ignored")
            #expect(try await t.store.incident(ref.id)?.phase == .escalating(step: 0, round: 0))
            #expect(try await t.store.nextTimerDue(now: later).map { $0 <= rescheduled.due } == true, "the rescheduled timer's row is kept")
            // A timer row whose incident does not exist is removed rather than claimed again and again.
            let ghost = ClaimedTimer(incident: "no-such-incident", key: .ackDeadline(step: 0, round: 0), due: later)
            try await t.execute("INSERT INTO timers (incident_id, key, due_at) VALUES ('no-such-incident', 'ack:0:0', \(backend == .postgres ? "now()" : "0"))")
            let refused = try await Dispatcher(catalog: shippedCatalog).outcomes([.fireTimer(ghost)], to: t.store, now: later)
            #expect(refused.first == .failure(.unknownIncident("no-such-incident")))
            #expect(try await t.strings("SELECT COUNT(*) FROM timers WHERE incident_id = 'no-such-incident'") == ["0"])
        }
    }

    @Test("audit entries cannot be changed or deleted, even with SQL", arguments: Backend.allCases)
    func appendOnly(backend: Backend) async throws {
        try await withStore(backend) { t in
            _ = try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report()))], to: t.store, now: schoolMorning).first)
            let count = try await t.strings("SELECT COUNT(*) FROM audit_entries")
            await #expect(throws: (any Error).self) { try await t.execute("UPDATE audit_entries SET action = 'tampered'") }
            await #expect(throws: (any Error).self) { try await t.execute("DELETE FROM audit_entries") }
            if backend == .postgres {
                await #expect(throws: (any Error).self) { try await t.execute("TRUNCATE audit_entries") }
            }
            #expect(try await t.strings("SELECT COUNT(*) FROM audit_entries") == count)
            #expect(try await t.strings("SELECT COUNT(*) FROM audit_entries WHERE action = 'tampered'") == ["0"])
        }
    }

    @Test("incidents list newest first, filter by phase, site, type and period, and page", arguments: Backend.allCases)
    func listing(backend: Backend) async throws {
        try await withStore(backend) { t in
            var refs: [IncidentRef] = []
            for (index, (type, site)) in [("suicide-risk", "lincoln-high"), ("threat-of-violence", "lincoln-high"),
                                          ("medical-emergency", "washington-elementary"), ("suicide-risk", "mesa-academy")].enumerated() {
                let at = schoolMorning.addingTimeInterval(TimeInterval(index * 3600))
                refs.append(try created(try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report(type, site: site, subject: "S-\(index)", at: at)))],
                                                                 to: t.store, now: at).first).0)
            }
            _ = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(refs[0].id, .resolved(by: .system, note: nil))], to: t.store, now: schoolMorning)
            #expect(try await t.store.incidents(IncidentFilter()).map(\.ref) == refs.reversed())
            #expect(try await t.store.incidents(IncidentFilter(phases: ["resolved"])).map(\.ref) == [refs[0]])
            #expect(try await t.store.incidents(IncidentFilter(site: "lincoln-high")).map(\.ref) == [refs[1], refs[0]])
            #expect(try await t.store.incidents(IncidentFilter(type: "suicide-risk")).map(\.ref) == [refs[3], refs[0]])
            #expect(try await t.store.incidents(IncidentFilter(reportedFrom: schoolMorning.addingTimeInterval(3600),
                                                               reportedBefore: schoolMorning.addingTimeInterval(3 * 3600))).map(\.ref) == [refs[2], refs[1]])
            let page1 = try await t.store.incidents(IncidentFilter(limit: 3))
            let page2 = try await t.store.incidents(IncidentFilter(before: page1.last?.ref.number, limit: 3))
            #expect((page1 + page2).map(\.ref) == refs.reversed())
            #expect(page2.count == 1)
        }
    }

    @Test("two store instances racing over thousands of due timers claim each exactly once", arguments: Backend.allCases)
    func claimsExactlyOnce(backend: Backend) async throws {
        try await withStore(backend) { t in
            let reportCount = 300  // each opens an incident with an acknowledgement timer and task timers
            var commands: [IncidentCommand] = []
            for index in 0..<reportCount { commands.append(.report(ReportIntake(report: report(subject: "S-\(index)")))) }
            for batch in stride(from: 0, to: commands.count, by: 100) {
                _ = try await Dispatcher(catalog: shippedCatalog).outcomes(Array(commands[batch..<min(batch + 100, commands.count)]), to: t.store, now: schoolMorning)
            }
            let total = Int(try await t.strings("SELECT COUNT(*) FROM timers").first ?? "0") ?? 0
            #expect(total >= reportCount * 2)
            let farFuture = schoolMorning.addingTimeInterval(30 * 86_400)
            let second = try await t.another()
            let claims = try await withThrowingTaskGroup(of: [ClaimedTimer].self) { group in
                for (index, store) in [t.store, second, t.store, second].enumerated() {
                    group.addTask {
                        var mine: [ClaimedTimer] = []
                        while true {
                            let batch = try await store.claimDueTimers(now: farFuture, limit: 50, owner: "worker-\(index)", lease: 3600)
                            if batch.isEmpty { return mine }
                            mine += batch
                        }
                    }
                }
                var all: [ClaimedTimer] = []
                for try await claimed in group { all += claimed }
                return all
            }
            #expect(claims.count == total)
            #expect(Set(claims.map { "\($0.incident)/\($0.key)" }).count == total, "no timer was claimed twice")
        }
    }
}
