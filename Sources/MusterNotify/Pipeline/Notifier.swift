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
        let receipt = try await limiter.run(on: notification.channel) { () async throws(DeliveryFailure) -> DeliveryReceipt in
            if let until = breakers.admit(provider, now: now()) {
                throw DeliveryFailure(.unreachable, "\(provider) is failing; circuit open until \(ZoneRules.utc.iso8601(until))")
            }
            do throws(DeliveryFailure) {
                let receipt = try await channel.deliver(message)
                breakers.record(provider, succeeded: true, countsAgainst: false, now: now())
                return receipt
            } catch {
                breakers.record(provider, succeeded: false, countsAgainst: error.retryable, now: now())
                throw error
            }
        }
        delivered.record(notification.id, receipt)
        return receipt
    }

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
