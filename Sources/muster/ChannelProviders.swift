// Which channels `muster serve` gives a provider, decided from the configuration alone (no
// connection is opened and no key is created), for the coverage check. It follows ChannelFactory.make:
// a change there that adds or conditions a channel belongs here too.
import Foundation
import MusterCore
import MusterPlaybooks

enum ChannelProviders {
    /// Chat always (a contact's address is its incoming-webhook URL); webhook with a signing secret;
    /// email with an SMTP relay; SMS and voice with a Twilio account and its auth token; push with an
    /// ntfy server. Inbox has none.
    static func configured(_ channels: ChannelsConfig, settings: Settings) -> Set<ChannelKind> {
        var kinds: Set<ChannelKind> = [.chat]
        if settings.string(.webhookSecret) != nil || !channels.webhookReceivers.isEmpty { kinds.insert(.webhook) }
        if channels.email != nil { kinds.insert(.email) }
        // Without the token `serve` refuses to start; here SMS and voice simply count as unprovided.
        if channels.twilio != nil, settings.string(.twilioAuthToken) != nil { kinds.formUnion([.sms, .voice]) }
        if channels.ntfy != nil { kinds.insert(.push) }
        return kinds
    }

    /// "chat, email, sms and voice", in the channels' own order.
    static func describe(_ kinds: Set<ChannelKind>) -> String {
        let names = ChannelKind.allCases.filter(kinds.contains).map(\.rawValue)
        guard names.count > 1 else { return names.first ?? "none" }
        return names.dropLast().joined(separator: ", ") + " and " + (names.last ?? "")
    }
}
