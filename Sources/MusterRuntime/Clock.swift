// Time is injected: the runtime asks its clock for the time and to sleep, never the wall directly.
import Foundation

public protocol MusterClock: Sendable {
    func now() -> Date
    /// Sleeps until `deadline` (returns at once if it has passed); throws when the task is cancelled.
    func sleep(until deadline: Date) async throws
}

public struct SystemClock: MusterClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until deadline: Date) async throws {
        let seconds = deadline.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .seconds(seconds)) }
    }
}

/// A clock that moves only when told to: tests advance it, and sleepers wake when their deadline
/// passes (or when their task is cancelled, as a real sleep would).
public final class ManualClock: MusterClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    private var nextID = 0
    private var sleepers: [Int: (deadline: Date, continuation: CheckedContinuation<Void, Never>)] = [:]

    public init(_ start: Date) { current = start }

    public func now() -> Date {
        lock.withLock { current }
    }

    public func sleep(until deadline: Date) async throws {
        let id = lock.withLock { () -> Int in
            nextID += 1
            return nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = lock.withLock { () -> Bool in
                    if deadline <= current || Task.isCancelled { return true }
                    sleepers[id] = (deadline, continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            lock.withLock { sleepers.removeValue(forKey: id) }?.continuation.resume()
        }
        try Task.checkCancellation()
    }

    public func advance(by seconds: TimeInterval) {
        let woken = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            current = current.addingTimeInterval(seconds)
            let due = sleepers.filter { $0.value.deadline <= current }
            for id in due.keys { sleepers.removeValue(forKey: id) }
            return due.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// The deadlines tasks are sleeping until (a test waits for a worker to be idle before moving time).
    public func deadlines() -> [Date] {
        lock.withLock { sleepers.values.map(\.deadline) }
    }

    /// Wakes every sleeper (used when a test ends, so no task waits forever).
    public func wakeAll() {
        let woken = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            defer { sleepers.removeAll() }
            return sleepers.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }
}

/// The wall clock run `speed` times faster from the moment it is made (`muster serve --demo-speed`):
/// a 5-minute acknowledgement window passes in 5 seconds at 60, so a newcomer sees escalation
/// happen. One instance only: two scaled clocks started apart would disagree.
public struct ScaledClock: MusterClock {
    public let speed: Double
    private let start: Date

    public init(speed: Double, start: Date = Date()) {
        self.speed = speed
        self.start = start
    }

    public func now() -> Date {
        start.addingTimeInterval(Date().timeIntervalSince(start) * speed)
    }

    public func sleep(until deadline: Date) async throws {
        let seconds = wallSeconds(until: deadline)
        if seconds > 0 { try await Task.sleep(for: .seconds(seconds)) }
    }

    /// How long on the wall until this clock shows `deadline`.
    public func wallSeconds(until deadline: Date) -> TimeInterval {
        deadline.timeIntervalSince(now()) / speed
    }
}
