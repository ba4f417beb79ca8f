// `muster serve` as an operator runs it: it starts on a fresh data directory with the first admin's
// token, takes reports, reloads on SIGHUP (keeping the old set when the new one is invalid),
// accepts accounts and tokens made by `muster user add` and `muster token create` while it runs,
// and stops cleanly on SIGTERM.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func executable() throws -> URL {
    let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        .flatMap { [$0.appendingPathComponent("muster"), $0.deletingLastPathComponent().appendingPathComponent("muster")] }
        + [root.appendingPathComponent(".build/debug/muster")]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "muster executable"])
    }
    return found
}

/// Runs a `muster` command to completion; its standard output.
private func muster(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = try executable()
    process.arguments = arguments
    process.currentDirectoryURL = root
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

private func request(_ method: String, _ url: String, token: String? = nil, body: String? = nil) async -> (status: Int, body: String) {
    guard let target = URL(string: url) else { return (0, "") }
    var request = URLRequest(url: target)
    request.httpMethod = method
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    if let body {
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    guard let (data, response) = try? await URLSession.shared.data(for: request) else { return (0, "") }
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

@Suite("muster serve", .serialized)
struct ServeCommandTests {
    @Test("starts, takes a report, reloads on SIGHUP, accepts new tokens, stops on SIGTERM")
    func serve() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("muster-serve-\(UUID().uuidString)")
        let playbooks = work.appendingPathComponent("playbooks")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: root.appendingPathComponent("playbooks"), to: playbooks)
        defer { try? FileManager.default.removeItem(at: work) }
        let port = Int.random(in: 30_000..<60_000)
        let base = "http://127.0.0.1:\(port)"
        let token = "mst_bootstrap_token_for_the_serve_test"
        let dataDir = work.appendingPathComponent("data").path

        let server = Process()
        server.executableURL = try executable()
        server.arguments = ["serve", "--port", "\(port)", "--data-dir", dataDir, "--playbooks", playbooks.path]
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_BOOTSTRAP_ADMIN_TOKEN"] = token
        environment["MUSTER_DATABASE_URL"] = nil
        server.environment = environment
        let stdout = work.appendingPathComponent("stdout.log"), stderr = work.appendingPathComponent("stderr.log")
        _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        server.standardOutput = try FileHandle(forWritingTo: stdout)
        server.standardError = try FileHandle(forWritingTo: stderr)
        try server.run()
        defer { if server.isRunning { server.terminate() } }

        var ready = false
        for _ in 0..<200 where !ready {
            ready = await request("GET", base + "/health/ready").status == 200
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(ready)
        let banner = (try? String(contentsOf: stdout, encoding: .utf8)) ?? ""
        #expect(banner.contains("Muster is serving \(base)"))
        #expect(banner.contains("MUSTER_BOOTSTRAP_ADMIN_TOKEN"))

        let report = #"{"type":"missing-student","severity":"high","site":"washington-elementary","summary":"Not back from recess"}"#
        #expect(await request("POST", base + "/api/v1/incidents", token: token, body: report).status == 201)

        // SIGHUP with a broken playbook: the loaded set stays, and the log says why.
        let file = playbooks.appendingPathComponent("suicide-risk.yaml")
        try (try String(contentsOf: file, encoding: .utf8)).replacingOccurrences(of: "ack_within:", with: "ack_wihtin:")
            .write(to: file, atomically: true, encoding: .utf8)
        kill(server.processIdentifier, SIGHUP)
        var logged = false
        for _ in 0..<100 where !logged {
            logged = ((try? String(contentsOf: stderr, encoding: .utf8)) ?? "").contains("ack_wihtin")
            if !logged { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(logged)
        #expect(await request("GET", base + "/api/v1/playbooks", token: token).body.contains("\"suicide-risk\""))

        // Accounts and tokens made while the service runs.
        #expect(try muster(["user", "add", "dchen", "--role", "responder", "--site", "washington-elementary", "--data-dir", dataDir,
                            "--playbooks", playbooks.path.replacingOccurrences(of: "playbooks", with: "unused")]).status != 0)  // the playbooks must load
        try FileManager.default.copyItem(at: root.appendingPathComponent("playbooks/suicide-risk.yaml"),
                                         to: work.appendingPathComponent("fixed.yaml"))
        try FileManager.default.removeItem(at: file)
        try FileManager.default.moveItem(at: work.appendingPathComponent("fixed.yaml"), to: file)
        #expect(try muster(["user", "add", "dchen", "--role", "responder", "--site", "washington-elementary", "--data-dir", dataDir,
                            "--playbooks", playbooks.path]).status == 0)
        let created = try muster(["token", "create", "dchen", "--data-dir", dataDir])
        #expect(created.status == 0)
        let responderToken = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(responderToken.hasPrefix("mst_"))
        let list = await request("GET", base + "/api/v1/incidents", token: responderToken)
        #expect(list.status == 200)
        #expect(list.body.contains("missing-student"))

        server.terminate()  // SIGTERM
        var exited = false
        for _ in 0..<200 where !exited {
            exited = !server.isRunning
            if !exited { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(exited)
        #expect(server.terminationStatus == 0)
    }
}
