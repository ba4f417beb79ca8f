// A small JSON value for the chat payloads (Slack blocks, Teams cards), whose shapes are nested and
// heterogeneous; encoded with sorted keys so that bodies are stable and comparable in tests.
import Foundation
import NIOHTTP1

public indirect enum ChatJSON: Sendable, Hashable, Encodable, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    case string(String)
    case int(Int)
    case bool(Bool)
    case null
    case array([ChatJSON])
    case object([String: ChatJSON])

    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        case .array(let values): try container.encode(values)
        case .object(let members): try container.encode(members)
        }
    }

    /// UTF-8 JSON with sorted keys and unescaped slashes (URLs stay readable).
    public static func encode(_ value: ChatJSON) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// At most `limit` UTF-16 code units (the stricter of the ways providers count characters), cut at
    /// a character boundary and ended with an ellipsis when cut.
    static func truncated(_ text: String, _ limit: Int) -> String {
        guard text.utf16.count > limit else { return text }
        var kept = ""
        var used = 0
        for character in text {
            let size = character.utf16.count
            if used + size > limit - 1 { break }
            kept.append(character)
            used += size
        }
        return kept + "…"
    }
}

extension HTTPDelivery {
    /// Posts a chat payload as JSON; chat webhooks answer with no reference to keep.
    func postChat(_ payload: ChatJSON, to url: String, what: String) async throws(DeliveryFailure) -> DeliveryReceipt {
        let body: [UInt8]
        do {
            body = try ChatJSON.encode(payload)
        } catch {
            throw DeliveryFailure(.clientError, "cannot encode the \(what): \(error)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "User-Agent", value: "Muster")
        let response = try await post(url, headers: headers, body: body)
        try response.check()
        return DeliveryReceipt(reference: nil)
    }
}
