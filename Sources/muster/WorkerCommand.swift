// `muster worker`: runs an instance's timer and delivery workers against the database, until
// SIGTERM or SIGINT. (`muster serve` will run the same runtime with the HTTP API in front.)
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
    @Option(help: "Deliver every notification by appending it to this file as a JSON line (the demonstration channel).")
    var channelFile: String
    @Option(help: "This instance's name in claims (default: host/pid).")
    var instance: String?
    @Flag(help: "Apply missing migrations before starting.")
    var migrate = false
    @Option(help: "The configuration file, for its audit witnesses and retention policy (default: ./muster.yaml if present).")
    var config: String?

    func run() async throws {
        let catalog = try loadCatalog(playbooks)
        let (store, description) = try storeOptions.open(create: true)
        if migrate { try await store.migrate() }
        try await requireCurrentSchema(store, description)
        let name = instance ?? ProcessInfo.processInfo.hostName + "/\(ProcessInfo.processInfo.processIdentifier)"
        let dataDir = storeOptions.dataDir
        let file = try loadConfigFile(config, Settings())
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPDeliverySettings().clientConfiguration())
        let auditLog = try AuditKeys.settings(file.audit, dataDir: dataDir, http: http, settings: Settings(file: file))
        let runtime = try Runtime(store: store, catalog: catalog, channel: ChannelRouter([:], fallback: FileChannel(path: channelFile)),
                              instance: name, auditLog: auditLog, retention: file.retention)
        let workers = Task { await runtime.run() }
        let stop = ShutdownSignals { workers.cancel() }
        print("muster worker \(name): \(description), \(catalog.playbooks.playbooks.count) playbooks; delivering to \(channelFile)")
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
