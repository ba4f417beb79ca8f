// The rate-limit stage: at most N sends in flight per channel, so a burst of pages cannot open
// thousands of SMTP connections or exceed a provider's concurrency; the rest wait their turn in order.
import Foundation
import MusterCore
import Synchronization

public final class ChannelLimiter: Sendable {
    private struct Gate {
        var inFlight = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let limits: [ChannelKind: Int]
    private let defaultLimit: Int
    private let gates = Mutex([ChannelKind: Gate]())

    public init(limits: [ChannelKind: Int] = [:], defaultLimit: Int = 16) {
        self.limits = limits.mapValues { max(1, $0) }
        self.defaultLimit = max(1, defaultLimit)
    }

    public func limit(of channel: ChannelKind) -> Int { limits[channel] ?? defaultLimit }

    /// Runs `body` once a slot on `channel` is free.
    public func run<T: Sendable, E: Error>(on channel: ChannelKind, _ body: () async throws(E) -> T) async throws(E) -> T {
        await acquire(channel)
        defer { release(channel) }
        return try await body()
    }

    private func acquire(_ channel: ChannelKind) async {
        let limit = limit(of: channel)
        let admitted = gates.withLock { gates -> Bool in
            if gates[channel, default: Gate()].inFlight < limit {
                gates[channel, default: Gate()].inFlight += 1
                return true
            }
            return false
        }
        if admitted { return }
        await withCheckedContinuation { continuation in
            let admittedNow = gates.withLock { gates -> Bool in
                // A slot may have freed between the two locks.
                if gates[channel, default: Gate()].inFlight < limit {
                    gates[channel, default: Gate()].inFlight += 1
                    return true
                }
                gates[channel, default: Gate()].waiting.append(continuation)
                return false
            }
            if admittedNow { continuation.resume() }
        }
    }

    private func release(_ channel: ChannelKind) {
        let next = gates.withLock { gates -> CheckedContinuation<Void, Never>? in
            guard var gate = gates[channel] else { return nil }
            defer { gates[channel] = gate }
            if gate.waiting.isEmpty {
                gate.inFlight -= 1
                return nil
            }
            // The slot passes straight to the next waiter: in-flight stays the same.
            return gate.waiting.removeFirst()
        }
        next?.resume()
    }

    /// Sends in flight and waiting on a channel (for metrics and tests).
    public func load(_ channel: ChannelKind) -> (inFlight: Int, waiting: Int) {
        gates.withLock { ($0[channel]?.inFlight ?? 0, $0[channel]?.waiting.count ?? 0) }
    }
}
