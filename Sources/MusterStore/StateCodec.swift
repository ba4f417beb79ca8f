// How an incident's state is stored: a compact binary record without the student's free text, which
// sits in columns of its own (never indexed or searched, and sealed by the audit-log work).
import Crypto
import Foundation
import MusterCore

enum StateCodec {
    struct Stored {
        var bytes: [UInt8]
        var summary: String
        var subject: String?
    }

    /// `sealedFlags`: the incident's flags sealed under its data key (`SealedText.sealFlags`), kept in
    /// place of the clear list.
    static func encode(_ state: IncidentState, sealedFlags: [UInt8]? = nil) -> Stored {
        Stored(bytes: BinaryCodec.encode(state, sealedFlags: sealedFlags), summary: state.incident.summary, subject: state.incident.subject)
    }

    /// Sealed flags are opened by `openFlags`; readers that only need the record's other fields leave them out.
    static func decode(_ bytes: [UInt8], summary: String, subject: String?,
                       openFlags: ([UInt8]) throws -> Set<IncidentFlag> = { _ in [] }) throws -> IncidentState {
        try BinaryCodec.decodeState(bytes, summary: summary, subject: subject, openFlags: openFlags)
    }
}

/// Grouping keys can contain a student reference, so only their hash is stored and indexed.
public enum GroupKey {
    public static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).hex
    }

    /// A 64-bit number for PostgreSQL advisory locks, from any text.
    static func lockID(_ text: String) -> Int64 {
        let digest = Array(SHA256.hash(data: Data(text.utf8)))
        return digest.prefix(8).reduce(Int64(0)) { ($0 << 8) | Int64($1) }
    }
}
