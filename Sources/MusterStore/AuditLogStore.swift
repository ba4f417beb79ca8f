// What the transparency log needs from storage (docs/audit.md): the sequencer's pass, the stored
// tree hashes and checkpoints, and paged reads for verification and exports.
import Foundation
import MusterAudit
import MusterCore

/// What one sequencer pass did.
public struct SequencerPass: Sendable {
    /// Entries integrated into the tree by this pass.
    public var integrated: Int
    /// The checkpoint it signed and stored (nil when nothing was waiting).
    public var checkpoint: StoredCheckpoint?
    /// When the oldest entry it integrated was committed (for the commit-to-checkpoint latency).
    public var oldestCommittedAt: Date?
}

/// One audit entry as stored, with its place in the log once the sequencer has integrated it.
public struct StoredAuditEntry: Sendable, Hashable {
    public var incident: IncidentID
    public var sequence: Int
    public var action: String
    public var body: [UInt8]
    /// The leaf hash written with the entry (nil for entries written before the log existed).
    public var leafHash: [UInt8]?
    public var logIndex: Int64?
    /// The leaf hash the log holds for it, when integrated.
    public var logLeafHash: [UInt8]?
}

/// What a sequencer pass read, under the sequencer lock, after numbering its batch into the log.
public struct LogBatch: Sendable {
    /// The tree's size before the batch.
    public var size: Int64
    /// The stored hashes of the tree's right edge (`CompactRange.frontierIndices(size:)`).
    public var frontier: [Int64: LogHash]
    /// The batch's leaf hashes, in log order.
    public var leaves: [LogHash]

    public init(size: Int64, frontier: [Int64: LogHash], leaves: [LogHash]) {
        self.size = size
        self.frontier = frontier
        self.leaves = leaves
    }
}

/// What a pass adds to the log: the tree's new stored hashes (from stored index
/// `MerkleTree.storedHashCount(size:)` of the old size on) and the signed checkpoint of the new tree.
public struct LogExtension: Sendable {
    public var storedHashes: [LogHash]
    public var size: Int64
    public var note: String

    public init(storedHashes: [LogHash], size: Int64, note: String) {
        self.storedHashes = storedHashes
        self.size = size
        self.note = note
    }
}

public protocol AuditLogStore: Sendable {
    /// The store's part of a sequencer pass, in one transaction: when this instance holds the sequencer
    /// lock, numbers up to `limit` committed entries into the log in commit order, reads what the tree
    /// needs, and stores what `extend` makes of it (the new tree hashes and the signed checkpoint). Nil
    /// when another instance is the sequencer. The runtime computes the tree, once for both stores.
    func appendToLog(limit: Int, now: Date, extend: @escaping @Sendable (LogBatch) throws -> LogExtension) async throws -> SequencerPass?
    /// Committed entries not yet in the tree.
    func pendingAuditEntries() async throws -> Int
    /// Every stored checkpoint from `size` on, smallest first, at most `limit`.
    func checkpoints(fromSize size: Int64, limit: Int) async throws -> [StoredCheckpoint]
    func latestCheckpoint() async throws -> StoredCheckpoint?
    /// Stored tree hashes by stored-hash index (Go tlog's layout); absent indices are left out.
    func treeHashes(_ indices: [Int64]) async throws -> [Int64: LogHash]
    /// Stored tree hashes from stored index `from` on, in order, at most `limit` (verification).
    func treeHashes(from: Int64, limit: Int) async throws -> [LogHash]
    /// The log's leaf hashes from log index `from` on, in order, at most `limit` (verification).
    func logLeaves(from: Int64, limit: Int) async throws -> [LogHash]
    /// How many leaves the log holds now (its highest index plus one).
    func auditLogSize() async throws -> Int64
    /// Entries in (incident, sequence) order after the given position, at most `limit` (verification).
    func auditEntries(after: (incident: IncidentID, sequence: Int)?, limit: Int) async throws -> [StoredAuditEntry]
    /// One incident's entries in sequence order (exports).
    func auditEntries(of incident: IncidentID) async throws -> [StoredAuditEntry]
    /// The incident's data key, nil once purged (or for an unknown incident).
    func dataKey(of incident: IncidentID) async throws -> DataKey?
    /// Resolved incidents closed before `date` whose data key still exists, at most `limit`.
    func purgeCandidates(closedBefore date: Date, limit: Int) async throws -> [IncidentID]
    /// Makes destroyed data keys unrecoverable from the database files (VACUUM; SQLite checkpoints its WAL).
    func scrubDestroyedKeys() async throws
}

extension AuditLogStore {
    /// By counting pages of leaves; the stores answer from the index.
    public func auditLogSize() async throws -> Int64 {
        var size: Int64 = 0
        while true {
            let page = try await logLeaves(from: size, limit: 10_000)
            size += Int64(page.count)
            if page.count < 10_000 { return size }
        }
    }

    /// The RFC 6962 consistency proof from the tree of `old` leaves to that of `new`, from the stored hashes.
    public func consistencyProof(from old: Int64, to new: Int64) async throws -> [LogHash] {
        try MerkleTree.consistencyProof(from: old, to: new, hashes: try await treeHashes(MerkleTree.consistencyProofIndices(from: old, to: new)))
    }
}
