// Strict reading of a YAML node tree: every mapping declares its keys, so an unknown or misspelt
// key is an error at its own line and column, and every value is checked for its kind.
import Foundation
import MusterCore
import Yams

/// A mapping whose keys were checked against the allowed ones.
struct Fields {
    let node: Node
    let what: String
    private let values: [String: Node]
    private let keys: [String: Node]

    init(node: Node, what: String, values: [String: Node], keys: [String: Node]) {
        self.node = node
        self.what = what
        self.values = values
        self.keys = keys
    }

    subscript(key: String) -> Node? { values[key] }
    func has(_ key: String) -> Bool { values[key] != nil }
    func keyNode(_ key: String) -> Node? { keys[key] }
}

final class YAMLReader {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    func location(_ node: Node?) -> SourceLocation {
        let mark = node?.mark
        return SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func error(_ message: String, at node: Node?) {
        diagnostics.append(Diagnostic(.error, location(node), message))
    }

    func error(_ message: String, at location: SourceLocation) {
        diagnostics.append(Diagnostic(.error, location, message))
    }

    func warning(_ message: String, at node: Node?) {
        diagnostics.append(Diagnostic(.warning, location(node), message))
    }

    /// Parses a whole file; a syntax error becomes a diagnostic at the position libyaml reports.
    func document(_ text: String) -> Node? {
        do {
            guard let root = try Yams.compose(yaml: text) else {
                diagnostics.append(Diagnostic(.error, SourceLocation(file: file, line: 1, column: 1), "the file is empty"))
                return nil
            }
            return root
        } catch let error as YamlError {
            let (message, line, column) = YAMLReader.describe(error)
            diagnostics.append(Diagnostic(.error, SourceLocation(file: file, line: line, column: column), message))
            return nil
        } catch {
            diagnostics.append(Diagnostic(.error, SourceLocation(file: file, line: 1, column: 1), "cannot read YAML: \(error)"))
            return nil
        }
    }

    private static func describe(_ error: YamlError) -> (String, Int, Int) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let text = context.map { "\(problem) (\($0.text))" } ?? problem
            return ("YAML syntax error: \(text)", mark.line, mark.column)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ("duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping", context.mark.line, context.mark.column)
        default:
            return ("YAML error: \(error)", 1, 1)
        }
    }

    /// The mapping's fields; unknown keys are reported with a suggestion, missing required ones at the mapping.
    func fields(_ node: Node, _ what: String, required: [String], optional: [String] = []) -> Fields? {
        guard let mapping = node.mapping else {
            error("\(what) must be a mapping of keys to values, not \(kind(of: node))", at: node)
            return nil
        }
        let allowed = required + optional
        var values: [String: Node] = [:], keys: [String: Node] = [:]
        var misspelt: Set<String> = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                error("keys in \(what) must be plain words", at: keyNode)
                continue
            }
            if allowed.contains(key) {
                values[key] = value
                keys[key] = keyNode
            } else {
                error("unknown key '\(key)' in \(what)" + suggestion(for: key, among: allowed), at: keyNode)
                if let intended = closest(to: key, among: allowed) { misspelt.insert(intended) }
            }
        }
        // A misspelt required key is reported once, as the misspelling.
        for key in required where values[key] == nil && !misspelt.contains(key) {
            error("missing required key '\(key)' in \(what)", at: node)
        }
        return Fields(node: node, what: what, values: values, keys: keys)
    }

    func kind(of node: Node) -> String {
        switch node {
        case .scalar: "a single value"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    func string(_ node: Node?, _ what: String) -> String? {
        guard let node else { return nil }
        guard let scalar = node.scalar else {
            error("\(what) must be a single value, not \(kind(of: node))", at: node)
            return nil
        }
        let text = scalar.string.trimmingCharacters(in: .whitespaces)
        if text.isEmpty {
            error("\(what) must not be empty", at: node)
            return nil
        }
        return text
    }

    /// An identifier: lowercase letters, digits and '-'.
    func id(_ node: Node?, _ what: String) -> String? {
        guard let text = string(node, what) else { return nil }
        let valid = text.unicodeScalars.first.map { isIDCharacter($0) && $0 != "-" } == true
            && text.unicodeScalars.allSatisfy(isIDCharacter)
        if !valid {
            error("\(what) '\(text)' is not a valid id: use lowercase letters, digits and '-'", at: node)
            return nil
        }
        return text
    }

    private func isIDCharacter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "-"
    }

    func list(_ node: Node?, _ what: String, nonEmpty: Bool = true) -> [Node]? {
        guard let node else { return nil }
        guard let sequence = node.sequence else {
            error("\(what) must be a list, not \(kind(of: node))", at: node)
            return nil
        }
        let items = Array(sequence)
        if nonEmpty, items.isEmpty {
            error("\(what) must not be empty", at: node)
            return nil
        }
        return items
    }

    func bool(_ node: Node?, _ what: String) -> Bool? {
        guard let text = string(node, what) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            error("\(what) must be true or false, not '\(text)'", at: node)
            return nil
        }
    }

    func integer(_ node: Node?, _ what: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, what) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            error("\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(text)'", at: node)
            return nil
        }
        return value
    }

    func duration(_ node: Node?, _ what: String) -> TimeSpan? {
        guard let text = string(node, what) else { return nil }
        guard let span = TimeSpan.parse(text) else {
            let hint = Int(text) != nil ? "; add a unit, e.g. '\(text)m'" : ""
            error("bad duration '\(text)' for \(what)\(hint): write a number and a unit (s, m, h, d, w), e.g. 5m, 2h, 1h30m", at: node)
            return nil
        }
        guard span.seconds > 0 else {
            error("\(what) must be longer than zero", at: node)
            return nil
        }
        return span
    }

    /// One value of a closed set (a channel, a severity, a weekday), with a suggestion when misspelt.
    func choice<T: RawRepresentable & CaseIterable>(_ node: Node?, _ what: String, _: T.Type) -> T? where T.RawValue == String {
        guard let text = string(node, what) else { return nil }
        if let value = T(rawValue: text) { return value }
        error("unknown \(what) '\(text)'" + suggestion(for: text, among: T.allCases.map(\.rawValue)), at: node)
        return nil
    }

    /// A list of closed-set values with no repeats.
    func choices<T: RawRepresentable & CaseIterable & Hashable>(_ node: Node?, _ what: String, _ type: T.Type) -> [T]? where T.RawValue == String {
        guard let items = list(node, "\(what) list") else { return nil }
        var values: [T] = []
        for item in items {
            guard let value = choice(item, what, type) else { continue }
            if values.contains(value) {
                error("\(what) '\(value.rawValue)' is listed twice", at: item)
            } else {
                values.append(value)
            }
        }
        return values
    }

    func localTime(_ node: Node?, _ what: String) -> LocalTime? {
        guard let text = string(node, what) else { return nil }
        guard let time = LocalTime.parse(text) else {
            error("bad time '\(text)' for \(what): write HH:MM on a 24-hour clock, e.g. \"07:30\"", at: node)
            return nil
        }
        return time
    }

    func localDate(_ node: Node?, _ what: String) -> LocalDate? {
        guard let text = string(node, what) else { return nil }
        guard let date = LocalDate.parse(text) else {
            error("bad date '\(text)' for \(what): write YYYY-MM-DD, e.g. 2026-11-26", at: node)
            return nil
        }
        return date
    }

    func localDateTime(_ node: Node?, _ what: String) -> LocalDateTime? {
        guard let text = string(node, what) else { return nil }
        guard let value = LocalDateTime.parse(text) else {
            error("bad date and time '\(text)' for \(what): write YYYY-MM-DDTHH:MM in local time, e.g. 2026-08-17T08:00", at: node)
            return nil
        }
        return value
    }
}
