// The email channel: the rendered subject, text and HTML go to `message.address` through the
// configured relay, and SMTP's outcomes become delivery failures the notifier knows how to retry.
import Foundation
import MusterCore
import NIOCore
import NIOPosix

public struct EmailChannel: Channel {
    public let settings: SMTPSettings
    /// Made once; bad TLS settings (an unreadable CA file) are kept and reported by every delivery,
    /// and by `configurationProblem` for a start-up check.
    private let client: Result<SMTPClient, SMTPError>
    private let now: @Sendable () -> Date

    /// `now` dates the messages; injectable for tests.
    public init(settings: SMTPSettings, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.settings = settings
        self.client = Result { () throws(SMTPError) in try SMTPClient(settings: settings, eventLoopGroup: eventLoopGroup) }
        self.now = now
    }

    /// Why this channel cannot send anything, if it cannot.
    public var configurationProblem: String? {
        if case .failure(let error) = client { return error.description }
        return nil
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [.subject, .text, .html] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        let client: SMTPClient
        switch self.client {
        case .success(let made): client = made
        case .failure(let error): throw DeliveryFailure(.notConfigured, "SMTP: \(error)")
        }
        guard SMTPClient.isTransmittable(address: message.address) else {
            throw DeliveryFailure(.badAddress, "not an email address that can be sent to: \(SMTPClient.printable(message.address))")
        }
        let mime = mimeMessage(for: message)
        do {
            try await client.send(from: settings.fromAddress, to: [message.address], message: mime.bytes)
        } catch {
            throw Self.failure(for: error, host: settings.host)
        }
        return DeliveryReceipt(reference: mime.messageID)
    }

    /// A one-time sign-in link for the web pages, through the same relay.
    public func sendSignInLink(to address: String, name: String, link: String) async throws {
        let client = try self.client.get()
        guard SMTPClient.isTransmittable(address: address) else { throw DeliveryFailure(.badAddress, "not an email address that can be sent to") }
        let text = "Hello \(name),\n\nSign in to Muster with this link. It works once, for a few minutes:\n\(link)\n\nIf you did not ask for it, ignore this email.\n"
        let html = "<p>Hello \(Self.escapeHTML(name)),</p><p><a href=\"\(Self.escapeHTML(link))\">Sign in to Muster</a>. "
            + "The link works once, for a few minutes.</p><p>If you did not ask for it, ignore this email.</p>"
        let mime = MIMEMessage(fromAddress: settings.fromAddress, fromName: settings.fromName, to: address, subject: "Your Muster sign-in link",
                               text: text, html: html, notificationID: "sign-in-" + UUID().uuidString.lowercased(),
                               messageIDDomain: settings.messageIDDomain, date: now())
        try await client.send(from: settings.fromAddress, to: [address], message: mime.bytes)
    }

    private static func escapeHTML(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    func mimeMessage(for message: Message) -> MIMEMessage {
        MIMEMessage(fromAddress: settings.fromAddress, fromName: settings.fromName, to: message.address,
                    subject: message.subject, text: message.text, html: message.html,
                    notificationID: message.id, messageIDDomain: settings.messageIDDomain, date: now())
    }

    /// What an SMTP outcome means for the notifier: 4xx and lost connections may pass, so they are
    /// retried; a recipient the server does not know is a bad address; other refusals are final.
    public static func failure(for error: SMTPError, host: String) -> DeliveryFailure {
        let detail = "SMTP \(host), \(error)"
        switch error.kind {
        case .unreachable:
            return DeliveryFailure(.unreachable, detail)
        case .timeout:
            return DeliveryFailure(.timeout, detail)
        case .tls:
            return DeliveryFailure(.unreachable, detail.contains("TLS") ? detail : "TLS: \(detail)")
        case .rejected(let reply) where reply.isTransientFailure:
            return DeliveryFailure(.serverError, detail, code: "SMTP \(reply.code)")
        case .rejected(let reply) where error.step == .rcptTo && [550, 551, 553].contains(reply.code):
            return DeliveryFailure(.badAddress, detail, code: "SMTP \(reply.code)")
        case .rejected(let reply):
            // 535 (authentication failed) lands here too: the credentials need fixing, not a retry.
            return DeliveryFailure(.clientError, detail, code: "SMTP \(reply.code)")
        case .connectionLost, .protocolViolation:
            return DeliveryFailure(.serverError, detail)
        case .refused:
            return DeliveryFailure(error.step == .rcptTo ? .badAddress : .clientError, detail)
        }
    }
}
