// Posts a notification to a Microsoft Teams channel through a Workflows webhook ("When a Teams
// webhook request is received"), as one Adaptive Card: the retired Office 365 connectors took
// MessageCards, Workflows takes a message whose attachment is an Adaptive Card.
import Foundation
import MusterCore
import NIOHTTP1

/// Teams Workflows webhooks: `POST` `{"type": "message", "attachments": [{"contentType":
/// "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <AdaptiveCard 1.4>}]}`;
/// the flow answers 202 Accepted (it runs asynchronously, so 2xx means accepted, not yet posted).
public struct TeamsChannel: Channel {
    private let http: HTTPDelivery

    public init(http: HTTPDelivery) {
        self.http = http
    }

    /// Delivers to `message.address`, the Workflows URL (a `teams+` prefix is removed first).
    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        try await deliver(message, to: ChatAddress.strip(message.address))
    }

    public func deliver(_ message: Message, to url: String) async throws(DeliveryFailure) -> DeliveryReceipt {
        try await http.postChat(Self.payload(for: message), to: url, what: "Teams card")
    }

    /// The message with one Adaptive Card: a title, the four facts, a subtle line with the
    /// notification id, and buttons that open the acknowledgement page and the incident.
    public static func payload(for message: Message) -> ChatJSON {
        let facts = message.facts
        var context = "Muster · \(facts.kind)"
        if let step = facts.step { context += " · step \(step)" }
        if let task = facts.task { context += " · task \(task)" }
        context += " · \(message.id)"

        // A channel is shared: the incident's page (sign-in required), never a personal acknowledgement link.
        var actions: [ChatJSON] = []
        actions.append(.object(["type": "Action.OpenUrl", "title": "Open incident", "url": .string(message.incidentURL)]))

        let card: ChatJSON = .object([
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": .array([
                .object(["type": "TextBlock", "text": .string(message.subject), "weight": "Bolder", "size": "Medium", "wrap": true]),
                .object(["type": "FactSet", "facts": .array([
                    fact("Incident", "#\(facts.number)"),
                    fact("Category", facts.category),
                    fact("Site", facts.site),
                    fact("Severity", facts.severity),
                ])]),
                .object(["type": "TextBlock", "text": .string(context), "isSubtle": true, "size": "Small", "wrap": true]),
            ]),
            "actions": .array(actions),
        ])
        return .object([
            "type": "message",
            "attachments": .array([
                .object(["contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": nil, "content": card]),
            ]),
        ])
    }

    static func fact(_ title: String, _ value: String) -> ChatJSON {
        .object(["title": .string(title), "value": .string(value)])
    }
}
