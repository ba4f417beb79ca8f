// Retention: destroys the data keys of incidents closed before a date, each with a `purged` audit
// entry in the same transaction, then scrubs the destroyed keys from the database files. Proofs keep
// verifying (leaves cover the sealed bytes); the text is unrecoverable (docs/audit.md, "Retention").
import Foundation
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
            let commands = candidates.map { StoreCommand.event($0, .purged(policy: policy, closedBefore: closedBefore)) }
            let results = try await store.commit(commands, catalog: catalog, now: clock.now())
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
