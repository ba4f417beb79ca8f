// Posts a notification as signed JSON to a contact's own URL, so that any system (a district's
// paging bridge, a radio dispatch console) can receive pages and check they came from Muster.
import Crypto
import Foundation
import MusterCore
import NIOHTTP1

/// The webhook channel: `message.address` is the receiver's URL. See docs/notifications.md ("Webhook")
/// for the body, the headers and how a receiver verifies the signature.
public struct WebhookChannel: Channel {
    private let http: HTTPDelivery
    private let secret: String
    private let now: @Sendable () -> Date

    /// `secret` signs every request (HMAC-SHA256); receivers are given the same secret.
    /// `now` is injectable for tests.
    public init(http: HTTPDelivery, secret: String, now: @escaping @Sendable () -> Date = { Date() }) {
        self.http = http
        self.secret = secret
        self.now = now
    }

    /// The payload carries the facts and links, no rendered text.
    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        guard !secret.isEmpty else { throw DeliveryFailure(.notConfigured, "the webhook signing secret is not set") }
        let sentAt = now()
        let body: [UInt8]
        do {
            body = try Self.body(for: message, sentAt: sentAt)
        } catch {
            throw DeliveryFailure(.clientError, "cannot encode the webhook body: \(error)")
        }
        let timestamp = String(Int64(sentAt.timeIntervalSince1970.rounded(.down)))
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "User-Agent", value: "Muster")
        headers.add(name: WebhookSignature.idHeader, value: message.id)
        headers.add(name: WebhookSignature.timestampHeader, value: timestamp)
        headers.add(name: WebhookSignature.signatureHeader, value: WebhookSignature.sign(body: body, timestamp: timestamp, secret: secret))
        let response = try await http.post(message.address, headers: headers, body: body)
        try response.check()
        return DeliveryReceipt(reference: message.id)
    }

    /// The JSON body: snake_case keys, sorted, slashes unescaped, nulls kept (a receiver sees every key
    /// every time).
    public static func body(for message: Message, sentAt: Date) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(WebhookBody(message: message, sentAt: sentAt)))
    }
}

/// What a webhook receiver gets. Only the facts a page may carry and the links.
struct WebhookBody: Encodable {
    let message: Message
    let sentAt: Date

    enum Keys: String, CodingKey {
        case id, incident, kind, step, task, links
        case sentAt = "sent_at"
    }
    enum IncidentKeys: String, CodingKey {
        case number, category, type, site, severity
        case siteID = "site_id"
    }
    enum LinkKeys: String, CodingKey { case incident, acknowledge }

    func encode(to encoder: any Encoder) throws {
        let facts = message.facts
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(message.id, forKey: .id)
        var incident = container.nestedContainer(keyedBy: IncidentKeys.self, forKey: .incident)
        try incident.encode(facts.number, forKey: .number)
        try incident.encode(facts.category, forKey: .category)
        try incident.encode(facts.type, forKey: .type)
        try incident.encode(facts.site, forKey: .site)
        try incident.encode(facts.siteID, forKey: .siteID)
        try incident.encode(facts.severity, forKey: .severity)
        try container.encode(facts.kind, forKey: .kind)
        // Optionals are encoded as null rather than left out, so the shape never changes.
        try container.encode(facts.step, forKey: .step)
        try container.encode(facts.task, forKey: .task)
        var links = container.nestedContainer(keyedBy: LinkKeys.self, forKey: .links)
        try links.encode(message.incidentURL, forKey: .incident)
        // Always null: a receiver's logs are shared, so a webhook never carries a link that acts as a person
        // (the key stays, so the shape never changes).
        try links.encodeNil(forKey: .acknowledge)
        try container.encode(sentAt.formatted(.iso8601), forKey: .sentAt)
    }
}

/// Muster's webhook signature: `Muster-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
/// with the Unix time in `Muster-Timestamp`, in the manner of Stripe and Standard Webhooks.
public enum WebhookSignature {
    public static let idHeader = "Muster-Notification-Id"
    public static let timestampHeader = "Muster-Timestamp"
    public static let signatureHeader = "Muster-Signature"

    /// The header value for a body sent at `timestamp` (Unix seconds, as sent in `Muster-Timestamp`).
    public static func sign(body: some DataProtocol, timestamp: String, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: signedBytes(body: body, timestamp: timestamp),
                                                  using: SymmetricKey(data: Array(secret.utf8)))
        return "v1=" + mac.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// Whether `signature` (the `Muster-Signature` header) signs `body` at `timestamp` with `secret`,
    /// and the timestamp is within `tolerance` seconds of `now` (which refuses replays of old requests).
    /// The header may hold several space- or comma-separated `v1=` values (a secret being rotated);
    /// one match is enough. Comparison is constant-time.
    public static func verify(body: some DataProtocol, timestamp: String, signature: String, secret: String,
                              now: Date = Date(), tolerance: TimeInterval = 300) -> Bool {
        guard let seconds = Int64(timestamp), abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { return false }
        let key = SymmetricKey(data: Array(secret.utf8))
        let signed = signedBytes(body: body, timestamp: timestamp)
        var matched = false
        for candidate in signature.split(whereSeparator: { $0 == " " || $0 == "," }) {
            guard candidate.hasPrefix("v1="), let mac = hexBytes(candidate.dropFirst(3)), mac.count == SHA256.byteCount else { continue }
            // Every candidate is checked, so the time taken does not say which one matched.
            if HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key) { matched = true }
        }
        return matched
    }

    static func signedBytes(body: some DataProtocol, timestamp: String) -> [UInt8] {
        Array(timestamp.utf8) + [UInt8(ascii: ".")] + Array(body)
    }

    static func hexBytes(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
