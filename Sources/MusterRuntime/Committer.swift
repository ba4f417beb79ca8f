// Group commit: commands submitted while a commit is in flight wait and go together in the next
// one, so a burst of reports costs a few transactions instead of one each. Each command stays
// all-or-nothing (the store guarantees it); each caller gets its own result.
import Foundation
import MusterCore
import MusterStore

public actor Committer {
    private let store: any Store
    private let clock: any MusterClock
    private var dispatcher: Dispatcher
    private let maxBatch: Int
    private var pending: [(commands: [IncidentCommand], reply: CheckedContinuation<[Result<Committed, StoreError>], any Error>)] = []
    /// Commits under way. Several overlap the application's work with the database's; commands in
    /// different batches were submitted concurrently, so no order between them is lost.
    private var inFlight = 0
    private let maxInFlight: Int
    /// Called after each commit with its outcomes (wakes workers, counts metrics).
    private let committed: @Sendable ([IncidentCommand], [Result<Committed, StoreError>]) -> Void

    public init(store: any Store, catalog: Catalog, clock: any MusterClock, maxBatch: Int = 500, maxInFlight: Int = 4,
                committed: @escaping @Sendable ([IncidentCommand], [Result<Committed, StoreError>]) -> Void = { _, _ in }) {
        self.store = store
        self.maxInFlight = maxInFlight
        dispatcher = Dispatcher(catalog: catalog)
        self.clock = clock
        self.maxBatch = maxBatch
        self.committed = committed
    }

    public var currentCatalog: Catalog { dispatcher.catalog }

    /// Replaces the playbooks and directory for commands committed from now on.
    public func reload(_ catalog: Catalog) { dispatcher = Dispatcher(catalog: catalog) }

    /// Commits one command; throws `StoreError.unavailable` when the database cannot take it (nothing was written).
    public func submit(_ command: IncidentCommand) async throws -> Result<Committed, StoreError> {
        guard let result = try await submit([command]).first else { throw StoreError.unavailable("no result") }
        return result
    }

    /// Commits several commands, in order and in as few transactions as fit; results in order.
    public func submit(_ commands: [IncidentCommand]) async throws -> [Result<Committed, StoreError>] {
        guard !commands.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append((commands, continuation))
            startFlushing()
        }
    }

    private func startFlushing() {
        guard inFlight < maxInFlight else { return }
        inFlight += 1
        Task { await self.flush() }
    }

    /// Takes whole entries up to the batch size (an entry larger than it goes alone).
    private func takeBatch() -> [(commands: [IncidentCommand], reply: CheckedContinuation<[Result<Committed, StoreError>], any Error>)] {
        var count = 0, commandCount = 0
        while count < pending.count, count == 0 || commandCount + pending[count].commands.count <= maxBatch {
            commandCount += pending[count].commands.count
            count += 1
        }
        defer { pending.removeFirst(count) }
        return Array(pending.prefix(count))
    }

    private func flush() async {
        while !pending.isEmpty {
            let batch = takeBatch()
            do {
                let commands = batch.flatMap(\.commands)
                let results = try await dispatcher.commit(commands, to: store, now: clock.now())
                var offset = 0
                for entry in batch {
                    entry.reply.resume(returning: Array(results[offset..<(offset + entry.commands.count)]))
                    offset += entry.commands.count
                }
                committed(commands, results)
            } catch {
                for entry in batch { entry.reply.resume(throwing: error) }
            }
        }
        inFlight -= 1
    }
}
