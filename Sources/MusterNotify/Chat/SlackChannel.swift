// Posts a notification to a Slack channel through an incoming webhook, as Block Kit blocks with a
// plain-text fallback, within Slack's documented Block Kit limits.
import Foundation
import MusterCore
import NIOHTTP1

/// Slack incoming webhooks: `POST` JSON `{"text", "blocks"}` to the hook URL; Slack answers 200 `ok`,
/// or 400 `invalid_payload`, 403 `action_prohibited`, 404 `no_service`/`channel_not_found`,
/// 410 `channel_is_archived`, 429, 5xx (all classified by `DeliveryFailure(httpStatus:)`).
public struct SlackChannel: Channel {
    private let http: HTTPDelivery

    public init(http: HTTPDelivery) {
        self.http = http
    }

    /// Delivers to `message.address`, the hook URL (a `slack+` prefix is removed first).
    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        try await deliver(message, to: ChatAddress.strip(message.address))
    }

    /// Delivers to an explicit hook URL (the chat router has already removed any prefix).
    public func deliver(_ message: Message, to url: String) async throws(DeliveryFailure) -> DeliveryReceipt {
        try await http.postChat(Self.payload(for: message), to: url, what: "Slack message")
    }

    // Block Kit limits (docs.slack.dev/reference/block-kit): header text 150 characters (plain_text),
    // section text 3000, section fields 10 items of 2000, context elements 10, button text 75,
    // button url 3000, action_id 255.
    static let headerLimit = 150
    static let sectionLimit = 3000
    static let fieldLimit = 2000
    static let buttonTextLimit = 75
    static let urlLimit = 3000

    /// The Slack message: a fallback `text` (what notifications and screen readers show) and blocks:
    /// header, the four facts as fields, a context line with the notification id, and link buttons.
    public static func payload(for message: Message) -> ChatJSON {
        let facts = message.facts
        let fields: [ChatJSON] = [
            ("Incident", "#\(facts.number)"),
            ("Category", facts.category),
            ("Site", facts.site),
            ("Severity", facts.severity),
        ].map { label, value in
            mrkdwn(truncated("*\(label)*\n\(escaped(value))", fieldLimit))
        }
        var context = "Muster · \(escaped(facts.kind))"
        if let step = facts.step { context += " · step \(step)" }
        if let task = facts.task { context += " · task \(escaped(task))" }
        context += " · `\(escaped(message.id))`"

        // A channel is shared: it links to the incident's page (sign-in required), never to a personal
        // acknowledgement link that would let anyone reading it act as the person paged.
        var buttons: [ChatJSON] = []
        if message.incidentURL.count <= urlLimit {
            buttons.append(button("Open incident", url: message.incidentURL, actionID: "muster_open_incident", primary: false))
        }

        var blocks: [ChatJSON] = [
            .object(["type": "header", "text": .object(["type": "plain_text", "text": .string(truncated(message.subject, headerLimit)), "emoji": false])]),
            .object(["type": "section", "fields": .array(fields)]),
            .object(["type": "context", "elements": .array([mrkdwn(truncated(context, sectionLimit))])]),
        ]
        if !buttons.isEmpty { blocks.append(.object(["type": "actions", "elements": .array(buttons)])) }
        return .object(["text": .string(truncated(fallback(message), sectionLimit)), "blocks": .array(blocks)])
    }

    /// The fallback text; it carries the links so that a client that shows no blocks still offers them.
    static func fallback(_ message: Message) -> String {
        var text = message.text.isEmpty ? message.subject : message.text
        if !text.contains(message.incidentURL) { text += "\n\(message.incidentURL)" }
        return text
    }

    static func mrkdwn(_ text: String) -> ChatJSON {
        .object(["type": "mrkdwn", "text": .string(text)])
    }

    static func button(_ title: String, url: String, actionID: String, primary: Bool) -> ChatJSON {
        var button: [String: ChatJSON] = [
            "type": "button",
            "text": .object(["type": "plain_text", "text": .string(truncated(title, buttonTextLimit))]),
            "url": .string(url),
            "action_id": .string(actionID),
        ]
        if primary { button["style"] = "primary" }
        return .object(button)
    }

    /// Slack's mrkdwn needs only `&`, `<` and `>` escaped; facts come from playbooks and the directory.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    /// At most `limit` characters, with an ellipsis when cut (Slack rejects the whole message otherwise).
    static func truncated(_ text: String, _ limit: Int) -> String {
        ChatJSON.truncated(text, limit)
    }
}
