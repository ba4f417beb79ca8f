// The sequencer's computation without a database: what a pass adds to the log, in batches, is the
// RFC 6962 tree of every leaf, whatever the batches were.
import Foundation
import MusterAudit
import MusterRuntime
import MusterStore
import Testing

/// MTH(D[n]) as RFC 6962 §2.1 defines it, written out here independently of the tree code.
private func referenceRoot(_ leaves: ArraySlice<LogHash>) -> LogHash {
    if leaves.count == 1, let only = leaves.first { return only }
    var split = 1
    while split * 2 < leaves.count { split *= 2 }
    let middle = leaves.startIndex + split
    return MerkleTree.nodeHash(referenceRoot(leaves[..<middle]), referenceRoot(leaves[middle...]))
}

@Suite("Sequencer pass")
struct SequencerPassTests {
    @Test("batches of any size extend the stored tree to the RFC 6962 root of all the leaves, and that root is what is signed",
          arguments: [[13], [5, 8], [1, 1, 1, 10], [8, 8, 1]])
    func batchesExtendTheTree(batches: [Int]) throws {
        let leaves = (0..<batches.reduce(0, +)).map { MerkleTree.leafHash(Array("entry \($0)".utf8)) }
        var stored: [Int64: LogHash] = [:]
        var size: Int64 = 0
        for count in batches {
            let frontier = Dictionary(uniqueKeysWithValues: CompactRange.frontierIndices(size: size).compactMap { index in stored[index].map { (index, $0) } })
            let batch = LogBatch(size: size, frontier: frontier, leaves: Array(leaves[Int(size)..<Int(size) + count]))
            nonisolated(unsafe) var signedRoot: LogHash?
            let added = try LogExtension(batch) { newSize, root in
                signedRoot = root
                return "checkpoint \(newSize)"
            }
            let first = MerkleTree.storedHashCount(size: size)
            for (offset, hash) in added.storedHashes.enumerated() { stored[first + Int64(offset)] = hash }
            size += Int64(count)
            #expect(added.size == size && added.note == "checkpoint \(size)")
            #expect(signedRoot == referenceRoot(leaves[..<Int(size)]))
            #expect(try MerkleTree.treeHash(size: size, hashes: stored) == referenceRoot(leaves[..<Int(size)]))
        }
        #expect(Int64(stored.count) == MerkleTree.storedHashCount(size: size))
    }
}
