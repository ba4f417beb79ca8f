// A PostgreSQL restart while reports arrive: while the database is down callers get a clear
// "unavailable, retry" error quickly (never a hang, never a half-written incident); once it is back,
// work resumes within seconds; nothing that was committed is lost.
import Foundation
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

/// A PostgreSQL cluster of the test's own, so that stopping it disturbs no other test.
private final class OwnCluster: @unchecked Sendable {
    let bin: String, dir: String, port: Int

    /// `options` are added to the server's command line (`-c default_transaction_read_only=on`: a stand-in standby).
    var options: String

    init(options: String = "") throws {
        self.options = options
        guard let bin = ProcessInfo.processInfo.environment["MUSTER_TEST_PG_BIN"] else { throw MissingPostgres() }
        self.bin = bin
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("muster-restart-\(UUID().uuidString.prefix(8))").path
        port = Int.random(in: 20_000...40_000)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try run("chmod", ["755", dir])
        if getuid() == 0 { try run("chown", ["postgres:postgres", dir]) }
        try pg("initdb", ["-D", dir + "/data", "-A", "trust", "-U", "postgres"])
        try start()
    }

    func start() throws {
        try pg("pg_ctl", ["-D", dir + "/data", "-l", dir + "/log", "-w", "-t", "30",
                          "-o", "-p \(port) -k \(dir) -c listen_addresses=127.0.0.1 \(options)", "start"])
    }

    func stop() throws {
        try pg("pg_ctl", ["-D", dir + "/data", "-m", "fast", "-w", "stop"])
    }

    func remove() {
        try? pg("pg_ctl", ["-D", dir + "/data", "-m", "immediate", "stop"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func pg(_ tool: String, _ arguments: [String]) throws {
        if getuid() == 0 {
            try run("/usr/sbin/runuser", ["-u", "postgres", "--", bin + "/" + tool] + arguments)
        } else {
            try run(bin + "/" + tool, arguments)
        }
    }

    /// posix_spawn and waitpid: Foundation's Process does not always see the exit of a command that
    /// leaves a daemon behind (pg_ctl start), and would wait forever.
    private func run(_ executable: String, _ arguments: [String]) throws {
        let path = executable.hasPrefix("/") ? executable : "/usr/bin/" + executable
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&fileActions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, path, &fileActions, nil, argv, environ) == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSFilePathErrorKey: path])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        guard status == 0 else { throw CocoaError(.executableLoad, userInfo: [NSFilePathErrorKey: "\(path) \(arguments) exited with \(status)"]) }
    }
}

private actor Tally {
    var committed: [IncidentRef] = []
    var attempted: [String] = []
    var unavailable = 0
    var longestFailure: TimeInterval = 0
    var firstSuccessAfter: [Date: Date] = [:]

    func attempt(_ key: String) { attempted.append(key) }
    func success(_ ref: IncidentRef) { committed.append(ref) }
    func failure(took seconds: TimeInterval) {
        unavailable += 1
        longestFailure = max(longestFailure, seconds)
    }
}

@Suite("Database restart", .serialized)
struct DatabaseRestartTests {
    @Test("PostgreSQL stops and starts while reports arrive: quick unavailable errors, quick recovery, nothing lost")
    func restartWhileReporting() async throws {
        let cluster = try OwnCluster()
        defer { cluster.remove() }
        let store = PostgresStore(settings: PostgresSettings(host: "127.0.0.1", port: cluster.port, user: "postgres", database: "postgres", sslMode: .disable),
                                  masterKey: MasterKey.generate())
        defer { store.shutdown() }
        try await store.migrate()
        let catalog = shippedCatalog
        let tally = Tally()
        let reporting = Task {
            var index = 0
            while !Task.isCancelled {
                index += 1
                let key = "restart-\(index)"
                await tally.attempt(key)
                let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .integration("restart-test"),
                                    summary: "report \(index)", subject: "S-\(index)", receivedAt: Date())
                let started = Date()
                do {
                    let results = try await Dispatcher(catalog: catalog).outcomes([.report(ReportIntake(report: report, idempotencyKey: key))], to: store, now: Date())
                    if case .success(let outcome)? = results.first { await tally.success(outcome.incident) }
                } catch let error as StoreError {
                    guard case .unavailable = error else { Issue.record("unexpected error \(error)"); return }
                    await tally.failure(took: Date().timeIntervalSince(started))
                    try? await Task.sleep(for: .milliseconds(50))
                } catch {
                    Issue.record("not a StoreError: \(error)")
                    return
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        // Reports commit before the stop (on a loaded machine the first may take a while).
        for _ in 0..<300 where await tally.committed.count < 5 { try await Task.sleep(for: .milliseconds(100)) }
        let beforeStop = await tally.committed.count
        #expect(beforeStop > 0)
        try cluster.stop()
        try await Task.sleep(for: .seconds(4))
        let failuresWhileDown = await tally.unavailable
        #expect(failuresWhileDown > 0, "callers were told the database is unavailable")
        try cluster.start()
        let back = Date()
        let committedAtRestart = await tally.committed.count
        var recovered: TimeInterval?
        while Date().timeIntervalSince(back) < 10 {
            if await tally.committed.count > committedAtRestart {
                recovered = Date().timeIntervalSince(back)
                break
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        try await Task.sleep(for: .milliseconds(500))
        reporting.cancel()
        _ = await reporting.value

        let recoveredIn = try #require(recovered, "no report was committed within 10 s of the database coming back")
        #expect(recoveredIn < 5)
        let longest = await tally.longestFailure
        #expect(longest < 5, "an unavailable error took \(longest) s: callers must not hang")
        // Nothing committed was lost, and nothing is half-written.
        let committed = await tally.committed
        let incidents = try await store.incidents(IncidentFilter(limit: 500))
        #expect(Set(committed).isSubset(of: Set(incidents.map(\.ref))))
        #expect(incidents.count <= (await tally.attempted.count))
        for summary in incidents {
            #expect(try await store.reports(summary.ref.id).count == 1, "incident \(summary.ref.number) has its report")
            #expect(try await store.timeline(summary.ref.id).first?.action == .reported, "incident \(summary.ref.number) has its audit trail")
        }
        print("database restart: \(committed.count) reports committed, \(failuresWhileDown) refused while down (longest \(String(format: "%.2f", longest)) s), recovered \(String(format: "%.2f", recoveredIn)) s after start")
    }

    @Test("a libpq host list with target_session_attrs=read-write: the store uses the host that takes writes, and follows a failover by itself")
    func hostListFollowsThePrimary() async throws {
        // A stands in for a standby (its sessions are read-only), B for the primary; then B dies and A is promoted.
        let standby = try OwnCluster(options: "-c default_transaction_read_only=on")
        defer { standby.remove() }
        let primary = try OwnCluster()
        defer { primary.remove() }
        let url = "postgres://postgres@127.0.0.1:\(standby.port),127.0.0.1:\(primary.port)/postgres?sslmode=disable&target_session_attrs=read-write"
        let settings = try PostgresSettings(url: url)
        #expect(settings.hosts.map(\.port) == [standby.port, primary.port])
        let store = PostgresStore(settings: settings, masterKey: MasterKey.generate())
        defer { store.shutdown() }
        try await store.migrate()
        func report(_ index: Int) async throws -> IncidentRef? {
            let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .integration("failover-test"),
                                summary: "report \(index)", subject: "S-\(index)", receivedAt: Date())
            let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report, idempotencyKey: "f-\(index)"))],
                                                                                 to: store, now: Date())
            if case .success(let outcome)? = results.first { return outcome.incident }
            return nil
        }
        let first = try #require(try await report(1))
        // It went to the primary: the read-only host has no tables at all.
        let onPrimary = PostgresStore(settings: PostgresSettings(host: "127.0.0.1", port: primary.port, user: "postgres", database: "postgres",
                                                                 sslMode: .disable), masterKey: MasterKey.generate())
        #expect(try await onPrimary.incidents(IncidentFilter()).map(\.ref) == [first])
        onPrimary.shutdown()

        // The primary dies; the standby is promoted (restarted writable) and gets the schema, as a replica would have it.
        try primary.stop()
        let started = Date()
        var refusedQuickly = true
        do {
            _ = try await report(2)
        } catch let error as StoreError {
            guard case .unavailable = error else { throw error }
            refusedQuickly = Date().timeIntervalSince(started) < 10
        }
        #expect(refusedQuickly, "while no host takes writes, callers are told so at once")
        try standby.stop()
        standby.options = ""
        try standby.start()
        var migrated = false
        for _ in 0..<100 where !migrated {
            do {
                try await store.migrate()
                migrated = true
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(migrated, "the same store reached the promoted host by itself")
        let after = try #require(try await report(3))
        #expect(try await store.incident(after.id) != nil)
        #expect(try await store.incident(first.id) == nil, "the old primary's rows are not on the new one in this stand-in (no replication)")
    }
}

