// The one place where configuration becomes channels (as Alertmanager's receiver config does):
// each configured provider becomes a channel, and all of them run behind the notifier's stages. A
// channel with no provider gets nothing: a directory that uses it is refused at start and at reload,
// unless the demonstration inbox is switched on, which writes such pages to a file (audited as
// demonstrated, never as delivered). Secrets from the environment win over the file.
import AsyncHTTPClient
import ArgumentParser
import Foundation
import MusterCore
import MusterHTTP
import MusterNotify
import MusterPlaybooks
import MusterRuntime

struct ChannelSetup {
    var notifier: Notifier
    var acknowledgement: AcknowledgementSettings
    /// One line for the start-up banner: which channels go where.
    var summary: String
    /// The channels that reach people through a provider.
    var providers: Set<ChannelKind>
    /// Whether pages on other channels go to the demonstration file (else a directory using them is refused).
    var demonstrationInbox: Bool
    /// Where one-time sign-in links for the web pages go: the mail relay, else the demonstration inbox.
    var signInMail: (any SignInMailer)?

    /// Who signs webhooks for which receiver, and where webhooks may go.
    var webhookSigning = WebhookSigning()
    var webhookEgress = EgressPolicy()

    /// Refuses a playbook set whose directory has contact points no provider serves, unless the
    /// demonstration inbox takes them, and webhook targets the egress policy or the signing secrets
    /// refuse: the errors, each at its contact point.
    func unservedContacts(_ loaded: LoadResult) -> [Diagnostic] {
        let unserved = demonstrationInbox ? [] : loaded.contactsWithoutProvider(providers)
        guard providers.contains(.webhook) else { return unserved }
        return unserved + loaded.contacts.filter { $0.contact.channel == .webhook }.compactMap { source in
            if let problem = webhookEgress.problem(with: source.contact.address) {
                return Diagnostic(.error, source.location, "\(source.owner)'s webhook contact point: \(problem)")
            }
            guard webhookSigning.secrets(for: source.contact.address).isEmpty else { return nil }
            return Diagnostic(.error, source.location, "\(source.owner)'s webhook contact point has no signing secret: set channels.webhook.secret "
                              + "(MUSTER_WEBHOOK_SECRET) or list its URL under channels.webhook.receivers")
        }
    }

    /// Refuses to start on a directory with contact points no provider serves (each printed at its place).
    func requireProviders(_ loaded: LoadResult, folder: String) throws {
        let errors = unservedContacts(loaded)
        guard !errors.isEmpty else { return }
        for error in errors { printError(error.description) }
        let channels = Set(errors.filter { $0.message.contains("has no provider") }.compactMap { error in
            ChannelKind.allCases.first { error.message.contains("'s \($0.rawValue) contact point") }
        })
        guard !channels.isEmpty else {
            throw ValidationError("\(errors.count) webhook contact point\(errors.count == 1 ? "" : "s") in \(folder) cannot be used (see above): "
                                  + "webhook targets must be https:// to public addresses unless channels.webhook.allow_hosts names them, "
                                  + "and each needs a signing secret")
        }
        throw ValidationError("\(errors.count) contact point\(errors.count == 1 ? "" : "s") in \(folder) \(errors.count == 1 ? "has" : "have") no provider "
                              + "(\(ChannelKind.allCases.filter(channels.contains).map(\.rawValue).joined(separator: ", "))): configure them, "
                              + "or switch on the demonstration inbox (--demonstration-inbox, or channels.demonstration_inbox: true) to try Muster out")
    }
}

enum ChannelFactory {
    static func make(_ config: ChannelsConfig, publicURL: String, dataDir: String, deliveryFile: String, names: DirectoryNames,
                     http: HTTPClient, settings: Settings) throws -> ChannelSetup {
        let links = AckLinkSigner(secret: try linkKey(dataDir: dataDir, settings: settings))
        let delivery = HTTPDelivery(client: http)
        var channels: [ChannelKind: any Channel] = [:]
        var configured: [String] = []

        let signing = try webhookSigning(config, settings: settings)
        let egress = EgressPolicy(allowedHosts: Set(config.webhookAllowHosts))
        if !signing.isEmpty {
            channels[.webhook] = WebhookChannel(http: delivery, signing: signing, egress: egress)
            configured.append("webhook")
        }
        // Slack and Teams need no account: a contact's address is the incoming-webhook URL.
        channels[.chat] = ChatChannel(http: delivery)
        if let email = config.email {
            let security: SMTPSettings.Security = switch email.tls ?? "starttls" {
            case "none": .none
            case "starttls_if_offered": .startTLSIfOffered
            case "tls": .implicitTLS
            default: .startTLSRequired
            }
            if security.allowsPlainText {
                printError("muster: warning: channels.email.tls is \(email.tls ?? ""): mail to \(email.host) may travel in clear text, "
                           + "and whoever reads it can acknowledge with its links; use starttls (the default) or tls")
            }
            let password = settings.string(.smtpPassword)
            let settings = SMTPSettings(host: email.host, port: email.port ?? (security == .implicitTLS ? 465 : 587), security: security,
                                        username: email.username, password: password, fromAddress: email.from,
                                        additionalTrustRoots: email.caFile.map { [.pemFile($0)] } ?? [])
            let email = EmailChannel(settings: settings)
            if let problem = email.configurationProblem { throw ValidationError("channels.email: \(problem)") }
            channels[.email] = email
            configured.append("email via \(settings.host)")
        }
        var twilioAuthToken: String?
        if let twilio = config.twilio {
            guard let token = settings.string(.twilioAuthToken) else {
                throw ValidationError("channels.twilio needs an auth token: set MUSTER_TWILIO_AUTH_TOKEN or channels.twilio.auth_token")
            }
            twilioAuthToken = token
            if !publicURL.lowercased().hasPrefix("https://") {
                // Twilio signs each webhook over the URL it called: behind a proxy with an http public_url,
                // every reply, key press and delivery report would fail its signature check.
                printError("muster: warning: channels.twilio is configured but public_url is \(publicURL): Twilio calls and signs "
                           + "the public https:// address, so replies, key presses and delivery reports would be refused; "
                           + "set public_url (MUSTER_PUBLIC_URL) to it")
            }
            let settings = TwilioSettings(baseURL: twilio.baseURL ?? "https://api.twilio.com", accountSID: twilio.accountSID,
                                          authToken: token, from: twilio.from)
            // Twilio reports each SMS's delivery and each call's end here: only that counts as delivered.
            let status: TwilioCallbackURL = { message in TwilioVoiceChannel.statusCallbackURL(publicBase: publicURL, notificationID: message.id) }
            channels[.sms] = TwilioSMSChannel(http: delivery, settings: settings, statusCallback: status)
            channels[.voice] = TwilioVoiceChannel(http: delivery, settings: settings, gatherAction: { message in
                // The call's key press acknowledges with the same signed token as the message's link.
                TwilioVoiceChannel.callbackURL(publicBase: publicURL, notificationID: message.id,
                                               token: message.ackURL.map { String($0.split(separator: "/").last ?? "") } ?? "")
            }, statusCallback: status)
            configured.append("sms and voice via \(settings.baseURL)")
        }
        if let ntfy = config.ntfy {
            let ntfySettings = NtfySettings(serverURL: ntfy.url, token: settings.string(.ntfyToken), username: ntfy.username,
                                            password: settings.string(.ntfyPassword))
            if let problem = ntfySettings.configurationProblem { throw ValidationError("channels.ntfy: \(problem)") }
            channels[.push] = NtfyChannel(http: delivery, settings: ntfySettings)
            configured.append("push via \(HTTPDelivery.redactedURL(ntfy.url))")
        }
        let renderer = try MessageRenderer(publicURL: publicURL, links: links, names: { names.current })
        var limits: [ChannelKind: Int] = [:]
        for (name, limit) in config.limits { if let kind = ChannelKind(rawValue: name) { limits[kind] = limit } }
        let demonstration = settings.value(.demonstrationInbox) == "true"
        if demonstration, !configured.isEmpty {
            // A configuration with real providers is a production one: a page on a channel it lacks
            // would be shown in a demonstration page instead of reaching anyone.
            throw ValidationError("the demonstration inbox cannot be switched on beside real providers (\(configured.joined(separator: ", "))): "
                                  + "give every channel the directory uses a provider and switch the demonstration inbox off")
        }
        let inbox = demonstration ? FileChannel(path: deliveryFile, demonstration: true) : nil
        let router = ChannelRouter(channels, fallback: inbox)
        let notifier = Notifier(renderer: renderer, channel: router, limiter: ChannelLimiter(limits: limits))
        let others = ChannelKind.allCases.filter { channels[$0] == nil }.map(\.rawValue)
        let summary = (configured + ["chat (Slack, Teams)"]).joined(separator: ", ")
            + (others.isEmpty ? "" : demonstration ? "; \(others.joined(separator: ", ")) to the demonstration inbox \(deliveryFile) (nobody is reached)"
                                                   : "; no provider for \(others.joined(separator: ", "))")
        return ChannelSetup(notifier: notifier,
                            acknowledgement: AcknowledgementSettings(links: links, publicURL: publicURL, twilioAuthToken: twilioAuthToken),
                            summary: summary, providers: Set(channels.keys), demonstrationInbox: demonstration,
                            signInMail: (channels[.email] as? EmailChannel) ?? inbox, webhookSigning: signing, webhookEgress: egress)
    }

    /// The default secrets (MUSTER_WEBHOOK_SECRET or channels.webhook.secret) and each receiver's own,
    /// all Standard Webhooks `whsec_` secrets.
    static func webhookSigning(_ config: ChannelsConfig, settings: Settings) throws -> WebhookSigning {
        var signing = WebhookSigning()
        if let text = settings.string(.webhookSecret) {
            switch WebhookSecret.parseList(text) {
            case .success(let secrets): signing.defaultSecrets = secrets
            case .failure(let error): throw ValidationError("the webhook secret (MUSTER_WEBHOOK_SECRET or channels.webhook.secret): \(error)")
            }
        }
        for (index, receiver) in config.webhookReceivers.enumerated() {
            switch WebhookSecret.parseList(receiver.secret) {
            case .success(let secrets): signing.receivers.append((receiver.url, secrets))
            case .failure(let error):
                throw ValidationError(Diagnostic(.error, receiver.location, "channels.webhook.receivers[\(index)].secret: \(error)").description)
            }
        }
        return signing
    }

    /// `MUSTER_LINK_KEY` (32 bytes or more, base64), else DATA_DIR/link.key, created on first use.
    /// Every instance behind one public URL must share it.
    static func linkKey(dataDir: String, settings: Settings) throws -> Data {
        let text: String
        if let given = settings.string(.linkKey) {
            text = given
        } else {
            text = try AuditKeys.readOrCreate((dataDir as NSString).appendingPathComponent("link.key"),
                                              what: "the key that signs acknowledgement links", variable: "MUSTER_LINK_KEY") {
                var bytes = [UInt8](repeating: 0, count: 32)
                var generator = SystemRandomNumberGenerator()
                for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max, using: &generator) }
                return Data(bytes).base64EncodedString()
            }
        }
        guard let key = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), key.count >= 32 else {
            throw ValidationError("the acknowledgement link key must be at least 32 bytes in base64")
        }
        return key
    }
}
