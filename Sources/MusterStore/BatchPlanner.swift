// Turns a batch of commands into the rows to write, running the pure engine for each command in
// order. Both stores share it: they read what `needs` asks for (under locks, in the transaction),
// plan, then write `BatchWrites` in a few bulk statements. A refused command adds no rows, so each
// command stays all-or-nothing inside the shared transaction.
import Foundation
import MusterAudit
import MusterCore
import MusterPlaybooks

/// What a batch must read before it can be planned.
struct BatchNeeds {
    var idempotencyKeys: [String] = []
    var groupKeyHashes: [String] = []
    /// Each report command's grouping-key hash, by its index in the batch (computed once, used twice).
    var reportGroupHash: [Int: String] = [:]
    var incidentIDs: [IncidentID] = []
    /// How many new incident numbers may be needed (one per report).
    var reports = 0

    init(_ commands: [StoreCommand], catalog: Catalog) {
        var keys = Set<String>(), hashes = Set<String>(), ids = Set<IncidentID>()
        for (index, command) in commands.enumerated() {
            switch command {
            case .report(let intake):
                reports += 1
                if let key = intake.idempotencyKey { keys.insert(key) }
                if let hash = BatchPlanner.groupKeyHash(intake.report, catalog: catalog) {
                    hashes.insert(hash)
                    reportGroupHash[index] = hash
                }
            case .event(let id, _):
                ids.insert(id)
            case .fireTimer(let timer):
                ids.insert(timer.incident)
            }
        }
        idempotencyKeys = keys.sorted()
        groupKeyHashes = hashes.sorted()
        incidentIDs = ids.sorted()
    }
}

/// What the store read for a batch.
struct Prefetched {
    /// Reports already taken, by idempotency key.
    var idempotent: [String: IncidentRef] = [:]
    /// Open incidents whose grouping window is still open, by grouping-key hash.
    var openByGroup: [String: IncidentID] = [:]
    /// The current state of every incident the batch touches (events' and open groups').
    var states: [IncidentID: IncidentState] = [:]
    /// Fresh incident numbers, used in order.
    var numbers: [Int] = []
    /// The data key of every incident in `states` that still has one (purged incidents have none).
    var dataKeys: [IncidentID: DataKey] = [:]
    /// The leaf hash of each incident's last audit entry, which the next entry carries as `prev`.
    var auditHeads: [IncidentID: [UInt8]] = [:]

    mutating func add(_ row: StoredIncidentRow, masterKey: MasterKey) throws {
        let (state, key) = try row.open(masterKey: masterKey)
        states[row.id] = state
        dataKeys[row.id] = key
        auditHeads[row.id] = row.auditHead
    }
}

struct IncidentWrite {
    var state: IncidentState
    var isNew: Bool
    var groupKeyHash: String?
    var groupUntil: Date?
    /// The leaf hash of the incident's last audit entry after this batch.
    var auditHead: [UInt8]?
    /// New incidents only: the summary and subject, sealed, and the data key wrapped by the master key.
    var summarySealed: [UInt8]?
    var subjectSealed: [UInt8]?
    var wrappedKey: [UInt8]?
}

struct ReportWrite {
    var incident: IncidentID
    var report: Report
    var idempotencyKey: String?
    var summarySealed: [UInt8]
    var subjectSealed: [UInt8]?
}

struct AuditWrite {
    var incident: IncidentID
    var record: AuditRecord
    var body: [UInt8]
    var leafHash: [UInt8]
}

enum TimerWrite {
    case upsert(Date)
    case delete
}

struct TimerRowKey: Hashable {
    var incident: IncidentID
    var key: TimerKey
}

/// Every row a batch writes.
struct BatchWrites {
    /// Final state per incident (the last write wins).
    var incidents: [IncidentID: IncidentWrite] = [:]
    var incidentOrder: [IncidentID] = []
    var reports: [ReportWrite] = []
    var audits: [AuditWrite] = []
    /// The net effect on each timer row.
    var timers: [TimerRowKey: TimerWrite] = [:]
    var outbox: [QueuedNotification] = []
    /// Incidents whose queued pages (and fallback pages) are cancelled: acknowledged.
    var cancelPages: Set<IncidentID> = []
    /// Incidents whose every queued notification is cancelled: resolved.
    var cancelAll: Set<IncidentID> = []
    /// Timer rows to delete even if the command fails (rows of incidents that do not exist).
    var discardedTimers: [TimerRowKey] = []
    /// Incidents whose data key is destroyed (retention purge), in the same transaction as the purge entry.
    var purgedKeys: Set<IncidentID> = []

    mutating func absorb(_ other: BatchWrites) {
        for id in other.incidentOrder {
            guard let write = other.incidents[id] else { continue }
            if let existing = incidents[id] {
                incidents[id] = write.merged(over: existing)
            } else {
                incidents[id] = write
                incidentOrder.append(id)
            }
        }
        reports += other.reports
        audits += other.audits
        for (key, write) in other.timers { timers[key] = write }
        outbox += other.outbox
        purgedKeys.formUnion(other.purgedKeys)
        cancel(pages: other.cancelPages, all: other.cancelAll)
    }

    /// Cancels queued notifications, including those this batch queued earlier for the same incidents.
    mutating func cancel(pages: Set<IncidentID>, all: Set<IncidentID>) {
        guard !pages.isEmpty || !all.isEmpty else { return }
        cancelPages.formUnion(pages)
        cancelAll.formUnion(all)
        outbox.removeAll { n in all.contains(n.incident) || (pages.contains(n.incident) && (n.kind == .page || n.kind == .fallback)) }
    }

    var isEmpty: Bool {
        incidents.isEmpty && reports.isEmpty && audits.isEmpty && timers.isEmpty && outbox.isEmpty && cancelPages.isEmpty && cancelAll.isEmpty
            && purgedKeys.isEmpty
    }
}

extension IncidentWrite {
    /// A later write of the same incident in the batch: its state wins, what only the first write knows stays.
    func merged(over earlier: IncidentWrite) -> IncidentWrite {
        var write = self
        write.isNew = isNew || earlier.isNew
        write.groupKeyHash = groupKeyHash ?? earlier.groupKeyHash
        write.groupUntil = groupUntil ?? earlier.groupUntil
        write.auditHead = auditHead ?? earlier.auditHead
        write.summarySealed = summarySealed ?? earlier.summarySealed
        write.subjectSealed = subjectSealed ?? earlier.subjectSealed
        write.wrappedKey = wrappedKey ?? earlier.wrappedKey
        return write
    }
}

struct BatchPlanner: Sendable {
    let catalog: Catalog
    let now: Date
    let masterKey: MasterKey
    let newIncidentID: @Sendable () -> IncidentID

    static func groupKeyHash(_ report: Report, catalog: Catalog) -> String? {
        guard let playbook = catalog.playbooks.playbook(type: report.type, severity: report.severity, site: report.site),
              let key = PlaybookSet.groupingKey(for: report, playbook: playbook) else { return nil }
        return GroupKey.hash(key)
    }

    func plan(_ commands: [StoreCommand], _ needs: BatchNeeds, _ prefetched: Prefetched) -> (BatchWrites, [Result<CommandOutcome, StoreError>]) {
        var known = prefetched
        var writes = BatchWrites()
        var results: [Result<CommandOutcome, StoreError>] = []
        results.reserveCapacity(commands.count)
        for (index, command) in commands.enumerated() {
            var own = BatchWrites()
            let result: Result<CommandOutcome, StoreError>
            switch command {
            case .report(let intake): result = report(intake, groupHash: needs.reportGroupHash[index], known: &known, writes: &own)
            case .event(let id, let event): result = apply(event, to: id, known: &known, writes: &own)
            case .fireTimer(let timer): result = fire(timer, known: &known, writes: &own)
            }
            if case .success = result {
                writes.absorb(own)
            } else {
                for row in own.discardedTimers { writes.timers[row] = .delete }
            }
            results.append(result)
        }
        return (writes, results)
    }

    private func report(_ intake: ReportIntake, groupHash hash: String?, known: inout Prefetched,
                        writes: inout BatchWrites) -> Result<CommandOutcome, StoreError> {
        var report = intake.report
        if report.subject?.isEmpty == true { report.subject = nil }  // an empty reference names no one
        if intake.idempotencyKey?.isEmpty == true { return .failure(.invalidReport("the idempotency key is empty")) }
        if let key = intake.idempotencyKey, let ref = known.idempotent[key] { return .success(.duplicate(ref)) }
        guard catalog.directory.incidentTypes.contains(where: { $0.id == report.type }) else {
            return .failure(.invalidReport("unknown incident type '\(report.type)'"))
        }
        guard catalog.directory.sites[report.site] != nil else { return .failure(.invalidReport("unknown site '\(report.site)'")) }
        guard let playbook = catalog.playbooks.playbook(type: report.type, severity: report.severity, site: report.site),
              let engine = catalog.engines[playbook.id] else {
            return .failure(.noPlaybook(type: report.type, severity: report.severity, site: report.site))
        }
        if let hash, let openID = known.openByGroup[hash], var state = known.states[openID], state.isOpen {
            var effects: [Effect] = []
            do {
                try engine.apply(.reportMerged(report), to: &state, now: now, effects: &effects)
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
        if let hash { known.openByGroup[hash] = incident.id }
        if let key = intake.idempotencyKey { known.idempotent[key] = ref }
        record(state, isNew: true, effects: effects, known: &known, into: &writes, groupKeyHash: hash,
               groupUntil: playbook.grouping.map { report.receivedAt.adding($0.within) })
        writes.incidents[incident.id]?.wrappedKey = masterKey.wrap(dataKey, incident: incident.id.rawValue)
        writes.incidents[incident.id]?.summarySealed = Seal.seal(incident.summary, key: dataKey, context: SealedText.incidentSummary(incident.id))
        writes.incidents[incident.id]?.subjectSealed = incident.subject.map {
            Seal.seal($0, key: dataKey, context: SealedText.incidentSubject(incident.id))
        }
        writes.reports.append(sealed(report, incident: incident.id, key: dataKey, idempotencyKey: intake.idempotencyKey))
        return .success(.created(ref, queued: queued(effects)))
    }

    private func fire(_ timer: ClaimedTimer, known: inout Prefetched, writes: inout BatchWrites) -> Result<CommandOutcome, StoreError> {
        guard let state = known.states[timer.incident] else {
            writes.discardedTimers.append(TimerRowKey(incident: timer.incident, key: timer.key))
            return .failure(.unknownIncident(timer.incident))
        }
        // Stored instants keep milliseconds (SQLite) or microseconds (PostgreSQL): compare within that.
        if let scheduled = state.timers.first(where: { $0.key == timer.key }), abs(scheduled.due.timeIntervalSince(timer.due)) > 0.001 {
            return .success(.applied(IncidentRef(id: timer.incident, number: state.incident.number), queued: []))
        }
        return apply(.timerFired(timer.key), to: timer.incident, known: &known, writes: &writes)
    }

    private func apply(_ event: IncidentEvent, to id: IncidentID, known: inout Prefetched,
                       writes: inout BatchWrites) -> Result<CommandOutcome, StoreError> {
        guard var state = known.states[id] else { return .failure(.unknownIncident(id)) }
        let phaseBefore = state.phase
        guard let engine = catalog.engines[state.playbook] else { return .failure(.unknownPlaybook(state.playbook)) }
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
        record(state, isNew: false, effects: effects, known: &known, into: &writes)
        if case .purged = event {
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

    private func sealed(_ report: Report, incident: IncidentID, key: DataKey, idempotencyKey: String?) -> ReportWrite {
        ReportWrite(incident: incident, report: report, idempotencyKey: idempotencyKey,
                    summarySealed: Seal.seal(report.summary, key: key, context: SealedText.reportSummary(incident)),
                    subjectSealed: report.subject.map { Seal.seal($0, key: key, context: SealedText.reportSubject(incident)) })
    }

    /// Adds an incident's new state and effects to the batch. Audit entries are chained (`prev`) and
    /// their free text sealed here; callers have checked that the incident has a data key if text is written.
    private func record(_ state: IncidentState, isNew: Bool, effects: [Effect], known: inout Prefetched, into writes: inout BatchWrites,
                        groupKeyHash: String? = nil, groupUntil: Date? = nil) {
        let id = state.incident.id
        var write = IncidentWrite(state: state, isNew: isNew, groupKeyHash: groupKeyHash, groupUntil: groupUntil)
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
