// The notification pipeline the delivery worker calls, as Alertmanager composes its stages:
// render → de-duplicate → rate-limit (per channel) → circuit breaker (per provider) → send.
// Retrying is the delivery worker's: a retry is a row in the outbox with a due time, so it
// survives a crash; every attempt and outcome is written to the audit trail there.
import Foundation
import MusterCore

public struct Notifier: Sendable {
    public let renderer: MessageRenderer
    public let channel: any Channel
    public let delivered: DeliveredLog
    public let limiter: ChannelLimiter
    public let breakers: CircuitBreakers

    public init(renderer: MessageRenderer, channel: any Channel, delivered: DeliveredLog = DeliveredLog(),
                limiter: ChannelLimiter = ChannelLimiter(), breakers: CircuitBreakers = CircuitBreakers()) {
        self.renderer = renderer
        self.channel = channel
        self.delivered = delivered
        self.limiter = limiter
        self.breakers = breakers
    }

    /// One attempt to deliver `notification`.
    public func send(_ notification: QueuedNotification, now: @Sendable () -> Date) async throws(DeliveryFailure) -> DeliveryReceipt {
        if let receipt = delivered.receipt(for: notification.id) { return receipt }
        let message = renderer.render(notification, now: now(), forms: channel.forms(for: notification))
        let provider = Self.provider(of: notification)
        // Before the channel's queue: a message its provider will not take now does not wait for a slot.
        if let until = breakers.admit(provider, now: now()) {
            throw DeliveryFailure(.unreachable, "\(provider) is failing or asked to wait; not sent before \(ZoneRules.utc.iso8601(until))",
                                  deferredUntil: until)
        }
        let receipt = try await limiter.run(on: notification.channel) { () async throws(DeliveryFailure) -> DeliveryReceipt in
            do throws(DeliveryFailure) {
                let receipt = try await channel.deliver(message)
                breakers.record(provider, succeeded: true, countsAgainst: false, now: now())
                return receipt
            } catch {
                if let retryAfter = error.retryAfter {
                    // The provider's own word: every send to it waits, and none of them counts as failed.
                    let at = now()
                    let until = min(max(retryAfter.instant(from: at), at.addingTimeInterval(1)), at.addingTimeInterval(Self.longestWait))
                    breakers.hold(provider, until: until)
                    var deferred = error
                    deferred.deferredUntil = until
                    throw deferred
                }
                breakers.record(provider, succeeded: false, countsAgainst: error.retryable, now: now())
                throw error
            }
        }
        delivered.record(notification.id, receipt)
        return receipt
    }

    /// The longest a provider's Retry-After is waited (a crisis page is not held for an hour on a provider's say).
    public static let longestWait: TimeInterval = 900

    /// Who carries a notification: one provider per channel kind, or per host for URL channels,
    /// so one broken webhook receiver does not stop the others.
    public static func provider(of notification: QueuedNotification) -> String {
        switch notification.channel {
        case .webhook, .chat, .push:
            // A chat address may name its kind first ("slack+https://…").
            var address = Substring(notification.address)
            if let plus = address.firstIndex(of: "+"), address[..<plus].allSatisfy(\.isLetter),
               address[address.index(after: plus)...].hasPrefix("http") {
                address = address[address.index(after: plus)...]
            }
            return "\(notification.channel.rawValue):" + (URLComponents(string: String(address))?.host ?? String(address))
        default:
            return notification.channel.rawValue
        }
    }
}
