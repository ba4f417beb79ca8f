// A channel that appends each notification to a file as one JSON line: for running the whole loop
// with no provider, and for tests that check what was sent. It carries what SMS would: never a
// student's name or the description.
import Foundation
import MusterCore

public final class FileChannel: Channel {
    private let path: String
    private let lock = NSLock()
    /// The service's demonstration inbox (its receipts say nobody was reached); tests that read the
    /// file as a stand-in for a provider leave it off.
    private let demonstration: Bool

    public init(path: String, demonstration: Bool = false) {
        self.path = path
        self.demonstration = demonstration
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [.sms] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        let notification = message.notification
        let line: [String: String] = [
            "id": notification.id.description,
            "incident": notification.incident.rawValue,
            "number": String(notification.incidentNumber),
            "type": notification.type.rawValue,
            "severity": notification.severity.rawValue,
            "site": notification.site.rawValue,
            "recipient": notification.recipient.description,
            "channel": notification.channel.rawValue,
            "address": notification.address,
            "kind": notification.kind.rawValue,
            "text": message.sms,
            "ack_url": message.ackURL ?? "",
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(line) else { throw DeliveryFailure(.clientError, "cannot encode the notification") }
        do {
            try append(data + Data("\n".utf8))
        } catch {
            throw DeliveryFailure(.unreachable, "cannot append to \(path): \(error)")
        }
        return DeliveryReceipt(reference: notification.id.description, demonstration: demonstration)
    }

    private func append(_ data: Data) throws {
        lock.lock()
        defer { lock.unlock() }
        // O_APPEND makes each line one write at the end, even with several processes appending.
        // Owner only: the lines carry live acknowledgement links. A file made readable before is closed up too.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_mode & 0o077 != 0 {
            guard fchmod(fd, 0o600) == 0 else { throw CocoaError(.fileWriteNoPermission) }
        }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw CocoaError(.fileWriteUnknown) }
    }
}
