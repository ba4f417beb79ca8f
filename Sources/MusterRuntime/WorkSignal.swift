// Wakes a worker when new work is queued in this process (other instances' work arrives through
// PostgreSQL LISTEN/NOTIFY, or the worker's polling). A notification that comes while nobody waits
// is kept for the next wait.
import Foundation

public final class WorkSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var pending = false
    private var nextID = 0
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    /// Waits whose deadline or cancellation came before they began waiting: they end at once.
    private var expired: Set<Int> = []

    public init() {}

    public func notify() {
        let woken = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            if waiters.isEmpty {
                pending = true
                return []
            }
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Waits for a notification, or until the clock reaches `deadline`, whichever comes first
    /// (or until the task is cancelled).
    func wait(until deadline: Date, clock: any MusterClock) async {
        let id = lock.withLock { () -> Int in
            nextID += 1
            return nextID
        }
        var timer: Task<Void, Never>?
        defer {
            timer?.cancel()
            lock.withLock { _ = expired.remove(id) }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = lock.withLock { () -> Bool in
                    if expired.remove(id) != nil || Task.isCancelled { return true }
                    if pending {
                        pending = false
                        return true
                    }
                    waiters[id] = continuation
                    return false
                }
                if ready {
                    continuation.resume()
                } else {
                    // Started only once the waiter is registered, so the deadline cannot be missed.
                    timer = Task {
                        try? await clock.sleep(until: deadline)
                        self.wake(id)
                    }
                }
            }
        } onCancel: {
            self.wake(id)
        }
    }

    /// Resumes one waiter (its deadline passed, or its task was cancelled); if it has not begun
    /// waiting yet, it will not wait at all.
    private func wake(_ id: Int) {
        let waiter = lock.withLock { () -> CheckedContinuation<Void, Never>? in
            if let waiter = waiters.removeValue(forKey: id) { return waiter }
            expired.insert(id)
            return nil
        }
        waiter?.resume()
    }
}
