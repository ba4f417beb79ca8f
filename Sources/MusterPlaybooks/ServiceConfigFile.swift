// The service's configuration file (muster.yaml), read as strictly as playbooks: an unknown key or
// a value of the wrong kind is an error at its line and column. The command line and the
// environment override what the file says.
import Foundation
import MusterCore
import Yams

public struct ServiceConfigFile: Sendable, Hashable {
    public var host: String?
    public var port: Int?
    public var dataDir: String?
    public var databaseURL: String?
    public var playbooks: String?
    public var deliveryFile: String?
    public var integrations: [String: IntegrationMappingConfig] = [:]
    /// The base URL people and providers reach this service at (links in messages, Twilio's signatures).
    public var publicURL: String?
    /// The reverse proxies in front of the service (IP addresses): only their X-Forwarded-For is believed.
    public var trustedProxies: [String] = []
    public var channels = ChannelsConfig()
    public var audit = AuditConfig()
    /// The daily retention purge; nil when the configuration names no policy.
    public var retention: RetentionPolicy?
    public var server = ServerConfig()
    public var rateLimits = RateLimitsConfig()

    public init() {}

    /// An address as a connection shows it: IPv4 dotted decimal, or IPv6 (hex digits and colons).
    static func isIPAddress(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 { return parts.allSatisfy { UInt8($0) != nil } }
        return text.contains(":") && text.allSatisfy { $0.isHexDigit || $0 == ":" }
    }

    /// Reads the file; on errors, the diagnostics say what is wrong and where.
    public static func parse(_ text: String, file: String) -> (config: ServiceConfigFile?, diagnostics: [Diagnostic]) {
        let reader = YAMLReader(file: file)
        var config = ServiceConfigFile()
        if let root = reader.document(text),
           let fields = reader.fields(root, "the configuration", required: [],
                                      optional: ["host", "port", "data_dir", "database_url", "playbooks", "delivery_file", "integrations",
                                                 "public_url", "trusted_proxies", "channels", "audit", "retention", "server", "rate_limits"]) {
            if let node = fields["server"] { config.server = ServerConfig.parse(node, reader: reader) }
            if let node = fields["rate_limits"] { config.rateLimits = RateLimitsConfig.parse(node, reader: reader) }
            config.host = reader.string(fields["host"], "host")
            config.port = fields["port"].flatMap { reader.integer($0, "port", in: 1...65535) }
            config.dataDir = reader.string(fields["data_dir"], "data_dir")
            config.databaseURL = reader.string(fields["database_url"], "database_url")
            config.playbooks = reader.string(fields["playbooks"], "playbooks")
            config.deliveryFile = reader.string(fields["delivery_file"], "delivery_file")
            config.publicURL = reader.string(fields["public_url"], "public_url")
            if let url = config.publicURL, !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                reader.error("public_url must be an http(s) URL, not '\(url)'", at: fields["public_url"])
            }
            for item in fields.has("trusted_proxies") ? reader.list(fields["trusted_proxies"], "trusted_proxies") ?? [] : [] {
                guard let address = reader.string(item, "a trusted proxy's address") else { continue }
                // An address, as the connection shows it: IPv4 dotted or IPv6 (hex digits, colons).
                guard Self.isIPAddress(address) else {
                    reader.error("trusted_proxies: '\(address)' is not an IP address (write each proxy's address, e.g. 10.0.0.5)", at: item)
                    continue
                }
                config.trustedProxies.append(address)
            }
            if let node = fields["channels"] { config.channels = ChannelsConfig.parse(node, reader: reader) }
            if let node = fields["audit"] { config.audit = AuditConfig.parse(node, reader: reader) }
            if let node = fields["retention"] { config.retention = RetentionPolicy.parse(node, reader: reader) }
            if let node = fields["integrations"],
               let integrations = reader.fields(node, "integrations", required: [], optional: ["alertmanager", "pagerduty"]) {
                for name in ["alertmanager", "pagerduty"] {
                    guard let node = integrations[name] else { continue }
                    config.integrations[name] = IntegrationMappingConfig.parse(node, what: "integrations.\(name)", reader: reader)
                }
            }
        }
        return (reader.diagnostics.hasErrors ? nil : config, reader.diagnostics)
    }
}

/// Where an integration's events carry type, site and severity, and what their severities mean.
public struct IntegrationMappingConfig: Sendable, Hashable {
    public var typeLabels: [String]?
    public var siteLabels: [String]?
    public var severityLabels: [String]?
    public var severities: [String: Severity] = [:]
    public var defaultType: String?
    public var defaultSite: String?
    public var defaultSeverity: Severity?

    static func parse(_ node: Node, what: String, reader: YAMLReader) -> IntegrationMappingConfig? {
        guard let fields = reader.fields(node, what, required: [], optional: [
            "type_labels", "site_labels", "severity_labels", "severities", "default_type", "default_site", "default_severity",
        ]) else { return nil }
        var mapping = IntegrationMappingConfig()
        func names(_ key: String) -> [String]? {
            reader.list(fields[key], "\(what).\(key)")?.compactMap { reader.string($0, "\(what).\(key)") }
        }
        mapping.typeLabels = names("type_labels")
        mapping.siteLabels = names("site_labels")
        mapping.severityLabels = names("severity_labels")
        mapping.defaultType = reader.string(fields["default_type"], "\(what).default_type")
        mapping.defaultSite = reader.string(fields["default_site"], "\(what).default_site")
        mapping.defaultSeverity = fields["default_severity"].flatMap { reader.choice($0, "\(what).default_severity", Severity.self) }
        if let node = fields["severities"], let entries = node.mapping {
            for (key, value) in entries {
                guard let name = reader.string(key, "\(what).severities"),
                      let severity = reader.choice(value, "\(what).severities.\(name)", Severity.self) else { continue }
                mapping.severities[name.lowercased()] = severity
            }
        } else if let node = fields["severities"] {
            reader.error("\(what).severities must map the sender's severities to low, moderate, high or imminent", at: node)
        }
        return mapping
    }
}

/// The providers the channels send through (docs/configuration.md, "Channels"). Secrets may also
/// come from the environment, which wins: MUSTER_WEBHOOK_SECRET, MUSTER_SMTP_PASSWORD,
/// MUSTER_TWILIO_AUTH_TOKEN.
public struct ChannelsConfig: Sendable, Hashable {
    public struct Email: Sendable, Hashable {
        public var host: String
        public var port: Int?
        /// starttls (the default: STARTTLS that must succeed; `starttls_required` says the same), tls (implicit,
        /// port 465), and, said in so many words, starttls_if_offered or none (mail may travel in clear)
        public var tls: String?
        public var username: String?
        public var password: String?
        public var from: String
        /// Extra trusted certificates (PEM), for a relay with a private CA.
        public var caFile: String?
    }

    public struct Twilio: Sendable, Hashable {
        public var baseURL: String?
        public var accountSID: String
        public var authToken: String?
        public var from: String
    }

    /// A self-hosted (or ntfy.sh) push server: the `push` channel's provider.
    public struct Ntfy: Sendable, Hashable {
        public var url: String
        public var token: String?
        public var username: String?
        public var password: String?
    }

    /// A receiver with its own signing secrets: every webhook target whose URL starts with `url`.
    public struct WebhookReceiver: Sendable, Hashable {
        public var url: String
        /// One or more `whsec_` secrets separated by spaces (two during a rotation).
        public var secret: String
        public var location: SourceLocation
    }

    /// The default signing secrets (space-separated `whsec_` values), for receivers without their own.
    public var webhookSecret: String?
    public var webhookReceivers: [WebhookReceiver] = []
    /// Hosts webhooks may reach over http:// or at private addresses (the egress policy's exceptions).
    public var webhookAllowHosts: [String] = []
    public var email: Email?
    public var twilio: Twilio?
    public var ntfy: Ntfy?
    /// Pages on channels with no provider go to the demonstration file instead of refusing to start
    /// (audited as `demonstrated`, never as delivered): for trying Muster out, never for a district.
    public var demonstrationInbox: Bool?
    /// Sends in flight at once, per channel.
    public var limits: [String: Int] = [:]

    public init() {}

    static let tlsModes = ["starttls", "starttls_required", "tls", "starttls_if_offered", "none"]
    static let channelNames = ["sms", "voice", "email", "push", "chat", "webhook", "inbox"]

    static func parse(_ node: Node, reader: YAMLReader) -> ChannelsConfig {
        var config = ChannelsConfig()
        guard let fields = reader.fields(node, "channels", required: [],
                                         optional: ["webhook", "email", "twilio", "ntfy", "limits", "demonstration_inbox"]) else { return config }
        if fields.has("demonstration_inbox") { config.demonstrationInbox = reader.bool(fields["demonstration_inbox"], "channels.demonstration_inbox") }
        if let node = fields["ntfy"],
           let ntfy = reader.fields(node, "channels.ntfy", required: ["url"], optional: ["token", "username", "password"]),
           let url = reader.string(ntfy["url"], "channels.ntfy.url") {
            if !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
                reader.error("channels.ntfy.url must be the ntfy server's http(s) URL, not '\(url)'", at: ntfy["url"])
            }
            config.ntfy = Ntfy(url: url, token: reader.string(ntfy["token"], "channels.ntfy.token"),
                               username: reader.string(ntfy["username"], "channels.ntfy.username"),
                               password: reader.string(ntfy["password"], "channels.ntfy.password"))
        }
        if let node = fields["webhook"],
           let webhook = reader.fields(node, "channels.webhook", required: [], optional: ["secret", "receivers", "allow_hosts"]) {
            config.webhookSecret = reader.string(webhook["secret"], "channels.webhook.secret")
            if let hosts = reader.list(webhook["allow_hosts"], "channels.webhook.allow_hosts", nonEmpty: false) {
                config.webhookAllowHosts = hosts.enumerated().compactMap { reader.string($1, "channels.webhook.allow_hosts[\($0)]") }
            }
            if let entries = reader.list(webhook["receivers"], "channels.webhook.receivers", nonEmpty: false) {
                for (index, entry) in entries.enumerated() {
                    let what = "channels.webhook.receivers[\(index)]"
                    guard let receiver = reader.fields(entry, what, required: ["url", "secret"], optional: []),
                          let url = reader.string(receiver["url"], what + ".url"),
                          let secret = reader.string(receiver["secret"], what + ".secret") else { continue }
                    config.webhookReceivers.append(WebhookReceiver(url: url, secret: secret, location: reader.location(entry)))
                }
            }
        }
        if let node = fields["email"],
           let email = reader.fields(node, "channels.email", required: ["host", "from"],
                                     optional: ["port", "tls", "username", "password", "ca_file"]) {
            let tls = reader.string(email["tls"], "channels.email.tls")
            if let tls, !tlsModes.contains(tls) {
                reader.error("unknown channels.email.tls '\(tls)'" + suggestion(for: tls, among: tlsModes), at: email["tls"])
            }
            if let host = reader.string(email["host"], "channels.email.host"), let from = reader.string(email["from"], "channels.email.from") {
                config.email = Email(host: host, port: email["port"].flatMap { reader.integer($0, "channels.email.port", in: 1...65535) },
                                     tls: tls, username: reader.string(email["username"], "channels.email.username"),
                                     password: reader.string(email["password"], "channels.email.password"), from: from,
                                     caFile: reader.string(email["ca_file"], "channels.email.ca_file"))
            }
        }
        if let node = fields["twilio"],
           let twilio = reader.fields(node, "channels.twilio", required: ["account_sid", "from"], optional: ["base_url", "auth_token"]) {
            let baseURL = reader.string(twilio["base_url"], "channels.twilio.base_url")
            if let baseURL, !(baseURL.hasPrefix("https://") || baseURL.hasPrefix("http://")) {
                reader.error("channels.twilio.base_url must be an http(s) URL, not '\(baseURL)'", at: twilio["base_url"])
            }
            if let sid = reader.string(twilio["account_sid"], "channels.twilio.account_sid"),
               let from = reader.string(twilio["from"], "channels.twilio.from") {
                config.twilio = Twilio(baseURL: baseURL, accountSID: sid, authToken: reader.string(twilio["auth_token"], "channels.twilio.auth_token"),
                                       from: from)
            }
        }
        if let node = fields["limits"], let limits = reader.fields(node, "channels.limits", required: [], optional: channelNames) {
            for name in channelNames {
                guard let value = limits[name] else { continue }
                if let limit = reader.integer(value, "channels.limits.\(name)", in: 1...10_000) { config.limits[name] = limit }
            }
        }
        return config
    }
}

/// Where checkpoints are published besides the database (docs/audit.md, "Witnesses").
public struct AuditConfig: Sendable, Hashable {
    /// A C2SP tlog-witness: its submission prefix, and its cosignature verifier key when known.
    public struct Witness: Sendable, Hashable {
        public var url: String
        public var key: String?
    }

    public var witnessDirectory: String?
    public var witnesses: [Witness] = []

    public init() {}

    static func parse(_ node: Node, reader: YAMLReader) -> AuditConfig {
        var config = AuditConfig()
        guard let fields = reader.fields(node, "audit", required: [], optional: ["witness_directory", "witnesses"]) else { return config }
        config.witnessDirectory = reader.string(fields["witness_directory"], "audit.witness_directory")
        for (number, item) in (reader.list(fields["witnesses"], "audit.witnesses") ?? []).enumerated() {
            let what = "audit.witnesses[\(number)]"
            guard let witness = reader.fields(item, what, required: ["url"], optional: ["key"]),
                  let url = reader.string(witness["url"], "\(what).url") else { continue }
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                reader.error("\(what).url must be an http(s) URL (the witness's submission prefix), not '\(url)'", at: witness["url"])
                continue
            }
            config.witnesses.append(Witness(url: url, key: reader.string(witness["key"], "\(what).key")))
        }
        return config
    }
}

/// The retention policy the daily purge applies: incidents closed longer than `years` and `days` ago lose
/// their student text, each with a purge entry naming the policy (docs/audit.md, "Retention").
public struct RetentionPolicy: Sendable, Hashable {
    public var name: String
    public var years: Int
    public var days: Int

    public init(name: String, years: Int = 0, days: Int = 0) {
        self.name = name
        self.years = years
        self.days = days
    }

    /// Incidents closed before this instant are purged at `now` (calendar years, in UTC).
    public func closedBefore(now: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        return calendar.date(byAdding: DateComponents(year: -years, day: -days), to: now) ?? now
    }

    /// "7y", "90d", "2w": whole years, days or weeks.
    static func parsePeriod(_ text: String) -> (years: Int, days: Int)? {
        guard let unit = text.last, let count = Int(text.dropLast()), count > 0, count <= 100_000 else { return nil }
        switch unit {
        case "y": return count <= 100 ? (count, 0) : nil
        case "w": return (0, count * 7)
        case "d": return (0, count)
        default: return nil
        }
    }

    static func parse(_ node: Node, reader: YAMLReader) -> RetentionPolicy? {
        guard let fields = reader.fields(node, "retention", required: ["policy", "keep_closed_for"]),
              let name = reader.string(fields["policy"], "retention.policy"),
              let period = reader.string(fields["keep_closed_for"], "retention.keep_closed_for") else { return nil }
        guard !name.contains(where: \.isNewline) else {
            reader.error("retention.policy must be one line", at: fields["policy"])
            return nil
        }
        guard let (years, days) = parsePeriod(period) else {
            reader.error("retention.keep_closed_for '\(period)' is not a period: write whole years, weeks or days, like 7y, 26w or 90d",
                         at: fields["keep_closed_for"])
            return nil
        }
        return RetentionPolicy(name: name, years: years, days: days)
    }
}

/// How the HTTP server treats slow and numerous clients (docs/configuration.md, "Server"); unset values keep their defaults.
public struct ServerConfig: Sendable, Hashable {
    public var headerTimeout: TimeSpan?
    public var bodyTimeout: TimeSpan?
    public var idleTimeout: TimeSpan?
    public var maxConnections: Int?

    public init() {}

    static func parse(_ node: Node, reader: YAMLReader) -> ServerConfig {
        var config = ServerConfig()
        guard let fields = reader.fields(node, "server", required: [],
                                         optional: ["header_timeout", "body_timeout", "idle_timeout", "max_connections"]) else { return config }
        config.headerTimeout = reader.duration(fields["header_timeout"], "server.header_timeout")
        config.bodyTimeout = reader.duration(fields["body_timeout"], "server.body_timeout")
        config.idleTimeout = reader.duration(fields["idle_timeout"], "server.idle_timeout")
        config.maxConnections = fields["max_connections"].flatMap { reader.integer($0, "server.max_connections", in: 1...1_000_000) }
        return config
    }
}

/// Token-bucket limits per integration key and per person's account (docs/configuration.md); unset values keep their defaults.
public struct RateLimitsConfig: Sendable, Hashable {
    public struct Limit: Sendable, Hashable {
        public var perMinute: Int
        public var burst: Int?
    }

    public var integration: Limit?
    public var account: Limit?
    public var groupWithin: TimeSpan?

    public init() {}

    static func parse(_ node: Node, reader: YAMLReader) -> RateLimitsConfig {
        var config = RateLimitsConfig()
        guard let fields = reader.fields(node, "rate_limits", required: [], optional: ["integration", "account", "group_within"]) else { return config }
        func limit(_ name: String) -> Limit? {
            guard let node = fields[name],
                  let limit = reader.fields(node, "rate_limits.\(name)", required: ["per_minute"], optional: ["burst"]),
                  let perMinute = limit["per_minute"].flatMap({ reader.integer($0, "rate_limits.\(name).per_minute", in: 1...1_000_000) }) else { return nil }
            return Limit(perMinute: perMinute, burst: limit["burst"].flatMap { reader.integer($0, "rate_limits.\(name).burst", in: 1...1_000_000) })
        }
        config.integration = limit("integration")
        config.account = limit("account")
        config.groupWithin = reader.duration(fields["group_within"], "rate_limits.group_within")
        return config
    }
}
