// The de-duplication stage: remembers the ids this instance delivered recently, so a notification
// claimed again after its outcome could not be recorded (the database was briefly away, a lease
// lapsed) is not sent a second time. Across instances and crashes the stable id, which travels with
// every message, lets the receiver recognise a re-send.
import Foundation
import MusterCore
import Synchronization

public final class DeliveredLog: Sendable {
    private struct State {
        var receipts: [NotificationID: DeliveryReceipt] = [:]
        var order: [NotificationID] = []
        var head = 0
    }

    private let state = Mutex(State())
    private let capacity: Int

    public init(capacity: Int = 100_000) {
        self.capacity = max(1, capacity)
    }

    /// The receipt of an earlier delivery of this notification, if this instance made one.
    public func receipt(for id: NotificationID) -> DeliveryReceipt? {
        state.withLock { $0.receipts[id] }
    }

    public func record(_ id: NotificationID, _ receipt: DeliveryReceipt) {
        state.withLock { state in
            guard state.receipts.updateValue(receipt, forKey: id) == nil else { return }
            // A ring of the newest ids: the oldest is forgotten first.
            if state.order.count < capacity {
                state.order.append(id)
            } else {
                state.receipts.removeValue(forKey: state.order[state.head])
                state.order[state.head] = id
                state.head = (state.head + 1) % capacity
            }
        }
    }
}
