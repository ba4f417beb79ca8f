// The audit log's Merkle tree: RFC 6962 §2.1 hashes and proofs, RFC 9162 §2.1.3.2 / §2.1.4.2 verification, and Go
// sumdb/tlog's dense stored-hash layout, in two phases for async storage: which stored hashes, then compute from them.
import Crypto
import Foundation

/// A SHA-256 hash: a leaf, an interior node or a tree root.
public struct LogHash: Hashable, Sendable, CustomStringConvertible {
    // Held inline as four words rather than as a [UInt8]: a tree of millions of hashes then costs no
    // allocation per hash, and equality and hashing are four integer operations. The words hold the
    // digest's bytes in memory order (a tuple's layout is contiguous).
    @usableFromInline internal let words: (UInt64, UInt64, UInt64, UInt64)

    @inlinable internal init(rawBytes: UnsafeRawBufferPointer) {
        precondition(rawBytes.count == 32, "a LogHash is 32 bytes")
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: rawBytes) }
        self.words = words
    }

    @inlinable internal init(_ digest: SHA256Digest) {
        self = digest.withUnsafeBytes { LogHash(rawBytes: $0) }
    }

    /// Whether `bytes` are exactly this hash's 32 bytes (compared in place).
    public func matches(_ bytes: [UInt8]) -> Bool {
        bytes.count == 32 && withUnsafeBytes(of: words) { $0.elementsEqual(bytes) }
    }

    /// The 32 bytes; nil for any other length (read in place, as from a database row).
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 32 else { return nil }
        self.init(rawBytes: bytes)
    }

    /// The 32 bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self = bytes.withUnsafeBytes { LogHash(rawBytes: $0) }
    }

    /// 64 hexadecimal digits (either case); nil for anything else.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 {
            guard let high = hexValue(utf8[2 * i]), let low = hexValue(utf8[2 * i + 1]) else { return nil }
            bytes[i] = high << 4 | low
        }
        self.init(bytes: bytes)
    }

    /// Standard base64 (RFC 4648 §4) of 32 bytes, in its one canonical spelling: 44 characters, padded.
    /// Non-canonical spellings are refused so that a checkpoint's text is unique for its tree.
    public init?(base64: String) {
        guard let bytes = Base64.decodeCanonical(base64), bytes.count == 32 else { return nil }
        self.init(bytes: bytes)
    }

    /// The 32 bytes, in order.
    public var bytes: [UInt8] { withUnsafeBytes(of: words) { Array($0) } }

    /// Lower-case hexadecimal.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        withUnsafeBytes(of: words) { raw in
            for byte in raw {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard padded base64, as checkpoints and tlog-proofs carry hashes.
    public var base64: String { withUnsafeBytes(of: words) { Data($0).base64EncodedString() } }

    public var description: String { base64 }

    public static func == (lhs: LogHash, rhs: LogHash) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Standard base64 (RFC 4648 §4), decoded only from its canonical spelling.
enum Base64 {
    /// Foundation's decoder accepts some spellings that are not what an encoder writes (non-zero
    /// trailing bits); re-encoding and comparing refuses those, so every value has one text form.
    static func decodeCanonical(_ text: String) -> [UInt8]? {
        guard let data = Data(base64Encoded: text), data.base64EncodedString() == text else { return nil }
        return [UInt8](data)
    }

    static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        Data(bytes).base64EncodedString()
    }
}

/// Bad input to a tree computation: a size or index out of range, or a stored hash that was not supplied.
public struct MerkleTreeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Pure functions over the stored hashes. The hashes live in a database read asynchronously, so each
/// computation comes in two phases: `…Indices` names the stored hashes it needs, and the computation
/// reads exactly those from a dictionary.
public enum MerkleTree: Sendable {
    /// The largest tree size accepted. The dense index of leaf n is about 2n, and it must fit in an
    /// Int64 with room to spare; no real log comes near this.
    public static let maxSize: Int64 = 1 << 62

    // MARK: RFC 6962 §2.1 hashing

    /// SHA-256(0x00 ‖ entry): the leaf hash, domain-separated from interior nodes.
    public static func leafHash<Bytes: Collection>(_ entry: Bytes) -> LogHash where Bytes.Element == UInt8 {
        var hasher = SHA256()
        withUnsafeBytes(of: UInt8(0x00)) { hasher.update(data: $0) }
        let hashedInPlace: Void? = entry.withContiguousStorageIfAvailable { hasher.update(data: UnsafeRawBufferPointer($0)) }
        if hashedInPlace == nil {
            hasher.update(data: Array(entry))
        }
        return LogHash(hasher.finalize())
    }

    /// SHA-256(0x01 ‖ left ‖ right): an interior node.
    public static func nodeHash(_ left: LogHash, _ right: LogHash) -> LogHash {
        // One 65-byte buffer on the stack and one update: the sequencer and the verifier spend most
        // of their time here, so no heap buffer is assembled per node.
        withUnsafeTemporaryAllocation(byteCount: 65, alignment: 8) { buffer in
            buffer[0] = 0x01
            withUnsafeBytes(of: left.words) { UnsafeMutableRawBufferPointer(rebasing: buffer[1..<33]).copyMemory(from: $0) }
            withUnsafeBytes(of: right.words) { UnsafeMutableRawBufferPointer(rebasing: buffer[33..<65]).copyMemory(from: $0) }
            return LogHash(SHA256.hash(data: UnsafeRawBufferPointer(buffer)))
        }
    }

    /// MTH({}) = SHA-256() (RFC 6962 §2.1). Go's tlog uses all zeros here; RFC 6962 is followed instead.
    public static let emptyRoot: LogHash = LogHash(SHA256.hash(data: [UInt8]()))

    // MARK: The stored-hash layout (Go sumdb/tlog)

    /// The dense index of the hash of level `level`, position `index` (leaves are level 0): level L's
    /// n-th hash is stored right after level L+1's (2n+1)-th, so an append writes its new hashes
    /// contiguously. Callers pass level in 0...62 and a non-negative index within `maxSize`.
    public static func storedHashIndex(level: Int, index: Int64) -> Int64 {
        // Checked before shifting: a shift drops overflowing bits silently instead of trapping.
        precondition(level >= 0 && level < 63 && index >= 0 && index < maxSize >> level,
                     "storedHashIndex(level: \(level), index: \(index)) is outside the tree")
        // Work down to the level-0 ordering: the last leaf under this node is n' = (n+1)·2^L − 1.
        let last = ((index + 1) << level) - 1
        // Level 0's n-th hash is at n + n/2 + n/4 + … = 2n − popcount(n).
        return 2 * last - Int64(last.nonzeroBitCount) + Int64(level)
    }

    /// The inverse of `storedHashIndex`. Callers pass a non-negative index.
    public static func splitStoredHashIndex(_ storedIndex: Int64) -> (level: Int, index: Int64) {
        precondition(storedIndex >= 0, "stored hash index \(storedIndex) is negative")
        // storedHashIndex(0, n) ≤ 2n, so the leaf whose append wrote this hash is in [index/2, index/2 + log₂ index].
        var n = storedIndex / 2
        var indexN = storedHashIndex(level: 0, index: n)
        precondition(indexN <= storedIndex, "bad math in splitStoredHashIndex")
        while true {
            // Appending leaf n+1 adds 1 + trailingZeros(n+1) hashes after leaf n's.
            let next = indexN + 1 + Int64((n + 1).trailingZeroBitCount)
            if next > storedIndex { break }
            n += 1
            indexN = next
        }
        // The hash was written with leaf n: it is one of (0, n), (1, n/2), (2, n/4), …
        let level = Int(storedIndex - indexN)
        return (level, n >> level)
    }

    /// How many hashes are stored for a tree of `size` leaves (0 for a size out of range).
    public static func storedHashCount(size: Int64) -> Int64 {
        guard size > 0 && size <= maxSize else { return 0 }
        // Everything up to the last leaf's hash, then the subtrees that leaf completed.
        let last = size - 1
        return storedHashIndex(level: 0, index: last) + 1 + Int64((~last).trailingZeroBitCount)
    }

    // MARK: Tree hash (RFC 6962 §2.1 MTH)

    /// The stored hashes `treeHash` reads: the perfect subtrees covering [0, size), largest first;
    /// at most 1 + log₂ size. Empty for size 0 (the empty root needs nothing) or a size out of range.
    public static func treeHashIndices(size: Int64) -> [Int64] {
        guard size > 0 && size <= maxSize else { return [] }
        var need: [Int64] = []
        need.reserveCapacity(size.nonzeroBitCount)
        subTreeIndex(0, size, &need)
        return need
    }

    /// MTH of the first `size` leaves, from the hashes at `treeHashIndices(size:)`.
    public static func treeHash(size: Int64, hashes: [Int64: LogHash]) throws -> LogHash {
        try checkSize(size)
        if size == 0 { return emptyRoot }
        let read = try lookUp(treeHashIndices(size: size), in: hashes)
        var cursor = 0
        let root = subTreeHash(0, size, read, &cursor)
        precondition(cursor == read.count, "bad index math in treeHash")
        return root
    }

    // MARK: Inclusion proofs (RFC 6962 §2.1.1 audit path)

    /// The stored hashes `inclusionProof` reads; empty when the arguments are out of range.
    public static func inclusionProofIndices(index: Int64, size: Int64) -> [Int64] {
        guard index >= 0 && index < size && size <= maxSize else { return [] }
        var need: [Int64] = []
        leafProofIndex(0, size, index, &need)
        return need
    }

    /// The audit path of leaf `index` in the tree of `size` leaves: the leaf's sibling first, the
    /// root's child last.
    public static func inclusionProof(index: Int64, size: Int64, hashes: [Int64: LogHash]) throws -> [LogHash] {
        try checkSize(size)
        guard index >= 0 && index < size else {
            throw MerkleTreeError("leaf index \(index) is not in a tree of size \(size)")
        }
        let read = try lookUp(inclusionProofIndices(index: index, size: size), in: hashes)
        var cursor = 0
        var proof: [LogHash] = []
        leafProof(0, size, index, read, &cursor, &proof)
        precondition(cursor == read.count, "bad index math in inclusionProof")
        return proof
    }

    /// RFC 9162 §2.1.3.2: whether `proof` shows the leaf with hash `leafHash` at `index` in the tree
    /// of `size` leaves whose root is `root`. Any input is safe: a bad one is simply not a proof.
    public static func verifyInclusion(leafHash: LogHash, index: Int64, size: Int64, proof: [LogHash], root: LogHash) -> Bool {
        guard index >= 0 && index < size else { return false }
        var fn = UInt64(index)
        var sn = UInt64(size - 1)
        var r = leafHash
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    // MARK: Consistency proofs (RFC 6962 §2.1.2)

    /// The stored hashes `consistencyProof` reads; empty when the arguments are out of range or when
    /// the proof is empty by definition (old size 0, or equal sizes).
    public static func consistencyProofIndices(from oldSize: Int64, to newSize: Int64) -> [Int64] {
        guard oldSize > 0 && oldSize <= newSize && newSize <= maxSize else { return [] }
        var need: [Int64] = []
        treeProofIndex(0, newSize, oldSize, &need)
        return need
    }

    /// The proof that the tree of `newSize` leaves extends the tree of `oldSize` leaves. Empty when
    /// oldSize is 0 (the empty tree is a prefix of every tree) or equals newSize.
    public static func consistencyProof(from oldSize: Int64, to newSize: Int64, hashes: [Int64: LogHash]) throws -> [LogHash] {
        try checkSize(newSize)
        guard oldSize >= 0 && oldSize <= newSize else {
            throw MerkleTreeError("no consistency proof from size \(oldSize) to size \(newSize): the old size must be in 0...\(newSize)")
        }
        if oldSize == 0 { return [] }
        let read = try lookUp(consistencyProofIndices(from: oldSize, to: newSize), in: hashes)
        var cursor = 0
        var proof: [LogHash] = []
        treeProof(0, newSize, oldSize, read, &cursor, &proof)
        precondition(cursor == read.count, "bad index math in consistencyProof")
        return proof
    }

    /// RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `newSize` leaves with root `newRoot`
    /// extends the tree of `oldSize` leaves with root `oldRoot`. Equal sizes need equal roots and an
    /// empty proof; size 0 needs the empty root and an empty proof. Any input is safe.
    public static func verifyConsistency(from oldSize: Int64, to newSize: Int64, oldRoot: LogHash, newRoot: LogHash, proof: [LogHash]) -> Bool {
        guard oldSize >= 0 && oldSize <= newSize else { return false }
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        if oldSize == 0 { return proof.isEmpty && oldRoot == emptyRoot }
        guard let first = proof.first else { return false }
        // When the old tree is a perfect subtree, its root is the path's implicit first element.
        let oldIsPerfect = oldSize & (oldSize - 1) == 0
        var fr = oldIsPerfect ? oldRoot : first
        var sr = fr
        var fn = UInt64(oldSize - 1)
        var sn = UInt64(newSize - 1)
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        for c in proof.dropFirst(oldIsPerfect ? 0 : 1) {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == oldRoot && sr == newRoot && sn == 0
    }

    // MARK: Internals, ported from Go's tlog.go

    static func checkSize(_ size: Int64) throws {
        guard size >= 0 && size <= maxSize else {
            throw MerkleTreeError("tree size \(size) is out of range (0...\(maxSize))")
        }
    }

    /// The hashes at `indices`, in that order; a missing one is the caller's mistake, said precisely.
    static func lookUp(_ indices: [Int64], in hashes: [Int64: LogHash]) throws -> [LogHash] {
        var out: [LogHash] = []
        out.reserveCapacity(indices.count)
        for index in indices {
            guard let hash = hashes[index] else {
                let (level, position) = splitStoredHashIndex(index)
                throw MerkleTreeError("stored hash \(index) (level \(level), index \(position)) is needed but was not supplied")
            }
            out.append(hash)
        }
        return out
    }

    /// The largest power of two strictly below n (n ≥ 2): RFC 6962's split point k.
    @inline(__always) static func maxPow2Below(_ n: Int64) -> Int64 {
        precondition(n >= 2, "bad math in maxPow2Below")
        return 1 << (63 - (n - 1).leadingZeroBitCount)
    }

    /// Appends the stored indices of the perfect subtrees covering leaves [lo, hi), left to right.
    static func subTreeIndex(_ lo: Int64, _ hi: Int64, _ need: inout [Int64]) {
        var lo = lo
        while lo < hi {
            let k = maxPow2Below(hi - lo + 1)  // the largest power of two ≤ hi − lo
            let level = k.trailingZeroBitCount
            precondition(lo & (k - 1) == 0, "bad math in subTreeIndex")
            need.append(storedHashIndex(level: level, index: lo >> level))
            lo += k
        }
    }

    /// MTH of leaves [lo, hi) from the hashes `subTreeIndex(lo, hi)` named, read from `hashes` at `cursor`.
    static func subTreeHash(_ lo: Int64, _ hi: Int64, _ hashes: [LogHash], _ cursor: inout Int) -> LogHash {
        var numTree = 0
        var at = lo
        while at < hi {
            at += maxPow2Below(hi - at + 1)
            numTree += 1
        }
        precondition(numTree > 0 && cursor + numTree <= hashes.count, "bad index math in subTreeHash")
        // The right edge folds from the right: the smaller subtrees hang off the right of the larger.
        var h = hashes[cursor + numTree - 1]
        var i = numTree - 2
        while i >= 0 {
            h = nodeHash(hashes[cursor + i], h)
            i -= 1
        }
        cursor += numTree
        return h
    }

    static func leafProofIndex(_ lo: Int64, _ hi: Int64, _ n: Int64, _ need: inout [Int64]) {
        precondition(lo <= n && n < hi, "bad math in leafProofIndex")
        if lo + 1 == hi { return }
        let k = maxPow2Below(hi - lo)
        if n < lo + k {
            leafProofIndex(lo, lo + k, n, &need)
            subTreeIndex(lo + k, hi, &need)
        } else {
            subTreeIndex(lo, lo + k, &need)
            leafProofIndex(lo + k, hi, n, &need)
        }
    }

    /// PATH(n, D[lo:hi]) (RFC 6962 §2.1.1), consuming hashes in the order `leafProofIndex` named them.
    static func leafProof(_ lo: Int64, _ hi: Int64, _ n: Int64, _ hashes: [LogHash], _ cursor: inout Int, _ proof: inout [LogHash]) {
        precondition(lo <= n && n < hi, "bad math in leafProof")
        if lo + 1 == hi { return }  // the verifier has the leaf hash itself
        let k = maxPow2Below(hi - lo)
        if n < lo + k {
            leafProof(lo, lo + k, n, hashes, &cursor, &proof)
            proof.append(subTreeHash(lo + k, hi, hashes, &cursor))
        } else {
            let left = subTreeHash(lo, lo + k, hashes, &cursor)
            leafProof(lo + k, hi, n, hashes, &cursor, &proof)
            proof.append(left)
        }
    }

    static func treeProofIndex(_ lo: Int64, _ hi: Int64, _ n: Int64, _ need: inout [Int64]) {
        precondition(lo < n && n <= hi, "bad math in treeProofIndex")
        if n == hi {
            if lo == 0 { return }
            subTreeIndex(lo, hi, &need)
            return
        }
        let k = maxPow2Below(hi - lo)
        if n <= lo + k {
            treeProofIndex(lo, lo + k, n, &need)
            subTreeIndex(lo + k, hi, &need)
        } else {
            subTreeIndex(lo, lo + k, &need)
            treeProofIndex(lo + k, hi, n, &need)
        }
    }

    /// SUBPROOF(n, D[lo:hi], lo == 0) (RFC 6962 §2.1.2), consuming hashes in `treeProofIndex`'s order.
    static func treeProof(_ lo: Int64, _ hi: Int64, _ n: Int64, _ hashes: [LogHash], _ cursor: inout Int, _ proof: inout [LogHash]) {
        precondition(lo < n && n <= hi, "bad math in treeProof")
        if n == hi {
            // The old tree itself needs no hash: the verifier has its root.
            if lo == 0 { return }
            proof.append(subTreeHash(lo, hi, hashes, &cursor))
            return
        }
        let k = maxPow2Below(hi - lo)
        if n <= lo + k {
            treeProof(lo, lo + k, n, hashes, &cursor, &proof)
            proof.append(subTreeHash(lo + k, hi, hashes, &cursor))
        } else {
            let left = subTreeHash(lo, lo + k, hashes, &cursor)
            treeProof(lo + k, hi, n, hashes, &cursor, &proof)
            proof.append(left)
        }
    }
}

/// The right edge of the tree (one perfect-subtree root per set bit of size): enough to append and to
/// compute the root without reading anything.
public struct CompactRange: Sendable {
    public private(set) var size: Int64
    /// The roots of the perfect subtrees covering [0, size), largest (leftmost) first: the hashes at
    /// `frontierIndices(size:)`.
    public private(set) var frontier: [LogHash]

    /// The empty tree.
    public init() {
        size = 0
        frontier = []
        frontier.reserveCapacity(64)
    }

    /// Stored-hash indices of the perfect subtrees covering [0, size).
    public static func frontierIndices(size: Int64) -> [Int64] {
        MerkleTree.treeHashIndices(size: size)
    }

    /// Rebuilt from the stored hashes at `frontierIndices(size:)`.
    public init(size: Int64, hashes: [Int64: LogHash]) throws {
        try MerkleTree.checkSize(size)
        self.size = size
        frontier = try MerkleTree.lookUp(CompactRange.frontierIndices(size: size), in: hashes)
        frontier.reserveCapacity(64)
    }

    /// Appends one leaf hash; returns the stored hashes it adds, in stored-index order, starting at
    /// storedHashCount(size: old size) — exactly what tlog's StoredHashes returns.
    public mutating func append(_ leaf: LogHash) -> [LogHash] {
        var added: [LogHash] = []
        added.reserveCapacity(1 + (~size).trailingZeroBitCount)
        append(leaf, into: &added)
        return added
    }

    /// Like `append(_:)`, but adds the new stored hashes to the end of a buffer the caller reuses,
    /// so that a batch of appends allocates nothing per leaf.
    public mutating func append(_ leaf: LogHash, into storedHashes: inout [LogHash]) {
        precondition(size < MerkleTree.maxSize, "the tree is full (\(MerkleTree.maxSize) leaves)")
        storedHashes.append(leaf)
        // Each trailing 1 bit of the old size is a perfect subtree the new leaf completes; its
        // hash joins the left sibling on the frontier, smallest first.
        var h = leaf
        var n = size
        while n & 1 == 1 {
            h = MerkleTree.nodeHash(frontier.removeLast(), h)
            storedHashes.append(h)
            n >>= 1
        }
        frontier.append(h)
        size += 1
    }

    /// RFC 6962 MTH of the tree; `MerkleTree.emptyRoot` when size is 0.
    public func root() -> LogHash {
        guard var h = frontier.last else { return MerkleTree.emptyRoot }
        var i = frontier.count - 2
        while i >= 0 {
            h = MerkleTree.nodeHash(frontier[i], h)
            i -= 1
        }
        return h
    }
}
