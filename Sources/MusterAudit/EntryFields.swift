// A fast reader for audit entry bytes (a flat canonical JSON object of strings and integers), for
// verification at hundreds of thousands of entries a second. One pass over the bytes checks that they
// are exactly the canonical encoding (docs/audit.md, "Entry encoding"): keys in increasing byte order,
// no white space, only the escapes the encoder writes, integers without leading zeroes. It notes
// where each value lies and decodes a value only when asked for it.
import Foundation

public struct EntryFields: Sendable {
    public enum Value: Sendable, Hashable {
        case string(String)
        case int(Int)
    }

    private struct Field: Sendable {
        /// The key's bytes between the quotes (as written: escaped, if it has escapes).
        var key: Range<Int>
        /// A string's bytes between the quotes, or an integer's digits.
        var value: Range<Int>
        var isString: Bool
        /// Whether the value holds escapes.
        var escaped: Bool
        var keyEscaped: Bool
    }

    private let bytes: [UInt8]
    private var entries: [Field] = []

    /// Every field, decoded (tests, tools; verification asks for single fields).
    public var fields: [String: Value] {
        var result: [String: Value] = [:]
        for field in entries { result[Self.unescaped(bytes, field.key)] = value(of: field) }
        return result
    }

    public func string(_ key: String) -> String? {
        guard let field = find(key), field.isString else { return nil }
        return field.escaped ? Self.unescaped(bytes, field.value) : Self.text(bytes, field.value)
    }

    public func int(_ key: String) -> Int? {
        guard let field = find(key), !field.isString else { return nil }
        return Self.integer(bytes, field.value)
    }

    /// Whether the string field `key` is `expected` (verification compares without decoding).
    public func isString(_ key: String, _ expected: String) -> Bool {
        guard let field = find(key), field.isString else { return false }
        if field.escaped { return Self.unescaped(bytes, field.value) == expected }
        var expected = expected
        return expected.withUTF8 { bytes[field.value].elementsEqual($0) }
    }

    /// Whether the string field `key` is the lower-case hexadecimal of `hash` (the chain's `prev`),
    /// compared without building either string.
    public func isHex(_ key: String, of hash: LogHash) -> Bool {
        guard let field = find(key), field.isString, !field.escaped, field.value.count == 64 else { return false }
        let digits = Array("0123456789abcdef".utf8)
        var index = field.value.lowerBound
        for byte in hash.bytes {
            guard bytes[index] == digits[Int(byte >> 4)], bytes[index + 1] == digits[Int(byte & 15)] else { return false }
            index += 2
        }
        return true
    }

    /// Reads the bytes; throws unless they are a flat object of strings and integers in canonical form.
    public init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        // Non-ASCII bytes can only be inside strings; checking the whole object once covers them all.
        if bytes.contains(where: { $0 >= 0x80 }), String(validating: bytes, as: UTF8.self) == nil {
            throw AuditDecodingError(message: "a string is not UTF-8")
        }
        var index = 0
        try Self.expect(bytes, &index, UInt8(ascii: "{"))
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
        } else {
            while true {
                let (key, keyEscaped) = try Self.string(bytes, &index)
                try Self.expect(bytes, &index, UInt8(ascii: ":"))
                let field: Field
                if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                    let (value, escaped) = try Self.string(bytes, &index)
                    field = Field(key: key, value: value, isString: true, escaped: escaped, keyEscaped: keyEscaped)
                } else {
                    field = Field(key: key, value: try Self.integerRange(bytes, &index), isString: false, escaped: false, keyEscaped: keyEscaped)
                }
                if let previous = entries.last, !Self.precedes(bytes, previous.key, key) {
                    throw AuditDecodingError(message: "the key '\(Self.unescaped(bytes, key))' is out of order or repeated: the bytes are not in canonical form")
                }
                entries.append(field)
                guard index < bytes.count else { throw AuditDecodingError(message: "the object does not end") }
                let next = bytes[index]
                index += 1
                if next == UInt8(ascii: "}") { break }
                guard next == UInt8(ascii: ",") else { throw AuditDecodingError(message: "expected ',' or '}' at byte \(index - 1)") }
            }
        }
        guard index == bytes.count else { throw AuditDecodingError(message: "bytes follow the object") }
    }

    private func find(_ key: String) -> Field? {
        var wanted = key
        return wanted.withUTF8 { name in
            entries.first { field in
                field.keyEscaped ? Self.unescaped(bytes, field.key) == key : field.key.count == name.count && bytes[field.key].elementsEqual(name)
            }
        }
    }

    private func value(of field: Field) -> Value {
        if field.isString { return .string(field.escaped ? Self.unescaped(bytes, field.value) : Self.text(bytes, field.value)) }
        return .int(Self.integer(bytes, field.value) ?? 0)
    }

    private static func expect(_ bytes: [UInt8], _ index: inout Int, _ byte: UInt8) throws {
        guard index < bytes.count, bytes[index] == byte else {
            throw AuditDecodingError(message: "expected '\(Character(Unicode.Scalar(byte)))' at byte \(index)")
        }
        index += 1
    }

    /// A string in canonical form: the range between its quotes, and whether it holds escapes. Only
    /// the escapes the encoder writes are accepted: \" \\ \b \t \n \f \r, and \u00xx (lower-case hex)
    /// for the other control characters.
    private static func string(_ bytes: [UInt8], _ index: inout Int) throws -> (Range<Int>, Bool) {
        try expect(bytes, &index, UInt8(ascii: "\""))
        let start = index
        var escaped = false
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return (start..<index - 1, escaped)
            case UInt8(ascii: "\\"):
                escaped = true
                guard index + 1 < bytes.count else { break }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "b"), UInt8(ascii: "t"), UInt8(ascii: "n"), UInt8(ascii: "f"), UInt8(ascii: "r"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 6 <= bytes.count, bytes[index + 2] == UInt8(ascii: "0"), bytes[index + 3] == UInt8(ascii: "0"),
                          let high = lowerHex(bytes[index + 4]), high <= 1, let low = lowerHex(bytes[index + 5]),
                          ![0x08, 0x09, 0x0A, 0x0C, 0x0D].contains(high << 4 | low) else {
                        throw AuditDecodingError(message: "a \\u escape at byte \(index) is not in canonical form (only control characters, lower-case)")
                    }
                    index += 6
                default:
                    throw AuditDecodingError(message: "a bad or non-canonical escape at byte \(index)")
                }
            case 0..<0x20:
                throw AuditDecodingError(message: "a control character in a string at byte \(index)")
            default:
                index += 1
            }
        }
        throw AuditDecodingError(message: "a string does not end")
    }

    private static func lowerHex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// An integer in canonical form: -?(0|[1-9][0-9]*), not "-0", within Int's range.
    private static func integerRange(_ bytes: [UInt8], _ index: inout Int) throws -> Range<Int> {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        let digits = index
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        let range = start..<index
        guard index > digits else { throw AuditDecodingError(message: "expected a string or an integer at byte \(start)") }
        guard bytes[digits] != UInt8(ascii: "0") || index == digits + 1, !(digits > start && bytes[digits] == UInt8(ascii: "0")),
              integer(bytes, range) != nil else {
            throw AuditDecodingError(message: "the integer at byte \(start) is not in canonical form")
        }
        return range
    }

    private static func integer(_ bytes: [UInt8], _ range: Range<Int>) -> Int? {
        var index = range.lowerBound
        let negative = bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        var value = 0
        while index < range.upperBound {
            let digit = Int(bytes[index] - UInt8(ascii: "0"))
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !overflow1, !overflow2 else { return nil }
            value = next
            index += 1
        }
        return value
    }

    private static func text(_ bytes: [UInt8], _ range: Range<Int>) -> String {
        String(decoding: bytes[range], as: UTF8.self)
    }

    /// The string's bytes with its escapes undone.
    private static func unescapedBytes(_ bytes: [UInt8], _ range: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                index += 1
                continue
            }
            switch bytes[index + 1] {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "u"):
                out.append((lowerHex(bytes[index + 4]) ?? 0) << 4 | (lowerHex(bytes[index + 5]) ?? 0))
                index += 4
            case let other: out.append(other)  // \" and \\
            }
            index += 2
        }
        return out
    }

    private static func unescaped(_ bytes: [UInt8], _ range: Range<Int>) -> String {
        String(decoding: unescapedBytes(bytes, range), as: UTF8.self)
    }

    /// Whether key `a` sorts strictly before key `b`, by their decoded bytes.
    private static func precedes(_ bytes: [UInt8], _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        let plain = !bytes[a].contains(UInt8(ascii: "\\")) && !bytes[b].contains(UInt8(ascii: "\\"))
        return plain ? bytes[a].lexicographicallyPrecedes(bytes[b]) : unescapedBytes(bytes, a).lexicographicallyPrecedes(unescapedBytes(bytes, b))
    }
}
