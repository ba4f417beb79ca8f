// An offline-verifiable proof of inclusion in the C2SP tlog-proof text format ("Format"): header, optional extra,
// index, the RFC 6962 §2.1.1 audit path, a blank line, then the signed checkpoint note verbatim.
import Foundation

/// A proof text that does not follow the format, or a proof that does not prove its claim.
public struct TlogProofError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

public struct TlogProof: Hashable, Sendable {
    /// The first line of every proof.
    public static let header = "c2sp.org/tlog-proof@v1"
    /// A path longer than this cannot belong to any tree whose size fits in an Int64.
    public static let maxHashes = 63

    /// The zero-based index of the entry in the log.
    public var index: Int64
    /// The audit path: the leaf's sibling first, the root's child last.
    public var hashes: [LogHash]
    /// The whole signed checkpoint note (C2SP tlog-checkpoint text, then its signature lines).
    public var checkpoint: String
    /// Opaque, unauthenticated application data; nil when the proof has no `extra` line.
    public var extra: [UInt8]?

    public init(index: Int64, hashes: [LogHash], checkpoint: String, extra: [UInt8]? = nil) {
        self.index = index
        self.hashes = hashes
        self.checkpoint = checkpoint
        self.extra = extra
    }

    public var text: String {
        var out = Self.header + "\n"
        if let extra {
            out += "extra \(Base64.encode(extra))\n"
        }
        out += "index \(index)\n"
        for hash in hashes {
            out += hash.base64 + "\n"
        }
        return out + "\n" + checkpoint
    }

    /// Reads a proof. The checkpoint note's structure is checked (a checkpoint text, a blank line,
    /// well-formed signature lines) but not its signatures: that needs the verifier keys (`verify`).
    public static func parse(_ text: String) throws -> TlogProof {
        let bytes = Array(text.utf8)
        var lines = LineReader(bytes: bytes)

        guard let first = lines.next(), first.elementsEqual(header.utf8) else {
            throw TlogProofError("not a tlog-proof: the first line must be \"\(header)\"")
        }
        guard var line = lines.next() else {
            throw TlogProofError("malformed tlog-proof: it ends after the header; an \"index\" line must follow")
        }
        var extra: [UInt8]?
        let extraPrefix = Array("extra ".utf8)
        if line.starts(with: extraPrefix) {
            guard let decoded = Base64.decodeCanonical(String(decoding: line.dropFirst(extraPrefix.count), as: UTF8.self)) else {
                throw TlogProofError("malformed tlog-proof: the extra data is not padded base64")
            }
            extra = decoded
            guard let next = lines.next() else {
                throw TlogProofError("malformed tlog-proof: it ends after the extra data; an \"index\" line must follow")
            }
            line = next
        }
        let indexPrefix = Array("index ".utf8)
        guard line.starts(with: indexPrefix) else {
            throw TlogProofError("malformed tlog-proof: expected \"index <n>\" on line \(lines.number), found \"\(String(decoding: line, as: UTF8.self))\"")
        }
        guard let index = ASCIIDecimal.parse(line.dropFirst(indexPrefix.count)) else {
            throw TlogProofError("malformed tlog-proof: the index is not a decimal number without leading zeros that fits in 63 bits")
        }

        var hashes: [LogHash] = []
        while true {
            guard let hashLine = lines.next() else {
                throw TlogProofError("malformed tlog-proof: no blank line before the checkpoint")
            }
            if hashLine.isEmpty { break }
            guard hashes.count < maxHashes else {
                throw TlogProofError("malformed tlog-proof: more than \(maxHashes) proof hashes")
            }
            guard let hash = LogHash(base64: String(decoding: hashLine, as: UTF8.self)) else {
                throw TlogProofError("malformed tlog-proof: line \(lines.number) is not the padded base64 of a 32-byte hash")
            }
            hashes.append(hash)
        }

        let checkpoint = String(decoding: bytes[lines.offset...], as: UTF8.self)
        guard !checkpoint.isEmpty else {
            throw TlogProofError("malformed tlog-proof: the checkpoint is missing after the blank line")
        }
        do {
            let (body, _) = try SignedNote.split(checkpoint)
            _ = try Checkpoint.parse(body)
        } catch {
            throw TlogProofError("malformed tlog-proof: its checkpoint: \(error)")
        }
        return TlogProof(index: index, hashes: hashes, checkpoint: checkpoint, extra: extra)
    }

    /// Checks the whole claim: the checkpoint is signed by a known key (`SignedNote.open`), it is
    /// from the log `origin`, and the audit path leads from `leafHash` at `index` to its root
    /// (RFC 9162 §2.1.3.2). Returns the checkpoint. The extra data is not looked at: it is not signed.
    public func verify(leafHash: LogHash, origin: String, verifiers: [NoteVerifier]) throws -> Checkpoint {
        let (body, _) = try SignedNote.open(checkpoint, verifiers: verifiers)
        let tree = try Checkpoint.parse(body)
        guard tree.origin == origin else {
            throw TlogProofError("the checkpoint is from the log \"\(tree.origin)\", not \"\(origin)\"")
        }
        guard index < tree.size else {
            throw TlogProofError("entry \(index) is not in the checkpoint's tree of \(tree.size) entries")
        }
        guard MerkleTree.verifyInclusion(leafHash: leafHash, index: index, size: tree.size, proof: hashes, root: tree.root) else {
            throw TlogProofError("the inclusion proof for entry \(index) does not lead to the checkpoint's root")
        }
        return tree
    }
}

/// Newline-terminated lines of a byte buffer, with the position after the last line read.
private struct LineReader {
    let bytes: [UInt8]
    private(set) var offset = 0
    /// The 1-based number of the line last returned.
    private(set) var number = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// The next line without its newline; nil at the end or when the rest has no newline.
    mutating func next() -> ArraySlice<UInt8>? {
        guard let end = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = bytes[offset..<end]
        offset = end + 1
        number += 1
        return line
    }
}
