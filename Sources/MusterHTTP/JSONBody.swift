// Reading request bodies strictly: any JSON value first (malformed JSON gets the parser's message),
// then fields by name with their expected types, so every wrong field is named by its JSON
// pointer. Unknown fields in Muster's own bodies are refused with a suggestion (a typo such as
// "sumary" must not silently drop the summary); integration payloads are read leniently.
import Foundation
import Hummingbird
import MusterCore
import MusterPlaybooks
import NIOCore

public enum JSONValue: Sendable, Hashable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// One pass over JSON bytes before any decoder sees them. A generic decoder's cost grows with the
/// nesting depth and the number of values, so both are capped; and a top-level string field (the
/// routing key of a PagerDuty event) can be read without decoding the rest, so the sender is
/// authenticated before the body is parsed.
enum JSONShape {
    static let maxDepth = 32
    static let maxValues = 20_000

    static func check(_ bytes: UnsafeRawBufferPointer) throws(Problem) {
        var depth = 0, values = 1, inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                values += 1
                if depth > maxDepth { throw Problem.badRequest("the body nests deeper than \(maxDepth) levels") }
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ","):
                values += 1
                if values > maxValues { throw Problem.badRequest("the body holds more than \(maxValues) values") }
            default: break
            }
        }
    }

    /// The string value of `key` in the top-level object, read without decoding the rest; nil when it is
    /// absent, not a plain string, or escaped (the full decode then decides).
    static func topLevelString(_ key: String, in bytes: UnsafeRawBufferPointer) -> String? {
        let wanted = Array(key.utf8)
        var depth = 0, index = 0
        let count = bytes.count
        func skipSpace(_ position: Int) -> Int {
            var position = position
            while position < count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
            return position
        }
        while index < count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                // A string: its end, and whether it is the wanted key at the top level.
                var end = index + 1, plain = true
                while end < count, bytes[end] != UInt8(ascii: "\"") {
                    if bytes[end] == UInt8(ascii: "\\") { plain = false; end += 1 }
                    end += 1
                }
                guard end < count else { return nil }
                let colon = skipSpace(end + 1)
                if depth == 1, plain, colon < count, bytes[colon] == UInt8(ascii: ":"), end - index - 1 == wanted.count,
                   zip(bytes[(index + 1)..<end], wanted).allSatisfy({ $0 == $1 }) {
                    let start = skipSpace(colon + 1)
                    guard start < count, bytes[start] == UInt8(ascii: "\"") else { return nil }
                    var close = start + 1
                    while close < count, bytes[close] != UInt8(ascii: "\"") {
                        if bytes[close] == UInt8(ascii: "\\") { return nil }
                        close += 1
                    }
                    guard close < count else { return nil }
                    return String(decoding: bytes[(start + 1)..<close], as: UTF8.self)
                }
                index = end + 1
                continue
            }
            if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") { depth += 1 }
            if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") { depth -= 1 }
            index += 1
        }
        return nil
    }
}

enum JSONBody {
    /// The largest body any endpoint takes.
    static let limit = 64 * 1024

    /// Reads the body as JSON; an empty body is `nil` (for endpoints whose body is optional).
    static func read(_ request: Request, limit: Int = limit) async throws -> JSONValue? {
        try decode(try await bytes(request, limit: limit), contentType: request.headers[.contentType])
    }

    /// The body's bytes, up to `limit`.
    static func bytes(_ request: Request, limit: Int = limit) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem(.contentTooLarge, "too-large", "The body is too large", detail: "the body is larger than \(limit) bytes")
        }
    }

    /// Decodes JSON bytes, after checking their shape (JSONShape) so no decoder works on a hostile one;
    /// `shapeChecked` when the caller has already checked it.
    static func decode(_ buffer: ByteBuffer, contentType: String?, shapeChecked: Bool = false) throws -> JSONValue? {
        if buffer.readableBytes == 0 { return nil }
        if let type = contentType, !type.lowercased().hasPrefix("application/json"), !type.lowercased().contains("+json") {
            throw Problem(.unsupportedMediaType, "unsupported-media-type", "Send JSON",
                          detail: "the body is '\(type)'; send it as application/json")
        }
        if !shapeChecked { try buffer.withUnsafeReadableBytes { bytes throws(Problem) in try JSONShape.check(bytes) } }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))
        } catch let error as DecodingError {
            throw Problem.badRequest("the body is not valid JSON: " + describe(error))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            (context.underlyingError.map { String(describing: $0) } ?? context.debugDescription)
        default:
            String(describing: error)
        }
    }
}

/// Reads one JSON object's fields, collecting every problem before reporting them together.
struct ObjectReader {
    let fields: [String: JSONValue]
    let pointer: String
    private(set) var problems: [Problem.FieldError] = []

    /// `allowed` lists the field names the object may have; nil accepts any.
    init(_ value: JSONValue?, pointer: String = "", allowed: Set<String>?, required: Bool = true) throws(Problem) {
        self.pointer = pointer
        switch value {
        case .object(let fields)?:
            self.fields = fields
        case nil where !required:  // no body at all; a literal null is not an object
            self.fields = [:]
        case nil:
            throw Problem.badRequest("the request needs a JSON object body")
        case let other?:
            throw Problem.badRequest("expected a JSON object at '\(pointer.isEmpty ? "/" : pointer)', found \(other.typeName)")
        }
        if let allowed {
            for key in fields.keys.sorted() where !allowed.contains(key) {
                problems.append(.init(pointer: pointer + "/" + key, detail: "unknown field '\(key)'" + suggestion(for: key, among: allowed.sorted())))
            }
        }
    }

    mutating func fail(_ key: String, _ detail: String) {
        problems.append(.init(pointer: pointer + "/" + key, detail: detail))
    }

    mutating func string(_ key: String, required: Bool = false, maxLength: Int = 10_000) -> String? {
        switch fields[key] {
        case .string(let value)?:
            // Counted in code points, as JSON Schema's maxLength counts.
            if value.unicodeScalars.count > maxLength { fail(key, "longer than \(maxLength) characters") }
            if value.contains("\u{0}") { fail(key, "must not contain NUL characters") }
            if required, value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { fail(key, "must not be empty") }
            return value
        case nil, .null?:
            if required { fail(key, "is required") }
            return nil
        case let other?:
            fail(key, "expected a string, found \(other.typeName)")
            return nil
        }
    }

    mutating func bool(_ key: String) -> Bool? {
        switch fields[key] {
        case .bool(let value)?: return value
        case nil, .null?: return nil
        case let other?:
            fail(key, "expected true or false, found \(other.typeName)")
            return nil
        }
    }

    mutating func integer(_ key: String, in range: ClosedRange<Int>) -> Int? {
        switch fields[key] {
        case .number(let value)?:
            guard value.rounded() == value, let int = Int(exactly: value), range.contains(int) else {
                fail(key, "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
                return nil
            }
            return int
        case nil, .null?:
            return nil
        case let other?:
            fail(key, "expected a number, found \(other.typeName)")
            return nil
        }
    }

    mutating func strings(_ key: String) -> [String] {
        switch fields[key] {
        case .array(let items)?:
            var result: [String] = []
            for (index, item) in items.enumerated() {
                if case .string(let text) = item, !text.contains("\u{0}"), text.unicodeScalars.count <= 100 { result.append(text) } else if case .string = item {
                    fail("\(key)/\(index)", "must be at most 100 characters, without NUL characters")
                } else { fail("\(key)/\(index)", "expected a string, found \(item.typeName)") }
            }
            return result
        case nil, .null?:
            return []
        case let other?:
            fail(key, "expected an array of strings, found \(other.typeName)")
            return []
        }
    }

    /// An object of strings (labels, annotations); nil when absent, and a problem when it is anything else.
    mutating func stringMap(_ key: String, required: Bool = false) -> [String: String]? {
        switch fields[key] {
        case .object(let object)?:
            var result: [String: String] = [:]
            for (name, value) in object.sorted(by: { $0.key < $1.key }) {
                guard case .string(let text) = value else {
                    fail(key + "/" + name, "expected a string, found \(value.typeName)")
                    continue
                }
                if text.contains("\u{0}") || name.contains("\u{0}") { fail(key + "/" + name, "must not contain NUL characters") }
                result[name] = text
            }
            return result
        case nil:
            if required { fail(key, "is required") }
            return nil
        case let other?:
            fail(key, "expected an object of strings, found \(other.typeName)")
            return nil
        }
    }

    /// Fails every field given as null: for payloads whose senders never send null (it is a mistake, not an absent field).
    mutating func failNulls() {
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) where value == .null { fail(key, "must not be null") }
    }

    /// Fails when the field is present with a value that is not one of `values`.
    mutating func choice(_ key: String, _ values: [String], required: Bool = false) -> String? {
        guard let text = string(key, required: required) else { return nil }
        if !values.contains(text) { fail(key, "'\(text)' is not one of " + values.joined(separator: ", ")) }
        return text
    }

    /// Throws the problems found so far, for a field without which the rest cannot be read.
    func refuse() throws(Problem) -> Never {
        try finish()
        throw Problem.badRequest("the body is invalid")
    }

    /// Throws every problem found so far.
    func finish() throws(Problem) {
        guard !problems.isEmpty else { return }
        let detail = problems.map { "\($0.pointer): \($0.detail)" }.joined(separator: "; ")
        throw Problem.badRequest(detail, errors: problems)
    }
}
