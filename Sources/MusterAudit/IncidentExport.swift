// One incident's audit timeline as an offline-verifiable export (docs/audit.md, "The export file"):
// canonical JSON carrying each entry's bytes, its C2SP tlog-proof against one signed checkpoint,
// the verifier key and the incident's data key, and nothing of any other incident. `verify` is the
// Swift verifier; scripts/verify-export.py is the independent one.
import Crypto
import Foundation
import MusterCore

/// JSON restricted to what exports use, written canonically: keys sorted, no white space, JCS escapes.
public indirect enum CanonicalJSON: Sendable, Hashable {
    case null
    case int(Int64)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    private func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: Array("null".utf8))
        case .int(let number): out.append(contentsOf: Array(String(number).utf8))
        case .string(let text): AuditEntryEncoding.appendString(text, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (index, key) in members.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                AuditEntryEncoding.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                members[key]?.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Reads JSON (through Foundation), refusing what exports never hold: floats, booleans.
    public static func parse(_ bytes: [UInt8]) throws -> CanonicalJSON {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else {
            throw ExportError("the export is not JSON")
        }
        return try convert(object)
    }

    private static func convert(_ value: Any) throws -> CanonicalJSON {
        switch value {
        case is NSNull: return .null
        case let text as String: return .string(text)
        case let items as [Any]: return .array(try items.map(convert))
        case let members as [String: Any]: return .object(try members.mapValues(convert))
        case let number as NSNumber:
            guard let exact = Int64(number.stringValue) else { throw ExportError("the number \(number) is not an integer") }
            return .int(exact)
        default: throw ExportError("unexpected JSON value \(value)")
        }
    }
}

public struct ExportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public struct IncidentExport: Sendable {
    public static let format = "muster-incident-export/1"

    public struct Entry: Sendable {
        public var bytes: [UInt8]
        public var logIndex: Int64
        public var proof: TlogProof
        /// The unsealed free text, nil when the entry has none or the data key was purged.
        public var text: String?

        public init(bytes: [UInt8], logIndex: Int64, proof: TlogProof, text: String?) {
            self.bytes = bytes
            self.logIndex = logIndex
            self.proof = proof
            self.text = text
        }
    }

    public var incident: String
    public var checkpoint: String
    public var verifierKey: String
    public var dataKey: DataKey?
    public var entries: [Entry]

    public init(incident: String, checkpoint: String, verifierKey: String, dataKey: DataKey?, entries: [Entry]) {
        self.incident = incident
        self.checkpoint = checkpoint
        self.verifierKey = verifierKey
        self.dataKey = dataKey
        self.entries = entries
    }

    /// The export file: canonical JSON and one newline.
    public func encoded() throws -> [UInt8] {
        var first: Int64?
        var items: [CanonicalJSON] = []
        for entry in entries {
            let fields = try EntryFields(entry.bytes)
            guard let at = fields.string("at"), let instant = AuditEntryEncoding.parseTimestamp(at), let sequence = fields.int("seq") else {
                throw ExportError("entry \(entry.logIndex) has no time or sequence")
            }
            let millis = Int64((instant.timeIntervalSince1970 * 1000).rounded())
            let start = first ?? millis
            first = start
            items.append(.object([
                "action": .string(fields.string("action") ?? ""), "actor": .string(fields.string("actor") ?? ""), "at": .string(at),
                "entry": .string(Data(entry.bytes).base64EncodedString()), "log_index": .int(entry.logIndex),
                "proof": .string(entry.proof.text), "sequence": .int(Int64(sequence)), "since_report_ms": .int(millis - start),
                "text": entry.text.map(CanonicalJSON.string) ?? .null,
            ]))
        }
        let document = CanonicalJSON.object([
            "checkpoint": .string(checkpoint), "data_key": dataKey.map { .string(Data($0.bytes).base64EncodedString()) } ?? .null,
            "entries": .array(items), "format": .string(Self.format), "incident": .object(["id": .string(incident)]),
            "verifier_key": .string(verifierKey),
        ])
        return document.encoded() + [UInt8(ascii: "\n")]
    }

    public struct Verified: Sendable, CustomStringConvertible {
        public var incident: String
        public var entries: Int
        public var firstIndex: Int64
        public var lastIndex: Int64
        public var checkpoint: Checkpoint
        public var signedBy: String
        public var keyPinned: Bool

        public var description: String {
            "OK: incident \(incident), \(entries) entries, log indices \(firstIndex)..\(lastIndex), checkpoint \(checkpoint.origin) size \(checkpoint.size) signed by \(signedBy)"
                + (keyPinned ? "" : " (key taken from the export itself: pin it with --key)")
        }
    }

    /// Checks an export file with no database, as docs/audit.md's verification steps say, in that order.
    public static func verify(_ bytes: [UInt8], pinnedKey: String? = nil) throws -> Verified {
        let document = try CanonicalJSON.parse(bytes)
        guard document.encoded() + [UInt8(ascii: "\n")] == bytes else {
            throw ExportError("the file is not in canonical form (it was changed after export)")
        }
        guard case .object(let top) = document, Set(top.keys) == ["checkpoint", "data_key", "entries", "format", "incident", "verifier_key"],
              case .string(let format)? = top["format"], format == Self.format,
              case .string(let checkpointNote)? = top["checkpoint"], case .string(let verifierKey)? = top["verifier_key"],
              case .object(let incidentObject)? = top["incident"], incidentObject.count == 1, case .string(let incident)? = incidentObject["id"],
              case .array(let items)? = top["entries"] else {
            throw ExportError("the export does not have the fields of \(Self.format)")
        }
        if let pinnedKey, pinnedKey != verifierKey { throw ExportError("the export's verifier key is not the pinned key") }
        var dataKey: DataKey?
        switch top["data_key"] {
        case .null?: dataKey = nil
        case .string(let text)?:
            guard let data = Base64.decodeCanonical(text), let key = DataKey(bytes: data) else { throw ExportError("data_key is not a 32-byte key in base64") }
            dataKey = key
        default: throw ExportError("data_key is neither null nor a string")
        }
        let verifier: NoteVerifier
        do { verifier = try NoteVerifier(verifierKey: verifierKey) } catch { throw ExportError("verifier_key: \(error)") }
        let checkpoint: Checkpoint
        do {
            let (text, _) = try SignedNote.open(checkpointNote, verifiers: [verifier])
            checkpoint = try Checkpoint.parse(text)
        } catch {
            throw ExportError("checkpoint: \(error)")
        }
        guard !items.isEmpty else { throw ExportError("the export has no entries") }
        var previousLeaf: LogHash?
        var firstMillis: Int64 = 0
        var logIndices: [Int64] = []
        for (position, item) in items.enumerated() {
            let sequence = position + 1
            guard case .object(let e) = item,
                  Set(e.keys) == ["action", "actor", "at", "entry", "log_index", "proof", "sequence", "since_report_ms", "text"],
                  case .string(let entryText)? = e["entry"], let bytes = Base64.decodeCanonical(entryText),
                  case .int(let logIndex)? = e["log_index"], case .string(let proofText)? = e["proof"],
                  case .int(let listedSequence)? = e["sequence"], case .int(let sinceReport)? = e["since_report_ms"] else {
                throw ExportError("entry \(sequence): not the fields of an export entry")
            }
            let name = "entry \(sequence) (log index \(logIndex))"
            logIndices.append(logIndex)
            guard listedSequence == Int64(sequence) else { throw ExportError("\(name): sequence \(listedSequence) out of order, \(sequence) expected") }
            let fields: EntryFields
            do { fields = try EntryFields(bytes) } catch { throw ExportError("\(name): \(error)") }
            guard fields.string("incident") == incident else { throw ExportError("\(name): the entry belongs to another incident") }
            guard fields.int("seq") == sequence else { throw ExportError("\(name): the entry's seq is not \(sequence)") }
            for key in ["action", "actor", "at"] {
                guard case .string(let shown)? = e[key], shown == fields.string(key) else { throw ExportError("\(name): \(key) differs from the entry") }
            }
            let leaf = MerkleTree.leafHash(bytes)
            let version = fields.int("v")
            if version == 2 {
                if let previousLeaf {
                    guard fields.string("prev") == previousLeaf.hex else { throw ExportError("\(name): prev is not the leaf hash of entry \(sequence - 1)") }
                } else if fields.string("prev") != nil {
                    throw ExportError("\(name): the first entry names a previous one")
                }
            } else if version != 1 {
                throw ExportError("\(name): unknown entry version")
            }
            previousLeaf = leaf
            guard let at = fields.string("at"), let instant = AuditEntryEncoding.parseTimestamp(at) else { throw ExportError("\(name): bad time") }
            let millis = Int64((instant.timeIntervalSince1970 * 1000).rounded())
            if sequence == 1 { firstMillis = millis }
            guard sinceReport == millis - firstMillis else { throw ExportError("\(name): since_report_ms is not its time since the report") }
            let proof: TlogProof
            do { proof = try TlogProof.parse(proofText) } catch { throw ExportError("\(name): proof: \(error)") }
            guard proof.checkpoint == checkpointNote else { throw ExportError("\(name): the proof is for another checkpoint") }
            guard proof.index == logIndex, logIndex >= 0, logIndex < checkpoint.size else {
                throw ExportError("\(name): the proof's index or log_index is outside the checkpoint")
            }
            guard MerkleTree.verifyInclusion(leafHash: leaf, index: logIndex, size: checkpoint.size, proof: proof.hashes, root: checkpoint.root) else {
                throw ExportError("\(name): the inclusion proof does not lead to the checkpoint's root")
            }
            let sealed = fields.string("sealed")
            switch (sealed, dataKey, e["text"]) {
            case (nil, _, .null?), (.some, nil, .null?): break
            case (.some(let sealedText), .some(let key), .string(let text)?):
                guard let sealedBytes = Base64.decodeCanonical(sealedText),
                      let opened = try? Seal.open(sealedBytes, key: key, context: AuditEntryEncoding.sealContext(incident: IncidentID(incident), sequence: sequence)),
                      opened == text else {
                    throw ExportError("\(name): the text is not what was sealed")
                }
            default: throw ExportError("\(name): text does not match the entry's sealed text")
            }
        }
        return Verified(incident: incident, entries: items.count, firstIndex: logIndices.first ?? 0, lastIndex: logIndices.last ?? 0, checkpoint: checkpoint,
                        signedBy: verifier.name, keyPinned: pinnedKey != nil)
    }
}
