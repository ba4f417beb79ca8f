// Push notifications through ntfy (self-hostable; docs.ntfy.sh/publish): one JSON publish per page
// to the server's root URL, with a title, a priority that matches the incident's, a click URL to the
// incident and an "Acknowledge" view button for the person's own link. Like SMS, it carries the
// incident's number, category, site and severity, never a student's name or the description.
import Foundation
import MusterCore
import NIOHTTP1

public struct NtfySettings: Sendable, Hashable {
    /// The server, e.g. `https://push.riverbend.example` (a topic URL's scheme, host and port).
    public var serverURL: String
    /// An access token (`tk_…`), sent as `Authorization: Bearer`; or a user and password (Basic).
    public var token: String?
    public var username: String?
    public var password: String?

    public init(serverURL: String, token: String? = nil, username: String? = nil, password: String? = nil) {
        self.serverURL = serverURL
        self.token = token
        self.username = username
        self.password = password
    }

    /// Why these settings cannot work, or nil.
    public var configurationProblem: String? {
        guard let url = URLComponents(string: serverURL), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()),
              let host = url.host, !host.isEmpty else {
            return "the ntfy server must be an http(s) URL, not '\(serverURL)'"
        }
        if token != nil, username != nil { return "give an access token or a user and password, not both" }
        if (username == nil) != (password == nil) { return "a user needs a password (and a password a user)" }
        return nil
    }
}

/// `POST {server}/` with `{"topic", "title", "message", "priority", "tags", "click", "actions"}`; ntfy
/// answers 200 with the message's JSON (`id` becomes the receipt), or a JSON error with `code` and
/// `error` (40x: the topic or credentials are wrong; 429: too many requests; 5xx).
public struct NtfyChannel: Channel {
    private let http: HTTPDelivery
    private let settings: NtfySettings

    public init(http: HTTPDelivery, settings: NtfySettings) {
        self.http = http
        self.settings = settings
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [.subject] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        let topic = try Self.topic(of: message.address, server: settings.serverURL)
        let body: [UInt8]
        do {
            body = try ChatJSON.encode(Self.payload(for: message, topic: topic))
        } catch {
            throw DeliveryFailure(.clientError, "cannot encode the push message: \(error)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "User-Agent", value: "Muster")
        if let token = settings.token {
            headers.add(name: "Authorization", value: "Bearer \(token)")
        } else if let username = settings.username, let password = settings.password {
            headers.add(name: "Authorization", value: "Basic " + Data("\(username):\(password)".utf8).base64EncodedString())
        }
        let root = settings.serverURL.hasSuffix("/") ? settings.serverURL : settings.serverURL + "/"
        let response = try await http.post(root, headers: headers, body: body)
        if let error = try? JSONDecoder().decode(PublishError.self, from: Data(response.body)), let code = error.code,
           var failure = DeliveryFailure(httpStatus: response.status, headers: response.headers) {
            failure.detail = "ntfy \(code) (HTTP \(response.status.code)): \(error.error ?? "")"
            throw failure
        }
        try response.check()
        return DeliveryReceipt(reference: (try? JSONDecoder().decode(Published.self, from: Data(response.body)))?.id)
    }

    /// A push address is a topic on the configured server: its bare name, or its URL there. A topic
    /// URL on another server is refused, so the server's credentials never go elsewhere.
    static func topic(of address: String, server: String) throws(DeliveryFailure) -> String {
        guard address.contains("/") else { return try valid(address) }
        guard let url = URLComponents(string: address), let serverURL = URLComponents(string: server),
              url.host?.lowercased() == serverURL.host?.lowercased(), url.port == serverURL.port,
              url.scheme?.lowercased() == serverURL.scheme?.lowercased() else {
            throw DeliveryFailure(.badAddress, "the push address \(HTTPDelivery.redactedURL(address)) is not a topic on the configured ntfy server")
        }
        let prefix = serverURL.path.hasSuffix("/") ? serverURL.path : serverURL.path + "/"
        guard url.path.hasPrefix(prefix) else {
            throw DeliveryFailure(.badAddress, "the push address is not a topic on the configured ntfy server")
        }
        return try valid(String(url.path.dropFirst(prefix.count)))
    }

    /// ntfy topics are 1 to 64 of letters, digits, `_` and `-`.
    private static func valid(_ topic: String) throws(DeliveryFailure) -> String {
        guard (1...64).contains(topic.count), topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw DeliveryFailure(.badAddress, "'\(topic.prefix(80))' is not an ntfy topic (1 to 64 letters, digits, _ or -)")
        }
        return topic
    }

    /// ntfy's priorities run from 1 (min) to 5 (max, which breaks through do-not-disturb on Android):
    /// a page for an imminent or high incident is max, other pages high, anything else the default.
    static func priority(for message: Message) -> Int {
        let kind = message.notification.kind
        guard kind == .page || kind == .fallback else { return 3 }
        return message.notification.severity >= .high ? 5 : 4
    }

    /// The facts, and what the buttons do (an SMS's "Reply ACK" means nothing on a push).
    static func body(of message: Message) -> String {
        let facts = message.facts
        if message.notification.kind == .test { return "Muster test page: crisis pages reach you on this device. No action needed." }
        var text = facts.drill ? "DRILL. " : ""
        text += facts.task.map { "Task overdue (\($0)). " } ?? ""
        text += "\(facts.category), \(facts.severity), \(facts.site)."
        if let step = facts.step { text += " Step \(step)." }
        text += message.ackURL == nil ? " Tap to open the incident." : " Tap Acknowledge to take it, or tap to open the incident."
        return text
    }

    static func payload(for message: Message, topic: String) -> ChatJSON {
        var members: [String: ChatJSON] = [
            "topic": .string(topic),
            "title": .string(message.subject),
            "message": .string(body(of: message)),
            "priority": .int(priority(for: message)),
            "tags": .array([[.taskOverdue, .taskReminder].contains(message.notification.kind) ? "hourglass" : "rotating_light"]),
            "click": .string(message.incidentURL),
        ]
        if let ack = message.ackURL {
            members["actions"] = .array([.object(["action": "view", "label": "Acknowledge", "url": .string(ack), "clear": true])])
        }
        return .object(members)
    }

    private struct Published: Decodable { var id: String? }
    private struct PublishError: Decodable {
        var code: Int?
        var error: String?
    }
}
