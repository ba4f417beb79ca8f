// `muster audit export`: one incident's timeline with everything needed to verify it offline
// (IncidentExport), or as CSV for people, times relative to the report.
import Foundation
import MusterAudit
import MusterCore
import MusterStore

public struct AuditExporter: Sendable {
    let store: any Store
    let verifierKey: String

    public init(store: any Store, verifierKey: String) {
        self.store = store
        self.verifierKey = verifierKey
    }

    /// The incident's entries covered by the latest checkpoint, each with its inclusion proof. Entries
    /// the sequencer has not integrated yet are left out (`waiting` says how many).
    public func export(_ id: IncidentID) async throws -> (export: IncidentExport, waiting: Int) {
        guard let checkpoint = try await store.latestCheckpoint() else {
            throw ExportError("the audit log has no checkpoint yet: is the sequencer running (muster serve or muster worker)?")
        }
        let all = try await store.auditEntries(of: id)
        guard !all.isEmpty else { throw ExportError("no incident \(id)") }
        // Proofs need an unbroken run from entry 1: it ends at the first entry not yet in the checkpoint.
        var covered: [StoredAuditEntry] = []
        for entry in all {
            guard let index = entry.logIndex, index < checkpoint.size else { break }
            covered.append(entry)
        }
        guard !covered.isEmpty else { throw ExportError("incident \(id) has no entries in a checkpoint yet") }
        let size = checkpoint.size
        var needed = Set<Int64>()
        for entry in covered { needed.formUnion(MerkleTree.inclusionProofIndices(index: entry.logIndex ?? 0, size: size)) }
        let hashes = try await store.treeHashes(Array(needed))
        let key = try await store.dataKey(of: id)
        var entries: [IncidentExport.Entry] = []
        for entry in covered {
            let index = entry.logIndex ?? 0
            let proof = TlogProof(index: index, hashes: try MerkleTree.inclusionProof(index: index, size: size, hashes: hashes),
                                  checkpoint: checkpoint.note, extra: nil)
            let decoded = try AuditEntryEncoding.decode(entry.body)
            var text: String?
            if let sealed = decoded.sealed, let key {
                text = try Seal.open(sealed, key: key, context: AuditEntryEncoding.sealContext(incident: id, sequence: entry.sequence))
            }
            entries.append(IncidentExport.Entry(bytes: entry.body, logIndex: index, proof: proof, text: text))
        }
        return (IncidentExport(incident: id.rawValue, checkpoint: checkpoint.note, verifierKey: verifierKey, dataKey: key, entries: entries),
                all.count - covered.count)
    }

    /// The timeline as CSV (RFC 4180), times relative to the report; no proofs.
    public func csv(_ id: IncidentID) async throws -> String {
        let records = try await store.timeline(id)
        guard let first = records.first else { throw ExportError("no incident \(id)") }
        let entries = try await store.auditEntries(of: id)
        let indices = Dictionary(entries.map { ($0.sequence, $0.logIndex) }, uniquingKeysWith: { a, _ in a })
        var lines = ["sequence,log_index,at,since_report,actor,action,step,round,recipient,channel,task,target,notification,detail,text"]
        for record in records {
            let since = record.at.timeIntervalSince(first.at)
            let fields: [String] = [
                String(record.sequence), indices[record.sequence].flatMap { $0.map(String.init) } ?? "", AuditEntryEncoding.timestamp(record.at),
                Self.duration(since), record.actor.description, record.action.rawValue, record.step.map { String($0 + 1) } ?? "",
                record.round.map(String.init) ?? "", record.recipient?.description ?? "", record.channel?.rawValue ?? "",
                record.task?.rawValue ?? "", record.target ?? "", record.notification?.description ?? "",
                Self.inert(record.detail ?? ""), Self.inert(record.sensitive ?? ""),
            ]
            lines.append(fields.map(Self.quoted).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// "+1:02:03.250": hours, minutes, seconds and milliseconds since the report.
    static func duration(_ seconds: TimeInterval) -> String {
        let millis = Int((seconds * 1000).rounded())
        let ms = millis % 1000, s = millis / 1000 % 60, m = millis / 60_000 % 60, h = millis / 3_600_000
        return "+\(h):" + String(format: "%02d:%02d.%03d", m, s, ms)
    }

    /// Free text (a note, a reason, a provider's answer) as a spreadsheet will not run it: a cell that
    /// starts with =, +, -, @, a tab or a carriage return is a formula to Excel and LibreOffice, so it
    /// gets a leading apostrophe (OWASP's advice for CSV injection).
    static func inert(_ text: String) -> String {
        guard let first = text.first, "=+-@\t\r".contains(first) else { return text }
        return "'" + text
    }

    static func quoted(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
