// Fires due timers into the engine: claims them from the store (a lease, so a dead instance's
// claims lapse and another takes over), commits `.timerFired` for each, and records how late each
// one ran. Sleeps until the next due time, woken early when new work is queued.
import Foundation
import Logging
import MusterCore
import MusterStore

public struct TimerWorker: Sendable {
    let store: any Store
    let committer: Committer
    let clock: any MusterClock
    let signal: WorkSignal
    let owner: String
    let lateness: LatencySamples
    let observer: RuntimeObserver
    let logger: Logger
    /// Firing takes milliseconds: a short lease means a dead instance delays a page by seconds, not minutes.
    var lease: TimeInterval = 5
    var batchSize = 500
    /// The longest sleep: picks up other instances' timers when no notification arrives.
    var pollInterval: TimeInterval = 1

    /// Batches fired at once: the next due timers are claimed while earlier ones commit, so a timer
    /// falling due during a commit does not wait for it to end first.
    var batchesInFlight = 2

    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            await WorkerLoop.run("timer worker", clock: clock, logger: logger) {
                // Ask first when the next timer is due: every commit that schedules one wakes this worker,
                // and a claim (an UPDATE) for nothing costs several times the question.
                let now = clock.now()
                let next = try await store.nextTimerDue(now: now)
                if let next, next <= now {
                    let claimed = try await store.claimDueTimers(now: now, limit: batchSize, owner: owner, lease: lease)
                    if !claimed.isEmpty {
                        if inFlight >= batchesInFlight, await group.next() != nil { inFlight -= 1 }
                        inFlight += 1
                        group.addTask { await fire(claimed) }
                        return  // more may be due already
                    }
                }
                let wake = min(next ?? now.addingTimeInterval(pollInterval), now.addingTimeInterval(pollInterval))
                if wake > now { await signal.wait(until: wake, clock: clock) }
            }
        }
    }

    /// Commits the claimed timers; one that cannot be committed is claimed again when its lease lapses.
    private func fire(_ claimed: [ClaimedTimer]) async {
        let results: [Result<Committed, StoreError>]
        do {
            results = try await committer.submit(claimed.map { .fireTimer($0) })
        } catch {
            logger.error("timers not fired, retried after their lease: \(error)")
            return
        }
        let done = clock.now()
        for (timer, result) in zip(claimed, results) {
            lateness.record(done.timeIntervalSince(timer.due))
            observer.timerFired(done.timeIntervalSince(timer.due))
            if case .failure(let error) = result {
                logger.warning("timer not fired", metadata: ["incident": "\(timer.incident)", "timer": "\(timer.key)", "error": "\(error)"])
            }
        }
    }
}

/// Latency samples (seconds) with percentiles, for metrics and benchmarks.
public final class LatencySamples: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [Double] = []

    public init() {}

    public func record(_ seconds: Double) {
        lock.withLock {
            // Bounded: a long-running service keeps the most recent samples only.
            if samples.count >= 200_000 { samples.removeFirst(100_000) }
            samples.append(seconds)
        }
    }

    public var count: Int { lock.withLock { samples.count } }

    /// The q-th quantile (0...1), nil without samples.
    public func quantile(_ q: Double) -> Double? {
        let sorted = lock.withLock { samples.sorted() }
        guard !sorted.isEmpty else { return nil }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.down)))]
    }

    public func reset() { lock.withLock { samples.removeAll() } }
}
