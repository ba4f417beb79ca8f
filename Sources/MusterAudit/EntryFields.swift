// A fast reader for audit entry bytes (a flat canonical JSON object of strings and integers), for
// verification at hundreds of thousands of entries a second: it reads the fields and checks that
// the bytes are exactly their canonical encoding (docs/audit.md, "Entry encoding").
import Foundation

public struct EntryFields: Sendable {
    public enum Value: Sendable, Hashable {
        case string(String)
        case int(Int)
    }

    public private(set) var fields: [String: Value] = [:]

    public func string(_ key: String) -> String? {
        if case .string(let text) = fields[key] { text } else { nil }
    }

    public func int(_ key: String) -> Int? {
        if case .int(let number) = fields[key] { number } else { nil }
    }

    /// Reads the bytes; throws unless they are a flat object of strings and integers in canonical form.
    public init(_ bytes: [UInt8]) throws {
        var reader = Reader(bytes: bytes)
        // The canonical form is rebuilt as the fields are read (keys must come in increasing byte
        // order, so nothing needs sorting) and compared with the bytes at the end.
        var canonical: [UInt8] = [UInt8(ascii: "{")]
        canonical.reserveCapacity(bytes.count)
        var previousKey: [UInt8] = []
        try reader.expect(UInt8(ascii: "{"))
        if reader.peek() == UInt8(ascii: "}") {
            reader.index += 1
        } else {
            while true {
                let key = try reader.string()
                try reader.expect(UInt8(ascii: ":"))
                let value: Value = reader.peek() == UInt8(ascii: "\"") ? .string(try reader.string()) : .int(try reader.integer())
                let keyBytes = Array(key.utf8)
                guard fields.isEmpty || previousKey.lexicographicallyPrecedes(keyBytes) else {
                    throw AuditDecodingError(message: "the key '\(key)' is out of order or repeated: the bytes are not in canonical form")
                }
                previousKey = keyBytes
                fields[key] = value
                if canonical.count > 1 { canonical.append(UInt8(ascii: ",")) }
                AuditEntryEncoding.appendString(key, to: &canonical)
                canonical.append(UInt8(ascii: ":"))
                switch value {
                case .string(let text): AuditEntryEncoding.appendString(text, to: &canonical)
                case .int(let number): canonical.append(contentsOf: String(number).utf8)
                }
                guard let next = reader.next() else { throw AuditDecodingError(message: "the object does not end") }
                if next == UInt8(ascii: "}") { break }
                guard next == UInt8(ascii: ",") else { throw AuditDecodingError(message: "expected ',' or '}' at byte \(reader.index - 1)") }
            }
        }
        guard reader.index == bytes.count else { throw AuditDecodingError(message: "bytes follow the object") }
        canonical.append(UInt8(ascii: "}"))
        guard canonical == bytes else {
            throw AuditDecodingError(message: "the bytes are not in canonical form (sorted keys, no white space, minimal escapes)")
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func next() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func expect(_ byte: UInt8) throws {
            guard next() == byte else { throw AuditDecodingError(message: "expected '\(Character(Unicode.Scalar(byte)))' at byte \(index - 1)") }
        }

        mutating func string() throws -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while let byte = next() {
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: out, as: UTF8.self) else { throw AuditDecodingError(message: "a string is not UTF-8") }
                    return text
                case UInt8(ascii: "\\"):
                    switch next() {
                    case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                    case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                    case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16),
                              let scalar = Unicode.Scalar(code) else { throw AuditDecodingError(message: "a bad \\u escape at byte \(index)") }
                        index += 4
                        out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: throw AuditDecodingError(message: "a bad escape at byte \(index - 1)")
                    }
                case 0..<0x20: throw AuditDecodingError(message: "a control character in a string at byte \(index - 1)")
                default: out.append(byte)
                }
            }
            throw AuditDecodingError(message: "a string does not end")
        }

        mutating func integer() throws -> Int {
            let start = index
            if peek() == UInt8(ascii: "-") { index += 1 }
            while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            guard let number = Int(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                throw AuditDecodingError(message: "expected a string or an integer at byte \(start)")
            }
            return number
        }
    }
}
