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

public protocol AuditLogStore: Sendable {
    /// One sequencer pass: when this instance holds the sequencer lock, integrates up to `limit`
    /// committed entries into the Merkle tree (log indices, stored hashes) and stores the checkpoint
    /// `sign` makes of the new tree (size, root), all in one transaction. Nil when another instance is the sequencer.
    func integrateAuditEntries(limit: Int, now: Date, sign: @escaping @Sendable (_ size: Int64, _ root: LogHash) throws -> String) async throws -> SequencerPass?
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
    /// The RFC 6962 consistency proof from the tree of `old` leaves to that of `new`, from the stored hashes.
    public func consistencyProof(from old: Int64, to new: Int64) async throws -> [LogHash] {
        try MerkleTree.consistencyProof(from: old, to: new, hashes: try await treeHashes(MerkleTree.consistencyProofIndices(from: old, to: new)))
    }
}
