// The `muster` command as a user runs it: exit statuses, diagnostics on stderr, timelines on stdout.
import Foundation
import Testing

/// The repository root, found from this file's path.
private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the `muster` executable that `swift build` put beside the test bundle.
private func muster(_ arguments: [String], environment: [String: String]? = nil) throws -> Run {
    let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        .flatMap { [$0.appendingPathComponent("muster"), $0.deletingLastPathComponent().appendingPathComponent("muster")] }
        + [root.appendingPathComponent(".build/debug/muster")]
    guard let executable = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "muster executable (looked in \(candidates.map(\.path)))"])
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = root
    if let environment { process.environment = environment }
    // Files, not pipes: a command that fills one pipe while the test reads the other would wait for ever.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let outURL = folder.appendingPathComponent("stdout"), errURL = folder.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    defer { try? out.close(); try? err.close() }
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
               stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// A copy of the shipped playbooks in a temporary folder, to break on purpose.
private func copyOfPlaybooks() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-cli-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: root.appendingPathComponent("playbooks"), to: folder)
    return folder
}

@Suite("Command line")
struct CommandLineTests {
    @Test("serve refuses a directory with contact points no provider serves, each named at its file, line and column, until the demonstration inbox is switched on")
    func unservedContactsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-unserved-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("muster.yaml")
        try "public_url: http://127.0.0.1:9\n".write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        for name in ["MUSTER_DATABASE_URL", "MUSTER_TWILIO_AUTH_TOKEN", "MUSTER_WEBHOOK_SECRET", "MUSTER_DEMONSTRATION_INBOX"] { environment[name] = nil }
        let run = try muster(["serve", "--config", config.path, "--data-dir", folder.path, "--port", "1"], environment: environment)
        #expect(run.status != 0)
        #expect(run.stderr.contains("playbooks/directory.yaml:91:11: error: person:rdelgado's push contact point has no provider: configure channels.ntfy"),
                "\(run.stderr.prefix(3000))")
        #expect(run.stderr.contains("error: person:rdelgado's sms contact point has no provider: configure channels.twilio"))
        #expect(run.stderr.contains("switch on the demonstration inbox (--demonstration-inbox, or channels.demonstration_inbox: true)"))
        #expect(!run.stdout.contains("Muster is serving"))
    }

    @Test("serve warns when Twilio is configured and public_url is not https: its webhooks would fail their signature check")
    func twilioNeedsHTTPS() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-twilio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("muster.yaml")
        try "public_url: http://muster.district.example\nchannels:\n  twilio: { account_sid: AC123, from: \"+15555550199\" }\n"
            .write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        for name in ["MUSTER_DATABASE_URL", "MUSTER_DEMONSTRATION_INBOX", "MUSTER_PUBLIC_URL"] { environment[name] = nil }
        environment["MUSTER_TWILIO_AUTH_TOKEN"] = "twilio-auth-token"
        // It stops afterwards anyway (push and email contact points have no provider): the warning comes first.
        let run = try muster(["serve", "--config", config.path, "--data-dir", folder.path, "--port", "1"], environment: environment)
        #expect(run.stderr.contains("warning: channels.twilio is configured but public_url is http://muster.district.example"), "\(run.stderr.prefix(2000))")
        try "public_url: https://muster.district.example\nchannels:\n  twilio: { account_sid: AC123, from: \"+15555550199\" }\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let secure = try muster(["serve", "--config", config.path, "--data-dir", folder.path, "--port", "1"], environment: environment)
        #expect(!secure.stderr.contains("warning: channels.twilio"))
    }

    @Test("the demonstration inbox is refused beside a real provider: a production configuration cannot pretend to deliver")
    func demonstrationBesideProvidersRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-demo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("muster.yaml")
        try "channels:\n  demonstration_inbox: true\n  webhook: { secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }\n".write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        for name in ["MUSTER_DATABASE_URL", "MUSTER_WEBHOOK_SECRET", "MUSTER_DEMONSTRATION_INBOX"] { environment[name] = nil }
        let run = try muster(["serve", "--config", config.path, "--data-dir", folder.path, "--port", "1"], environment: environment)
        #expect(run.status != 0)
        #expect(run.stderr.contains("the demonstration inbox cannot be switched on beside real providers (webhook)"), "\(run.stderr.prefix(2000))")
        #expect(!run.stdout.contains("Muster is serving"))
    }

    @Test("user password gives a person account a new web password, printed once, and refuses unknown accounts and integrations")
    func userPassword() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-password-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_DATABASE_URL"] = nil
        // The account commands never create keys: an installation's master key, given.
        environment["MUSTER_MASTER_KEY"] = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        #expect(try muster(["migrate", "--data-dir", folder.path], environment: environment).status == 0)
        #expect(try muster(["user", "add", "ann", "--role", "responder", "--site", "lincoln-high", "--data-dir", folder.path], environment: environment).status == 0)
        #expect(try muster(["user", "add", "monitor", "--role", "integration", "--data-dir", folder.path], environment: environment).status == 0)
        let first = try muster(["user", "password", "ann", "--data-dir", folder.path], environment: environment)
        #expect(first.status == 0)
        let pattern = /ann \(.*\): new web password ([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}) \(shown once\)/
        let password = try #require(first.stdout.firstMatch(of: pattern)?.1)
        let second = try muster(["user", "password", "ann", "--data-dir", folder.path], environment: environment)
        #expect(second.stdout.firstMatch(of: pattern)?.1 != password)  // made anew each time
        #expect(try muster(["user", "password", "nobody", "--data-dir", folder.path], environment: environment).status != 0)
        let integration = try muster(["user", "password", "monitor", "--data-dir", folder.path], environment: environment)
        #expect(integration.status != 0)
        #expect(integration.stderr.contains("an integration signs in with its key"))
    }

    @Test("report prints the compliance report as JSON or a CSV table, and names a bad period, site or table")
    func complianceReport() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_DATABASE_URL"] = nil
        environment["MUSTER_MASTER_KEY"] = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        #expect(try muster(["migrate", "--data-dir", folder.path], environment: environment).status == 0)
        let json = try muster(["report", "--from", "2026-09-01", "--to", "2026-12-18", "--data-dir", folder.path], environment: environment)
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["from"] as? String == "2026-09-01T05:00:00.000Z", "midnight in the district's time zone (Chicago, daylight time)")
        #expect(object["to"] as? String == "2026-12-19T06:00:00.000Z", "the last day included")
        #expect((object["incidents"] as? [Any])?.isEmpty == true && object["drills_left_out"] as? Int == 0)
        let csv = try muster(["report", "--from", "2026-09-01", "--to", "2026-12-18", "--format", "csv", "--table", "summary", "--data-dir", folder.path],
                             environment: environment)
        #expect(csv.stdout == "site,type,incidents,acknowledged,median_acknowledged_seconds,max_acknowledged_seconds,median_first_page_seconds,resolved,"
                + "median_resolved_seconds,escalations,deadlines_missed,tasks_late,tasks_never_done,unowned_periods,unowned_seconds\r\nall,all,0,0,,,,0,,0,0,0,0,0,0.000\r\n")
        for (arguments, message) in [(["--to", "2026-02-30"], "--to: expected a date (2026-09-01) or an RFC 3339 date-time, found '2026-02-30'"),
                                     (["--to", "2026-12-18", "--site", "nowhere"], "--site: no site 'nowhere' in the directory"),
                                     (["--to", "2026-12-18", "--table", "rows"], "--table: incidents or summary, not 'rows'")] {
            let run = try muster(["report", "--from", "2026-09-01"] + arguments + ["--data-dir", folder.path], environment: environment)
            #expect(run.status != 0 && run.stderr.contains(message), "\(run.stderr)")
        }
    }

    @Test("the data directory and the database are the owner's only, and a key file others can read is refused")
    func ownerOnlyFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-modes-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        var environment = ProcessInfo.processInfo.environment
        for name in ["MUSTER_DATABASE_URL", "MUSTER_MASTER_KEY"] { environment[name] = nil }
        let data = folder.appendingPathComponent("data").path
        #expect(try muster(["migrate", "--data-dir", data], environment: environment).status == 0)
        func mode(_ path: String) throws -> Int {
            try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        }
        #expect(try mode(data) == 0o700)
        #expect(try mode(data + "/muster.sqlite") == 0o600)
        #expect(try mode(data + "/master.key") == 0o600)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: data + "/master.key")
        let refused = try muster(["user", "list", "--data-dir", data], environment: environment)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("master.key holds the master key"), "\(refused.stderr)")
        #expect(refused.stderr.contains("can be read by others (mode 644): run `chmod 600"))
    }

    @Test("serve --demo-speed is refused with PostgreSQL and out of range, before anything starts")
    func demoSpeedRefused() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/none"
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-speed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let postgres = try muster(["serve", "--demo-speed", "60", "--data-dir", folder.path, "--port", "1"], environment: environment)
        #expect(postgres.status != 0)
        #expect(postgres.stderr.contains("--demo-speed is for a demonstration on the embedded SQLite database; it is refused with PostgreSQL"))
        environment["MUSTER_DATABASE_URL"] = nil
        let tooFast = try muster(["serve", "--demo-speed", "100000", "--data-dir", folder.path, "--port", "1"], environment: environment)
        #expect(tooFast.status != 0)
        #expect(tooFast.stderr.contains("is not a speed from 1 to 3600"))
        #expect(!postgres.stdout.contains("Muster is serving") && !tooFast.stdout.contains("Muster is serving"))
    }

    @Test("serve --help lists every setting; the command line beats the environment, which beats the file; an empty variable is unset")
    func settingsPrecedence() throws {
        let help = try muster(["serve", "--help"])
        for name in ["--host / MUSTER_HOST / host", "MUSTER_DATABASE_URL / database_url", "MUSTER_MASTER_KEY", "MUSTER_TWILIO_AUTH_TOKEN",
                     "--public-url / MUSTER_PUBLIC_URL / public_url", "MUSTER_AUDIT_WITNESS_DIR / audit.witness_directory"] {
            #expect(help.stdout.contains(name), "\(name) missing from: \(help.stdout)")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-settings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("muster.yaml")
        try "playbooks: /nonexistent-from-file\n".write(to: config, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["MUSTER_DATABASE_URL"] = nil
        environment["MUSTER_CONFIG"] = config.path
        environment["MUSTER_DATA_DIR"] = folder.path
        func serve(_ variables: [String: String], options: [String] = []) throws -> String {
            let run = try muster(["serve"] + options, environment: environment.merging(variables) { _, new in new })
            #expect(run.status != 0)
            return run.stderr
        }
        #expect(try serve(["MUSTER_PLAYBOOKS": ""]).contains("/nonexistent-from-file"), "an empty variable is unset: the file's value")
        #expect(try serve(["MUSTER_PLAYBOOKS": "/nonexistent-from-env"]).contains("/nonexistent-from-env"), "the environment beats the file")
        #expect(try serve(["MUSTER_PLAYBOOKS": "/nonexistent-from-env"], options: ["--playbooks", "/nonexistent-from-option"])
            .contains("/nonexistent-from-option"), "the command line beats the environment")
        #expect(try serve(["MUSTER_PORT": "80a"]).contains("MUSTER_PORT '80a' is not a port number"))
        #expect(try serve(["MUSTER_PORT": "80a"], options: ["--port", "99999"]).contains("--port '99999' is not a port number"))
    }

    @Test("the shipped playbooks and directory lint clean: exit 0")
    func shippedPlaybooksLintClean() throws {
        let run = try muster(["playbook", "lint", "playbooks"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("no errors"))
        #expect(!run.stderr.contains("error:"))
    }

    @Test("lint prints file:line:column diagnostics and exits 1 on errors")
    func lintErrors() throws {
        let folder = try copyOfPlaybooks()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("suicide-risk.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        try text.replacingOccurrences(of: "ack_within: 3m", with: "ack_whithin: 3m").write(to: file, atomically: true, encoding: .utf8)
        let run = try muster(["playbook", "lint", folder.path])
        #expect(run.status == 1)
        let line = try #require(run.stderr.split(separator: "\n").first { $0.contains("ack_whithin") })
        #expect(line.hasPrefix(folder.path + "/suicide-risk.yaml:"))
        #expect(line.hasSuffix(": error: unknown key 'ack_whithin' in step 1; did you mean 'ack_within'?"))
    }

    @Test("lint on a folder that does not exist says so and exits 1")
    func lintMissingFolder() throws {
        let run = try muster(["playbook", "lint", "/nonexistent/playbooks"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot read the playbook folder"))
    }

    @Test("simulate --format json prints one object per line with the documented fields")
    func simulateJSON() throws {
        let run = try muster(["simulate", "--type", "suicide-risk", "--severity", "high", "--site", "lincoln-high",
                              "--at", "2026-12-02T10:00:00-06:00", "--format", "json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let objects = try run.stdout.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(objects.count > 5)
        for object in objects {
            for key in ["at", "offset_s", "kind", "step", "person", "channel", "task"] {
                #expect(object.keys.contains(key), "missing \(key) in \(object)")
            }
        }
        let first = try #require(objects.first)
        #expect(first["at"] as? String == "2026-12-02T10:00:00-06:00")
        #expect(first["offset_s"] as? Int == 0)
        #expect(objects.contains { $0["kind"] as? String == "page" && $0["step"] as? Int == 1 && $0["channel"] is String })
        #expect(objects.last?["kind"] as? String == "end")
    }

    @Test("simulate with an acknowledgement stops paging at that moment")
    func simulateWithAck() throws {
        let json = try muster(["simulate", "--type", "suicide-risk", "--severity", "high", "--site", "lincoln-high",
                               "--at", "2026-12-02T10:00:00-06:00", "--format", "json"])
        let firstPaged = try #require(json.stdout.split(separator: "\n").compactMap { line -> String? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["kind"] as? String == "page" else { return nil }
            return object["person"] as? String
        }.first)
        let run = try muster(["simulate", "--type", "suicide-risk", "--severity", "high", "--site", "lincoln-high",
                              "--at", "2026-12-02T10:00:00-06:00", "--ack", "\(firstPaged)@+2m"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("End: acknowledged by"))
        let pagesAfter = run.stdout.split(separator: "\n").filter { $0.contains(" page ") && !$0.contains("+0s") }
        #expect(pagesAfter.isEmpty, "\(pagesAfter)")
    }

    @Test("simulate refuses bad input with a clear message", arguments: [
        (["--type", "suicide-risc"], "unknown incident type 'suicide-risc'; did you mean 'suicide-risk'?"),
        (["--site", "lincon-high"], "unknown site 'lincon-high'; did you mean 'lincoln-high'?"),
        (["--at", "2026-12-02 10:00"], "bad --at '2026-12-02 10:00'"),
        (["--ack", "nobody@+2m"], "unknown person 'nobody'"),
        (["--ack", "someone"], "bad --ack 'someone': write ID@+OFFSET"),
    ])
    func simulateBadInput(override: [String], message: String) throws {
        var arguments = ["simulate", "--type", "suicide-risk", "--severity", "high", "--site", "lincoln-high", "--at", "2026-12-02T10:00:00-06:00"]
        let (flag, value) = (override[0], override[1])
        if let index = arguments.firstIndex(of: flag) { arguments[index + 1] = value } else { arguments += [flag, value] }
        let run = try muster(arguments)
        #expect(run.status != 0)
        #expect(run.stderr.contains(message), "stderr: \(run.stderr)")
    }
}
