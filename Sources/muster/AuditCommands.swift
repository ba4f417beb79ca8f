// `muster audit key|verify|export` and `muster retention purge` (docs/audit.md).
import ArgumentParser
import Foundation
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterRuntime
import MusterStore

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify and export the audit log.",
        subcommands: [AuditKeyCommand.self, AuditVerifyCommand.self, AuditExportCommand.self, AuditDisclosuresCommand.self]
    )
}

struct AuditKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print the audit log's verifier key (C2SP signed-note form), which checks its checkpoints and exports.")

    @Option(help: "Where the default signing key lives (when MUSTER_AUDIT_SIGNING_KEY is not set).")
    var dataDir: String = ".muster"

    func run() throws {
        print(try AuditKeys.signer(dataDir: dataDir, create: false).verifierKey)
    }
}

struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute and check the whole audit log, or check one export file with no database.",
        discussion: """
            Without --file: recomputes every entry's leaf hash, every incident's chain, the Merkle tree, every stored checkpoint's
            root and signature, and (with --witness) the checkpoints kept outside the database. Exits 1 naming the first bad entry
            or checkpoint, 0 with a one-line summary otherwise.
            With --file: checks an export from `muster audit export` (signature, proofs, chain, sealed text).
            """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "A directory of checkpoint copies (a witness) to check the log against; repeatable.")
    var witness: [String] = []
    @Option(help: "An export file to check offline.")
    var file: String?
    @Option(help: "Fail when an entry has waited for the sequencer longer than this (e.g. 10m; the sequencer of a running service signs every second).")
    var maxPending: String = "10m"
    @Option(help: "The verifier key the log or the export must be signed with (default: this installation's, from --data-dir or MUSTER_AUDIT_SIGNING_KEY; an export with neither is checked against the key it carries, with a warning).")
    var key: String?

    func run() async throws {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            do {
                // Pinned to --key, else to this installation's key when there is one here: an export
                // carrying a key of its own proves nothing about who signed it.
                let pinned = key ?? (try? AuditKeys.signer(dataDir: storeOptions.dataDir, create: false).verifierKey)
                print(try IncidentExport.verify(Array(data), pinnedKey: pinned))
            } catch {
                printError("FAILED: \(file): \(error)")
                throw ExitCode(1)
            }
            return
        }
        let verifierKey = try key ?? AuditKeys.signer(dataDir: storeOptions.dataDir, create: false).verifierKey
        let verifier: NoteVerifier
        do { verifier = try NoteVerifier(verifierKey: verifierKey) } catch { throw ValidationError("--key: \(error)") }
        let (store, description) = try storeOptions.open()
        defer { (store as? PostgresStore)?.shutdown() }
        try await requireCurrentSchema(store, description)
        let witnesses = witness.map { DirectoryWitness(directory: URL(fileURLWithPath: $0)) }
        do {
            guard let bound = TimeSpan.parse(maxPending) else { throw ValidationError("--max-pending: write a duration such as 10m") }
            print(try await AuditLogVerifier(store: store, verifiers: [verifier]).verify(witnesses: witnesses, maxPending: TimeInterval(bound.seconds), now: Date()))
        } catch let failure as AuditVerificationFailure {
            printError("FAILED: \(failure)")
            throw ExitCode(1)
        }
    }
}

struct AuditExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write one incident's audit timeline: JSON with proofs (checked by `muster audit verify --file` or scripts/verify-export.py), or CSV.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, csv
    }

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "The incident: its id or its number.")
    var incident: String
    @Option(help: "json (verifiable offline) or csv.")
    var format: Format = .json
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.")
    var output: String?
    @Option(name: .customLong("as"), help: "The account exporting (recorded in the incident's log; default: the system, with this machine's user name).")
    var account: String?
    @Option(help: "The playbook folder (the export is recorded through the incident's playbook).")
    var playbooks: String = "playbooks"

    func run() async throws {
        let (store, description) = try storeOptions.open()
        defer { (store as? PostgresStore)?.shutdown() }
        try await requireCurrentSchema(store, description)
        let id: IncidentID
        if let number = Int(incident) {
            guard let found = try await store.incidentID(number: number) else { throw ValidationError("no incident number \(number)") }
            id = found
        } else {
            id = IncidentID(incident)
        }
        let exporter = AuditExporter(store: store, verifierKey: try AuditKeys.signer(dataDir: storeOptions.dataDir, create: false).verifierKey)
        let bytes: [UInt8]
        do {
            switch format {
            case .json:
                let (export, waiting) = try await exporter.export(id)
                if waiting > 0 { printError("muster: \(waiting) newer entries are not in a checkpoint yet and were left out") }
                bytes = try export.encoded()
            case .csv:
                bytes = Array(try await exporter.csv(id).utf8)
            }
        } catch let error as ExportError {
            throw ValidationError(error.description)
        }
        try await recordExport(of: id, in: store)
        if let output {
            try Data(bytes).write(to: URL(fileURLWithPath: output), options: .atomic)
        } else {
            FileHandle.standardOutput.write(Data(bytes))
        }
    }
}

extension AuditExportCommand {
    /// Every export is an access: recorded in the incident's log (who, which form, from where) before
    /// the bytes leave. Nothing is written when it cannot be recorded.
    func recordExport(of id: IncidentID, in store: any Store) async throws {
        let format = format.rawValue.uppercased()
        if let error = try await recordFromCommandLine(as: account, playbooks: playbooks, in: store, { actor, origin in
            [(id, .exported(by: actor, format: format, from: origin))]
        }) {
            throw ValidationError("the export could not be recorded in the incident's log (\(error)); nothing was written")
        }
    }
}

/// Appends events to incidents' logs from the command line, as `--as ACCOUNT` (or the system), with the
/// machine's user as where from, through each incident's own playbook version (also one no longer in
/// the folder). The first failure, if any.
func recordFromCommandLine(as account: String?, playbooks: String, in store: any Store,
                           _ events: (Actor, String) -> [(IncidentID, IncidentEvent)]) async throws -> StoreError? {
    let actor: Actor
    if let account {
        guard let user = try await store.user(account) else { throw ValidationError("--as: no account '\(account)'") }
        actor = user.actor
    } else {
        actor = .system
    }
    let catalog = try loadCatalog(playbooks)
    let kept = try await store.keptPlaybooks().compactMap { PlaybookLoader.playbook(from: $0, directory: catalog.directory) }
    let commands = events(actor, "the command line, user " + ProcessInfo.processInfo.userName).map { IncidentCommand.event($0.0, $0.1) }
    for result in try await Dispatcher(catalog: catalog, kept: kept).outcomes(commands, to: store, now: Date()) {
        if case .failure(let error) = result { return error }
    }
    return nil
}

struct AuditDisclosuresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disclosures",
        abstract: "List every disclosure concerning one student reference (a parent's request under FERPA): pages to partner agencies with their basis, and disclosures people recorded.")

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "The student reference, as reports give it.")
    var subject: String
    @Option(name: .customLong("as"), help: "The account asking (each incident read is recorded in its log; default: the system, with this machine's user name).")
    var account: String?
    @Option(help: "The playbook folder (the reads are recorded through the incidents' playbooks).")
    var playbooks: String = "playbooks"

    func run() async throws {
        let (store, description) = try storeOptions.open()
        defer { (store as? PostgresStore)?.shutdown() }
        try await requireCurrentSchema(store, description)
        let found = try await IncidentReads(store: store).disclosures(concerningSubject: subject)
        // Each incident read is an access, recorded before anything is shown.
        let incidents = Set(found.map(\.incident.id)).sorted { $0.rawValue < $1.rawValue }
        if let error = try await recordFromCommandLine(as: account, playbooks: playbooks, in: store, { actor, origin in
            incidents.map { ($0, .accessed(by: actor, from: origin)) }
        }) {
            throw ValidationError("the read could not be recorded in an incident's log (\(error)); nothing is shown")
        }
        guard !found.isEmpty else {
            print("No disclosures concerning \(subject).")
            return
        }
        for disclosure in found {
            let record = disclosure.record
            var line = "\(AuditEntryEncoding.timestamp(record.at))  incident #\(disclosure.incident.number)  to \(disclosure.recipient)"
            if let channel = record.channel { line += " by \(channel.rawValue)" }
            line += "  (\(record.actor))"
            if let detail = record.detail { line += "\n    " + detail }
            if let statement = record.sensitive { line += "\n    " + statement.replacingOccurrences(of: "\n", with: "\n    ") }
            print(line)
        }
    }
}

struct RetentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Apply the retention policy.",
        subcommands: [RetentionPurgeCommand.self])
}

struct RetentionPurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Destroy the student text of incidents closed before a date; proofs keep verifying.",
        discussion: "Each purged incident gets a `purged` audit entry naming the policy; its data key is destroyed and scrubbed from the database files.")

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Purge incidents resolved before this date (YYYY-MM-DD, UTC midnight, or an RFC 3339 instant).")
    var closedBefore: String
    @Option(help: "The policy's name, recorded in each purge entry.")
    var policy: String = "manual"
    @Option(help: "The playbook folder (holds directory.yaml).")
    var playbooks: String = "playbooks"

    func run() async throws {
        guard let date = Self.parseDate(closedBefore) else {
            throw ValidationError("--closed-before '\(closedBefore)' is not a date (YYYY-MM-DD) or an RFC 3339 instant")
        }
        guard !policy.isEmpty, !policy.contains(where: \.isNewline) else { throw ValidationError("--policy must be one non-empty line") }
        let catalog = try loadCatalog(playbooks)
        let (store, description) = try storeOptions.open()
        defer { (store as? PostgresStore)?.shutdown() }
        try await requireCurrentSchema(store, description)
        let (purged, refused) = try await RetentionPurge(store: store, catalog: catalog).run(closedBefore: date, policy: policy)
        for (id, reason) in refused { printError("muster: incident \(id) not purged: \(reason)") }
        print("purged \(purged.count) incidents closed before \(closedBefore) under the policy '\(policy)'")
        if !refused.isEmpty { throw ExitCode(1) }
    }

    static func parseDate(_ text: String) -> Date? {
        if text.count == 10, let day = LocalDateTime.parse(text + "T00:00") { return Date(timeIntervalSince1970: TimeInterval(day.seconds)) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
