// Wakes a worker when new work is queued in this process (other instances' work arrives through
// PostgreSQL LISTEN/NOTIFY, or the worker's polling).
import Foundation

public final class WorkSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func notify() { continuation.yield() }

    /// Waits for a notification, or until the clock reaches `deadline`, whichever comes first.
    func wait(until deadline: Date, clock: any MusterClock) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [stream] in
                var iterator = stream.makeAsyncIterator()
                _ = await iterator.next()
            }
            group.addTask { try? await clock.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }
}
