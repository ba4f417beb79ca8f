// `muster serve`: the HTTP API and the workers in one process, under ServiceLifecycle. SIGTERM and
// SIGINT stop taking requests, let those under way finish, stop the workers and hand back their
// claims; SIGHUP reloads the playbooks and directory (an invalid set keeps the old one).
import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import MusterCore
import MusterHTTP
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Muster service: the HTTP API and the escalation workers.",
        discussion: Setting.summary
    )

    @Option(help: "The configuration file (default: ./muster.yaml if present).")
    var config: String?
    @Option(help: "The address to listen on.")
    var host: String?
    @Option(help: "The port to listen on.")
    var port: Int?
    @Option(help: "Where the embedded SQLite database and the delivery file live.")
    var dataDir: String?
    @Option(help: "The playbook folder (holds directory.yaml).")
    var playbooks: String?
    @Option(help: "Deliver notifications by appending them to this file as JSON lines (the demonstration channel).")
    var deliveryFile: String?
    @Option(help: "The base URL people and providers reach this service at.")
    var publicURL: String?
    @Flag(help: "Write pages on channels with no provider to the demonstration file (nobody is reached; audited as demonstrated) instead of refusing to start.")
    var demonstrationInbox = false
    @Option(help: "Run every timer this many times faster, through the same clock (a demonstration: SQLite only, the pages say so).")
    var demoSpeed: Double?
    @Flag(help: "Refuse to start on a database whose schema is behind, instead of migrating it.")
    var noMigrate = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var commandLine: [Setting: String] = [:]
        for (setting, value) in [(Setting.configFile, config), (.host, host), (.port, port.map(String.init)), (.dataDir, dataDir),
                                 (.playbooks, playbooks), (.deliveryFile, deliveryFile), (.publicURL, publicURL)] {
            if let value { commandLine[setting] = value }
        }
        if demonstrationInbox { commandLine[.demonstrationInbox] = "true" }
        if let demoSpeed { commandLine[.demoSpeed] = String(demoSpeed) }
        let file = try loadConfigFile(config, Settings(commandLine: commandLine, environment: environment))
        let settings = Settings(commandLine: commandLine, environment: environment, file: file)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: settings.value(.logLevel)) ?? .info
            return handler
        }
        let logger = Logger(label: "muster")
        let host = settings.value(.host)
        let portText = settings.value(.port)
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ValidationError("\(settings.source(.port)) '\(portText)' is not a port number")
        }
        let dataDir = settings.value(.dataDir)
        let folder = settings.value(.playbooks)
        let deliveryFile = settings.string(.deliveryFile) ?? (dataDir as NSString).appendingPathComponent("deliveries.jsonl")

        let speedText = settings.value(.demoSpeed)
        guard let speed = Double(speedText), speed >= 1, speed <= 3600 else {
            throw ValidationError("\(settings.source(.demoSpeed)) '\(speedText)' is not a speed from 1 to 3600")
        }
        if speed > 1, settings.string(.databaseURL) != nil {
            // Several instances share PostgreSQL; each would run its own faster time.
            throw ValidationError("--demo-speed is for a demonstration on the embedded SQLite database; it is refused with PostgreSQL")
        }
        let clock: any MusterClock = speed > 1 ? ScaledClock(speed: speed) : SystemClock()
        let (catalog, loaded) = try loadFolder(folder)
        let (store, description) = try openStore(databaseURL: settings.string(.databaseURL), dataDir: dataDir, settings: settings)
        if !noMigrate { try await store.migrate() }
        try await requireCurrentSchema(store, description)
        let firstStart = try await store.users().isEmpty
        let publicURL = settings.string(.publicURL) ?? "http://\(host):\(port)"
        let signIn = try await bootstrapAdmin(store: store, settings: settings, dataDir: dataDir, publicURL: publicURL)

        let metrics = MusterMetrics()
        checkCoverageAtStart(catalog, folder: folder, channels: file.channels, settings: settings, metrics: metrics, logger: logger)
        let instance = ProcessInfo.processInfo.hostName + "/\(ProcessInfo.processInfo.processIdentifier)"
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPDeliverySettings().clientConfiguration())
        let names = DirectoryNames(catalog)
        let auditLog: AuditLogSettings, channels: ChannelSetup
        do {
            auditLog = try AuditKeys.settings(file.audit, dataDir: dataDir, http: http, settings: settings)
            channels = try ChannelFactory.make(file.channels, publicURL: publicURL, dataDir: dataDir, deliveryFile: deliveryFile,
                                               names: names, http: http, settings: settings)
            try channels.requireProviders(loaded, folder: folder)
        } catch {
            // The client must be shut down before it goes, also when the service never starts.
            try? await http.shutdown()
            throw error
        }
        let runtime = Runtime(store: store, catalog: catalog, notifier: channels.notifier, names: names, clock: clock,
                              instance: instance, auditLog: auditLog, retention: file.retention, observer: metrics.observer(),
                              logger: logger)
        do {
            // Open incidents run the version they started with, also after this instance restarts.
            try await runtime.keepPlaybooks(loaded.kept)
        } catch {
            try? await http.shutdown()
            throw error
        }
        let server = MusterServer(runtime: runtime, metrics: metrics, clock: clock, playbookFolder: folder,
                                  integrations: integrationSettings(file), auditVerifierKey: auditLog.signer.verifierKey,
                                  acknowledgement: channels.acknowledgement, checkCatalog: { channels.unservedContacts($0) },
                                  web: WebSettings(demonstrationInbox: channels.demonstrationInbox ? deliveryFile : nil, signInMail: channels.signInMail,
                                                   demoSpeed: speed > 1 ? speed : nil,
                                                   // In a demonstration the inbox takes every channel: no gap is a real one.
                                                   providers: channels.demonstrationInbox ? Set(ChannelKind.allCases) : channels.providers),
                                  trustedProxies: Set(file.trustedProxies), rateLimits: rateLimits(file.rateLimits),
                                  logger: logger)
        let app = server.makeApplication(host: host, port: port, limits: connectionLimits(file.server), logger: logger)
        let reload = ReloadSignal {
            Task {
                switch await server.reloadPlaybooks() {
                case .success(let catalog): logger.info("SIGHUP: reloaded \(catalog.playbooks.playbooks.count) playbooks")
                case .failure(let failure):
                    logger.error("SIGHUP: \(failure.reason)")
                    for diagnostic in failure.diagnostics { logger.error("\(diagnostic.description)") }
                }
            }
        }
        // On a first start with the demonstration inbox, everyone in the example directory can sign in.
        let demoAccounts = firstStart && channels.demonstrationInbox
            ? try await DemonstrationAccounts.create(store: store, directory: catalog.directory, now: Date()) : ""
        // Written straight to the descriptor: a pipe would otherwise buffer it past the point people look for it.
        FileHandle.standardOutput.write(Data("""
            Muster is serving \(publicURL)/  (\(description); \(catalog.playbooks.playbooks.count) playbooks from \(folder))
            Channels: \(channels.summary)\(speed > 1 ? "\nDemonstration speed: every timer runs \(Int(speed)) times faster." : "")
            \(demoAccounts)\(signIn)
            API: curl -H "Authorization: Bearer TOKEN" \(publicURL)/api/v1/playbooks

            """.utf8))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: RuntimeService(runtime: runtime)), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            try? await http.shutdown()
            throw error
        }
        try? await http.shutdown()
        withExtendedLifetime(reload) {}
        (store as? PostgresStore)?.shutdown()
    }

    private func rateLimits(_ config: RateLimitsConfig) -> RateLimitSettings {
        var settings = RateLimitSettings()
        if let limit = config.integration {
            settings.integration = RateLimit(perMinute: Double(limit.perMinute), burst: Double(limit.burst ?? limit.perMinute))
        }
        if let limit = config.account {
            settings.account = RateLimit(perMinute: Double(limit.perMinute), burst: Double(limit.burst ?? limit.perMinute))
        }
        if let span = config.groupWithin { settings.groupWithin = span }
        return settings
    }

    private func connectionLimits(_ config: ServerConfig) -> ConnectionLimits {
        var limits = ConnectionLimits()
        if let span = config.headerTimeout { limits.headerTimeout = .seconds(span.seconds) }
        if let span = config.bodyTimeout { limits.bodyTimeout = .seconds(span.seconds) }
        if let span = config.idleTimeout { limits.idleTimeout = .seconds(span.seconds) }
        if let count = config.maxConnections { limits.maxConnections = count }
        return limits
    }

    private func integrationSettings(_ file: ServiceConfigFile) -> IntegrationSettings {
        var settings = IntegrationSettings()
        func apply(_ config: IntegrationMappingConfig?, to mapping: inout FieldMapping) {
            guard let config else { return }
            if let labels = config.typeLabels { mapping.type = labels }
            if let labels = config.siteLabels { mapping.site = labels }
            if let labels = config.severityLabels { mapping.severity = labels }
            mapping.severities.merge(config.severities) { _, new in new }
            if let value = config.defaultType { mapping.defaultType = value }
            if let value = config.defaultSite { mapping.defaultSite = value }
            if let value = config.defaultSeverity { mapping.defaultSeverity = value }
        }
        apply(file.integrations["alertmanager"], to: &settings.alertmanager)
        apply(file.integrations["pagerduty"], to: &settings.pagerduty)
        return settings
    }

    /// On a database with no accounts, creates the first admin: with MUSTER_BOOTSTRAP_ADMIN_TOKEN's token
    /// when set (the operator's own secret, never printed), otherwise with a one-time sign-in link for the web
    /// pages, valid for 24 hours, written to DATA_DIR/first-sign-in.txt (the owner's only) and shown on a
    /// terminal: standard output, often kept in a journal, never carries a credential that lasts.
    private func bootstrapAdmin(store: any Store, settings: Settings, dataDir: String, publicURL: String) async throws -> String {
        guard try await store.users().isEmpty else {
            return "Sign in with an API token (`muster token create USER`); send it as 'Authorization: Bearer TOKEN'."
        }
        let given = settings.string(.bootstrapAdminToken)
        if let given, given.count < 20 { throw ValidationError("MUSTER_BOOTSTRAP_ADMIN_TOKEN must have at least 20 characters") }
        let now = Date()
        try await store.addUser(UserAccount(id: "admin", name: "Administrator", role: .admin, sites: [], createdAt: now))
        if let given {
            try await store.addToken(id: APIToken.generateID(), user: "admin", label: "bootstrap", hash: APIToken.hash(given), at: now)
            return "First start: created the account 'admin' with the token from MUSTER_BOOTSTRAP_ADMIN_TOKEN."
        }
        let token = AccountRecords.newToken()
        try await store.addCredential(.signInLink, hash: APIToken.hash(token), user: "admin", at: now, expires: now.addingTimeInterval(24 * 3600))
        let link = publicURL + "/sign-in/link/" + token + "?next=%2Fadmin"
        let path = (dataDir as NSString).appendingPathComponent("first-sign-in.txt")
        unlink(path)  // a link left by an earlier first start that never finished
        guard try AuditKeys.createOwnerOnly(path, """
            The first administrator of this Muster signs in once with this link, within 24 hours of \(now.formatted(.iso8601)):

            \(link)

            Then give people their accounts on the admin page, and make API tokens with `muster token create USER`.
            The link works once; delete this file afterwards.

            """) else { throw ValidationError("cannot create \(path): it appeared while it was written") }
        let shown = isatty(STDOUT_FILENO) == 1 ? "\n  \(link)\n" : " "
        return "First start: created the account 'admin'. Sign in once, within 24 hours, with the link in \(path) (readable by this user only)."
            + shown + "API tokens: `muster token create USER`."
    }

}

/// The configuration file: `path`, else the `config` setting (MUSTER_CONFIG), else ./muster.yaml when it exists, else none.
func loadConfigFile(_ path: String?, _ settings: Settings) throws -> ServiceConfigFile {
    let path = path ?? settings.string(.configFile) ?? (FileManager.default.fileExists(atPath: "muster.yaml") ? "muster.yaml" : nil)
    guard let path else { return ServiceConfigFile() }
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read the configuration file \(path)") }
    let (config, diagnostics) = ServiceConfigFile.parse(text, file: path)
    for diagnostic in diagnostics { printError(diagnostic.description) }
    guard let config else { throw ValidationError("the configuration file \(path) has errors") }
    return config
}

/// Opens PostgreSQL when a URL is given, else SQLite in the data directory. `create: false` (the commands
/// that read an existing installation) refuses to create the master key or the SQLite database.
func openStore(databaseURL: String?, dataDir: String, create: Bool = true,
               settings: Settings = Settings()) throws -> (store: any Store, description: String) {
    let masterKey = try AuditKeys.masterKey(dataDir: dataDir, create: create, settings: settings)
    if let url = databaseURL {
        let settings = try PostgresSettings(url: url)
        if let warning = settings.transportWarning { printError("muster: warning: " + warning) }
        return (PostgresStore(settings: settings, masterKey: masterKey), "PostgreSQL \(settings.database) on \(settings.hostDescription)")
    }
    // The owner's only: it holds the database and the keys.
    try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let path = (dataDir as NSString).appendingPathComponent("muster.sqlite")
    guard create || FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("no database at \(path): start `muster serve` or run `muster migrate` first, or pass the installation's --data-dir")
    }
    // Made the owner's only before SQLite opens it: its journal files take the same mode.
    _ = try AuditKeys.createOwnerOnly(path, "")
    return (try SQLiteStore(path: path, masterKey: masterKey), "SQLite \(path)")
}

/// The runtime's workers as a service: they stop at graceful shutdown, after the HTTP server.
struct RuntimeService: Service {
    let runtime: Runtime

    func run() async throws {
        await cancelWhenGracefulShutdown { await runtime.run() }
    }
}

/// Calls `handler` on each SIGHUP.
final class ReloadSignal {
    private let source: DispatchSourceSignal

    init(_ handler: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler(handler: handler)
        source.resume()
    }
}
