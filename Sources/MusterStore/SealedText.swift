// Free text about a student reaches the database only sealed under the incident's data key, which
// is stored wrapped by the master key (docs/audit.md, "Sealing"). Both stores read and write it here.
import Foundation
import MusterAudit
import MusterCore

public enum SealedText {
    public static func incidentSummary(_ id: IncidentID) -> String { "muster/incident-summary\n\(id.rawValue)" }
    public static func incidentSubject(_ id: IncidentID) -> String { "muster/incident-subject\n\(id.rawValue)" }
    public static func reportSummary(_ id: IncidentID) -> String { "muster/report-summary\n\(id.rawValue)" }
    public static func reportSubject(_ id: IncidentID) -> String { "muster/report-subject\n\(id.rawValue)" }
    public static func incidentFlags(_ id: IncidentID) -> String { "muster/incident-flags\n\(id.rawValue)" }
    public static func reportFlags(_ id: IncidentID) -> String { "muster/report-flags\n\(id.rawValue)" }

    /// Flags are sealed like the report's text ("family may be the source of harm" says something about
    /// a child's family): as a comma-separated list, nothing when there are none.
    public static func sealFlags(_ flags: Set<IncidentFlag>, key: DataKey, context: String) -> [UInt8]? {
        flags.isEmpty ? nil : Seal.seal(flags.map(\.rawValue).sorted().joined(separator: ","), key: key, context: context)
    }

    static func flags(_ list: String) -> Set<IncidentFlag> {
        Set(list.split(separator: ",").map { IncidentFlag(String($0)) })
    }

    /// A report's flags: sealed, or in clear in rows written before flags were sealed; none once purged.
    static func openFlags(_ sealed: [UInt8]?, legacy: String, key: DataKey?, context: String) throws -> Set<IncidentFlag> {
        guard let sealed else { return flags(legacy) }
        guard let key else { return [] }
        return flags(try Seal.open(sealed, key: key, context: context))
    }

    /// What a purged incident's text reads as.
    static func purged(on date: Date) -> String {
        "purged under the retention policy on \(String(AuditEntryEncoding.timestamp(date).prefix(10)))"
    }

    /// Opens sealed text; legacy rows (written before sealing) carry their text in clear.
    static func open(_ sealed: [UInt8]?, legacy: String?, key: DataKey?, context: String, purgedAt: Date?) throws -> String? {
        guard let sealed else { return legacy }
        guard let key else { return purgedAt.map(purged(on:)) ?? "[sealed: the incident's data key is missing]" }
        return try Seal.open(sealed, key: key, context: context)
    }
}

/// What opens an incident's stored (wrapped) data key: the master key itself on SQLite, the key
/// generations on PostgreSQL (KeyRing), where `generation` says which one wrapped it.
protocol DataKeyOpening: Sendable {
    func openDataKey(_ wrapped: [UInt8], generation: Int64?, incident: IncidentID) throws -> DataKey
}

extension MasterKey: DataKeyOpening {
    func openDataKey(_ wrapped: [UInt8], generation: Int64?, incident: IncidentID) throws -> DataKey {
        guard generation == nil else { throw SealingError("incident \(incident)'s data key is in key generation \(generation ?? 0), which this store does not keep") }
        return try unwrap(wrapped, incident: incident.rawValue)
    }
}

/// An incident row as a store reads it: the state, its sealed text and the incident's wrapped key.
struct StoredIncidentRow {
    var id: IncidentID
    var state: [UInt8]
    var legacySummary: String
    var legacySubject: String?
    var summarySealed: [UInt8]?
    var subjectSealed: [UInt8]?
    /// The leaf hash of the incident's last audit entry.
    var auditHead: [UInt8]?
    /// The sequence of the incident's last audit entry.
    var lastAuditSequence: Int?
    var wrappedKey: [UInt8]?
    /// The key generation that wrapped `wrappedKey` (PostgreSQL); nil when the master key did.
    var keyGeneration: Int64? = nil
    var purgedAt: Date?

    /// The state with its text opened, and the incident's data key (nil once purged).
    func open(keys: some DataKeyOpening) throws -> (state: IncidentState, key: DataKey?) {
        // A purged incident has no key, whatever the key's row read: on PostgreSQL a commit that waited for
        // the purge's lock sees the incident's newest row but the key's row as it was before the wait.
        let key = purgedAt != nil ? nil : try wrappedKey.map { try keys.openDataKey($0, generation: keyGeneration, incident: id) }
        let summary = try SealedText.open(summarySealed, legacy: legacySummary, key: key, context: SealedText.incidentSummary(id), purgedAt: purgedAt)
        let subject = try SealedText.open(subjectSealed, legacy: legacySubject, key: key, context: SealedText.incidentSubject(id), purgedAt: purgedAt)
        var state = try StateCodec.decode(state, summary: summary ?? "", subject: subject) { sealed in
            try SealedText.openFlags(sealed, legacy: "", key: key, context: SealedText.incidentFlags(id))
        }
        // Entries written without the incident's row (receipts, reads) move its sequence on.
        if let last = lastAuditSequence, last >= state.nextAuditSequence { state.nextAuditSequence = last + 1 }
        return (state, key)
    }
}

enum AuditText {
    /// An audit entry read back for a timeline, its sealed text opened (or marked purged).
    static func record(_ body: [UInt8], legacy: String?, key: DataKey?, purgedAt: Date?) throws -> AuditRecord {
        let decoded = try AuditEntryEncoding.decode(body)
        var record = decoded.record
        record.sensitive = try SealedText.open(decoded.sealed, legacy: legacy, key: key,
                                               context: AuditEntryEncoding.sealContext(incident: decoded.incident, sequence: record.sequence),
                                               purgedAt: purgedAt)
        return record
    }
}
