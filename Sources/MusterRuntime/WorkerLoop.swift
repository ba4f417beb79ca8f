// The loop every worker runs: one iteration after another until the task is cancelled; when an
// iteration fails (the database is away), wait with a growing back-off and try again.
import Foundation
import Logging

enum WorkerLoop {
    static func run(_ name: String, clock: any MusterClock, logger: Logger, _ iteration: () async throws -> Void) async {
        var backoff: TimeInterval = 0.1
        while !Task.isCancelled {
            do {
                try await iteration()
                backoff = 0.1
            } catch {
                if Task.isCancelled { return }
                logger.error("\(name): \(error); retrying in \(backoff)s")
                try? await clock.sleep(until: clock.now().addingTimeInterval(backoff))
                backoff = min(backoff * 2, 2)
            }
        }
    }
}
