// `muster audit verify`: recomputes every leaf from the stored bytes, every incident's chain, the
// whole tree, every stored checkpoint's root and signature, each checkpoint's consistency with the
// next, and checks the log against checkpoints kept outside the database (witnesses). It trusts
// nothing the database says about itself.
import Foundation
import MusterAudit
import MusterCore
import MusterStore

public struct AuditVerificationFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
}

public struct AuditVerificationSummary: Sendable, CustomStringConvertible {
    public var entries = 0
    public var incidents = 0
    public var treeSize: Int64 = 0
    public var checkpoints = 0
    public var witnessCheckpoints = 0
    /// Consecutive checkpoints whose consistency proof verified.
    public var consistencyProofs = 0
    /// Committed entries the sequencer has not integrated yet (checked, but in no checkpoint).
    public var pending = 0
    /// When the oldest of them was written.
    public var oldestPending: Date?

    public var description: String {
        "OK: \(entries) audit entries of \(incidents) incidents; tree of \(treeSize) leaves matches \(checkpoints) signed checkpoints"
            + (consistencyProofs > 0 ? ", each consistent with the next" : "")
            + (witnessCheckpoints > 0 ? " and \(witnessCheckpoints) witness checkpoints" : "")
            + (pending > 0 ? "; \(pending) entries await the sequencer" : "")
    }
}

public struct AuditLogVerifier: Sendable {
    let store: any Store
    let verifiers: [NoteVerifier]
    let page: Int

    /// `verifiers`: the keys checkpoints must be signed with (the log's verifier key).
    public init(store: any Store, verifiers: [NoteVerifier], page: Int = 20_000) {
        self.store = store
        self.verifiers = verifiers
        self.page = page
    }

    /// Verifies everything, and fails when an entry has waited for the sequencer longer than
    /// `maxPending` at `now`: a log nothing integrates any more proves nothing new.
    public func verify(witnesses: [DirectoryWitness] = [], maxPending: TimeInterval, now: Date) async throws -> AuditVerificationSummary {
        let summary = try await verify(witnesses: witnesses)
        if let oldest = summary.oldestPending, now.timeIntervalSince(oldest) > maxPending {
            throw fail("\(summary.pending) entries are not in the tree; the oldest was written \(AuditEntryEncoding.timestamp(oldest)), "
                       + "\(Int(now.timeIntervalSince(oldest))) s ago (the bound is \(Int(maxPending)) s): is a sequencer running (muster serve)?")
        }
        return summary
    }

    public func verify(witnesses: [DirectoryWitness] = []) async throws -> AuditVerificationSummary {
        // The entries and the tree are checked side by side (each pass keeps a core and the database busy).
        // On a running service the sequencer adds leaves meanwhile: the log's size is read once the
        // checkpoints are (none covers more), before either pass, and the passes stop there: an entry with an
        // index below it was in the log before the entries were read.
        let roots = try await expectedRoots(witnesses: witnesses)
        let bound = try await store.auditLogSize()
        async let entries = verifyEntries()
        async let tree = verifyTree(roots, bound: bound)
        var summary: AuditVerificationSummary
        let inLog: [Int64]
        let size: Int64, proofs: Int
        do {
            (summary, inLog) = try await entries
            (size, proofs) = try await tree
        } catch let gap as AuditLogGap {
            // A row missing from the log or its stored hashes: deleted behind the triggers.
            throw fail("\(gap.description): rows were deleted from the log")
        }
        let counted = Int64(inLog.lazy.filter { $0 < size }.count)
        guard counted == size else {
            throw fail("the log holds \(size) leaves but \(counted) stored entries are in it: entries were deleted or added behind its back")
        }
        summary.treeSize = size
        summary.checkpoints = roots.checkpoints
        summary.witnessCheckpoints = roots.witnessed
        summary.consistencyProofs = proofs
        return summary
    }

    private func fail(_ message: String) -> AuditVerificationFailure { AuditVerificationFailure(description: message) }

    /// Every entry's bytes, leaf hash and place in its incident's chain, in (incident, sequence) order.
    /// Also the log index of every entry found in the log.
    private func verifyEntries() async throws -> (AuditVerificationSummary, [Int64]) {
        var summary = AuditVerificationSummary()
        var last: (incident: IncidentID, sequence: Int, leaf: LogHash)?
        var inLog: [Int64] = []
        let (store, page) = (store, page)
        var next = Task { try await store.auditEntries(after: nil, limit: page) }
        while true {
            let entries = try await next.value
            // The next page is read while this one is checked.
            if let final = entries.last, entries.count == page {
                next = Task { try await store.auditEntries(after: (final.incident, final.sequence), limit: page) }
            }
            for entry in entries {
                // Built only when something is wrong: most entries are fine, and this runs a million times.
                func name() -> String {
                    "entry \(entry.logIndex.map { "at log index \($0)" } ?? "(not yet in the log)") of incident \(entry.incident) #\(entry.sequence) (\(entry.action))"
                }
                let leaf = MerkleTree.leafHash(entry.body)
                if let written = entry.leafHash, !leaf.matches(written) { throw fail("\(name()): its bytes do not match the leaf hash written with them") }
                if let logged = entry.logLeafHash, !leaf.matches(logged) { throw fail("\(name()): its bytes do not hash to its leaf in the log") }
                let fields: EntryFields
                do { fields = try EntryFields(entry.body) } catch { throw fail("\(name()): \(error)") }
                guard fields.isString("incident", entry.incident.rawValue), fields.int("seq") == entry.sequence,
                      fields.isString("action", entry.action) else { throw fail("\(name()): its bytes name another incident, sequence or action") }
                let version = fields.int("v") ?? 0
                guard version == 1 || version == 2 else { throw fail("\(name()): unknown encoding version \(version)") }
                if let last, last.incident == entry.incident {
                    guard entry.sequence == last.sequence + 1 else {
                        throw fail("\(name()): entries \(last.sequence + 1)…\(entry.sequence - 1) of the incident are missing")
                    }
                    if version == 2, !fields.isHex("prev", of: last.leaf) {
                        throw fail("\(name()): its prev is not the leaf hash of entry #\(last.sequence): the chain is broken")
                    }
                } else {
                    guard entry.sequence == 1 else { throw fail("\(name()): the incident's entries 1…\(entry.sequence - 1) are missing") }
                    guard fields.string("prev") == nil else { throw fail("\(name()): the first entry of an incident names a previous one") }
                    summary.incidents += 1
                }
                if let index = entry.logIndex {
                    inLog.append(index)
                } else {
                    summary.pending += 1
                    if let at = try? AuditEntryEncoding.decode(entry.body).record.at, at < summary.oldestPending ?? .distantFuture {
                        summary.oldestPending = at
                    }
                }
                summary.entries += 1
                last = (entry.incident, entry.sequence, leaf)
            }
            guard entries.count == page else { break }
        }
        return (summary, inLog)
    }

    /// The roots the log's tree must have at each size, and how many stored and witness checkpoints gave them.
    private struct ExpectedRoots {
        var bySize: [Int64: [(what: String, root: LogHash)]] = [:]
        var checkpoints = 0, witnessed = 0
    }

    /// The roots to check, by tree size: stored checkpoints, then witness copies.
    private func expectedRoots(witnesses: [DirectoryWitness]) async throws -> ExpectedRoots {
        var roots = ExpectedRoots()
        var from: Int64 = 0
        while true {
            let batch = try await store.checkpoints(fromSize: from, limit: page)
            for stored in batch {
                let checkpoint = try open(stored.note, what: "stored checkpoint \(stored.size)")
                guard checkpoint.size == stored.size else { throw fail("stored checkpoint \(stored.size) signs a tree of \(checkpoint.size)") }
                roots.bySize[checkpoint.size, default: []].append(("stored checkpoint \(stored.size)", checkpoint.root))
                roots.checkpoints += 1
            }
            guard let last = batch.last, batch.count == page else { break }
            from = last.size + 1
        }
        for witness in witnesses {
            for (file, note) in try witness.checkpoints() {
                let what = "witness checkpoint \(witness.directory.appendingPathComponent(file).path)"
                let checkpoint = try open(note, what: what)
                roots.bySize[checkpoint.size, default: []].append((what, checkpoint.root))
                roots.witnessed += 1
            }
        }
        return roots
    }

    /// The tree recomputed from the log's first `bound` leaves, against every stored hash and the expected roots.
    /// The log's size, and how many consistency proofs were checked.
    private func verifyTree(_ roots: ExpectedRoots, bound: Int64) async throws -> (Int64, Int) {
        let expected = roots.bySize
        var tree = CompactRange()
        var storedIndex: Int64 = 0
        var storedPage: [LogHash] = [], storedOffset = 0
        func check() throws {
            for (what, root) in expected[tree.size] ?? [] where root != tree.root() {
                throw fail("\(what): its root is not the root of the log's first \(tree.size) entries: the log was changed")
            }
        }
        try check()
        let (store, page) = (store, page)
        var nextLeaves = Task { try await store.logLeaves(from: 0, limit: Int(min(Int64(page), bound))) }
        var nextStored = Task { try await store.treeHashes(from: 0, limit: page) }
        while true {
            // Each next page is read while this one is checked.
            let leaves = try await nextLeaves.value
            let read = tree.size + Int64(leaves.count)
            if leaves.count == page, read < bound {
                nextLeaves = Task { [from = read] in try await store.logLeaves(from: from, limit: Int(min(Int64(page), bound - from))) }
            }
            for leaf in leaves {
                for hash in tree.append(leaf) {
                    if storedOffset == storedPage.count {
                        storedPage = try await nextStored.value
                        nextStored = Task { [from = storedIndex + Int64(storedPage.count)] in try await store.treeHashes(from: from, limit: page) }
                        storedOffset = 0
                        guard !storedPage.isEmpty else { throw fail("stored tree hash \(storedIndex) is missing") }
                    }
                    guard storedPage[storedOffset] == hash else {
                        throw fail("stored tree hash \(storedIndex) (for log index \(tree.size - 1)) is not what the log's leaves give")
                    }
                    storedOffset += 1
                    storedIndex += 1
                }
                try check()
            }
            if leaves.count < page || tree.size >= bound { break }
        }
        if let beyond = expected.keys.filter({ $0 > tree.size }).min(), let what = expected[beyond]?.first?.what {
            throw fail("\(what) covers \(beyond) entries but the log holds only \(tree.size): the log was truncated")
        }
        let proofs = try await checkConsecutiveCheckpoints(expected)
        return (tree.size, proofs)
    }

    /// Each stored checkpoint is consistent with the next (RFC 6962 §2.1.2), as a witness checks it:
    /// the later tree contains the earlier one unchanged. Proofs come from the stored hashes, which the
    /// tree pass checks against the leaves.
    private func checkConsecutiveCheckpoints(_ expected: [Int64: [(what: String, root: LogHash)]]) async throws -> Int {
        let signed = expected.compactMap { size, roots in roots.first.map { (size: size, what: $0.what, root: $0.root) } }
            .sorted { $0.size < $1.size }
        var checked = 0
        for (older, newer) in zip(signed, signed.dropFirst()) where older.size > 0 {
            let proof: [LogHash]
            do { proof = try await store.consistencyProof(from: older.size, to: newer.size) } catch {
                throw fail("\(newer.what): no consistency proof from \(older.what) (\(error))")
            }
            guard MerkleTree.verifyConsistency(from: older.size, to: newer.size, oldRoot: older.root, newRoot: newer.root, proof: proof) else {
                throw fail("\(newer.what) is not consistent with \(older.what): the log was rewritten between them")
            }
            checked += 1
        }
        return checked
    }

    private func open(_ note: String, what: String) throws -> Checkpoint {
        do {
            let (text, _) = try SignedNote.open(note, verifiers: verifiers)
            return try Checkpoint.parse(text)
        } catch {
            throw fail("\(what): \(error)")
        }
    }
}
