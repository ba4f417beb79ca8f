// Sends queued notifications: claims them from the outbox, delivers each through the notifier's
// stages, records every attempt in the outbox and in the audit trail, retries retryable failures
// with back-off (pages for as long as they matter), and tells the engine when a page failed for
// good, so the person's next contact point is tried and escalation never waits on a page that will
// not arrive.
//
// Each channel is a lane of its own: a claim takes only notifications whose lane has room, and each
// send is recorded as soon as it ends, so a mail relay that never answers holds up no SMS. Every
// send ends well before its claim's lease, so no other instance sends it again meanwhile.
import Foundation
import Logging
import MusterCore
import MusterNotify
import MusterStore
import Synchronization

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
    /// Long enough for a send and its record, short enough that a dead instance's pages go out soon.
    var lease: TimeInterval = 15
    /// From the claim to the send's answer (its wait for a slot in its lane included): past it the send
    /// is abandoned as timed out, leaving the lease's last seconds to record it.
    var sendDeadline: TimeInterval = 10
    var pollInterval: TimeInterval = 1

    public func run() async {
        let lanes = Lanes(limit: { notifier.limiter.limit(of: $0) })
        await withDiscardingTaskGroup { group in
            await WorkerLoop.run("delivery worker", clock: clock, logger: logger) {
                let now = clock.now()
                let room = lanes.room
                let claimed = room.total > 0
                    ? try await store.claimDeliveries(now: now, limit: room.total, owner: owner, lease: lease, skipping: room.full)
                    : []
                if claimed.isEmpty {
                    // A send that ends frees its lane and wakes this loop.
                    await signal.wait(until: now.addingTimeInterval(pollInterval), clock: clock)
                    return
                }
                for delivery in claimed {
                    lanes.enter(delivery.notification.channel)
                    group.addTask {
                        await self.handle(delivery, claimedAt: now)
                        lanes.leave(delivery.notification.channel)
                        signal.notify()
                    }
                }
            }
        }
    }

    /// One claimed notification, from its send to its record.
    private func handle(_ delivery: ClaimedDelivery, claimedAt: Date) async {
        let notification = delivery.notification
        let outcome = await deliver(delivery, by: claimedAt.addingTimeInterval(sendDeadline))
        if case .deferred(let until, let why) = outcome {
            // Nothing was sent: no attempt is spent and nothing is audited.
            do {
                try await store.deferDeliveries([notification.id: until], owner: owner)
            } catch {
                logger.warning("a deferred notification was not handed back; its lease lapses", metadata: ["notification": "\(notification.id)", "error": "\(error)"])
            }
            logger.debug("delivery deferred", metadata: ["notification": "\(notification.id)", "until": "\(until)", "why": "\(why)"])
            observer.deliveryAttempted(notification.channel, "deferred")
            return
        }
        guard case .attempted(let attempt) = outcome else { return }
        // Each attempt commits as one fact: the outbox row, the attempt's row, its audit entry and the
        // engine's reaction (the next contact point, the next step) together. A worker whose lease lapsed
        // records nothing over the worker that took the notification over (`.notHeld`).
        let result: Result<Committed, StoreError>
        do {
            result = try await record(.deliveryAttempt(DeliveryRecord(notification: notification, owner: owner, outcome: attempt)))
        } catch {
            // Not recorded: the lease lapses and the notification is sent again under the same id.
            logger.warning("a delivery attempt was not recorded", metadata: ["notification": "\(notification.id)", "error": "\(error)"])
            return
        }
        switch result {
        case .failure(.notHeld), .failure(.unavailable):
            return
        case .failure(let error):
            logger.warning("delivery recorded, but the engine refused it", metadata: ["notification": "\(notification.id)", "error": "\(error)"])
        case .success:
            break
        }
        let name = switch attempt {
        case .delivered: "delivered"
        case .accepted: "accepted"
        case .demonstrated: "demonstrated"
        case .failed(_, _, let retryAt): retryAt == nil ? "failed" : "retry"
        }
        observer.deliveryAttempted(notification.channel, name)
    }

    /// Commits an attempt, trying again a few times while the database does not take it: once given up,
    /// its lease lapses and it is sent again (under the same id), a delivered one included.
    private func record(_ attempt: IncidentCommand) async throws -> Result<Committed, StoreError> {
        var result: Result<Committed, StoreError> = .failure(.unavailable("not recorded"))
        for round in 1...3 {
            do {
                result = try await committer.submit(attempt)
                if case .failure(.unavailable) = result {} else { return result }
            } catch {
                if round == 3 || Task.isCancelled { throw error }
            }
            if round == 3 || Task.isCancelled { break }
            try await clock.sleep(until: clock.now().addingTimeInterval(0.2 * Double(round)))
        }
        return result
    }

    private enum SendOutcome {
        case attempted(DeliveryOutcome)
        /// Not sent, and no attempt spent: try again at `until`.
        case deferred(until: Date, why: String)
    }

    /// One attempt, bounded by `deadline`; a failure without a retry time failed for good.
    private func deliver(_ delivery: ClaimedDelivery, by deadline: Date) async -> SendOutcome {
        let notification = delivery.notification
        do {
            let receipt = try await Deadline.run(after: { [clock] in try? await clock.sleep(until: deadline) },
                                                 timedOut: { SendTimedOut() }) { [notifier, clock] in
                try await notifier.send(notification, now: { clock.now() })
            }
            if receipt.demonstration { return .attempted(.demonstrated) }
            return .attempted(receipt.awaitsStatus ? .accepted(receipt: receipt.reference) : .delivered(receipt: receipt.reference))
        } catch let failure as DeliveryFailure {
            if let until = failure.deferredUntil {
                // When the provider takes messages again, the most urgent come due first (a claim only
                // orders what is due), and the rest spread out a little rather than arrive at once.
                let urgency = Double(130_000 - min(max(notification.deliveryPriority, 0), 130_000)) / 40_000
                return .deferred(until: until.addingTimeInterval(urgency + random() * 0.25), why: failure.description)
            }
            return .attempted(failed(delivery, failure))
        } catch {
            // A worker stopping (shutdown) cuts the wait short: that is no answer from the provider, so no
            // attempt is spent; the page goes again at once, from this instance or another.
            if Task.isCancelled || clock.now() < deadline {
                return .deferred(until: clock.now(), why: "the worker stopped before the provider answered")
            }
            let timeout = DeliveryFailure(.timeout, "no answer within \(Int(sendDeadline)) s of the claim; abandoned before its lease ran out")
            return .attempted(failed(delivery, timeout))
        }
    }

    private func failed(_ delivery: ClaimedDelivery, _ failure: DeliveryFailure) -> DeliveryOutcome {
        // A page is tried for as long as it matters: acknowledging or closing the incident cancels it.
        let kind = delivery.notification.kind
        let untilCancelled = kind == .page || kind == .fallback
        if let delay = retry.delay(afterAttempt: delivery.attempts + 1, failure: failure, untilCancelled: untilCancelled, random: random()) {
            return .failed(reason: failure.summary, detail: failure.description, retryAt: clock.now().addingTimeInterval(delay))
        }
        return .failed(reason: failure.summary, detail: failure.description, retryAt: nil)
    }

    private struct SendTimedOut: Error {}
}

/// Sends in flight per channel, against each channel's limit: a full lane is skipped by the claim.
final class Lanes: Sendable {
    private let limit: @Sendable (ChannelKind) -> Int
    private let inFlight = Mutex([ChannelKind: Int]())

    init(limit: @escaping @Sendable (ChannelKind) -> Int) {
        self.limit = limit
    }

    /// How many more sends one claim may take (the most any one lane has room for, so a claim of one
    /// channel only does not overfill it), and the channels that have no room.
    var room: (total: Int, full: Set<ChannelKind>) {
        inFlight.withLock { inFlight in
            var most = 0
            var full = Set<ChannelKind>()
            for channel in ChannelKind.allCases {
                let free = limit(channel) - inFlight[channel, default: 0]
                if free > 0 { most = max(most, free) } else { full.insert(channel) }
            }
            return (most, full)
        }
    }

    func enter(_ channel: ChannelKind) { inFlight.withLock { $0[channel, default: 0] += 1 } }
    func leave(_ channel: ChannelKind) { inFlight.withLock { $0[channel, default: 0] -= 1 } }
}
