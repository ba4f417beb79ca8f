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

/// Runs a `muster` command to completion (on the embedded store); its standard output and error.
@discardableResult
private func muster(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
    let process = Process()
    process.executableURL = try executable()
    process.arguments = arguments
    process.currentDirectoryURL = root
    var environment = ProcessInfo.processInfo.environment
    environment["MUSTER_DATABASE_URL"] = nil
    process.environment = environment
    let errors = FileManager.default.temporaryDirectory.appendingPathComponent("muster-stderr-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errors) }
    let out = Pipe()
    process.standardOutput = out
    process.standardError = try FileHandle(forWritingTo: errors)
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), (try? String(contentsOf: errors, encoding: .utf8)) ?? "")
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
        // Below Linux's ephemeral range (32768–60999): no outgoing connection of a parallel test holds it.
        let port = Int.random(in: 20_000..<32_000)
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

        let report = #"{"type":"missing-student","severity":"high","site":"washington-elementary","summary":"Not back from recess","subject":"S-CLI-7"}"#
        #expect(await request("POST", base + "/api/v1/incidents", token: token, body: report).status == 201)
        // A disclosure recorded through the API, listed for a parent's request by the command line (which records the read).
        let disclosure = #"{"recipient":"Riverbend Police Department","what":"Photo and schedule","basis":"Missing, believed at risk"}"#
        #expect(await request("POST", base + "/api/v1/incidents/1/disclosures", token: token, body: disclosure).status == 200)
        let listed = try muster(["audit", "disclosures", "--subject", "S-CLI-7", "--data-dir", dataDir, "--playbooks", playbooks.path])
        #expect(listed.status == 0, "\(listed.errors)")
        #expect(listed.output.contains("incident #1  to Riverbend Police Department"), "\(listed.output)")
        #expect(listed.output.contains("What: Photo and schedule"))
        #expect(try muster(["audit", "disclosures", "--subject", "S-OTHER", "--data-dir", dataDir, "--playbooks", playbooks.path]).output
                    .contains("No disclosures concerning S-OTHER."))

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

        // Accounts and tokens made while the service runs (a relief worker: everyone in the example
        // directory already has an account from the demonstration's first start).
        #expect(try muster(["user", "add", "relief-responder", "--role", "responder", "--site", "washington-elementary", "--data-dir", dataDir,
                            "--playbooks", playbooks.path.replacingOccurrences(of: "playbooks", with: "unused")]).status != 0)  // the playbooks must load
        try FileManager.default.copyItem(at: root.appendingPathComponent("playbooks/suicide-risk.yaml"),
                                         to: work.appendingPathComponent("fixed.yaml"))
        try FileManager.default.removeItem(at: file)
        try FileManager.default.moveItem(at: work.appendingPathComponent("fixed.yaml"), to: file)
        #expect(try muster(["user", "add", "relief-responder", "--role", "responder", "--site", "washington-elementary", "--data-dir", dataDir,
                            "--playbooks", playbooks.path]).status == 0)
        let created = try muster(["token", "create", "relief-responder", "--data-dir", dataDir])
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

        try auditCommands(dataDir: dataDir, work: work)
    }

    @Test("a first start without a bootstrap token prints no credential: a one-time sign-in link in a 0600 file")
    func firstStartWritesAOneTimeSignInLink() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("muster-first-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        // Below Linux's ephemeral range (32768–60999): no outgoing connection of a parallel test holds it.
        let port = Int.random(in: 20_000..<32_000)
        let base = "http://127.0.0.1:\(port)"
        let dataDir = work.appendingPathComponent("data").path
        let server = Process()
        server.executableURL = try executable()
        server.arguments = ["serve", "--port", "\(port)", "--data-dir", dataDir, "--playbooks", root.appendingPathComponent("playbooks").path,
                            "--demonstration-inbox"]
        var environment = ProcessInfo.processInfo.environment
        for name in ["MUSTER_BOOTSTRAP_ADMIN_TOKEN", "MUSTER_DATABASE_URL"] { environment[name] = nil }
        server.environment = environment
        let stdout = work.appendingPathComponent("stdout.log")
        _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
        server.standardOutput = try FileHandle(forWritingTo: stdout)
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        var ready = false
        for _ in 0..<300 where !ready {
            ready = await request("GET", base + "/health/ready").status == 200
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(ready)
        let banner = (try? String(contentsOf: stdout, encoding: .utf8)) ?? ""
        #expect(!banner.contains("mst_"), "no lasting credential on standard output: \(banner)")
        let file = dataDir + "/first-sign-in.txt"
        #expect(banner.contains(file))
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let link = try #require(text.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix(base + "/sign-in/link/mst_") }.map(String.init))

        // The link signs the administrator in once; the second use finds it gone.
        final class NoRedirects: NSObject, URLSessionTaskDelegate {
            func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                            newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) { completionHandler(nil) }
        }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        let session = URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
        // As a browser does: open the page (a browser cookie and the form's CSRF token), then press the button.
        func take() async throws -> (status: Int, cookie: String?) {
            let (page, opened) = try await session.data(from: try #require(URL(string: link)))
            let browser = try #require((opened as? HTTPURLResponse)?.value(forHTTPHeaderField: "Set-Cookie")?.split(separator: ";").first)
            let html = String(decoding: page, as: UTF8.self)
            let csrf = try #require(html.firstMatch(of: /name="csrf" value="([^"]+)"/)?.1)
            var request = URLRequest(url: try #require(URL(string: link)))
            request.httpMethod = "POST"
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            request.setValue(String(browser), forHTTPHeaderField: "Cookie")
            request.httpBody = Data("csrf=\(csrf)&next=%2F".utf8)
            let (_, response) = try await session.data(for: request)
            let http = try #require(response as? HTTPURLResponse)
            return (http.statusCode, http.value(forHTTPHeaderField: "Set-Cookie"))
        }
        let first = try await take()
        #expect(first.status == 303)
        #expect(first.cookie?.contains("muster_session=") == true)
        #expect(try await take().status == 410)
    }

    /// `muster audit key|verify|export` on the installation `serve` made, and on a data directory that has none.
    private func auditCommands(dataDir: String, work: URL) throws {
        let key = try muster(["audit", "key", "--data-dir", dataDir])
        #expect(key.status == 0)
        #expect(key.output.hasPrefix("muster.local/audit-log+"), "a signed-note verifier key: \(key.output)")

        let verified = try muster(["audit", "verify", "--data-dir", dataDir])
        #expect(verified.status == 0, "\(verified.errors)")
        #expect(verified.output.hasPrefix("OK: "))
        #expect(verified.output.contains("of 1 incidents"))

        let export = work.appendingPathComponent("incident-1.json").path
        #expect(try muster(["audit", "export", "--incident", "1", "--data-dir", dataDir, "--output", export]).status == 0)
        let offline = try muster(["audit", "verify", "--file", export])
        #expect(offline.status == 0, "\(offline.errors)")
        var bytes = try #require(FileManager.default.contents(atPath: export))
        let at = try #require(bytes.range(of: Data("audit-log".utf8))?.lowerBound)
        bytes[at] = UInt8(ascii: "b")  // the log's name, in the checkpoint or the key
        try bytes.write(to: URL(fileURLWithPath: export))
        let changed = try muster(["audit", "verify", "--file", export])
        #expect(changed.status == 1)
        #expect(changed.errors.hasPrefix("FAILED: "))

        let csv = try muster(["audit", "export", "--incident", "1", "--format", "csv", "--data-dir", dataDir])
        #expect(csv.status == 0)
        let rows = csv.output.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(rows.first?.hasPrefix("sequence,") == true, "a header row: \(rows.first ?? "")")
        #expect(rows.count >= 3, "the report and its pages")
        #expect(rows.dropFirst().first?.contains("reported") == true)
        #expect(csv.output.contains("Not back from recess"), "an auditor's timeline shows the unsealed text")
        // Every export is an access, recorded before it leaves: the JSON one above is on the timeline.
        #expect(csv.output.contains("exported as JSON from the command line, user "), "\(csv.output.suffix(800))")
        #expect(try muster(["audit", "export", "--incident", "1", "--as", "nobody", "--data-dir", dataDir]).status != 0)

        // A data directory with no installation: refused, and nothing is created there (no new keys, no database).
        let empty = work.appendingPathComponent("empty").path
        for command in [["audit", "verify"], ["audit", "key"], ["audit", "export", "--incident", "1"]] {
            let refused = try muster(command + ["--data-dir", empty])
            #expect(refused.status != 0)
            #expect(refused.errors.contains("does not exist"), "\(command): \(refused.errors)")
        }
        #expect(!FileManager.default.fileExists(atPath: empty))
    }

    @Test("channels come from muster.yaml: a page reaches the configured webhook signed; a mistake in the section stops the start at its line")
    func channelsFromConfiguration() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("muster-serve-channels-\(UUID().uuidString)")
        let playbooks = work.appendingPathComponent("playbooks")
        try FileManager.default.createDirectory(at: playbooks, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let newSecret = "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        // A real HTTP receiver (Python's http.server) that writes each POST's headers and body to a file.
        let received = work.appendingPathComponent("received.jsonl")
        let receiver = Process()
        // It checks each signature with the Standard Webhooks library (PyPI's standardwebhooks), with the
        // new secret and with the old one: during a rotation both must verify.
        receiver.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        receiver.arguments = ["python3", "-c", """
            import http.server, json, sys
            from standardwebhooks.webhooks import Webhook
            def verified(secret, body, headers):
                try:
                    Webhook(secret).verify(body, headers)
                    return True
                except Exception as error:
                    return str(error)
            class Hook(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    raw = self.rfile.read(int(self.headers["Content-Length"]))
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    record = {"path": self.path, "headers": headers, "body": raw.decode(),
                              "new": verified(sys.argv[2], raw, headers), "old": verified(sys.argv[3], raw, headers),
                              "stranger": verified("whsec_" + "A" * 32, raw, headers)}
                    with open(sys.argv[1], "a") as out:
                        out.write(json.dumps(record) + "\\n")
                    self.send_response(200); self.end_headers()
                def log_message(self, *args): pass
            server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
            print(server.server_port, flush=True)
            server.serve_forever()
            """, received.path, newSecret, oldSecret]
        let receiverOut = Pipe()
        receiver.standardOutput = receiverOut
        receiver.standardError = FileHandle.nullDevice
        try receiver.run()
        // SIGKILL: the child inherits the test runner's blocked signals, so SIGTERM would stay pending.
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
        let config = work.appendingPathComponent("muster.yaml")
        // Below Linux's ephemeral range (32768–60999): no outgoing connection of a parallel test holds it.
        let port = Int.random(in: 20_000..<32_000)
        try "public_url: https://muster.cli.example\nchannels:\n  webhook: { secret: \(newSecret) \(oldSecret), allow_hosts: [127.0.0.1] }\n".write(to: config, atomically: true, encoding: .utf8)

        func serve(stderr: URL) throws -> Process {
            let server = Process()
            server.executableURL = try executable()
            server.arguments = ["serve", "--port", "\(port)", "--data-dir", work.appendingPathComponent("data").path,
                                "--playbooks", playbooks.path, "--config", config.path]
            var environment = ProcessInfo.processInfo.environment
            environment["MUSTER_BOOTSTRAP_ADMIN_TOKEN"] = "mst_bootstrap_token_for_the_channels_test"
            environment["MUSTER_DATABASE_URL"] = nil
            server.environment = environment
            _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
            server.standardOutput = FileHandle.nullDevice
            server.standardError = try FileHandle(forWritingTo: stderr)
            try server.run()
            return server
        }

        let server = try serve(stderr: work.appendingPathComponent("stderr.log"))
        defer { if server.isRunning { server.terminate() } }
        var ready = false
        for _ in 0..<200 where !ready {
            ready = await request("GET", "http://127.0.0.1:\(port)/health/ready").status == 200
            if !ready { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(ready)
        let report = #"{"type":"suicide-risk","severity":"high","site":"lincoln-high","summary":"Jamie has a plan"}"#
        #expect(await request("POST", "http://127.0.0.1:\(port)/api/v1/incidents", token: "mst_bootstrap_token_for_the_channels_test", body: report).status == 201)
        var line: [String: Any]?
        for _ in 0..<200 where line == nil {
            let text = (try? String(contentsOf: received, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            if line == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let hook = try #require(line, "no webhook arrived")
        let headers = try #require(hook["headers"] as? [String: String])
        let body = try #require(hook["body"] as? String)
        #expect(hook["path"] as? String == "/hook")
        #expect(!body.contains("Jamie"))
        #expect(body.contains("\"incident\":\"https://muster.cli.example/"), "links use public_url")
        #expect(body.contains("\"acknowledge\":null") && !body.contains("/ack/"), "a webhook never carries a personal acknowledgement link")
        // Standard Webhooks' own library verifies the signature with either secret of the rotation, and no other.
        #expect(headers["webhook-id"] != nil && headers["webhook-timestamp"] != nil)
        #expect(hook["new"] as? Bool == true, "\(hook["new"] ?? "")")
        #expect(hook["old"] as? Bool == true, "\(hook["old"] ?? "")")
        #expect(hook["stranger"] as? Bool != true)
        server.terminate()
        server.waitUntilExit()

        // A mistake in the channels section: the service does not start, and says where.
        try "channels:\n  email: { host: relay.example, from: muster@cli.example, tls: startls }\n".write(to: config, atomically: true, encoding: .utf8)
        let refusedLog = work.appendingPathComponent("refused.log")
        let refused = try serve(stderr: refusedLog)
        refused.waitUntilExit()
        #expect(refused.terminationStatus != 0)
        let errors = (try? String(contentsOf: refusedLog, encoding: .utf8)) ?? ""
        #expect(errors.contains("muster.yaml:2:"), "\(errors)")
        #expect(errors.contains("did you mean 'starttls'?"))

        // A webhook target on loopback over http://, with no exception in the egress policy: refused at its contact point.
        try "channels:\n  webhook: { secret: \(newSecret) }\n".write(to: config, atomically: true, encoding: .utf8)
        let egressLog = work.appendingPathComponent("egress.log")
        let egress = try serve(stderr: egressLog)
        egress.waitUntilExit()
        #expect(egress.terminationStatus != 0)
        let egressErrors = (try? String(contentsOf: egressLog, encoding: .utf8)) ?? ""
        #expect(egressErrors.contains("directory.yaml:10:"), "\(egressErrors)")
        #expect(egressErrors.contains("webhook targets must be https://"), "\(egressErrors)")

        // A secret that is not Standard Webhooks' whsec_ form: refused, saying how to make one.
        try "channels:\n  webhook: { secret: cli-secret, allow_hosts: [127.0.0.1] }\n".write(to: config, atomically: true, encoding: .utf8)
        let secretLog = work.appendingPathComponent("secret.log")
        let badSecret = try serve(stderr: secretLog)
        badSecret.waitUntilExit()
        #expect(badSecret.terminationStatus != 0)
        #expect(((try? String(contentsOf: secretLog, encoding: .utf8)) ?? "").contains("whsec_"))
    }
}
