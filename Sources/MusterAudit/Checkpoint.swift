// A log checkpoint's note text as C2SP tlog-checkpoint ("Note text") specifies: origin, decimal tree size, base64
// root hash and optional extension lines, each ending in a newline; SignedNote signs it.
import Foundation

/// A checkpoint text that does not follow the format, said precisely.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

public struct Checkpoint: Hashable, Sendable {
    /// The log's identity, e.g. `example.com/log42`; the spec recommends the signing key's name.
    public var origin: String
    public var size: Int64
    /// RFC 6962 MTH of the first `size` leaves.
    public var root: LogHash
    /// Opaque, non-empty lines after the root; the spec discourages them (monitors cannot audit them).
    public var extensions: [String]

    public init(origin: String, size: Int64, root: LogHash, extensions: [String] = []) {
        self.origin = origin
        self.size = size
        self.root = root
        self.extensions = extensions
    }

    /// The note text. Only a checkpoint that `validate()` accepts gives text that `parse` reads back.
    public var text: String {
        var out = "\(origin)\n\(size)\n\(root.base64)\n"
        for line in extensions {
            out += line + "\n"
        }
        return out
    }

    /// Throws unless `text` would be a well-formed checkpoint: a non-empty origin and extension
    /// lines without newlines or other control characters, and a non-negative size.
    public func validate() throws {
        try Self.checkLine(origin, name: "the origin")
        guard size >= 0 else {
            throw CheckpointError("the tree size \(size) is negative")
        }
        for (i, line) in extensions.enumerated() {
            try Self.checkLine(line, name: "extension line \(i + 1)")
        }
    }

    public static func parse(_ text: String) throws -> Checkpoint {
        let bytes = Array(text.utf8)
        guard bytes.last == UInt8(ascii: "\n") else {
            throw CheckpointError("malformed checkpoint: the text must end in a newline")
        }
        if let offset = NoteFormat.controlCharacterOffset(bytes) {
            throw CheckpointError("malformed checkpoint: control character at byte \(offset); only newline is allowed")
        }
        let lines = bytes.dropLast().split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard lines.count >= 3 else {
            throw CheckpointError("malformed checkpoint: \(lines.count) line(s); a checkpoint has an origin, a tree size and a root hash")
        }
        if let empty = lines.firstIndex(where: \.isEmpty) {
            throw CheckpointError("malformed checkpoint: line \(empty + 1) is empty; every line must have text")
        }
        let sizeText = String(decoding: lines[1], as: UTF8.self)
        guard let size = ASCIIDecimal.parse(lines[1]) else {
            throw CheckpointError("malformed checkpoint: the tree size \"\(sizeText)\" is not a decimal number without leading zeros that fits in 63 bits")
        }
        let rootText = String(decoding: lines[2], as: UTF8.self)
        guard let root = LogHash(base64: rootText) else {
            throw CheckpointError("malformed checkpoint: the root hash \"\(rootText)\" is not the padded base64 of 32 bytes")
        }
        return Checkpoint(origin: String(decoding: lines[0], as: UTF8.self), size: size, root: root,
                          extensions: lines.dropFirst(3).map { String(decoding: $0, as: UTF8.self) })
    }

    private static func checkLine(_ line: String, name: String) throws {
        guard !line.isEmpty else {
            throw CheckpointError("\(name) is empty")
        }
        if line.utf8.contains(where: { $0 < 0x20 }) {
            throw CheckpointError("\(name) contains a newline or another control character")
        }
    }
}

/// Non-negative ASCII decimals as the C2SP formats write them: digits only, no sign, no leading zero
/// (unless the number is 0).
enum ASCIIDecimal {
    static func parse<Bytes: Collection>(_ digits: Bytes) -> Int64? where Bytes.Element == UInt8 {
        guard let first = digits.first, !(first == UInt8(ascii: "0") && digits.count > 1) else { return nil }
        var value: Int64 = 0
        for digit in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
            guard !overflow1 && !overflow2 else { return nil }
            value = sum
        }
        return value
    }
}

/// A checkpoint as stored: the whole signed note.
public struct StoredCheckpoint: Sendable, Hashable {
    public var size: Int64
    public var note: String
    public var signedAt: Date

    public init(size: Int64, note: String, signedAt: Date) {
        self.size = size
        self.note = note
        self.signedAt = signedAt
    }
}
