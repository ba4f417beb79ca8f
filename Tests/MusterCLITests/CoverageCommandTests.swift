// `muster playbook coverage` as a user runs it against the shipped playbooks: warnings at the step's
// file, line and column, the exit status, and the channels taken from the service's configuration.
import Foundation
import Testing

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs the built `muster` from the repository root with no MUSTER_ variables, so no setting leaks in.
private func muster(_ arguments: [String], in directory: URL = root) throws -> (status: Int32, stdout: String, stderr: String) {
    let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        .flatMap { [$0.appendingPathComponent("muster"), $0.deletingLastPathComponent().appendingPathComponent("muster")] }
        + [root.appendingPathComponent(".build/debug/muster")]
    let executable = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) })
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory
    process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("MUSTER_") }
    // Files, not pipes: a long list of warnings would fill a pipe that nobody reads while stdout is read.
    let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("muster-coverage-\(UUID().uuidString).out")
    let errURL = outURL.deletingPathExtension().appendingPathExtension("err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return (process.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
}

@Suite("muster playbook coverage")
struct CoverageCommandTests {
    private static let allProviders = ["--channel", "sms,voice,email", "--channel", "chat,webhook"]

    @Test("before the rotations start (August 2026) every after-hours first step has a hole: warnings at the step, exit 1")
    func gapsBeforeRotationsStart() throws {
        let run = try muster(["playbook", "coverage", "playbooks", "--from", "2026-08-10T00:00:00-05:00", "--days", "14"] + Self.allProviders)
        #expect(run.status == 1, "stderr: \(run.stderr)")
        let warnings = run.stderr.split(separator: "\n")
        #expect(warnings.count == 12, "\(run.stderr)")
        for warning in warnings {
            #expect(warning.range(of: #"^playbooks/[a-z-]+\.yaml:\d+:\d+: warning: "#, options: .regularExpression) != nil, "\(warning)")
        }
        #expect(warnings.contains { $0.hasPrefix("playbooks/suicide-risk.yaml:59:16: warning: lincoln-high, suicide-risk and self-harm (high, imminent), "
                                                  + "outside_school_hours steps of playbook suicide-risk: step 1 reaches nobody from 2026-08-10T00:00:00-05:00 "
                                                  + "to 2026-08-17T08:00:00-05:00 (America/Chicago, 176 hours): on-call:crisis-team@district: "
                                                  + "nobody on call for crisis-team at district (gap in schedule district-crisis-team)") })
        #expect(run.stdout.hasSuffix("sms, voice, email, chat and webhook: 12 gaps\n"), "\(run.stdout)")
    }

    @Test("a fall-back fortnight with every provider has no gaps: exit 0")
    func noGaps() throws {
        let run = try muster(["playbook", "coverage", "playbooks", "--from", "2026-10-26T00:00:00-05:00"] + Self.allProviders)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.isEmpty)
        #expect(run.stdout.hasSuffix(": no gaps\n"))
    }

    @Test("without --channel the providers are those the configuration file gives `muster serve`")
    func channelsFromConfiguration() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-coverage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let playbooks = root.appendingPathComponent("playbooks").path
        let arguments = ["playbook", "coverage", playbooks, "--from", "2026-10-26T00:00:00-05:00", "--days", "2"]

        // No configuration: chat only, so every step is a gap, with a note saying why.
        let bare = try muster(arguments, in: folder)
        #expect(bare.status == 1)
        #expect(bare.stderr.contains("note: no configuration gives sms, voice, email or webhook a provider"))
        #expect(bare.stderr.contains("have no provider"))
        #expect(bare.stdout.contains("channels with a provider (as `muster serve` would configure them): chat:"))

        // Twilio and an SMTP relay configured in ./muster.yaml: SMS, voice and email have providers.
        try """
            channels:
              email: { host: smtp.example, from: muster@example.org }
              twilio: { account_sid: AC0123, auth_token: secret-token, from: "+15555550100" }
            """.write(to: folder.appendingPathComponent("muster.yaml"), atomically: true, encoding: .utf8)
        let configured = try muster(arguments, in: folder)
        #expect(configured.status == 0, "stderr: \(configured.stderr)")
        #expect(configured.stdout.contains("sms, voice, email and chat: no gaps"), "\(configured.stdout)")
    }

    @Test("an unknown --channel is refused with a suggestion")
    func unknownChannel() throws {
        let run = try muster(["playbook", "coverage", "playbooks", "--channel", "sms,vioce"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("unknown channel 'vioce' in --channel; did you mean 'voice'?"))
    }
}
