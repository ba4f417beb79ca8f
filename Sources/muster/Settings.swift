// Every setting of the service in one place: its key (which names its environment variable), its
// command-line option and configuration-file key where it has them, its default and what it is for.
// They are read through swift-configuration's ConfigReader, as Hummingbird's own template reads its
// settings: the command line, then the environment, then the configuration file, then the defaults.
// The structured parts of the file (channels, witnesses, retention, integrations) are read from it directly.
import Configuration
import Foundation
import MusterPlaybooks

struct Setting: Sendable, Hashable {
    /// Dotted, under `muster`: `data.dir` is the key `muster.data.dir` and the variable MUSTER_DATA_DIR.
    let key: String
    /// `--host`, where the command has the option.
    let option: String?
    /// The key in muster.yaml, where the file may set it.
    let fileKey: String?
    /// The value when no source sets it; nil for settings whose default is derived or absent.
    let defaultValue: String?
    /// The default, as `serve --help` shows it.
    let defaultText: String
    let help: String
    /// Keys, tokens and passwords: never shown in access logs.
    let isSecret: Bool

    init(key: String, option: String?, fileKey: String?, defaultValue: String? = nil, defaultText: String? = nil, help: String,
         isSecret: Bool = false) {
        self.key = key
        self.option = option
        self.fileKey = fileKey
        self.defaultValue = defaultValue
        self.defaultText = defaultText ?? defaultValue ?? "none"
        self.help = help
        self.isSecret = isSecret
    }

    var configKey: ConfigKey { ConfigKey(["muster"] + key.split(separator: ".").map(String.init)) }

    /// MUSTER_ and the key in upper case, dots as underscores (swift-configuration's environment encoding).
    var environmentVariable: String { "MUSTER_" + key.uppercased().replacingOccurrences(of: ".", with: "_") }
}

extension Setting {
    static let configFile = Setting(key: "config", option: "--config", fileKey: nil, defaultText: "./muster.yaml when it exists",
                                    help: "the configuration file (docs/configuration.md)")
    static let host = Setting(key: "host", option: "--host", fileKey: "host", defaultValue: "127.0.0.1", help: "the address to listen on")
    static let port = Setting(key: "port", option: "--port", fileKey: "port", defaultValue: "8080", help: "the port to listen on")
    static let dataDir = Setting(key: "data.dir", option: "--data-dir", fileKey: "data_dir", defaultValue: ".muster",
                                 help: "the SQLite database, the delivery file and the keys of the embedded default")
    static let databaseURL = Setting(key: "database.url", option: nil, fileKey: "database_url", defaultText: "SQLite in the data directory",
                                     help: "PostgreSQL, as a libpq URL (PG* variables fill what it leaves out)", isSecret: true)
    static let playbooks = Setting(key: "playbooks", option: "--playbooks", fileKey: "playbooks", defaultValue: "playbooks",
                                   help: "the playbook folder, with directory.yaml")
    static let deliveryFile = Setting(key: "delivery.file", option: "--delivery-file", fileKey: "delivery_file",
                                      defaultText: "DATA_DIR/deliveries.jsonl", help: "where the demonstration channel appends notifications")
    static let publicURL = Setting(key: "public.url", option: "--public-url", fileKey: "public_url", defaultText: "http://HOST:PORT",
                                   help: "the base URL people and providers reach the service at (links; Twilio signs it)")
    static let logLevel = Setting(key: "log.level", option: nil, fileKey: nil, defaultValue: "info", help: "trace, debug, info, notice, warning, error")
    static let bootstrapAdminToken = Setting(key: "bootstrap.admin.token", option: nil, fileKey: nil, defaultText: "a new token, printed once",
                                             help: "on an empty database, the first admin's API token", isSecret: true)
    static let masterKey = Setting(key: "master.key", option: nil, fileKey: nil, defaultText: "DATA_DIR/master.key",
                                   help: "wraps every incident's data key (32 bytes, base64)", isSecret: true)
    static let auditSigningKey = Setting(key: "audit.signing.key", option: nil, fileKey: nil, defaultText: "DATA_DIR/audit-signing.key",
                                         help: "signs the audit log's checkpoints (PRIVATE+KEY+...)", isSecret: true)
    static let auditLogOrigin = Setting(key: "audit.log.origin", option: nil, fileKey: nil, defaultValue: "muster.local/audit-log",
                                        help: "the log's origin, when a new signing key is made")
    static let auditWitnessDir = Setting(key: "audit.witness.dir", option: nil, fileKey: "audit.witness_directory",
                                         defaultText: "DATA_DIR/checkpoints", help: "copies of every checkpoint outside the database")
    static let linkKey = Setting(key: "link.key", option: nil, fileKey: nil, defaultText: "DATA_DIR/link.key",
                                 help: "signs acknowledgement links (base64, 32 bytes or more)", isSecret: true)
    static let webhookSecret = Setting(key: "webhook.secret", option: nil, fileKey: "channels.webhook.secret", defaultText: "none",
                                       help: "signs webhook notifications (Standard Webhooks)", isSecret: true)
    static let smtpPassword = Setting(key: "smtp.password", option: nil, fileKey: "channels.email.password", defaultText: "none",
                                      help: "the mail relay's password", isSecret: true)
    static let twilioAuthToken = Setting(key: "twilio.auth.token", option: nil, fileKey: "channels.twilio.auth_token", defaultText: "none",
                                         help: "the SMS and voice provider's auth token", isSecret: true)

    static let ntfyToken = Setting(key: "ntfy.token", option: nil, fileKey: "channels.ntfy.token", defaultText: "none",
                                   help: "the push server's access token (ntfy, tk_…)", isSecret: true)
    static let ntfyPassword = Setting(key: "ntfy.password", option: nil, fileKey: "channels.ntfy.password", defaultText: "none",
                                      help: "the push server's password, with channels.ntfy.username", isSecret: true)
    static let demonstrationInbox = Setting(key: "demonstration.inbox", option: "--demonstration-inbox", fileKey: "channels.demonstration_inbox",
                                            defaultValue: "false",
                                            help: "write pages on channels with no provider to the demonstration file (nobody is reached) instead of refusing to start")
    static let demoSpeed = Setting(key: "demo.speed", option: "--demo-speed", fileKey: nil, defaultValue: "1",
                                   help: "run every timer this many times faster (demonstrations on SQLite only; the pages say so)")

    static let all: [Setting] = [
        configFile, host, port, dataDir, databaseURL, playbooks, deliveryFile, publicURL, logLevel, bootstrapAdminToken,
        masterKey, auditSigningKey, auditLogOrigin, auditWitnessDir, linkKey, webhookSecret, smtpPassword, twilioAuthToken,
        ntfyToken, ntfyPassword, demonstrationInbox, demoSpeed,
    ]

    /// Every setting, one a line, for `--help`.
    static var summary: String {
        let lines = all.map { setting -> String in
            let names = [setting.option, setting.environmentVariable, setting.fileKey].compactMap { $0 }.joined(separator: " / ")
            return "  \(names)\n      \(setting.help); default: \(setting.defaultText)"
        }
        return (["Settings come from the command line, then the environment, then the configuration file, then the defaults:"] + lines
            + ["  channels, audit.witnesses, retention, integrations (file only): see docs/configuration.md"]).joined(separator: "\n")
    }
}

/// The settings as read: the command line, then the environment, then the configuration file, then
/// the defaults, through one ConfigReader. An empty environment variable counts as unset.
struct Settings: Sendable {
    let reader: ConfigReader
    private let commandLine: [Setting: String]
    private let environment: [String: String]

    init(commandLine: [Setting: String] = [:], environment: [String: String] = ProcessInfo.processInfo.environment,
         file: ServiceConfigFile = ServiceConfigFile()) {
        self.commandLine = commandLine
        self.environment = environment
        func values(_ pairs: [(Setting, String?)]) -> [AbsoluteConfigKey: ConfigValue] {
            var values: [AbsoluteConfigKey: ConfigValue] = [:]
            for (setting, value) in pairs {
                if let value { values[AbsoluteConfigKey(setting.configKey)] = ConfigValue(.string(value), isSecret: setting.isSecret) }
            }
            return values
        }
        let fromFile = values([
            (.host, file.host), (.port, file.port.map(String.init)), (.dataDir, file.dataDir), (.databaseURL, file.databaseURL),
            (.playbooks, file.playbooks), (.deliveryFile, file.deliveryFile), (.publicURL, file.publicURL),
            (.auditWitnessDir, file.audit.witnessDirectory), (.webhookSecret, file.channels.webhookSecret),
            (.smtpPassword, file.channels.email?.password), (.twilioAuthToken, file.channels.twilio?.authToken),
            (.ntfyToken, file.channels.ntfy?.token), (.ntfyPassword, file.channels.ntfy?.password),
            (.demonstrationInbox, file.channels.demonstrationInbox.map { $0 ? "true" : "false" }),
        ])
        let defaults = values(Setting.all.map { ($0, $0.defaultValue) })
        reader = ConfigReader(providers: [
            InMemoryProvider(name: "command line", values: values(commandLine.map { ($0.key, $0.value) })),
            EnvironmentVariablesProvider(environmentVariables: environment.filter { $0.key.hasPrefix("MUSTER_") && !$0.value.isEmpty },
                                         secretsSpecifier: .specific(Set(Setting.all.filter(\.isSecret).map(\.environmentVariable)))),
            InMemoryProvider(name: "configuration file", values: fromFile),
            InMemoryProvider(name: "defaults", values: defaults),
        ])
    }

    /// The setting's value from the first source that has one; nil when none has (and it has no default).
    func string(_ setting: Setting) -> String? {
        reader.string(forKey: setting.configKey, isSecret: setting.isSecret)
    }

    /// A setting that has a default: its value, the default when no source sets it.
    func value(_ setting: Setting) -> String {
        string(setting) ?? setting.defaultValue ?? ""
    }

    /// Where the setting's value came from, for error messages: its option, variable or file key.
    func source(_ setting: Setting) -> String {
        if commandLine[setting] != nil, let option = setting.option { return option }
        if environment[setting.environmentVariable]?.isEmpty == false { return setting.environmentVariable }
        return setting.fileKey ?? setting.environmentVariable
    }
}
