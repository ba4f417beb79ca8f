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
}

struct IncidentWrite {
    var state: IncidentState
    var isNew: Bool
    var groupKeyHash: String?
    var groupUntil: Date?
}

struct ReportWrite {
    var incident: IncidentID
    var report: Report
    var idempotencyKey: String?
}

struct AuditWrite {
    var incident: IncidentID
    var record: AuditRecord
    var body: [UInt8]
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

    mutating func absorb(_ other: BatchWrites) {
        for id in other.incidentOrder {
            guard let write = other.incidents[id] else { continue }
            if let existing = incidents[id] {
                incidents[id] = IncidentWrite(state: write.state, isNew: existing.isNew || write.isNew,
                                              groupKeyHash: write.groupKeyHash ?? existing.groupKeyHash,
                                              groupUntil: write.groupUntil ?? existing.groupUntil)
            } else {
                incidents[id] = write
                incidentOrder.append(id)
            }
        }
        reports += other.reports
        audits += other.audits
        for (key, write) in other.timers { timers[key] = write }
        outbox += other.outbox
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
    }
}

struct BatchPlanner: Sendable {
    let catalog: Catalog
    let now: Date
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
            let ref = IncidentRef(id: openID, number: state.incident.number)
            known.states[openID] = state
            if let key = intake.idempotencyKey { known.idempotent[key] = ref }
            record(state, isNew: false, effects: effects, into: &writes)
            writes.reports.append(ReportWrite(incident: openID, report: report, idempotencyKey: intake.idempotencyKey))
            return .success(.merged(ref))
        }
        guard !known.numbers.isEmpty else { return .failure(.unavailable("no incident number was allocated")) }
        let number = known.numbers.removeFirst()
        let incident = Incident(id: newIncidentID(), number: number, report: report)
        var effects: [Effect] = []
        let state = engine.start(incident, now: now, effects: &effects)
        let ref = IncidentRef(id: incident.id, number: number)
        known.states[incident.id] = state
        if let hash { known.openByGroup[hash] = incident.id }
        if let key = intake.idempotencyKey { known.idempotent[key] = ref }
        record(state, isNew: true, effects: effects, into: &writes, groupKeyHash: hash,
               groupUntil: playbook.grouping.map { report.receivedAt.adding($0.within) })
        writes.reports.append(ReportWrite(incident: incident.id, report: report, idempotencyKey: intake.idempotencyKey))
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
        known.states[id] = state
        // A fired timer's row goes, unless the event scheduled the same key again.
        if case .timerFired(let key) = event { writes.timers[TimerRowKey(incident: id, key: key)] = .delete }
        record(state, isNew: false, effects: effects, into: &writes)
        // Pages still waiting to go out are pointless once someone owns the incident, and everything
        // is once it is resolved.
        if state.phase == .resolved, phaseBefore != .resolved {
            writes.cancel(pages: [], all: [id])
        } else if state.phase == .acknowledged, phaseBefore != .acknowledged {
            writes.cancel(pages: [id], all: [])
        }
        return .success(.applied(IncidentRef(id: id, number: state.incident.number), queued: queued(effects)))
    }

    private func record(_ state: IncidentState, isNew: Bool, effects: [Effect], into writes: inout BatchWrites,
                        groupKeyHash: String? = nil, groupUntil: Date? = nil) {
        let id = state.incident.id
        if writes.incidents[id] == nil { writes.incidentOrder.append(id) }
        writes.incidents[id] = IncidentWrite(state: state, isNew: isNew || (writes.incidents[id]?.isNew ?? false),
                                             groupKeyHash: groupKeyHash ?? writes.incidents[id]?.groupKeyHash,
                                             groupUntil: groupUntil ?? writes.incidents[id]?.groupUntil)
        for effect in effects {
            switch effect {
            case .audit(let record):
                writes.audits.append(AuditWrite(incident: id, record: record, body: AuditEntryEncoding.encode(record, incident: id)))
            case .scheduleTimer(let key, let due):
                writes.timers[TimerRowKey(incident: id, key: key)] = .upsert(due)
            case .cancelTimer(let key):
                writes.timers[TimerRowKey(incident: id, key: key)] = .delete
            case .notify(let notification):
                writes.outbox.append(notification)
            }
        }
    }

    private func queued(_ effects: [Effect]) -> [QueuedNotification] {
        effects.compactMap { if case .notify(let n) = $0 { n } else { nil } }
    }
}
