// Sends queued notifications: claims them from the outbox, delivers each over its channel, records
// every attempt, retries retryable failures with back-off, and tells the engine when a page failed
// for good, so escalation never waits on a page that will not arrive.
import Foundation
import Logging
import MusterCore
import MusterNotify
import MusterStore

public struct DeliveryWorker: Sendable {
    let store: any Store
    let committer: Committer
    let channel: any Channel
    let clock: any MusterClock
    let signal: WorkSignal
    let owner: String
    let retry: RetryPolicy
    let random: @Sendable () -> Double
    let logger: Logger
    /// Longer than any one attempt may take (channels time out sooner), short enough that a dead instance's pages go out soon.
    var lease: TimeInterval = 15
    var concurrency = 32
    var pollInterval: TimeInterval = 1

    public func run() async {
        var backoff: TimeInterval = 0.1
        while !Task.isCancelled {
            do {
                let now = clock.now()
                let claimed = try await store.claimDeliveries(now: now, limit: concurrency, owner: owner, lease: lease)
                if claimed.isEmpty {
                    await signal.wait(until: now.addingTimeInterval(pollInterval), clock: clock)
                    continue
                }
                await withTaskGroup(of: Void.self) { group in
                    for delivery in claimed {
                        group.addTask { await self.deliver(delivery) }
                    }
                }
                backoff = 0.1
            } catch {
                if Task.isCancelled { return }
                logger.error("delivery worker: \(error); retrying in \(backoff)s")
                try? await clock.sleep(until: clock.now().addingTimeInterval(backoff))
                backoff = min(backoff * 2, 2)
            }
        }
    }

    private func deliver(_ delivery: ClaimedDelivery) async {
        let notification = delivery.notification
        let attempt = delivery.attempts + 1
        let outcome: DeliveryOutcome
        var failedForGood: DeliveryFailure?
        do {
            let receipt = try await channel.deliver(notification)
            outcome = .delivered(receipt: receipt.reference)
        } catch {
            if let delay = retry.delay(afterAttempt: attempt, failure: error, random: random()) {
                outcome = .failed(reason: error.description, retryAt: clock.now().addingTimeInterval(delay))
            } else {
                outcome = .failed(reason: error.description, retryAt: nil)
                failedForGood = error
            }
        }
        do {
            try await store.recordDelivery(notification.id, outcome: outcome, at: clock.now())
            if let failure = failedForGood {
                let event = IncidentEvent.deliveryFailed(notificationID: notification.id, recipient: notification.recipient,
                                                         channel: notification.channel, reason: failure.description, permanent: true)
                _ = try await committer.submit(.event(notification.incident, event))
            }
        } catch {
            // The claim's lease lapses and the notification is tried again, under the same id.
            logger.error("could not record delivery of \(notification.id): \(error)")
        }
    }
}
