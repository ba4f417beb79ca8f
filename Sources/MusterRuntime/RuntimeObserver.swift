// What the runtime tells the outside as it works (metrics): commits, fired timers, delivery outcomes.
import Foundation
import MusterCore
import MusterStore

public struct RuntimeObserver: Sendable {
    /// After each group commit, with the commands and their results.
    public var committed: @Sendable ([IncidentCommand], [Result<Committed, StoreError>]) -> Void
    /// A timer fired this many seconds after it fell due.
    public var timerFired: @Sendable (_ lateness: Double) -> Void
    /// One delivery attempt: "delivered", "retry" or "failed".
    public var deliveryAttempted: @Sendable (_ channel: ChannelKind, _ outcome: String) -> Void
    /// The sequencer signed a checkpoint covering this many more entries, the oldest committed `latency` seconds before.
    public var checkpointed: @Sendable (_ entries: Int, _ latency: Double) -> Void

    public init(committed: @escaping @Sendable ([IncidentCommand], [Result<Committed, StoreError>]) -> Void = { _, _ in },
                timerFired: @escaping @Sendable (Double) -> Void = { _ in },
                deliveryAttempted: @escaping @Sendable (ChannelKind, String) -> Void = { _, _ in },
                checkpointed: @escaping @Sendable (Int, Double) -> Void = { _, _ in }) {
        self.committed = committed
        self.timerFired = timerFired
        self.deliveryAttempted = deliveryAttempted
        self.checkpointed = checkpointed
    }
}
