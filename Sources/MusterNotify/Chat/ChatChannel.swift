// The chat channel: one contact address, Slack or Microsoft Teams according to how it is written.
import Foundation
import MusterCore

/// How a chat contact's address names its provider: `slack+https://…` and `teams+https://…` say so
/// explicitly (the prefix is removed before posting); a plain `https://hooks.slack.com/…` URL is Slack;
/// any other plain URL is a Teams Workflows webhook.
public enum ChatAddress: Sendable, Hashable {
    case slack(url: String)
    case teams(url: String)

    public init(_ address: String) {
        let trimmed = address.trimmingCharacters(in: .whitespaces)
        let lowered = trimmed.lowercased()
        if lowered.hasPrefix("slack+") {
            self = .slack(url: String(trimmed.dropFirst("slack+".count)))
        } else if lowered.hasPrefix("teams+") {
            self = .teams(url: String(trimmed.dropFirst("teams+".count)))
        } else if let host = URLComponents(string: trimmed)?.host?.lowercased(), Self.slackHosts.contains(host) {
            self = .slack(url: trimmed)
        } else {
            self = .teams(url: trimmed)
        }
    }

    /// Slack's incoming-webhook hosts (commercial and GovSlack).
    static let slackHosts: Set<String> = ["hooks.slack.com", "hooks.slack-gov.com"]

    public var url: String {
        switch self {
        case .slack(let url), .teams(let url): url
        }
    }

    /// The URL without a provider prefix.
    static func strip(_ address: String) -> String { ChatAddress(address).url }
}

/// The chat channel: sends each message to Slack or Teams according to its address (see `ChatAddress`).
public struct ChatChannel: Channel {
    public let slack: SlackChannel
    public let teams: TeamsChannel

    public init(slack: SlackChannel, teams: TeamsChannel) {
        self.slack = slack
        self.teams = teams
    }

    public init(http: HTTPDelivery) {
        self.init(slack: SlackChannel(http: http), teams: TeamsChannel(http: http))
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [.subject, .text] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        switch ChatAddress(message.address) {
        case .slack(let url): try await slack.deliver(message, to: url)
        case .teams(let url): try await teams.deliver(message, to: url)
        }
    }
}
