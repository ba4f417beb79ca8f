// A bound on how long a database call may take. PostgresNIO's pool waits for a connection as long
// as it takes; a caller reporting a crisis must instead hear "unavailable, retry" within seconds.
import Foundation
import MusterCore

public enum Deadline {
    /// Runs `operation`; if it has not finished after `seconds`, throws `StoreError.unavailable`.
    /// The operation is then cancelled but not waited for: a commit that still lands is one the
    /// caller's idempotency key recognises when it retries.
    static func run<T: Sendable>(_ seconds: TimeInterval, what: String,
                                 _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await run(after: { try? await Task.sleep(for: .seconds(seconds)) },
                      timedOut: { StoreError.unavailable("\(what) did not finish within \(Int(seconds)) s") }, operation)
    }

    /// Runs `operation` until `wait` returns (a sleep on an injected clock), then throws `timedOut()`;
    /// the operation is cancelled but not waited for, so one that ignores cancellation cannot hold
    /// its caller.
    public static func run<T: Sendable>(after wait: @escaping @Sendable () async -> Void, timedOut: @escaping @Sendable () -> any Error,
                                        _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = Race()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                if race.win() {
                    race.cancelTimer()
                    continuation.resume(with: result)
                }
            }
            race.setTimer(Task {
                await wait()
                guard !Task.isCancelled, race.win() else { return }
                work.cancel()
                continuation.resume(throwing: timedOut())
            })
        }
    }

    /// Who finishes first, under a lock.
    private final class Race: @unchecked Sendable {
        private let lock = NSLock()
        private var won = false
        private var timer: Task<Void, Never>?

        func win() -> Bool {
            lock.withLock {
                defer { won = true }
                return !won
            }
        }

        func setTimer(_ task: Task<Void, Never>) {
            let finished = lock.withLock { () -> Bool in
                timer = task
                return won
            }
            if finished { task.cancel() }
        }

        func cancelTimer() { lock.withLock { timer }?.cancel() }
    }
}
