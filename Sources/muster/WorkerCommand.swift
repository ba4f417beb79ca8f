// `muster worker`: runs an instance's timer and delivery workers against the database, until
// SIGTERM or SIGINT: the runtime of `muster serve` without the HTTP API. Its channels come from the
// same configuration as the service's (ChannelFactory), so a worker beside `muster serve` sends each
// page where the service would, never into a file instead.
import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run the timer and delivery workers and the audit log's sequencer.",
        discussion: "Fires due timers into the escalation engine and sends queued notifications. Any number of workers may share one PostgreSQL database."
    )

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "The playbook folder (holds directory.yaml).")
    var playbooks: String = "playbooks"
    @Option(help: "The demonstration file for channels with no provider configured (default: DATA_DIR/deliveries.jsonl, as for muster serve).")
    var channelFile: String?
    @Option(help: "This instance's name in claims (default: host/pid).")
    var instance: String?
    @Flag(help: "Apply missing migrations before starting.")
    var migrate = false
    @Option(help: "The configuration file, for its channels, audit witnesses and retention policy (default: ./muster.yaml if present).")
    var config: String?

    func run() async throws {
        let (catalog, loaded) = try loadFolder(playbooks)
        let (store, description) = try storeOptions.open(create: true)
        if migrate { try await store.migrate() }
        try await requireCurrentSchema(store, description)
        let name = instance ?? ProcessInfo.processInfo.hostName + "/\(ProcessInfo.processInfo.processIdentifier)"
        let dataDir = storeOptions.dataDir
        var commandLine: [Setting: String] = [:]
        if let config { commandLine[.configFile] = config }
        if let channelFile { commandLine[.deliveryFile] = channelFile }
        let environment = ProcessInfo.processInfo.environment
        let file = try loadConfigFile(config, Settings(commandLine: commandLine, environment: environment))
        let settings = Settings(commandLine: commandLine, environment: environment, file: file)
        let deliveryFile = settings.string(.deliveryFile) ?? (dataDir as NSString).appendingPathComponent("deliveries.jsonl")
        // The links in messages must reach the service: the same public URL as `muster serve` on this configuration.
        let publicURL = settings.string(.publicURL) ?? "http://\(settings.value(.host)):\(settings.value(.port))"
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPDeliverySettings().clientConfiguration())
        let names = DirectoryNames(catalog)
        let auditLog: AuditLogSettings, channels: ChannelSetup
        do {
            auditLog = try AuditKeys.settings(file.audit, dataDir: dataDir, http: http, settings: settings)
            channels = try ChannelFactory.make(file.channels, publicURL: publicURL, dataDir: dataDir, deliveryFile: deliveryFile,
                                               names: names, http: http, settings: settings)
            try channels.requireProviders(loaded, folder: playbooks)
        } catch {
            // The client must be shut down before it goes, also when the worker never starts.
            try? await http.shutdown()
            throw error
        }
        let runtime = Runtime(store: store, catalog: catalog, notifier: channels.notifier, names: names,
                              instance: name, auditLog: auditLog, retention: file.retention)
        do {
            // Open incidents run the version they started with, also after this instance restarts.
            try await runtime.keepPlaybooks(loaded.kept)
        } catch {
            try? await http.shutdown()
            throw error
        }
        let workers = Task { await runtime.run() }
        let stop = ShutdownSignals { workers.cancel() }
        print("muster worker \(name): \(description), \(catalog.playbooks.playbooks.count) playbooks; channels: \(channels.summary)")
        await workers.value
        withExtendedLifetime(stop) {}
        try await http.shutdown()
    }
}

/// Calls `handler` once on SIGTERM or SIGINT.
final class ShutdownSignals {
    private let sources: [DispatchSourceSignal]

    init(_ handler: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }
}
