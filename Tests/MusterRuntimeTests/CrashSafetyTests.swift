// Crash safety, for real: `muster worker` runs as a subprocess against PostgreSQL and is killed with
// SIGKILL in the middle of escalations, again and again, while reports keep arriving from another
// instance. Afterwards the timelines must show that no report was lost, no step was skipped, every
// queued page was sent, and no page was sent under an id the engine did not give it.
import Foundation
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

/// A playbook with second-long windows, so a drill runs its whole ladder in a few seconds.
private let drillPlaybook = """
    id: drill
    title: Crash drill
    match: { catch_all: true }
    steps:
      - { notify: [on-call:crisis-team@district], via: [sms], ack_within: 2s, repeat: 1 }
      - { notify: [on-call:district-crisis-lead@district], via: [sms, email], ack_within: 2s }
      - { notify: [partner:county-mobile-crisis], via: [voice], ack_within: 2s, disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36" }
    fallback: { notify: [on-call:crisis-team@district], via: [voice] }
    """

private func drillFolder() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-drill-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("playbooks/directory.yaml"),
                                     to: folder.appendingPathComponent("directory.yaml"))
    try drillPlaybook.write(to: folder.appendingPathComponent("drill.yaml"), atomically: true, encoding: .utf8)
    return folder
}

private func musterExecutable() -> URL {
    repositoryRoot.appendingPathComponent(".build/debug/muster")
}

private func startWorker(databaseURL: String, playbooks: URL, channelFile: String, instance: String) throws -> Process {
    let process = Process()
    process.executableURL = musterExecutable()
    process.arguments = ["worker", "--playbooks", playbooks.path, "--channel-file", channelFile, "--instance", instance]
    var environment = ProcessInfo.processInfo.environment
    environment["MUSTER_DATABASE_URL"] = databaseURL
    environment["MUSTER_MASTER_KEY"] = drillMasterKey.base64
    environment["MUSTER_AUDIT_SIGNING_KEY"] = drillSigner.privateKey
    // No provider: every page goes to the demonstration file, which the drill reads as its channel.
    environment["MUSTER_DEMONSTRATION_INBOX"] = "true"
    process.environment = environment
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// The keys the test and every worker it starts share (one master key per database, one log key).
private let drillMasterKey = MasterKey.generate()
private let drillSigner: NoteSigner = {
    do { return try NoteSigner.generate(name: "muster.test/drill") } catch { preconditionFailure("cannot make a signing key: \(error)") }
}()

@Suite("Crash safety", .serialized)
struct CrashSafetyTests {
    @Test("SIGKILL in the middle of escalations, 20 times, while reports keep arriving: nothing lost, skipped or doubled")
    func killAndRestart() async throws {
        let settings = try await freshPostgresDatabase(prefix: "muster_crash_")
        let databaseURL = "postgres://\(settings.user)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable"
        let store = PostgresStore(settings: settings, masterKey: drillMasterKey, timeout: testDatabaseTimeout)
        defer { store.shutdown() }
        try await store.migrate()
        let folder = try drillFolder()
        let loaded = PlaybookLoader.load(folder: folder)
        let catalog = try #require(loaded.catalog, "\(loaded.diagnostics)")
        let channelFile = folder.appendingPathComponent("sent.jsonl").path

        var reported: [IncidentRef] = []
        let types = catalog.directory.incidentTypes.map(\.id)
        let sites = catalog.directory.sites.keys.sorted()
        for round in 0..<20 {
            let worker = try startWorker(databaseURL: databaseURL, playbooks: folder, channelFile: channelFile, instance: "crash-\(round)")
            // Reports arrive from another instance while this one escalates.
            for index in 0..<3 {
                let report = Report(type: types[(round + index) % types.count], severity: .high, site: sites[index % sites.count],
                                    reporter: .integration("drill"), summary: "drill \(round).\(index)", receivedAt: Date())
                let results = try await Dispatcher(catalog: catalog).outcomes([.report(ReportIntake(report: report, idempotencyKey: "drill-\(round)-\(index)"))],
                                                     to: store, now: Date())
                reported.append(try #require(try results.first?.get()).incident)
                try await Task.sleep(for: .milliseconds(Int.random(in: 50...400)))
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...900)))
            kill(worker.processIdentifier, SIGKILL)
            worker.waitUntilExit()
            #expect(worker.terminationReason == .uncaughtSignal)
        }

        // A last instance finishes the work: every incident reaches the end of its ladder, every page goes out.
        let last = try startWorker(databaseURL: databaseURL, playbooks: folder, channelFile: channelFile, instance: "crash-final")
        defer { last.terminate() }
        try await eventually("every drill to run its ladder and every page to be sent", timeout: 90) {
            let incidents = try await store.incidents(IncidentFilter(limit: 500))
            let counts = try await store.outboxCounts()
            return incidents.count == reported.count && incidents.allSatisfy { $0.phase == "unowned" } && counts["queued", default: 0] == 0
        }

        // No report lost.
        let incidents = try await store.incidents(IncidentFilter(limit: 500))
        #expect(Set(incidents.map(\.ref)) == Set(reported))
        // Every page the engine queued was sent, and nothing was sent under another id.
        var queuedIDs = Set<String>()
        for ref in reported {
            let timeline = try await store.timeline(ref.id)
            #expect(timeline.map(\.sequence) == Array(1...timeline.count), "incident \(ref.number): the audit trail has no gap")
            // No step skipped: each step was paged (or skipped by the engine with a reason), in order, then the fallback.
            let stepsPaged = timeline.filter { $0.action == .stepStarted || $0.action == .stepSkipped }.compactMap(\.step)
            #expect(stepsPaged == [0, 1, 2], "incident \(ref.number): steps \(stepsPaged)")
            #expect(timeline.contains { $0.action == .stepRepeated && $0.step == 0 } || timeline.contains { $0.action == .stepSkipped && $0.step == 0 })
            // Delivery receipts may still arrive after the fallback; the escalation itself ends unowned.
            #expect(timeline.last { ![.delivered, .demonstrated, .deliveryFailed].contains($0.action) }?.action == .unowned)
            queuedIDs.formUnion(timeline.compactMap { $0.notification?.description })
        }
        let sentLines = sent(channelFile)
        let sentIDs = sentLines.compactMap { $0["id"] }
        #expect(Set(sentIDs) == queuedIDs, "sent and queued ids differ")
        #expect(try await store.outboxCounts() == ["demonstrated": queuedIDs.count], "written to the demonstration file, never counted as delivered")
        let duplicates = sentIDs.count - Set(sentIDs).count
        print("crash drill: \(reported.count) incidents, \(queuedIDs.count) pages, \(duplicates) re-sent under the same id after a kill")
    }
}

@Suite("muster worker's channels")
struct WorkerChannelTests {
    @Test("muster worker sends each page through the channels the configuration gives, as muster serve does, not into its file")
    func workerUsesConfiguredChannels() async throws {
        let settings = try await freshPostgresDatabase(prefix: "muster_worker_channels_")
        let databaseURL = "postgres://\(settings.user)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable"
        let store = PostgresStore(settings: settings, masterKey: drillMasterKey, timeout: testDatabaseTimeout)
        defer { store.shutdown() }
        try await store.migrate()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-worker-channels-\(UUID().uuidString)")
        let playbooks = folder.appendingPathComponent("playbooks")
        try FileManager.default.createDirectory(at: playbooks, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        // A real HTTP receiver (Python's http.server) that writes each POST's path and body to a file.
        let received = folder.appendingPathComponent("received.jsonl")
        let receiver = Process()
        receiver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        receiver.arguments = ["-c", """
            import http.server, json, sys
            class Hook(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                    with open(sys.argv[1], "a") as out:
                        out.write(json.dumps({"path": self.path, "signature": self.headers.get("webhook-signature"), "body": body}) + "\\n")
                    self.send_response(200); self.end_headers()
                def log_message(self, *args): pass
            server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
            print(server.server_port, flush=True)
            server.serve_forever()
            """, received.path]
        let receiverOut = Pipe()
        receiver.standardOutput = receiverOut
        receiver.standardError = FileHandle.nullDevice
        try receiver.run()
        defer { kill(receiver.processIdentifier, SIGKILL) }
        let portLine = String(decoding: receiverOut.fileHandleForReading.availableData, as: UTF8.self)
        let hookPort = try #require(Int(portLine.trimmingCharacters(in: .whitespacesAndNewlines)))

        try """
            district: { id: cli, name: CLI District, time_zone: America/Chicago }
            incident_types:
              - { id: suicide-risk, title: Student at risk of suicide or self-harm }
            roles:
              - { id: counselor, title: Counselor }
            sites:
              - { id: lincoln-high, name: Lincoln High School, time_zone: America/Chicago,
                  school_hours: { days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" } }
            people:
              - { id: ann, name: Ann Archer, roles: [counselor], sites: [lincoln-high], contacts: [ { webhook: "http://127.0.0.1:\(hookPort)/hook" } ] }
            """.write(to: playbooks.appendingPathComponent("directory.yaml"), atomically: true, encoding: .utf8)
        try """
            id: suicide-risk
            title: Student at risk of suicide or self-harm
            match: { types: [suicide-risk] }
            steps:
              - { notify: [person:ann], via: [webhook], ack_within: 10m }
            fallback: { notify: [person:ann], via: [webhook] }
            """.write(to: playbooks.appendingPathComponent("suicide-risk.yaml"), atomically: true, encoding: .utf8)
        let config = folder.appendingPathComponent("muster.yaml")
        try "public_url: https://muster.worker.example\nchannels:\n  webhook: { secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, allow_hosts: [127.0.0.1] }\n".write(to: config, atomically: true, encoding: .utf8)
        let catalog = try #require(PlaybookLoader.load(folder: playbooks).catalog)
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("ann"), summary: "worker drill",
                            receivedAt: Date())
        let opened = try await Dispatcher(catalog: catalog).outcomes([.report(ReportIntake(report: report))], to: store, now: Date())
        let number = try #require(try opened.first?.get()).incident.number

        let file = folder.appendingPathComponent("demo.jsonl").path
        let worker = Process()
        worker.executableURL = musterExecutable()
        worker.arguments = ["worker", "--playbooks", playbooks.path, "--config", config.path, "--channel-file", file,
                            "--data-dir", folder.appendingPathComponent("data").path]
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_DATABASE_URL"] = databaseURL
        environment["MUSTER_MASTER_KEY"] = drillMasterKey.base64
        environment["MUSTER_AUDIT_SIGNING_KEY"] = drillSigner.privateKey
        worker.environment = environment
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer { worker.terminate() }

        /// The POSTs the receiver got, each as path, signature and body.
        func hooks() -> [[String: String]] {
            guard let text = try? String(contentsOf: received, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
        }
        try await eventually("the page to reach the configured webhook", timeout: 30) {
            hooks().contains { $0["body"]?.contains("\"number\":\(number),") == true }
        }
        let hook = try #require(hooks().first { $0["body"]?.contains("\"number\":\(number),") == true })
        #expect(hook["path"] == "/hook")
        #expect(hook["signature"]?.hasPrefix("v1,") == true, "signed, as the configuration's webhook secret asks")
        #expect(hook["body"]?.contains("https://muster.worker.example/") == true, "links use the configuration's public URL")
        #expect(!FileManager.default.fileExists(atPath: file) || !((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("webhook"),
                "nothing went into the demonstration file")
    }
}
