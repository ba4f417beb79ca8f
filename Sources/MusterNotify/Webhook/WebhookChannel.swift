// Posts a notification as signed JSON to a contact's own URL, so that any system (a district's
// paging bridge, a radio dispatch console) can receive pages and check they came from Muster.
import Crypto
import Foundation
import MusterCore
import NIOHTTP1

/// The webhook channel: `message.address` is the receiver's URL. Each request is signed as Standard
/// Webhooks specifies (docs/notifications.md, "Webhook"), with the receiver's own secrets, and goes
/// only where the egress policy allows.
public struct WebhookChannel: Channel {
    private let http: HTTPDelivery
    private let signing: WebhookSigning
    private let egress: EgressPolicy
    private let now: @Sendable () -> Date

    /// `now` is injectable for tests.
    public init(http: HTTPDelivery, signing: WebhookSigning, egress: EgressPolicy = EgressPolicy(),
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.http = http
        self.signing = signing
        self.egress = egress
        self.now = now
    }

    /// The payload carries the facts and links, no rendered text.
    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        let secrets = signing.secrets(for: message.address)
        guard !secrets.isEmpty else {
            throw DeliveryFailure(.notConfigured, "no webhook signing secret is configured for \(HTTPDelivery.redactedURL(message.address))")
        }
        try await egress.check(message.address)
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
        headers.add(name: WebhookSignature.signatureHeader,
                    value: WebhookSignature.sign(id: message.id, timestamp: timestamp, body: body, secrets: secrets))
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
        case number, category, type, site, severity, drill
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
        try incident.encode(facts.drill, forKey: .drill)
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

/// A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes (the key is the bytes).
public struct WebhookSecret: Sendable, Hashable {
    public let key: [UInt8]

    /// The secret, or why the text is not one.
    public static func parse(_ text: String) -> Result<WebhookSecret, WebhookSecretError> {
        guard text.hasPrefix("whsec_") else {
            return .failure(WebhookSecretError(description: "a webhook secret starts with whsec_ (Standard Webhooks); "
                                               + "make one with: echo whsec_$(openssl rand -base64 32)"))
        }
        guard let bytes = Data(base64Encoded: String(text.dropFirst(6))) else {
            return .failure(WebhookSecretError(description: "the part after whsec_ is not base64"))
        }
        guard (24...64).contains(bytes.count) else {
            return .failure(WebhookSecretError(description: "the secret holds \(bytes.count) bytes; Standard Webhooks asks for 24 to 64"))
        }
        return .success(WebhookSecret(key: Array(bytes)))
    }

    /// The secrets in `text`, separated by spaces (during a rotation: the new one and the old one).
    public static func parseList(_ text: String) -> Result<[WebhookSecret], WebhookSecretError> {
        var secrets: [WebhookSecret] = []
        for part in text.split(whereSeparator: \.isWhitespace) {
            switch parse(String(part)) {
            case .success(let secret): secrets.append(secret)
            case .failure(let error): return .failure(error)
            }
        }
        return secrets.isEmpty ? .failure(WebhookSecretError(description: "no secret given")) : .success(secrets)
    }

    public init(key: [UInt8]) {
        self.key = key
    }
}

public struct WebhookSecretError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Which secrets sign a request: a receiver's own (the longest configured URL prefix of its address),
/// else the default. Each listed secret adds a signature, so during a rotation both verify.
public struct WebhookSigning: Sendable {
    public var defaultSecrets: [WebhookSecret]
    public var receivers: [(url: String, secrets: [WebhookSecret])]

    public init(defaultSecrets: [WebhookSecret] = [], receivers: [(url: String, secrets: [WebhookSecret])] = []) {
        self.defaultSecrets = defaultSecrets
        self.receivers = receivers
    }

    public var isEmpty: Bool { defaultSecrets.isEmpty && receivers.isEmpty }

    public func secrets(for address: String) -> [WebhookSecret] {
        receivers.filter { address.hasPrefix($0.url) }.max { $0.url.count < $1.url.count }?.secrets ?? defaultSecrets
    }
}

/// Standard Webhooks' signature (standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256>` over
/// `webhook-id + "." + webhook-timestamp + "." + body`, keyed by the secret's bytes; several
/// signatures are separated by spaces.
public enum WebhookSignature {
    public static let idHeader = "webhook-id"
    public static let timestampHeader = "webhook-timestamp"
    public static let signatureHeader = "webhook-signature"

    /// The header value: one `v1,` signature per secret.
    public static func sign(id: String, timestamp: String, body: some DataProtocol, secrets: [WebhookSecret]) -> String {
        let signed = signedBytes(id: id, timestamp: timestamp, body: body)
        return secrets.map { secret in
            "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: secret.key))).base64EncodedString()
        }.joined(separator: " ")
    }

    /// Whether one of the header's `v1,` signatures signs the request with `secret`, and the timestamp is
    /// within `tolerance` seconds of `now` (which refuses replays). Comparison is constant-time.
    public static func verify(id: String, timestamp: String, body: some DataProtocol, signature: String, secret: WebhookSecret,
                              now: Date = Date(), tolerance: TimeInterval = 300) -> Bool {
        guard let seconds = Int64(timestamp), abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { return false }
        let key = SymmetricKey(data: secret.key)
        let signed = signedBytes(id: id, timestamp: timestamp, body: body)
        var matched = false
        for candidate in signature.split(separator: " ") {
            guard candidate.hasPrefix("v1,"), let mac = Data(base64Encoded: String(candidate.dropFirst(3))), mac.count == SHA256.byteCount else {
                continue
            }
            // Every candidate is checked, so the time taken does not say which one matched.
            if HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: key) { matched = true }
        }
        return matched
    }

    static func signedBytes(id: String, timestamp: String, body: some DataProtocol) -> [UInt8] {
        Array(id.utf8) + [UInt8(ascii: ".")] + Array(timestamp.utf8) + [UInt8(ascii: ".")] + Array(body)
    }
}
