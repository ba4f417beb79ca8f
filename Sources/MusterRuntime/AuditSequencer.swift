// The sequencer: integrates committed audit entries into the Merkle tree in batches and signs a
// C2SP checkpoint of each new tree, then hands it to the witnesses that keep copies outside the
// database. Every instance runs one; the store lets only one pass at a time through (docs/audit.md).
import Foundation
import Logging
import MusterAudit
import MusterStore

/// Signs checkpoints of the log under its origin (the signer's key name).
public struct CheckpointSigner: Sendable {
    public let signer: NoteSigner
    public var origin: String { signer.name }
    public var verifierKey: String { signer.verifierKey }

    public init(_ signer: NoteSigner) {
        self.signer = signer
    }

    public func sign(size: Int64, root: LogHash) throws -> String {
        try SignedNote.sign(Checkpoint(origin: origin, size: size, root: root).text, with: [signer])
    }
}

extension LogExtension {
    /// The sequencer's computation, one for both stores: the batch's leaves appended to the tree's
    /// right edge (the new stored hashes, in Go tlog's layout), and the new tree's signed checkpoint.
    public init(_ batch: LogBatch, sign: (_ size: Int64, _ root: LogHash) throws -> String) throws {
        var tree = try CompactRange(size: batch.size, hashes: batch.frontier)
        var stored: [LogHash] = []
        stored.reserveCapacity(batch.leaves.count * 2)
        for leaf in batch.leaves { tree.append(leaf, into: &stored) }
        self.init(storedHashes: stored, size: tree.size, note: try sign(tree.size, tree.root()))
    }
}

extension AuditLogStore {
    /// One sequencer pass: up to `limit` committed entries integrated into the Merkle tree and the new
    /// tree's checkpoint, signed by `sign`, stored, in one transaction. Nil when another instance is the sequencer.
    public func integrateAuditEntries(limit: Int, now: Date,
                                      sign: @escaping @Sendable (_ size: Int64, _ root: LogHash) throws -> String) async throws -> SequencerPass? {
        try await appendToLog(limit: limit, now: now) { batch in try LogExtension(batch, sign: sign) }
    }
}

/// Keeps copies of checkpoints outside the database, so a rewritten or truncated log is caught.
public protocol CheckpointWitness: Sendable {
    var name: String { get }
    /// `log` answers consistency proofs, for witnesses that check the log only grows.
    func publish(_ checkpoint: StoredCheckpoint, log: any AuditLogStore) async throws
}

/// A directory of checkpoints: `checkpoints/SIZE` for each, and `checkpoint`, the latest.
public struct DirectoryWitness: CheckpointWitness {
    public let directory: URL
    public var name: String { "directory \(directory.path)" }

    public init(directory: URL) {
        self.directory = directory
    }

    public func publish(_ checkpoint: StoredCheckpoint, log: any AuditLogStore) async throws {
        let all = directory.appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: all, withIntermediateDirectories: true)
        let data = Data(checkpoint.note.utf8)
        try data.write(to: all.appendingPathComponent(String(checkpoint.size)), options: .atomic)
        // `checkpoint` only moves forward: another instance may have published a larger tree already.
        let latest = directory.appendingPathComponent("checkpoint")
        if let current = try? String(contentsOf: latest, encoding: .utf8), let size = Self.size(of: current), size >= checkpoint.size { return }
        try data.write(to: latest, options: .atomic)
    }

    /// Every checkpoint note the directory holds, by file name.
    public func checkpoints() throws -> [(file: String, note: String)] {
        var result: [(String, String)] = []
        let all = directory.appendingPathComponent("checkpoints")
        if let names = try? FileManager.default.contentsOfDirectory(atPath: all.path) {
            for name in names.sorted(by: { (Int64($0) ?? 0, $0) < (Int64($1) ?? 0, $1) }) {
                result.append(("checkpoints/\(name)", try String(contentsOf: all.appendingPathComponent(name), encoding: .utf8)))
            }
        }
        let latest = directory.appendingPathComponent("checkpoint")
        if FileManager.default.fileExists(atPath: latest.path) { result.append(("checkpoint", try String(contentsOf: latest, encoding: .utf8))) }
        return result
    }

    private static func size(of note: String) -> Int64? {
        let lines = note.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.count > 1 ? Int64(lines[1]) : nil
    }
}

/// The sequencer's settings.
public struct AuditLogSettings: Sendable {
    public var signer: CheckpointSigner
    public var witnesses: [any CheckpointWitness]
    /// Entries per pass; a full pass is followed by the next at once.
    public var batch: Int
    /// The pause between passes when the last one found the log caught up: well under the one second
    /// within which every entry must be under a signed checkpoint.
    public var interval: TimeInterval

    public init(signer: CheckpointSigner, witnesses: [any CheckpointWitness] = [], batch: Int = 20_000, interval: TimeInterval = 0.2) {
        self.signer = signer
        self.witnesses = witnesses
        self.batch = batch
        self.interval = interval
    }
}

struct AuditSequencer: Sendable {
    let store: any Store
    let settings: AuditLogSettings
    let clock: any MusterClock
    let observer: RuntimeObserver
    let logger: Logger

    func run() async {
        await WorkerLoop.run("audit sequencer", clock: clock, logger: logger) {
            let full = try await passOnce()
            if !full { try await clock.sleep(until: clock.now().addingTimeInterval(settings.interval)) }
        }
    }

    /// One pass; true when it filled a whole batch (more may be waiting).
    @discardableResult
    func passOnce() async throws -> Bool {
        let signer = settings.signer
        let now = clock.now()
        guard let pass = try await store.integrateAuditEntries(limit: settings.batch, now: now, sign: { try signer.sign(size: $0, root: $1) }),
              let checkpoint = pass.checkpoint else { return false }
        observer.checkpointed(pass.integrated, pass.oldestCommittedAt.map { clock.now().timeIntervalSince($0) } ?? 0)
        for witness in settings.witnesses {
            do {
                try await witness.publish(checkpoint, log: store)
            } catch {
                // The checkpoint is stored; the witness gets the next one. Say so loudly: a witness
                // that never hears anything protects nothing.
                logger.error("checkpoint \(checkpoint.size) not published to \(witness.name): \(error)")
            }
        }
        return pass.integrated >= settings.batch
    }
}
