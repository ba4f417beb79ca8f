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
            let outcomes = await withTaskGroup(of: (ClaimedDelivery, DeliveryOutcome, DeliveryFailure?).self) { group in
                for delivery in claimed {
                    group.addTask { await self.deliver(delivery) }
                }
                var outcomes: [(ClaimedDelivery, DeliveryOutcome, DeliveryFailure?)] = []
                for await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            let recorded = try await record(outcomes.map { ($0.0.notification.id, $0.1) })
            for (delivery, outcome, _) in outcomes where recorded.contains(delivery.notification.id) {
                let name = switch outcome {
                case .delivered: "delivered"
                case .failed(_, let retryAt): retryAt == nil ? "failed" : "retry"
                }
                observer.deliveryAttempted(delivery.notification.channel, name)
            }
            // Every attempt goes into the incident's audit trail, for the notifications this worker
            // still held (a worker that took one over records its own). A crash right here loses only
            // these entries and an early escalation; the acknowledgement timer still escalates.
            let events = outcomes.compactMap { delivery, outcome, failure -> IncidentCommand? in
                guard recorded.contains(delivery.notification.id) else { return nil }
                let n = delivery.notification
                switch outcome {
                case .delivered(let receipt):
                    return .event(n.incident, .delivered(notificationID: n.id, reference: receipt))
                case .failed(let reason, _):
                    return .event(n.incident, .deliveryFailed(notificationID: n.id, recipient: n.recipient, channel: n.channel,
                                                              reason: reason, permanent: failure != nil))
                }
            }
            if !events.isEmpty { _ = try await committer.submit(events) }
        }
    }

    /// Records the outcomes, trying a few times: once given up, the leases lapse and every one of
    /// these notifications is sent again (under the same ids), delivered ones included.
    private func record(_ outcomes: [(id: NotificationID, outcome: DeliveryOutcome)]) async throws -> Set<NotificationID> {
        var attempt = 0
        while true {
            do {
                return try await store.recordDeliveries(outcomes, owner: owner, at: clock.now())
            } catch {
                attempt += 1
                if attempt >= 3 || Task.isCancelled { throw error }
                try await clock.sleep(until: clock.now().addingTimeInterval(0.2 * Double(attempt)))
            }
        }
    }

    /// One attempt; the failure is returned when the notification failed for good.
    private func deliver(_ delivery: ClaimedDelivery) async -> (ClaimedDelivery, DeliveryOutcome, DeliveryFailure?) {
        do {
            let receipt = try await notifier.send(delivery.notification, now: { clock.now() })
            return (delivery, .delivered(receipt: receipt.reference), nil)
        } catch {
            if let delay = retry.delay(afterAttempt: delivery.attempts + 1, failure: error, random: random()) {
                return (delivery, .failed(reason: error.description, retryAt: clock.now().addingTimeInterval(delay)), nil)
            }
            return (delivery, .failed(reason: error.description, retryAt: nil), error)
        }
    }
}
