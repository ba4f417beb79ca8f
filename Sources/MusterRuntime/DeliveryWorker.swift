// Sends queued notifications: claims them from the outbox, delivers each through the notifier's
// stages, records every attempt in the outbox and in the audit trail, retries retryable failures
// with back-off, and tells the engine when a page failed for good, so the person's next contact
// point is tried and escalation never waits on a page that will not arrive.
import Foundation
import Logging
import MusterCore
import MusterNotify
import MusterStore

public struct DeliveryWorker: Sendable {
    let store: any Store
    let committer: Committer
    let notifier: Notifier
    let clock: any MusterClock
    let signal: WorkSignal
    let owner: String
    let retry: RetryPolicy
    let random: @Sendable () -> Double
    let logger: Logger
    let observer: RuntimeObserver
    /// Longer than any one attempt may take (channels time out sooner), short enough that a dead instance's pages go out soon.
    var lease: TimeInterval = 15
    var concurrency = 32
    var pollInterval: TimeInterval = 1

    public func run() async {
        await WorkerLoop.run("delivery worker", clock: clock, logger: logger) {
            let now = clock.now()
            let claimed = try await store.claimDeliveries(now: now, limit: concurrency, owner: owner, lease: lease)
            if claimed.isEmpty {
                await signal.wait(until: now.addingTimeInterval(pollInterval), clock: clock)
                return
            }
            // Deliver the batch in parallel, then record every outcome in one transaction.
            let outcomes = await withTaskGroup(of: (ClaimedDelivery, DeliveryOutcome).self) { group in
                for delivery in claimed {
                    group.addTask { await self.deliver(delivery) }
                }
                var outcomes: [(ClaimedDelivery, DeliveryOutcome)] = []
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            // Each attempt commits as one fact: the outbox row, the attempt's row, its audit entry and the
            // engine's reaction (the next contact point, the next step) together. A worker whose lease lapsed
            // records nothing over the worker that took the notification over (`.notHeld`).
            let results = try await record(outcomes.map { delivery, outcome in
                .deliveryAttempt(DeliveryRecord(notification: delivery.notification, owner: owner, outcome: outcome))
            })
            for ((delivery, outcome), result) in zip(outcomes, results) {
                switch result {
                case .failure(.notHeld), .failure(.unavailable):
                    // Not recorded (another worker holds it, or the database did not take it): the lease
                    // lapses and the notification is sent again under the same id.
                    continue
                case .failure(let error):
                    logger.warning("delivery recorded, but the engine refused it", metadata: ["notification": "\(delivery.notification.id)", "error": "\(error)"])
                case .success:
                    break
                }
                let name = switch outcome {
                case .delivered: "delivered"
                case .accepted: "accepted"
                case .failed(_, let retryAt): retryAt == nil ? "failed" : "retry"
                }
                observer.deliveryAttempted(delivery.notification.channel, name)
            }
        }
    }

    /// Commits the attempts, trying those the database did not take a few times: once given up, their
    /// leases lapse and they are sent again (under the same ids), delivered ones included.
    private func record(_ attempts: [IncidentCommand]) async throws -> [Result<Committed, StoreError>] {
        var results = [Result<Committed, StoreError>](repeating: .failure(.unavailable("not recorded")), count: attempts.count)
        var waiting = Array(attempts.indices)
        for attempt in 1...3 {
            do {
                let answers = try await committer.submit(waiting.map { attempts[$0] })
                for (index, answer) in zip(waiting, answers) { results[index] = answer }
                waiting = waiting.filter { if case .failure(.unavailable) = results[$0] { true } else { false } }
            } catch {
                if attempt == 3 || Task.isCancelled { throw error }
            }
            if waiting.isEmpty || attempt == 3 || Task.isCancelled { break }
            try await clock.sleep(until: clock.now().addingTimeInterval(0.2 * Double(attempt)))
        }
        return results
    }

    /// One attempt; a failure without a retry time failed for good.
    private func deliver(_ delivery: ClaimedDelivery) async -> (ClaimedDelivery, DeliveryOutcome) {
        do {
            let receipt = try await notifier.send(delivery.notification, now: { clock.now() })
            return (delivery, receipt.awaitsStatus ? .accepted(receipt: receipt.reference) : .delivered(receipt: receipt.reference))
        } catch {
            if let delay = retry.delay(afterAttempt: delivery.attempts + 1, failure: error, random: random()) {
                return (delivery, .failed(reason: error.description, retryAt: clock.now().addingTimeInterval(delay)))
            }
            return (delivery, .failed(reason: error.description, retryAt: nil))
        }
    }
}
