// The Merkle tree against published vectors (RFC 6962 / Certificate Transparency, transparency-dev's
// node hashes, a real CT log's proofs) and against a literal RFC 6962 §2.1 reference, size by size.
import Foundation
import MusterAudit
import Testing

// MARK: The RFC 6962 reference, written as the RFC states it over D[lo:hi] (slow and obviously right;
// subtree roots are remembered only so that 45,000 paths take seconds, not minutes)

private final class Reference {
    let leaves: [LogHash]
    private var roots: [Int: LogHash] = [:]

    init(_ leaves: [LogHash]) { self.leaves = leaves }

    /// MTH(D[lo:hi]): the split k is the largest power of two strictly below n.
    func root(_ lo: Int, _ hi: Int) -> LogHash {
        let n = hi - lo
        if n == 0 { return MerkleTree.emptyRoot }
        if n == 1 { return leaves[lo] }
        if let known = roots[lo << 20 | hi] { return known }
        let k = splitPoint(n)
        let root = MerkleTree.nodeHash(self.root(lo, lo + k), self.root(lo + k, hi))
        roots[lo << 20 | hi] = root
        return root
    }

    /// PATH(m, D[lo:hi]) (RFC 6962 §2.1.1), m counted from lo.
    func path(_ m: Int, _ lo: Int, _ hi: Int) -> [LogHash] {
        let n = hi - lo
        if n <= 1 { return [] }
        let k = splitPoint(n)
        if m < k { return path(m, lo, lo + k) + [root(lo + k, hi)] }
        return path(m - k, lo + k, hi) + [root(lo, lo + k)]
    }

    /// SUBPROOF(m, D[lo:hi], b) (RFC 6962 §2.1.2); PROOF(m, D[n]) is subproof(m, 0, n, true).
    func subproof(_ m: Int, _ lo: Int, _ hi: Int, _ b: Bool) -> [LogHash] {
        let n = hi - lo
        if m == n { return b ? [] : [root(lo, hi)] }
        let k = splitPoint(n)
        if m <= k { return subproof(m, lo, lo + k, b) + [root(lo + k, hi)] }
        return subproof(m - k, lo + k, hi, false) + [root(lo, lo + k)]
    }
}

private func splitPoint(_ n: Int) -> Int {
    var k = 1
    while k * 2 < n { k *= 2 }
    return k
}

// MARK: Fixtures

private func hash(_ hex: String) -> LogHash {
    guard let hash = LogHash(hex: hex) else { preconditionFailure("bad test vector \(hex)") }
    return hash
}

private func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) ?? 0 }
}

/// The Certificate Transparency test leaves (transparency-dev/merkle testonly, RFC 6962 vectors).
private let ctLeaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map(bytes(hex:))
private let ctRoots = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
].map(hash)
/// Every node of the 8-leaf tree, by level then position (transparency-dev/merkle testonly NodeHashes).
private let ctNodes: [[LogHash]] = [
    ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
].map { $0.map(hash) }

/// A log of `count` leaves ("leaf 0", "leaf 1", … as Go's TestTree) built by appending, with every
/// stored hash and the root after every append.
private struct Log {
    var leaves: [LogHash] = []
    var stored: [Int64: LogHash] = [:]
    var roots: [LogHash] = [MerkleTree.emptyRoot]
    var added: [[LogHash]] = []

    init(count: Int) {
        var range = CompactRange()
        for i in 0..<count {
            let leaf = MerkleTree.leafHash(Array("leaf \(i)".utf8))
            let start = MerkleTree.storedHashCount(size: range.size)
            let hashes = range.append(leaf)
            for (offset, h) in hashes.enumerated() { stored[start + Int64(offset)] = h }
            leaves.append(leaf)
            roots.append(range.root())
            added.append(hashes)
        }
    }

    func only(_ indices: [Int64]) -> [Int64: LogHash] {
        Dictionary(uniqueKeysWithValues: indices.compactMap { i in stored[i].map { (i, $0) } })
    }
}

private let log300 = Log(count: 300)

/// `hash` with one bit flipped.
private func flipped(_ hash: LogHash) -> LogHash {
    var raw = hash.bytes
    raw[0] ^= 1
    return LogHash(bytes: raw) ?? hash
}

@Suite("Merkle tree")
struct MerkleTreeTests {
    // MARK: Published vectors

    @Test("the Certificate Transparency reference tree: empty root, and the root of every size 1 to 8")
    func certificateTransparencyRoots() {
        #expect(MerkleTree.emptyRoot == ctRoots[0])
        #expect(MerkleTree.emptyRoot.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var range = CompactRange()
        #expect(range.root() == ctRoots[0])
        for (i, leaf) in ctLeaves.enumerated() {
            #expect(MerkleTree.leafHash(leaf) == ctNodes[0][i])
            _ = range.append(MerkleTree.leafHash(leaf))
            #expect(range.root() == ctRoots[i + 1], "root of size \(i + 1)")
        }
        // The leaf hash of the empty entry is SHA-256(0x00), the size-1 root.
        #expect(MerkleTree.leafHash([UInt8]()) == ctRoots[1])
        #expect(MerkleTree.nodeHash(ctNodes[0][0], ctNodes[0][1]) == ctNodes[1][0])
    }

    @Test("every node of the reference tree is stored at its dense index (Crosby–Wallach order, as Go's tlog)")
    func storedHashesAreTheReferenceNodes() throws {
        var range = CompactRange()
        var stored: [LogHash] = []
        for leaf in ctLeaves {
            stored += range.append(MerkleTree.leafHash(leaf))
        }
        #expect(Int64(stored.count) == MerkleTree.storedHashCount(size: 8))
        for (level, nodes) in ctNodes.enumerated() {
            for (n, node) in nodes.enumerated() {
                #expect(stored[Int(MerkleTree.storedHashIndex(level: level, index: Int64(n)))] == node, "level \(level) index \(n)")
            }
        }
        let all = Dictionary(uniqueKeysWithValues: stored.enumerated().map { (Int64($0.offset), $0.element) })
        for size in 0...8 {
            #expect(try MerkleTree.treeHash(size: Int64(size), hashes: all) == ctRoots[size])
        }
    }

    @Test("the reference inclusion proofs (RFC 6962 test vectors)",
          arguments: [
              (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
              (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
              (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
              (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
              (0, 1, []),
          ])
    func referenceInclusionProofs(index: Int, size: Int, expected: [String]) throws {
        let stored = try storedReferenceTree()
        let proof = try MerkleTree.inclusionProof(index: Int64(index), size: Int64(size), hashes: stored)
        #expect(proof == expected.map(hash))
        #expect(MerkleTree.verifyInclusion(leafHash: ctNodes[0][index], index: Int64(index), size: Int64(size), proof: proof, root: ctRoots[size]))
    }

    @Test("the reference consistency proofs (RFC 6962 test vectors)",
          arguments: [
              (1, 1, [String]()),
              (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
              (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
              (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
              (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
              (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
          ])
    func referenceConsistencyProofs(old: Int, new: Int, expected: [String]) throws {
        let stored = try storedReferenceTree()
        let proof = try MerkleTree.consistencyProof(from: Int64(old), to: Int64(new), hashes: stored)
        #expect(proof == expected.map(hash))
        #expect(MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: ctRoots[old], newRoot: ctRoots[new], proof: proof))
    }

    private func storedReferenceTree() throws -> [Int64: LogHash] {
        var range = CompactRange()
        var stored: [Int64: LogHash] = [:]
        for leaf in ctLeaves {
            let start = MerkleTree.storedHashCount(size: range.size)
            for (offset, h) in range.append(MerkleTree.leafHash(leaf)).enumerated() { stored[start + Int64(offset)] = h }
        }
        return stored
    }

    @Test("a real Certificate Transparency log's proofs verify (Google Argon 2020, as Go's ct_test.go)")
    func argon2020() throws {
        // get-sth, get-entries?start=10000&end=10000, get-proof-by-hash and get-sth-consistency?first=3654490.
        let size: Int64 = 961_984_013
        let root = try #require(LogHash(base64: "dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM="))
        let entry = try #require(Data(base64Encoded: argonEntry))
        let leaf = MerkleTree.leafHash([UInt8](entry))
        let auditPath = try argonAuditPath.map { try #require(LogHash(base64: $0)) }
        #expect(MerkleTree.verifyInclusion(leafHash: leaf, index: 10000, size: size, proof: auditPath, root: root))
        #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: 10001, size: size, proof: auditPath, root: root))
        #expect(!MerkleTree.verifyInclusion(leafHash: flipped(leaf), index: 10000, size: size, proof: auditPath, root: root))

        let oldRoot = try #require(LogHash(base64: "AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ="))
        let consistency = try argonConsistency.map { try #require(LogHash(base64: $0)) }
        #expect(MerkleTree.verifyConsistency(from: 3_654_490, to: size, oldRoot: oldRoot, newRoot: root, proof: consistency))
        #expect(!MerkleTree.verifyConsistency(from: 3_654_491, to: size, oldRoot: oldRoot, newRoot: root, proof: consistency))
        #expect(!MerkleTree.verifyConsistency(from: 3_654_490, to: size, oldRoot: flipped(oldRoot), newRoot: root, proof: consistency))
    }

    // MARK: The dense layout

    @Test("stored hash indices: the first few by hand, and split inverts them (Go's TestSplitStoredHashIndex)")
    func storedHashIndex() {
        let known: [(Int, Int64, Int64)] = [(0, 0, 0), (0, 1, 1), (1, 0, 2), (0, 2, 3), (0, 3, 4), (1, 1, 5), (2, 0, 6), (0, 4, 7)]
        for (level, n, index) in known {
            #expect(MerkleTree.storedHashIndex(level: level, index: n) == index)
        }
        for level in 0..<10 {
            for n in Int64(0)..<100 {
                let x = MerkleTree.storedHashIndex(level: level, index: n)
                let split = MerkleTree.splitStoredHashIndex(x)
                #expect(split.level == level && split.index == n, "storedHashIndex(\(level), \(n)) = \(x)")
            }
        }
        #expect(MerkleTree.storedHashCount(size: 0) == 0)
        #expect(MerkleTree.storedHashCount(size: 1) == 1)
        #expect(MerkleTree.storedHashCount(size: 2) == 3)
        #expect(MerkleTree.storedHashCount(size: 8) == 15)
        #expect(MerkleTree.storedHashCount(size: MerkleTree.maxSize) == Int64.max)
    }

    // MARK: Properties over every size 1 to 300

    @Test("appending gives exactly the stored hashes and roots that computing from scratch gives, sizes 1 to 300")
    func appendMatchesFromScratch() throws {
        let log = log300
        let reference = Reference(log.leaves)
        for size in 1...log.leaves.count {
            let oldCount = MerkleTree.storedHashCount(size: Int64(size - 1))
            let newCount = MerkleTree.storedHashCount(size: Int64(size))
            // What the append returned fills exactly the next stored indices…
            #expect(Int64(log.added[size - 1].count) == newCount - oldCount)
            // …and each is the MTH of the leaves under it.
            for index in oldCount..<newCount {
                let (level, n) = MerkleTree.splitStoredHashIndex(index)
                let lo = Int(n) << level
                let hi = lo + (1 << level)
                #expect(hi <= size)
                #expect(log.stored[index] == reference.root(lo, hi), "stored hash \(index)")
            }
            let root = reference.root(0, size)
            #expect(log.roots[size] == root, "root of size \(size)")
            // The root again, from only the stored hashes treeHash asks for.
            let needed = MerkleTree.treeHashIndices(size: Int64(size))
            #expect(try MerkleTree.treeHash(size: Int64(size), hashes: log.only(needed)) == root)
            #expect(needed.count == Int64(size).nonzeroBitCount)
        }
    }

    @Test("a compact range rebuilt from its frontier's stored hashes carries on as if never stopped")
    func compactRangeRebuilt() throws {
        let log = log300
        for size in [0, 1, 2, 3, 7, 8, 64, 100, 255, 256, 257] {
            var range = try CompactRange(size: Int64(size), hashes: log.only(CompactRange.frontierIndices(size: Int64(size))))
            #expect(range.size == Int64(size))
            #expect(range.root() == log.roots[size])
            #expect(range.frontier.count == size.nonzeroBitCount)
            var buffer: [LogHash] = []
            for next in size..<min(size + 40, log.leaves.count) {
                let start = buffer.count
                range.append(log.leaves[next], into: &buffer)
                #expect(Array(buffer[start...]) == log.added[next])
                #expect(range.root() == log.roots[next + 1])
            }
        }
        #expect(throws: MerkleTreeError.self) { try CompactRange(size: 5, hashes: [:]) }
        #expect(throws: MerkleTreeError.self) { try CompactRange(size: -1, hashes: [:]) }
    }

    @Test("every inclusion proof in every tree of size 1 to 300 is RFC 6962's PATH and verifies; a changed leaf, index, size or root does not")
    func inclusionProofs() throws {
        let log = log300
        let reference = Reference(log.leaves)
        for size in 1...log.leaves.count {
            let root = log.roots[size]
            for index in 0..<size {
                let needed = MerkleTree.inclusionProofIndices(index: Int64(index), size: Int64(size))
                #expect(needed == needed.sorted() && Set(needed).count == needed.count, "indices in increasing order, as Go reads them")
                let proof = try MerkleTree.inclusionProof(index: Int64(index), size: Int64(size), hashes: log.only(needed))
                #expect(proof == reference.path(index, 0, size))
                let leaf = log.leaves[index]
                #expect(MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(index), size: Int64(size), proof: proof, root: root))
                #expect(!MerkleTree.verifyInclusion(leafHash: flipped(leaf), index: Int64(index), size: Int64(size), proof: proof, root: root))
                #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(index), size: Int64(size), proof: proof, root: flipped(root)))
                if size > 1 {
                    let other = (index + 1) % size
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(other), size: Int64(size), proof: proof, root: root))
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(index), size: Int64(size), proof: Array(proof.dropLast()), root: root))
                }
                // Each size checked with its own root: the checkpoint's signature binds the two.
                if size < log.leaves.count {
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(index), size: Int64(size + 1), proof: proof, root: log.roots[size + 1]))
                }
                #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(index), size: Int64(size), proof: proof + [root], root: root))
                // Go's TestTree: every single corrupted proof hash is caught (checked on the smaller trees to keep the suite quick).
                if size <= 64 {
                    for k in proof.indices {
                        var bad = proof
                        bad[k] = flipped(bad[k])
                        #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: Int64(index), size: Int64(size), proof: bad, root: root))
                    }
                }
            }
        }
    }

    @Test("consistency proofs between every pair of sizes up to 64 are RFC 6962's PROOF and verify; tampered ones do not")
    func consistencyProofs() throws {
        let log = log300
        let reference = Reference(log.leaves)
        for new in 0...64 {
            for old in 0...new {
                let needed = MerkleTree.consistencyProofIndices(from: Int64(old), to: Int64(new))
                #expect(needed == needed.sorted() && Set(needed).count == needed.count)
                let proof = try MerkleTree.consistencyProof(from: Int64(old), to: Int64(new), hashes: log.only(needed))
                let oldRoot = log.roots[old]
                let newRoot = log.roots[new]
                if old > 0 {
                    #expect(proof == reference.subproof(old, 0, new, true), "proof \(old) → \(new)")
                } else {
                    #expect(proof.isEmpty)
                }
                #expect(MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: oldRoot, newRoot: newRoot, proof: proof))
                if old == new { continue }
                #expect(!MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: flipped(oldRoot), newRoot: newRoot, proof: proof))
                #expect(!MerkleTree.verifyConsistency(from: Int64(new), to: Int64(old), oldRoot: newRoot, newRoot: oldRoot, proof: proof))
                #expect(!MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: oldRoot, newRoot: newRoot, proof: proof + [newRoot]))
                // From the empty tree every new root is consistent: there is nothing to contradict.
                if old == 0 { continue }
                #expect(!MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: oldRoot, newRoot: flipped(newRoot), proof: proof))
                #expect(!MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: oldRoot, newRoot: newRoot, proof: Array(proof.dropLast())))
                // The proof for another pair of trees does not pass for this one. (A proof alone does not
                // bind a size to a root — from 32 to 63 and from 32 to 64 take the same one hash — so
                // each size is checked with its own root; the signed checkpoint binds the two.)
                #expect(!MerkleTree.verifyConsistency(from: Int64(old - 1), to: Int64(new), oldRoot: log.roots[old - 1], newRoot: newRoot, proof: proof))
                #expect(!MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new + 1), oldRoot: oldRoot, newRoot: log.roots[new + 1], proof: proof))
                for k in proof.indices {
                    var bad = proof
                    bad[k] = flipped(bad[k])
                    #expect(!MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: oldRoot, newRoot: newRoot, proof: bad))
                }
            }
        }
        // Larger gaps, checked more sparsely.
        for (old, new) in [(1, 300), (63, 300), (64, 300), (100, 257), (255, 256), (256, 300), (299, 300)] {
            let proof = try MerkleTree.consistencyProof(from: Int64(old), to: Int64(new), hashes: log.stored)
            #expect(proof == reference.subproof(old, 0, new, true))
            #expect(MerkleTree.verifyConsistency(from: Int64(old), to: Int64(new), oldRoot: log.roots[old], newRoot: log.roots[new], proof: proof))
        }
    }

    @Test("the indices functions name exactly what the computations read: any one missing is reported")
    func indicesAreExactlyWhatIsRead() throws {
        let log = log300
        for size in [1, 2, 3, 5, 8, 13, 100, 255, 256, 300] {
            let s = Int64(size)
            let cases: [(String, [Int64], ([Int64: LogHash]) throws -> Void)] = [
                ("treeHash", MerkleTree.treeHashIndices(size: s), { _ = try MerkleTree.treeHash(size: s, hashes: $0) }),
                ("inclusionProof", MerkleTree.inclusionProofIndices(index: s / 3, size: s), { _ = try MerkleTree.inclusionProof(index: s / 3, size: s, hashes: $0) }),
                ("consistencyProof", MerkleTree.consistencyProofIndices(from: (s + 1) / 2, to: s), { _ = try MerkleTree.consistencyProof(from: (s + 1) / 2, to: s, hashes: $0) }),
                ("CompactRange", CompactRange.frontierIndices(size: s), { _ = try CompactRange(size: s, hashes: $0) }),
            ]
            for (name, needed, compute) in cases {
                #expect(needed.allSatisfy { $0 < MerkleTree.storedHashCount(size: s) }, "\(name) reads only hashes the tree has")
                try compute(log.only(needed))
                for missing in needed {
                    let error = #expect(throws: MerkleTreeError.self, "\(name)(\(size)) without \(missing)") {
                        try compute(log.only(needed.filter { $0 != missing }))
                    }
                    #expect(error?.description.contains("stored hash \(missing) ") == true)
                }
            }
        }
    }

    // MARK: Bad input

    @Test("out-of-range sizes and indices throw, ask for nothing, and never verify")
    func badInput() {
        let empty: [Int64: LogHash] = [:]
        #expect(throws: MerkleTreeError.self) { try MerkleTree.treeHash(size: -1, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.treeHash(size: MerkleTree.maxSize + 1, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.inclusionProof(index: 5, size: 5, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.inclusionProof(index: -1, size: 5, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.inclusionProof(index: 0, size: Int64.max, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.consistencyProof(from: 6, to: 5, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.consistencyProof(from: -1, to: 5, hashes: empty) }
        #expect(throws: MerkleTreeError.self) { try MerkleTree.consistencyProof(from: 1, to: Int64.max, hashes: empty) }
        #expect((try? MerkleTree.treeHash(size: 0, hashes: empty)) == MerkleTree.emptyRoot)
        #expect((try? MerkleTree.consistencyProof(from: 0, to: 9, hashes: empty)) == [])

        #expect(MerkleTree.treeHashIndices(size: -1).isEmpty)
        #expect(MerkleTree.treeHashIndices(size: Int64.max).isEmpty)
        #expect(MerkleTree.inclusionProofIndices(index: 3, size: 3).isEmpty)
        #expect(MerkleTree.inclusionProofIndices(index: Int64.min, size: 3).isEmpty)
        #expect(MerkleTree.consistencyProofIndices(from: 4, to: 3).isEmpty)
        #expect(MerkleTree.consistencyProofIndices(from: 1, to: Int64.max).isEmpty)
        #expect(MerkleTree.storedHashCount(size: -5) == 0)

        let h = MerkleTree.leafHash([UInt8]())
        for (index, size) in [(Int64.max, Int64.max), (Int64.max - 1, Int64.max), (0, Int64.max), (-1, 5), (Int64.min, Int64.max), (0, 0)] {
            #expect(!MerkleTree.verifyInclusion(leafHash: h, index: index, size: size, proof: Array(repeating: h, count: 70), root: h))
        }
        for (old, new) in [(Int64.max, Int64.max), (1, Int64.max), (Int64.max - 1, Int64.max), (-1, 1), (2, 1), (0, Int64.max), (Int64.min, 0)] {
            #expect(!MerkleTree.verifyConsistency(from: old, to: new, oldRoot: h, newRoot: flipped(h), proof: Array(repeating: h, count: 70)))
        }
        // Equal sizes need equal roots and no proof; size 0 needs the empty root.
        #expect(MerkleTree.verifyConsistency(from: 4, to: 4, oldRoot: h, newRoot: h, proof: []))
        #expect(!MerkleTree.verifyConsistency(from: 4, to: 4, oldRoot: h, newRoot: h, proof: [h]))
        #expect(MerkleTree.verifyConsistency(from: 0, to: 4, oldRoot: MerkleTree.emptyRoot, newRoot: h, proof: []))
        #expect(!MerkleTree.verifyConsistency(from: 0, to: 4, oldRoot: h, newRoot: h, proof: []))
    }

    // MARK: LogHash

    @Test("a hash reads and writes as 32 bytes, lower-case hex and canonical padded base64, and nothing else")
    func logHashEncodings() throws {
        let h = MerkleTree.leafHash(Array("hello world".utf8))
        // Go's TestFormatTree: RecordHash("hello world").
        #expect(h.base64 == "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=")
        #expect(LogHash(base64: h.base64) == h)
        #expect(LogHash(hex: h.hex) == h)
        #expect(LogHash(hex: h.hex.uppercased()) == h)
        #expect(LogHash(bytes: h.bytes) == h)
        #expect(h.bytes.count == 32)
        #expect(h.description == h.base64)

        #expect(LogHash(bytes: Array(repeating: 0, count: 31)) == nil)
        #expect(LogHash(bytes: Array(repeating: 0, count: 33)) == nil)
        #expect(LogHash(hex: String(h.hex.dropLast())) == nil)
        #expect(LogHash(hex: String(h.hex.dropLast()) + "g") == nil)
        #expect(LogHash(hex: "+" + String(h.hex.dropFirst())) == nil)
        #expect(LogHash(base64: "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0") == nil, "unpadded")
        #expect(LogHash(base64: "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb1=") == nil, "non-zero trailing bits")
        #expect(LogHash(base64: "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=") == nil, "Go's too-long hash")
        #expect(LogHash(base64: " TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=") == nil)
        #expect(LogHash(base64: "") == nil)

        let set: Set<LogHash> = [h, h, flipped(h)]
        #expect(set.count == 2)
    }

    @Test("leafHash over any collection of bytes agrees with the array form")
    func leafHashOfCollections() {
        let entry = Array("an audit entry".utf8)
        let expected = MerkleTree.leafHash(entry)
        #expect(MerkleTree.leafHash(entry[...]) == expected)
        #expect(MerkleTree.leafHash(Data(entry)) == expected)
        #expect(MerkleTree.leafHash("an audit entry".utf8) == expected)
        #expect(MerkleTree.leafHash(entry.lazy.map { $0 }) == expected)
    }
}

// Google Argon 2020, from Go's sumdb/tlog/testdata/argon2020 (entries.json, proof.json, consistency.json).
private let argonEntry = "AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAxCzAJBgNVBAYTAkdCMRswGQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNVBAoTEUNPTU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQDEy1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3VyZSBTZXJ2ZXIgQ0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBfMSEwHwYDVQQLExhEb21haW4gQ29udHJvbCBWYWxpZGF0ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxhbmRsb3Jkcy5jb20uYXUwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvBz60f14gDufF2haWbOxyJ0a3opAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69HuHgzhusPf1Ytfk3ps1PRC14MkyrS4kwPrk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy56fBRKG05Fr5wNq3Acak5kYZdNsLhhmlrqAfAjiombW3hb3V5blJdRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+aifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSMEGDAWgBSQr2o6lFoL2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1UdEwEB/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcwKzApBggrBgEFBQcCARYdaHR0cHM6Ly9zZWN1cmUuY29tb2RvLmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEswSaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NPTU9ET1JTQURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0cDovL2NydC5jb21vZG9jYS5jb20vQ09NT0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggrBgEFBQcwAYYYaHR0cDovL29jc3AuY29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFuZGxvcmRzLmNvbS5hdTANBgkqhkiG9w0BAQsFAAOCAQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK2b9vvBLDWAaqm8c0YL1h+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs3UUsmShAgPwNohAtL9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXjHTeuQj6lR+TNrQXJuhwTXYe+20rrpPQxc1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbkoriN8b6jcWExtrYO6bm2TwAA"

private let argonAuditPath = [
    "T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=", "9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=",
    "D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=", "wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=",
    "516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=", "naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=",
    "mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=", "Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=",
    "yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=", "n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=",
    "go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=", "8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=",
    "6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=", "2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=",
    "nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=", "mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=",
    "JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=", "UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=",
    "hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=", "II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=",
    "d609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=", "rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=", "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=", "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=", "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=", "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
]

private let argonConsistency = [
    "80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=", "FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=",
    "Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=", "eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=",
    "QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=", "XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=",
    "SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=", "WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=",
    "QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=", "Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=",
    "mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=", "q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=",
    "jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=", "GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=",
    "x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=", "6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=",
    "Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=", "DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=",
    "2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=", "3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=",
    "s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=", "z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=", "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=", "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=", "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=", "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
]
