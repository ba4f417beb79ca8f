// Retention: destroys the data keys of incidents closed before a date, each with a `purged` audit
// entry in the same transaction, then scrubs the destroyed keys from the database files. Proofs keep
// verifying (leaves cover the sealed bytes); the text is unrecoverable (docs/audit.md, "Retention").
import Foundation
import Logging
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterStore

public struct RetentionPurge: Sendable {
    let store: any Store
    let catalog: Catalog
    let clock: any MusterClock

    public init(store: any Store, catalog: Catalog, clock: any MusterClock = SystemClock()) {
        self.store = store
        self.catalog = catalog
        self.clock = clock
    }

    /// Purges every incident resolved before `closedBefore`; returns those purged and those refused (with why).
    public func run(closedBefore: Date, policy: String) async throws -> (purged: [IncidentID], refused: [(IncidentID, String)]) {
        var purged: [IncidentID] = [], refused: [(IncidentID, String)] = []
        while true {
            let candidates = try await store.purgeCandidates(closedBefore: closedBefore, limit: 100)
                .filter { id in !refused.contains { $0.0 == id } }
            guard !candidates.isEmpty else { break }
            let commands = candidates.map { IncidentCommand.event($0, .purged(policy: policy, closedBefore: closedBefore)) }
            let results = try await Dispatcher(catalog: catalog).commit(commands, to: store, now: clock.now())
            for (id, result) in zip(candidates, results) {
                switch result {
                case .success: purged.append(id)
                case .failure(let error): refused.append((id, error.description))
                }
            }
        }
        if !purged.isEmpty { try await store.scrubDestroyedKeys() }
        return (purged, refused)
    }
}

/// The daily purge by the configured policy: once at start, then every 24 hours. Several instances
/// may run it at once; an incident purged by one is simply not a candidate for the other.
struct RetentionWorker: Sendable {
    let store: any Store
    let committer: Committer
    let policy: RetentionPolicy
    let clock: any MusterClock
    let logger: Logger

    func run() async {
        await WorkerLoop.run("retention purge", clock: clock, logger: logger) {
            try await purgeOnce()
            try await clock.sleep(until: clock.now().addingTimeInterval(86_400))
        }
    }

    /// How many incidents this pass purged.
    @discardableResult
    func purgeOnce() async throws -> Int {
        let closedBefore = policy.closedBefore(now: clock.now())
        let purge = RetentionPurge(store: store, catalog: await committer.currentCatalog, clock: clock)
        let (purged, refused) = try await purge.run(closedBefore: closedBefore, policy: policy.name)
        for (id, reason) in refused { logger.warning("retention purge: incident \(id) not purged: \(reason)") }
        if !purged.isEmpty {
            logger.info("retention purge: \(purged.count) incidents closed before \(AuditEntryEncoding.timestamp(closedBefore)) under '\(policy.name)'")
        }
        return purged.count
    }
}
