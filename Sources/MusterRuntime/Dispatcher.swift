// The dispatcher: decides what a batch of commands does. For each command in order it matches the
// playbook, groups storms, recognises retries (idempotency keys), runs the engine, seals student
// text and chains audit entries, and turns all of it into the rows to write. It is a pure function
// of what the store read under lock (`CommitSnapshot`) and the time, tested without a database; the
// store only reads, locks and writes (`Store.commit(reading:now:decide:)`). A refused command adds
// no rows, so each command stays all-or-nothing inside the shared transaction (a delivery attempt's
// own record excepted: `IncidentCommand.deliveryAttempt`).
import Foundation
import Logging
import MusterAudit
import MusterCore
import MusterStore

public struct Dispatcher: Sendable {
    public let catalog: Catalog
    /// Engines of playbook versions loaded before (kept, by version), against today's directory: an
    /// open incident runs the version it started with, whatever the loaded set says now.
    let kept: [String: EscalationEngine]
    let newIncidentID: @Sendable () -> IncidentID
    let logger: Logger

    public init(catalog: Catalog, kept: [Playbook] = [], logger: Logger = Logger(label: "muster.dispatcher"),
                newIncidentID: @escaping @Sendable () -> IncidentID = { IncidentID(UUID().uuidString.lowercased()) }) {
        self.catalog = catalog
        self.logger = logger
        self.newIncidentID = newIncidentID
        var engines: [String: EscalationEngine] = [:]
        for playbook in kept { engines[playbook.version] = EscalationEngine(playbook: playbook, directory: catalog.directory) }
        for engine in catalog.engines.values { engines[engine.playbook.version] = engine }
        self.kept = engines
    }

    /// The engine of the playbook version the incident started with; when that version was never kept
    /// (an incident older than keeping), the loaded playbook of the same id.
    func engine(for state: IncidentState) -> EscalationEngine? {
        if let engine = kept[state.playbookVersion] { return engine }
        guard let current = catalog.engines[state.playbook] else { return nil }
        logger.warning("an incident's playbook version is not kept; it goes on with the loaded one",
                       metadata: ["incident": "\(state.incident.number)", "playbook": "\(state.playbook)", "version": "\(state.playbookVersion)"])
        return current
    }

    /// Commits the commands in one transaction (group commit), each all-or-nothing; results in order.
    /// When the database refuses the batch (a constraint, a deadlock) each command is committed alone,
    /// so one bad command cannot sink the others. Throws `StoreError.unavailable` when nothing is known
    /// to be written.
    public func commit(_ commands: [IncidentCommand], to store: any Store, now: Date) async throws -> [Result<Committed, StoreError>] {
        guard !commands.isEmpty else { return [] }
        do {
            return try await commitTogether(commands, to: store, now: now)
        } catch let refused as CommitRefused where commands.count > 1 {
            logger.warning("group commit refused; committing one by one", metadata: ["error": "\(refused.reason)"])
            var results: [Result<Committed, StoreError>] = []
            var answering = true
            for command in commands {
                guard answering else {
                    // The database stopped answering: the rest are not tried (each would wait out its
                    // timeout); their callers retry them.
                    results.append(.failure(.unavailable("not tried: the database did not answer the command before it")))
                    continue
                }
                do {
                    results += try await commitTogether([command], to: store, now: now)
                } catch let refused as CommitRefused {
                    // Refused on its own: this command fails; the others go on.
                    results.append(.failure(.unavailable(refused.reason)))
                } catch {
                    // Not answered: this one is unknown; those before it stay committed.
                    answering = false
                    results.append(.failure(.unavailable(String(describing: error))))
                }
            }
            return results
        } catch let refused as CommitRefused {
            throw StoreError.unavailable(refused.reason)
        }
    }

    /// The outcomes alone (tools and tests that need no state).
    public func outcomes(_ commands: [IncidentCommand], to store: any Store, now: Date) async throws -> [Result<CommandOutcome, StoreError>] {
        try await commit(commands, to: store, now: now).map { $0.map(\.outcome) }
    }

    private func commitTogether(_ commands: [IncidentCommand], to store: any Store, now: Date) async throws -> [Result<Committed, StoreError>] {
        let (needs, groupHashes) = needs(commands)
        return try await store.commit(reading: needs, now: now) { snapshot in
            decide(commands, groupHashes: groupHashes, snapshot: snapshot, now: now)
        }
    }

    /// What the store must read under lock for these commands, and each report's grouping-key hash
    /// by its index in the batch (computed once, used twice).
    public func needs(_ commands: [IncidentCommand]) -> (CommitNeeds, groupHashes: [Int: String]) {
        var keys = Set<String>(), hashes = Set<String>(), ids = Set<IncidentID>()
        var groupHashes: [Int: String] = [:], reports = 0, attempts: [DeliveryRecord] = [], inbound: [InboundMessage] = []
        for (index, command) in commands.enumerated() {
            switch command {
            case .report(let intake):
                reports += 1
                if let key = intake.idempotencyKey { keys.insert(key) }
                if let hash = groupKeyHash(intake.report) {
                    hashes.insert(hash)
                    groupHashes[index] = hash
                }
                if let grouping = intake.grouping { hashes.insert(GroupKey.hash(grouping.key)) }
            case .event(let id, _):
                ids.insert(id)
            case .join(let source, let target, _, _):
                ids.formUnion([source, target])
            case .eventIfReports(let id, _, _):
                ids.insert(id)
            case .inbound(let id, _, let messageID):
                ids.insert(id)
                inbound.append(InboundMessage(id: messageID, incident: id))
            case .fireTimer(let timer):
                ids.insert(timer.incident)
            case .deliveryAttempt(let attempt):
                ids.insert(attempt.notification.incident)
                attempts.append(attempt)
            }
        }
        return (CommitNeeds(idempotencyKeys: keys.sorted(), groupKeyHashes: hashes.sorted(), incidentIDs: ids.sorted(), newNumbers: reports,
                            deliveryAttempts: attempts, inboundMessages: inbound),
                groupHashes)
    }

    func groupKeyHash(_ report: Report) -> String? {
        guard let playbook = catalog.playbooks.playbook(type: report.type, severity: report.severity, site: report.site),
              let key = PlaybookSet.groupingKey(for: report, playbook: playbook) else { return nil }
        return GroupKey.hash(key)
    }

    /// The rows the commands write and each command's outcome, from what was read and the time.
    public func decide(_ commands: [IncidentCommand], groupHashes: [Int: String], snapshot: CommitSnapshot,
                       now: Date) -> (BatchWrites, [Result<Committed, StoreError>]) {
        var known = snapshot
        var writes = BatchWrites()
        var results: [Result<Committed, StoreError>] = []
        results.reserveCapacity(commands.count)
        for (index, command) in commands.enumerated() {
            var own = BatchWrites()
            let result: Result<CommandOutcome, StoreError>
            switch command {
            case .report(let intake): result = report(intake, groupHash: groupHashes[index], known: &known, writes: &own, now: now)
            case .event(let id, let event): result = apply(event, to: id, known: &known, writes: &own, now: now)
            case .eventIfReports(let id, let event, let count):
                if let state = known.states[id], state.reportCount != count {
                    result = .failure(.changed(id))
                } else {
                    result = apply(event, to: id, known: &known, writes: &own, now: now)
                }
            case .join(let source, let target, let reports, let actor):
                result = join(source, into: target, reports: reports, by: actor, known: &known, writes: &own, now: now)
            case .inbound(let id, let event, let messageID):
                // Taken by the first command that carries it; a repeat (here or in an earlier commit) changes nothing.
                if known.newInboundMessages.remove(messageID) != nil {
                    result = apply(event, to: id, known: &known, writes: &own, now: now)
                } else if let state = known.states[id] {
                    result = .success(.duplicate(IncidentRef(id: id, number: state.incident.number)))
                } else {
                    result = .failure(.unknownIncident(id))
                }
            case .fireTimer(let timer): result = fire(timer, known: &known, writes: &own, now: now)
            case .deliveryAttempt(let attempt): result = record(attempt, known: &known, writes: &own, now: now)
            }
            if case .success = result {
                writes.absorb(own)
            } else {
                for row in own.discardedTimers { writes.timers[row] = .delete }
            }
            results.append(result.flatMap { outcome in
                guard let state = known.states[outcome.incident.id] else { return .failure(.unknownIncident(outcome.incident.id)) }
                return .success(Committed(outcome: outcome, state: state))
            })
        }
        return (writes, results)
    }

    private func report(_ intake: ReportIntake, groupHash hash: String?, known: inout CommitSnapshot,
                        writes: inout BatchWrites, now: Date) -> Result<CommandOutcome, StoreError> {
        var report = intake.report
        if report.subject?.isEmpty == true { report.subject = nil }  // an empty reference names no one
        if intake.idempotencyKey?.isEmpty == true { return .failure(.invalidReport("the idempotency key is empty")) }
        if let key = intake.idempotencyKey, let ref = known.idempotent[key] { return .success(.duplicate(ref)) }
        let playbook: Playbook
        switch IntakeCheck(catalog: catalog).check(report) {
        case .success(let matched): playbook = matched
        case .failure(let problems): return .failure(.invalidReport(problems.description))
        }
        guard let engine = catalog.engines[playbook.id] else {
            return .failure(.noPlaybook(type: report.type, severity: report.severity, site: report.site))
        }
        // A report the playbook groups joins its group's open incident; one taken past its account's
        // budget (intake.grouping) otherwise joins that account's open incident for the site and type.
        let budgetHash = intake.grouping.map { GroupKey.hash($0.key) }
        let candidates = [hash, budgetHash].compactMap { $0.flatMap { known.openByGroup[$0] } }
        let openID = candidates.first { known.states[$0]?.isOpen == true }
        if let openID, var state = known.states[openID] {
            // The open incident goes on under the playbook version it started with.
            guard let incidentEngine = self.engine(for: state) else { return .failure(.unknownPlaybook(state.playbook)) }
            var effects: [Effect] = []
            do {
                try incidentEngine.apply(.reportMerged(report), to: &state, now: now, effects: &effects)
            } catch {
                return .failure(.rejected(error))
            }
            guard let dataKey = known.dataKeys[openID] else { return .failure(.purged(openID)) }
            let ref = IncidentRef(id: openID, number: state.incident.number)
            known.states[openID] = state
            if let key = intake.idempotencyKey { known.idempotent[key] = ref }
            record(state, isNew: false, effects: effects, known: &known, into: &writes)
            writes.reports.append(sealed(report, incident: openID, key: dataKey, idempotencyKey: intake.idempotencyKey))
            return .success(.merged(ref))
        }
        guard !known.numbers.isEmpty else { return .failure(.unavailable("no incident number was allocated")) }
        let number = known.numbers.removeFirst()
        let incident = Incident(id: newIncidentID(), number: number, report: report)
        var effects: [Effect] = []
        let state = engine.start(incident, now: now, effects: &effects)
        let ref = IncidentRef(id: incident.id, number: number)
        let dataKey = DataKey.generate()
        known.states[incident.id] = state
        known.dataKeys[incident.id] = dataKey
        for key in [hash, budgetHash].compactMap({ $0 }) { known.openByGroup[key] = incident.id }
        if let key = intake.idempotencyKey { known.idempotent[key] = ref }
        // The incident keeps one grouping key: past the budget, the account's (so its next reports join it).
        let grouping = intake.grouping.map { (budgetHash, $0.within) } ?? (hash, playbook.grouping?.within)
        record(state, isNew: true, effects: effects, known: &known, into: &writes, groupKeyHash: grouping.0,
               groupUntil: grouping.1.map { report.receivedAt.adding($0) })
        writes.incidents[incident.id]?.dataKey = dataKey
        writes.incidents[incident.id]?.summarySealed = Seal.seal(incident.summary, key: dataKey, context: SealedText.incidentSummary(incident.id))
        writes.incidents[incident.id]?.subjectSealed = incident.subject.map {
            Seal.seal($0, key: dataKey, context: SealedText.incidentSubject(incident.id))
        }
        writes.reports.append(sealed(report, incident: incident.id, key: dataKey, idempotencyKey: intake.idempotencyKey))
        return .success(.created(ref, queued: queued(effects)))
    }

    private func fire(_ timer: ClaimedTimer, known: inout CommitSnapshot, writes: inout BatchWrites, now: Date) -> Result<CommandOutcome, StoreError> {
        guard let state = known.states[timer.incident] else {
            writes.discardedTimers.append(TimerRowKey(incident: timer.incident, key: timer.key))
            return .failure(.unknownIncident(timer.incident))
        }
        // Stored instants keep milliseconds (SQLite) or microseconds (PostgreSQL): compare within that.
        if let scheduled = state.timers.first(where: { $0.key == timer.key }), abs(scheduled.due.timeIntervalSince(timer.due)) > 0.001 {
            return .success(.applied(IncidentRef(id: timer.incident, number: state.incident.number), queued: []))
        }
        return apply(.timerFired(timer.key), to: timer.incident, known: &known, writes: &writes, now: now)
    }

    /// The engine's reaction to a delivery attempt the store recorded in this transaction (a receipt,
    /// a retry, a failure for good that moves to the next contact point or the next step).
    private func record(_ attempt: DeliveryRecord, known: inout CommitSnapshot, writes: inout BatchWrites,
                        now: Date) -> Result<CommandOutcome, StoreError> {
        let n = attempt.notification
        guard known.recordedDeliveries.contains(n.id) else { return .failure(.notHeld(n.id)) }
        let event: IncidentEvent = switch attempt.outcome {
        case .delivered(let receipt): .delivered(notificationID: n.id, reference: receipt)
        case .accepted(let receipt): .sent(notificationID: n.id, reference: receipt)
        case .demonstrated: .demonstrated(notificationID: n.id)
        case .failed(let reason, _, let retryAt):
            .deliveryFailed(notificationID: n.id, recipient: n.recipient, channel: n.channel, reason: reason, permanent: retryAt == nil)
        }
        return apply(event, to: n.incident, known: &known, writes: &writes, now: now)
    }

    private func apply(_ event: IncidentEvent, to id: IncidentID, known: inout CommitSnapshot,
                       writes: inout BatchWrites, now: Date) -> Result<CommandOutcome, StoreError> {
        guard var state = known.states[id] else { return .failure(.unknownIncident(id)) }
        let before = state, phaseBefore = state.phase
        guard let engine = engine(for: state) else { return .failure(.unknownPlaybook(state.playbook)) }
        var effects: [Effect] = []
        do {
            try engine.apply(event, to: &state, now: now, effects: &effects)
        } catch {
            return .failure(.rejected(error))
        }
        // Free text can only be written sealed: once the data key is purged, no new text is taken.
        if known.dataKeys[id] == nil, effects.contains(where: { if case .audit(let record) = $0 { record.sensitive != nil } else { false } }) {
            return .failure(.purged(id))
        }
        known.states[id] = state
        // A fired timer's row goes, unless the event scheduled the same key again.
        if case .timerFired(let key) = event { writes.timers[TimerRowKey(incident: id, key: key)] = .delete }
        // Only entries added (a receipt, a read): the incident's row stays as it is. A purge is not one:
        // the row records when the text was purged.
        var unchanged = before
        unchanged.nextAuditSequence = state.nextAuditSequence
        let isPurge = if case .purged = event { true } else { false }
        let auditOnly = !isPurge && unchanged == state && effects.allSatisfy { if case .audit = $0 { true } else { false } }
        record(state, isNew: false, effects: effects, known: &known, into: &writes, auditOnly: auditOnly)
        if isPurge {
            known.dataKeys[id] = nil
            writes.purgedKeys.insert(id)
        }
        // Pages still waiting to go out are pointless once someone owns the incident, and everything
        // is once it is resolved.
        if state.phase == .resolved, phaseBefore != .resolved {
            writes.cancel(pages: [], all: [id])
        } else if state.phase == .acknowledged, phaseBefore != .acknowledged {
            writes.cancel(pages: [id], all: [])
        }
        return .success(.applied(IncidentRef(id: id, number: state.incident.number), queued: queued(effects)))
    }

    /// Both halves of a join or neither: the target takes the source's reports (sealed again under its
    /// own key), and the source closes.
    private func join(_ source: IncidentID, into target: IncidentID, reports: [Report], by actor: Actor, known: inout CommitSnapshot,
                      writes: inout BatchWrites, now: Date) -> Result<CommandOutcome, StoreError> {
        guard source != target else { return .failure(.rejected(.joinItself)) }
        guard let from = known.states[source] else { return .failure(.unknownIncident(source)) }
        guard let into = known.states[target] else { return .failure(.unknownIncident(target)) }
        guard from.reportCount == reports.count else { return .failure(.changed(source)) }
        guard let key = known.dataKeys[target] else { return .failure(.purged(target)) }
        var scratch = known, own = BatchWrites()
        let joined = apply(.joinedFrom(IncidentRef(id: source, number: from.incident.number), reports: reports, flags: from.incident.flags, by: actor),
                           to: target,
                           known: &scratch, writes: &own, now: now)
        guard case .success = joined else { return joined }
        let closed = apply(.joinedInto(IncidentRef(id: target, number: into.incident.number), by: actor), to: source,
                           known: &scratch, writes: &own, now: now)
        guard case .success = closed else { return closed }
        for report in reports { own.reports.append(sealed(report, incident: target, key: key, idempotencyKey: nil)) }
        known = scratch
        writes.absorb(own)
        return joined
    }

    private func sealed(_ report: Report, incident: IncidentID, key: DataKey, idempotencyKey: String?) -> ReportWrite {
        ReportWrite(incident: incident, report: report, idempotencyKey: idempotencyKey,
                    summarySealed: Seal.seal(report.summary, key: key, context: SealedText.reportSummary(incident)),
                    subjectSealed: report.subject.map { Seal.seal($0, key: key, context: SealedText.reportSubject(incident)) },
                    flagsSealed: SealedText.sealFlags(report.flags, key: key, context: SealedText.reportFlags(incident)))
    }

    /// Adds an incident's new state and effects to the batch. Audit entries are chained (`prev`) and
    /// their free text sealed here; callers have checked that the incident has a data key if text is written.
    private func record(_ state: IncidentState, isNew: Bool, effects: [Effect], known: inout CommitSnapshot, into writes: inout BatchWrites,
                        groupKeyHash: String? = nil, groupUntil: Date? = nil, auditOnly: Bool = false) {
        let id = state.incident.id
        var write = IncidentWrite(state: state, isNew: isNew, groupKeyHash: groupKeyHash, groupUntil: groupUntil)
        write.auditOnly = auditOnly
        if let key = known.dataKeys[id] {
            write.flagsSealed = SealedText.sealFlags(state.incident.flags, key: key, context: SealedText.incidentFlags(id))
        }
        for effect in effects {
            switch effect {
            case .audit(let record):
                var sealed: [UInt8]?
                if let text = record.sensitive, let key = known.dataKeys[id] {
                    sealed = Seal.seal(text, key: key, context: AuditEntryEncoding.sealContext(incident: id, sequence: record.sequence))
                }
                let body = AuditEntryEncoding.encode(record, incident: id, prev: known.auditHeads[id], sealed: sealed)
                let leaf = MerkleTree.leafHash(body).bytes
                known.auditHeads[id] = leaf
                writes.audits.append(AuditWrite(incident: id, record: record, body: body, leafHash: leaf))
            case .scheduleTimer(let key, let due):
                writes.timers[TimerRowKey(incident: id, key: key)] = .upsert(due)
            case .cancelTimer(let key):
                writes.timers[TimerRowKey(incident: id, key: key)] = .delete
            case .notify(let notification):
                writes.outbox.append(notification)
            }
        }
        write.auditHead = known.auditHeads[id]
        if let earlier = writes.incidents[id] {
            writes.incidents[id] = write.merged(over: earlier)
        } else {
            writes.incidentOrder.append(id)
            writes.incidents[id] = write
        }
    }

    private func queued(_ effects: [Effect]) -> [QueuedNotification] {
        effects.compactMap { if case .notify(let n) = $0 { n } else { nil } }
    }
}
