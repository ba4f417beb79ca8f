// How an incident's state is stored: a JSON document without the student's free text, which sits
// in columns of its own (never indexed or searched, and sealed by the audit-log work).
import Crypto
import Foundation
import MusterCore

enum StateCodec {
    struct Stored {
        var json: Data
        var summary: String
        var subject: String?
    }

    static func encode(_ state: IncidentState) throws -> Stored {
        var stripped = state
        stripped.incident.summary = ""
        stripped.incident.subject = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Stored(json: try encoder.encode(stripped), summary: state.incident.summary, subject: state.incident.subject)
    }

    static func decode(json: Data, summary: String, subject: String?) throws -> IncidentState {
        var state = try JSONDecoder().decode(IncidentState.self, from: json)
        state.incident.summary = summary
        state.incident.subject = subject
        return state
    }
}

/// Grouping keys can contain a student reference, so only their hash is stored and indexed.
enum GroupKey {
    static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// A 64-bit number for PostgreSQL advisory locks, from any text.
    static func lockID(_ text: String) -> Int64 {
        let digest = Array(SHA256.hash(data: Data(text.utf8)))
        return digest.prefix(8).reduce(Int64(0)) { ($0 << 8) | Int64($1) }
    }
}
