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

    /// The demonstration inbox shows what each channel would have carried; a test's file needs the SMS text only.
    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { demonstration ? [.sms, .speech, .subject, .text] : [.sms] }

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
            "text": demonstration ? Self.carried(by: notification.channel, message) : message.sms,
            "ack_url": message.ackURL ?? "",
            "incident_url": message.incidentURL,
        ]
        do {
            try append(line)
        } catch {
            throw DeliveryFailure(.unreachable, "cannot append to \(path): \(error)")
        }
        return DeliveryReceipt(reference: notification.id.description, demonstration: demonstration)
    }

    /// What the channel itself would have carried: an SMS's text, a call's words, an email's subject and text.
    static func carried(by channel: ChannelKind, _ message: Message) -> String {
        switch channel {
        case .sms: message.sms
        case .voice: message.speech
        default: message.subject + "\n\n" + message.text
        }
    }

    /// A one-time sign-in link "sent" to a person's email, for the inbox page.
    public func appendSignInLink(person: String, address: String, link: String) throws {
        try append(["kind": "sign_in", "recipient": "person:" + person, "channel": "email", "address": address,
                    "text": "Muster sign-in link. It works once, for a few minutes. If you did not ask for it, ignore this email.",
                    "sign_in_url": link])
    }

    private func append(_ line: [String: String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try append(try encoder.encode(line) + Data("\n".utf8))
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
