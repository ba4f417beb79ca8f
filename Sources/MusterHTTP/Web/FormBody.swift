// A posted HTML form (application/x-www-form-urlencoded), read once by the CSRF check and kept in the
// request context for the page. Names may repeat (checkboxes); values are trimmed of nothing.
import Foundation
import Hummingbird

struct FormBody: Sendable {
    static let limit = 64 * 1024
    private(set) var fields: [(name: String, value: String)] = []

    init(_ text: String) {
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part)
            }
            fields.append((decode(parts[0]), parts.count > 1 ? decode(parts[1]) : ""))
        }
    }

    /// The fields by name, a repeated name keeping its last value (Twilio's webhooks repeat none).
    static func parse(_ text: String) -> [String: String] {
        Dictionary(FormBody(text).fields.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
    }

    /// The first value of a field, nil when absent; empty text counts as absent.
    subscript(name: String) -> String? {
        fields.first { $0.name == name }.flatMap { $0.value.isEmpty ? nil : $0.value }
    }

    /// A text answer, trimmed and cut to `maxLength`; nil when it is missing or blank.
    func text(_ name: String, maxLength: Int = 2_000) -> String? {
        guard let value = self[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return String(value.prefix(maxLength))
    }

    func all(_ name: String) -> [String] {
        fields.filter { $0.name == name && !$0.value.isEmpty }.map(\.value)
    }

    /// Reads the form into the context (once) and answers its CSRF token field.
    static func csrf(of request: Request, context: inout MusterRequestContext) async throws -> String? {
        if context.form == nil {
            var request = request
            let buffer = try await request.collectBody(upTo: limit)
            context.form = FormBody(String(buffer: buffer))
        }
        return context.form?["csrf"]
    }
}
