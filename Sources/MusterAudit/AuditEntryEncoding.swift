// The canonical bytes of an audit entry, stored byte for byte and hashed into the log (docs/audit.md).
// Canonical JSON in the manner of RFC 8785 (JCS), restricted to strings and integers: keys sorted,
// no white space, absent fields omitted, strings escaped minimally. Free text about a student is in
// these bytes only sealed (`sealed`, AES-GCM under the incident's data key), so the leaf hash covers
// the ciphertext and destroying the key later breaks no proof. `prev` chains an incident's entries.
import Foundation
import MusterCore

public enum AuditEntryEncoding {
    /// The encoding's version, written into every entry as "v". Version 1 had neither `prev` nor `sealed`.
    public static let version = 2

    /// The keys are written in canonical order (sorted by their UTF-8 bytes, as `canonicalObject`
    /// would sort them; a test holds the two to each other), which saves sorting on every entry.
    /// `prev` is the (32-byte) leaf hash of the incident's previous entry (none for the first); `sealed` the
    /// sealed form of `record.sensitive` (which itself is never written).
    public static func encode(_ record: AuditRecord, incident: IncidentID, prev: [UInt8]? = nil, sealed: [UInt8]? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(UInt8(ascii: "{"))
        var first = true
        func key(_ name: StaticString) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func string(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            appendString(value, to: &out)
        }
        func int(_ name: StaticString, _ value: Int?) {
            guard let value else { return }
            key(name)
            out.append(contentsOf: String(value).utf8)
        }
        string("action", record.action.rawValue)
        string("actor", record.actor.description)
        string("at", timestamp(record.at))
        string("channel", record.channel?.rawValue)
        string("detail", record.detail)
        string("incident", incident.rawValue)
        string("notification", record.notification?.description)
        string("prev", prev.flatMap { LogHash(bytes: $0)?.hex })
        string("recipient", record.recipient?.description)
        int("round", record.round)
        string("sealed", sealed.map(Base64.encode))
        int("seq", record.sequence)
        int("step", record.step.map { $0 + 1 })
        string("target", record.target)
        string("task", record.task?.rawValue)
        int("v", version)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The same entry through the generic canonical writer (sorting its keys): the reference the
    /// fixed-order `encode` is tested against.
    public static func encodeSorted(_ record: AuditRecord, incident: IncidentID, prev: [UInt8]? = nil, sealed: [UInt8]? = nil) -> [UInt8] {
        var fields: [(String, Value)] = [
            ("v", .int(version)), ("incident", .string(incident.rawValue)), ("seq", .int(record.sequence)),
            ("at", .string(timestamp(record.at))), ("actor", .string(record.actor.description)), ("action", .string(record.action.rawValue)),
        ]
        if let step = record.step { fields.append(("step", .int(step + 1))) }
        if let round = record.round { fields.append(("round", .int(round))) }
        if let recipient = record.recipient { fields.append(("recipient", .string(recipient.description))) }
        if let channel = record.channel { fields.append(("channel", .string(channel.rawValue))) }
        if let task = record.task { fields.append(("task", .string(task.rawValue))) }
        if let target = record.target { fields.append(("target", .string(target))) }
        if let notification = record.notification { fields.append(("notification", .string(notification.description))) }
        if let detail = record.detail { fields.append(("detail", .string(detail))) }
        if let hex = prev.flatMap({ LogHash(bytes: $0)?.hex }) { fields.append(("prev", .string(hex))) }
        if let sealed { fields.append(("sealed", .string(Base64.encode(sealed)))) }
        return canonicalObject(fields)
    }

    /// An entry read back: the record (its `sensitive` text still sealed) and the chain and seal fields.
    public struct Decoded: Sendable {
        public var incident: IncidentID
        public var record: AuditRecord
        public var version: Int
        public var prev: [UInt8]?
        public var sealed: [UInt8]?
    }

    /// Reads an entry back (timelines, exports, verification). The caller opens `sealed`.
    public static func decode(_ bytes: [UInt8]) throws -> Decoded {
        let fields = try EntryFields(bytes)
        guard let version = fields.int("v"), version == 1 || version == 2,
              let incident = fields.string("incident"), let seq = fields.int("seq"),
              let at = fields.string("at").flatMap(parseTimestamp), let actor = fields.string("actor").flatMap(Actor.init),
              let action = fields.string("action").flatMap(AuditAction.init(rawValue:)) else {
            throw AuditDecodingError(message: "not a version-1 or version-2 audit entry")
        }
        var prev: [UInt8]?
        if let text = fields.string("prev") {
            guard let hash = LogHash(hex: text) else { throw AuditDecodingError(message: "prev is not a 64-digit hex hash") }
            prev = hash.bytes
        }
        var sealed: [UInt8]?
        if let text = fields.string("sealed") {
            guard let bytes = Base64.decodeCanonical(text) else { throw AuditDecodingError(message: "sealed is not base64") }
            sealed = bytes
        }
        let record = AuditRecord(
            sequence: seq, at: at, actor: actor, action: action, step: fields.int("step").map { $0 - 1 },
            round: fields.int("round"), recipient: fields.string("recipient").flatMap(Recipient.init),
            channel: fields.string("channel").flatMap(ChannelKind.init(rawValue:)),
            task: fields.string("task").map(TaskID.init), target: fields.string("target"),
            notification: fields.string("notification").flatMap(NotificationID.init),
            detail: fields.string("detail"), sensitive: nil)
        return Decoded(incident: IncidentID(incident), record: record, version: version, prev: prev, sealed: sealed)
    }

    /// The context a sealed entry text is bound to (AES-GCM associated data).
    public static func sealContext(incident: IncidentID, sequence: Int) -> String {
        "muster/audit\n\(incident.rawValue)\n\(sequence)"
    }

    // MARK: Canonical JSON

    enum Value {
        case string(String)
        case int(Int)
    }

    static func canonicalObject(_ fields: [(String, Value)]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, (key, value)) in fields.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }).enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case .string(let text): appendString(text, to: &out)
            case .int(let number): out.append(contentsOf: Array(String(number).utf8))
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// JCS string escaping: `"` and `\` escaped, control characters as \b \t \n \f \r or \u00xx, all else literal UTF-8.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x08: out.append(contentsOf: [92, UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [92, UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// RFC 3339 in UTC with milliseconds: "2026-12-02T16:00:00.000Z".
    public static func timestamp(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let local = LocalDateTime(seconds: seconds)
        let ms = Int(millis - seconds * 1000)
        let s = Int(local.secondOfDay % 60)
        let fraction = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(local.date)T\(local.time):" + (s < 10 ? "0" : "") + "\(s)." + fraction + "Z"
    }

    public static func parseTimestamp(_ text: String) -> Date? {
        guard text.count == 24, text.hasSuffix("Z"),
              let dateTime = LocalDateTime.parse(String(text.prefix(16))),
              let seconds = Int(text.dropFirst(17).prefix(2)), let millis = Int(text.dropFirst(20).prefix(3)) else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(dateTime.seconds + Int64(seconds)) + TimeInterval(millis) / 1000)
    }
}

public struct AuditDecodingError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
