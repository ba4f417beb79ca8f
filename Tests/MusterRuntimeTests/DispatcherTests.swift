// The dispatcher without a database: what a batch of commands writes is a pure function of what the
// store read and the time. The snapshots here are the dispatcher's own writes, fed back as a store
// would read them.
import Foundation
import MusterAudit
import MusterCore
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

private func report(site: String = "lincoln-high", subject: String? = "S-1042", summary: String = "Student wrote a goodbye note in class",
                    at: Date = schoolMorning) -> Report {
    Report(type: "suicide-risk", severity: .high, site: SiteID(site), reporter: .person("aokafor"), summary: summary, subject: subject,
           receivedAt: at)
}

/// Decides `commands` over `snapshot`, with fresh numbers for the reports, as a store would hand them over;
/// the outcomes without the states.
private func decide(_ dispatcher: Dispatcher, _ commands: [IncidentCommand], _ snapshot: CommitSnapshot = CommitSnapshot(),
                    now: Date = schoolMorning) -> (BatchWrites, [Result<CommandOutcome, StoreError>]) {
    let (needs, groupHashes) = dispatcher.needs(commands)
    var snapshot = snapshot
    if snapshot.numbers.isEmpty { snapshot.numbers = Array(1...max(needs.newNumbers, 1)) }
    let (writes, results) = dispatcher.decide(commands, groupHashes: groupHashes, snapshot: snapshot, now: now)
    return (writes, results.map { $0.map(\.outcome) })
}

/// What a store would read back for the incidents `writes` wrote.
private func snapshot(after writes: BatchWrites, openGroups: Bool = true) -> CommitSnapshot {
    var snapshot = CommitSnapshot()
    for (id, write) in writes.incidents {
        snapshot.states[id] = write.state
        snapshot.dataKeys[id] = write.dataKey
        snapshot.auditHeads[id] = write.auditHead
        if openGroups, let hash = write.groupKeyHash { snapshot.openByGroup[hash] = id }
    }
    for report in writes.reports {
        if let key = report.idempotencyKey, let write = writes.incidents[report.incident] {
            snapshot.idempotent[key] = IncidentRef(id: report.incident, number: write.state.incident.number)
        }
    }
    return snapshot
}

@Suite("Dispatcher")
struct DispatcherTests {
    let dispatcher = Dispatcher(catalog: shippedCatalog)

    @Test("a report opens an incident: its text only sealed, its audit entries chained, its pages and timers queued")
    func reportOpensIncident() throws {
        let (writes, results) = decide(dispatcher, [.report(ReportIntake(report: report(), idempotencyKey: "k1"))])
        guard case .success(.created(let ref, let queued))? = results.first else {
            Issue.record("expected a new incident, got \(results)")
            return
        }
        #expect(ref.number == 1)
        let write = try #require(writes.incidents[ref.id])
        #expect(write.isNew && write.groupKeyHash != nil)
        let key = try #require(write.dataKey)
        #expect(try Seal.open(try #require(write.summarySealed), key: key, context: SealedText.incidentSummary(ref.id))
                == "Student wrote a goodbye note in class")
        #expect(writes.reports.count == 1 && writes.reports[0].idempotencyKey == "k1")
        #expect(!queued.isEmpty && queued == writes.outbox)
        #expect(!writes.timers.isEmpty)
        // Each entry carries the leaf hash of the one before it; the incident's head is the last.
        #expect(writes.audits.count >= 2)
        var previous: [UInt8]?
        for audit in writes.audits {
            #expect(try EntryFields(audit.body).string("prev") == previous?.hex)
            #expect(audit.leafHash == MerkleTree.leafHash(audit.body).bytes)
            previous = audit.leafHash
        }
        #expect(write.auditHead == previous)
    }

    @Test("an inbound message is taken once: the store asks to record its id, and a repeat in the batch or from before writes nothing")
    func inboundMessageTakenOnce() throws {
        let (opened, results) = decide(dispatcher, [.report(ReportIntake(report: report()))])
        guard case .success(.created(let ref, _))? = results.first else {
            Issue.record("expected a new incident, got \(results)")
            return
        }
        let reply = IncidentEvent.replyReceived(from: .person("aokafor"), path: .sms, text: "No, not ok")
        let commands: [IncidentCommand] = [.inbound(ref.id, reply, messageID: "SM1"), .inbound(ref.id, reply, messageID: "SM1"),
                                           .inbound(ref.id, reply, messageID: "SM0")]
        #expect(dispatcher.needs(commands).0.inboundMessages.map(\.id) == ["SM1", "SM1", "SM0"])
        var known = snapshot(after: opened)
        known.newInboundMessages = ["SM1"]  // SM0 was recorded by an earlier commit
        let (writes, outcomes) = decide(dispatcher, commands, known)
        #expect(outcomes.map { (try? $0.get()).map { if case .duplicate = $0 { "duplicate" } else { "applied" } } }
                == ["applied", "duplicate", "duplicate"])
        #expect(writes.audits.count == 1 && writes.audits.first?.record.action == .replyReceived)
        #expect(writes.incidents[ref.id]?.auditOnly == true, "a reply kept on the timeline does not rewrite the incident")
    }

    @Test("a join is both halves or neither: the target takes the reports sealed under its own key and the source closes; into a closed incident nothing is written")
    func joinIsAtomic() throws {
        let first = report(subject: "S-1"), second = report(subject: "S-2", summary: "Another student is worried about him")
        let (opened, results) = decide(dispatcher, [.report(ReportIntake(report: first)), .report(ReportIntake(report: second))])
        let refs = results.compactMap { if case .success(.created(let ref, _)) = $0 { ref } else { nil } }
        try #require(refs.count == 2)
        let (source, target) = (refs[1], refs[0])
        var known = snapshot(after: opened)
        // A flag held in the source (its first reporter's, or confirmed there) comes along, confirmed by the joiner.
        known.states[source.id]?.incident.flags = ["guardian-contact-unsafe"]
        let (writes, outcomes) = decide(dispatcher, [.join(source: source.id, into: target.id, reports: [second], by: .person("dchen"))], known)
        #expect((try? outcomes.first?.get()) == .applied(target, queued: []))
        #expect(writes.incidents[source.id]?.state.phase == .resolved)
        #expect(writes.incidents[target.id]?.state.reportCount == 2)
        #expect(writes.incidents[target.id]?.state.incident.flags == ["guardian-contact-unsafe"])
        #expect(writes.incidents[target.id]?.state.tasks.contains { $0.id == "guardian" } == false, "the task it rules out is withdrawn in the target too")
        #expect(writes.audits.contains { $0.incident == target.id && $0.record.action == .flagConfirmed && $0.record.actor == .person("dchen") })
        let moved = try #require(writes.reports.first)
        #expect(writes.reports.count == 1 && moved.incident == target.id)
        let key = try #require(known.dataKeys[target.id])
        #expect(try Seal.open(moved.summarySealed, key: key, context: SealedText.reportSummary(target.id)) == "Another student is worried about him")
        let joinedOn: Set<IncidentID> = Set(writes.audits.filter { $0.record.action == .joined }.map(\.incident))
        #expect(joinedOn == [source.id, target.id])

        // The source's reports changed since they were read: nothing is written.
        let (stale, staleOutcome) = decide(dispatcher, [.join(source: source.id, into: target.id, reports: [], by: .person("dchen"))], known)
        #expect(staleOutcome.first.map { if case .failure(.changed(source.id)) = $0 { true } else { false } } == true)
        #expect(stale.isEmpty)
        // Into a resolved incident: refused, and the source stays open.
        var closed = known
        closed.states[target.id]?.phase = .resolved
        let (none, refused) = decide(dispatcher, [.join(source: source.id, into: target.id, reports: [second], by: .person("dchen"))], closed)
        #expect(refused.first.map { if case .failure(.rejected(.resolved)) = $0 { true } else { false } } == true)
        #expect(none.isEmpty)
    }

    @Test("an event decided on the reports as read is refused, writing nothing, once a report joined since")
    func eventIfReportsUnchanged() throws {
        let (opened, results) = decide(dispatcher, [.report(ReportIntake(report: report()))])
        guard case .success(.created(let ref, _))? = results.first else {
            Issue.record("expected a new incident, got \(results)")
            return
        }
        let resolve = IncidentEvent.resolved(by: .integration("monitoring"), note: nil)
        let (stale, refused) = decide(dispatcher, [.eventIfReports(ref.id, resolve, reportCount: 0)], snapshot(after: opened))
        #expect(refused.first.map { if case .failure(.changed(ref.id)) = $0 { true } else { false } } == true)
        #expect(stale.isEmpty)
        let (writes, applied) = decide(dispatcher, [.eventIfReports(ref.id, resolve, reportCount: 1)], snapshot(after: opened))
        #expect((try? applied.first?.get()) == .applied(ref, queued: []))
        #expect(writes.incidents[ref.id]?.state.phase == .resolved)
    }

    @Test("a retried report is recognised by its idempotency key and writes nothing")
    func retryIsDuplicate() {
        let intake = ReportIntake(report: report(), idempotencyKey: "k1")
        let (first, _) = decide(dispatcher, [.report(intake)])
        let (again, results) = decide(dispatcher, [.report(intake)], snapshot(after: first))
        guard case .success(.duplicate(let ref))? = results.first else {
            Issue.record("expected a duplicate, got \(results)")
            return
        }
        #expect(ref.number == 1)
        #expect(again.isEmpty && again.reports.isEmpty)
    }

    @Test("reports about the same student in one batch make one incident; the second is kept as a report")
    func stormMerges() {
        let (writes, results) = decide(dispatcher, [.report(ReportIntake(report: report())),
                                                    .report(ReportIntake(report: report(summary: "A friend forwarded a message")))])
        guard case .success(.created(let ref, _))? = results.first, case .success(.merged(let merged))? = results.last else {
            Issue.record("expected created then merged, got \(results)")
            return
        }
        #expect(merged == ref)
        #expect(writes.incidents.count == 1 && writes.reports.count == 2)
        #expect(writes.reports.allSatisfy { $0.incident == ref.id })
    }

    @Test("each outcome carries the incident as its command left it, a retried report's as it stands")
    func outcomesCarryState() throws {
        let commands: [IncidentCommand] = [.report(ReportIntake(report: report(), idempotencyKey: "k1")),
                                           .report(ReportIntake(report: report(summary: "A friend forwarded a message")))]
        let (needs, groupHashes) = dispatcher.needs(commands)
        var read = CommitSnapshot()
        read.numbers = Array(1...needs.newNumbers)
        let (writes, results) = dispatcher.decide(commands, groupHashes: groupHashes, snapshot: read, now: schoolMorning)
        let created = try results[0].get(), merged = try results[1].get()
        #expect(created.state.reportCount == 1 && merged.state.reportCount == 2)
        #expect(merged.state.currentPages == created.state.currentPages && !created.state.currentPages.isEmpty)

        let retry: [IncidentCommand] = [.report(ReportIntake(report: report(), idempotencyKey: "k1"))]
        let (_, again) = dispatcher.decide(retry, groupHashes: dispatcher.needs(retry).groupHashes, snapshot: snapshot(after: writes),
                                           now: schoolMorning.addingTimeInterval(5))
        let duplicate = try again[0].get()
        #expect(duplicate.outcome == .duplicate(created.outcome.incident))
        #expect(duplicate.state.reportCount == 2)
    }

    @Test("a refused command writes nothing and leaves the others in the batch whole")
    func refusedCommandIsolated() {
        let (writes, results) = decide(dispatcher, [.event("no-such-incident", .noteAdded(by: .person("dchen"), text: "hello")),
                                                    .report(ReportIntake(report: report(site: "atlantis-high"))),
                                                    .report(ReportIntake(report: report()))])
        guard case .failure(.unknownIncident)? = results.first, case .failure(.invalidReport(let why)) = results[1],
              case .success(.created(let ref, _)) = results[2] else {
            Issue.record("expected unknown incident, invalid report, created; got \(results)")
            return
        }
        #expect(why.contains("atlantis-high"))
        #expect(writes.incidentOrder == [ref.id])
        #expect(writes.audits.allSatisfy { $0.incident == ref.id })
    }

    @Test("an acknowledgement cancels the incident's queued pages; a resolution cancels everything")
    func ownershipCancelsPages() throws {
        let (opened, results) = decide(dispatcher, [.report(ReportIntake(report: report()))])
        guard case .success(.created(let ref, _))? = results.first else {
            Issue.record("expected a new incident, got \(results)")
            return
        }
        let read = snapshot(after: opened)
        let (acked, ackResults) = decide(dispatcher, [.event(ref.id, .acknowledged(by: .person("dchen"), path: .api, step: nil))], read,
                                         now: schoolMorning.addingTimeInterval(60))
        #expect((try? ackResults.first?.get()) != nil)
        #expect(acked.cancelPages == [ref.id] && acked.cancelAll.isEmpty)
        let write = try #require(acked.incidents[ref.id])
        #expect(write.state.phase == .acknowledged && !write.isNew)
        // The acknowledgement's entry continues the chain from the head the store read.
        let first = try #require(acked.audits.first)
        #expect(try EntryFields(first.body).string("prev") == read.auditHeads[ref.id]?.hex)

        let (resolved, _) = decide(dispatcher, [.event(ref.id, .resolved(by: .person("dchen"), note: nil))], read,
                                   now: schoolMorning.addingTimeInterval(60))
        #expect(resolved.cancelAll == [ref.id])
    }

    @Test("a timer claimed before the incident rescheduled it does not fire; a timer of a vanished incident is dropped")
    func staleTimers() throws {
        let (opened, results) = decide(dispatcher, [.report(ReportIntake(report: report()))])
        guard case .success(.created(let ref, _))? = results.first else {
            Issue.record("expected a new incident, got \(results)")
            return
        }
        let state = try #require(opened.incidents[ref.id]?.state)
        let timer = try #require(state.timers.first)
        let stale = ClaimedTimer(incident: ref.id, key: timer.key, due: timer.due.addingTimeInterval(-30))
        let (none, staleResults) = decide(dispatcher, [.fireTimer(stale)], snapshot(after: opened), now: timer.due)
        #expect((try? staleResults.first?.get())?.queued == [])
        #expect(none.isEmpty)

        let vanished = ClaimedTimer(incident: "gone", key: timer.key, due: timer.due)
        let (dropped, vanishedResults) = decide(dispatcher, [.fireTimer(vanished)], CommitSnapshot(), now: timer.due)
        guard case .failure(.unknownIncident)? = vanishedResults.first else {
            Issue.record("expected an unknown incident, got \(vanishedResults)")
            return
        }
        #expect(dropped.timers[TimerRowKey(incident: "gone", key: timer.key)] != nil)
    }
}
