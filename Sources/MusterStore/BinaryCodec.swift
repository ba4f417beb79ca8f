// A compact binary form for what the store keeps per incident and per queued notification:
// versioned, little work to write or read (Foundation's JSONEncoder cost more than the database
// itself). Unsigned LEB128 numbers, zigzag for signed ones, length-prefixed UTF-8 strings,
// instants as the bit pattern of their seconds since 1970, so nothing is rounded.
import Foundation
import MusterCore

struct BinaryWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func uint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func int(_ value: Int) { uint(UInt64(bitPattern: Int64((value << 1) ^ (value >> 63)))) }
    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            uint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func blob(_ value: [UInt8]) {
        uint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func date(_ value: Date) {
        let bits = value.timeIntervalSince1970.bitPattern
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8((bits >> UInt64(shift)) & 0xFF)) }
    }

    mutating func optional<T>(_ value: T?, _ write: (inout BinaryWriter, T) -> Void) {
        if let value {
            bool(true)
            write(&self, value)
        } else {
            bool(false)
        }
    }
}

struct BinaryReader {
    struct Malformed: Error, CustomStringConvertible {
        var description: String { "a stored record is malformed" }
    }

    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { position == bytes.count }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw Malformed() }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func uint() throws -> UInt64 {
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw Malformed() }
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }

    mutating func int() throws -> Int {
        let raw = Int64(bitPattern: try uint())
        return Int((raw >> 1) ^ -(raw & 1))
    }

    mutating func bool() throws -> Bool {
        switch try byte() {
        case 0: false
        case 1: true
        default: throw Malformed()
        }
    }

    mutating func string() throws -> String {
        let count = Int(try uint())
        guard count <= bytes.count - position else { throw Malformed() }
        defer { position += count }
        return String(decoding: bytes[position..<(position + count)], as: UTF8.self)
    }

    mutating func blob() throws -> [UInt8] {
        let count = Int(try uint())
        guard count <= bytes.count - position else { throw Malformed() }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func date() throws -> Date {
        var bits: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 8) { bits |= UInt64(try byte()) << UInt64(shift) }
        return Date(timeIntervalSince1970: Double(bitPattern: bits))
    }

    mutating func optional<T>(_ read: (inout BinaryReader) throws -> T) throws -> T? {
        try bool() ? try read(&self) : nil
    }

    mutating func choice<T: RawRepresentable>(_: T.Type) throws -> T where T.RawValue == String {
        guard let value = T(rawValue: try string()) else { throw Malformed() }
        return value
    }
}

/// The binary forms of the engine's values.
enum BinaryCodec {
    static let stateVersion: UInt8 = 1
    static let notificationVersion: UInt8 = 1

    /// Trailing fields, added after the first release: each is a tag and its value, written only when
    /// it has one, so records without them read as before.
    enum Trailing: UInt8 {
        /// The incident is a drill (tag alone). Older instances in a rolling upgrade read it.
        case drill = 1
        /// The incident's flags, sealed under its data key (length-prefixed); the clear list is then empty.
        /// An older instance in a rolling upgrade refuses such a record rather than read it without them.
        case sealedFlags = 2
    }

    /// `sealedFlags`: the flags sealed by the caller, written instead of the clear list.
    static func encode(_ state: IncidentState, sealedFlags: [UInt8]? = nil) -> [UInt8] {
        var w = BinaryWriter(capacity: 512)
        w.uint(UInt64(stateVersion))
        let incident = state.incident
        w.string(incident.id.rawValue)
        w.int(incident.number)
        w.string(incident.type.rawValue)
        w.string(incident.severity.rawValue)
        w.string(incident.site.rawValue)
        actor(incident.reporter, &w)
        let clearFlags = sealedFlags == nil ? incident.flags.map(\.rawValue).sorted() : []
        w.uint(UInt64(clearFlags.count))
        for flag in clearFlags { w.string(flag) }
        w.date(incident.reportedAt)
        w.string(state.playbook.rawValue)
        w.string(state.playbookVersion)
        w.string(state.variant.rawValue)
        switch state.phase {
        case .escalating(let step, let round):
            w.uint(0)
            w.int(step)
            w.int(round)
        case .acknowledged: w.uint(1)
        case .unowned: w.uint(2)
        case .resolved: w.uint(3)
        }
        w.optional(state.owner) { w, owner in actor(owner, &w) }
        w.optional(state.acknowledgedAt) { $0.date($1) }
        w.optional(state.acknowledgedStep) { $0.int($1) }
        w.uint(UInt64(state.tasks.count))
        for task in state.tasks {
            w.string(task.id.rawValue)
            w.optional(task.dueAt) { $0.date($1) }
            w.optional(task.completedAt) { $0.date($1) }
            w.optional(task.completedBy) { w, by in actor(by, &w) }
            w.bool(task.overdue)
        }
        w.uint(UInt64(state.timers.count))
        for timer in state.timers {
            w.string(timer.key.description)
            w.date(timer.due)
        }
        w.uint(UInt64(state.currentPages.count))
        for page in state.currentPages {
            notificationID(page.notificationID, &w)
            w.bool(page.failed)
        }
        w.int(state.reportCount)
        w.int(state.cycle)
        w.int(state.nextAuditSequence)
        w.optional(state.resolvedAt) { $0.date($1) }
        if incident.drill { w.uint(UInt64(Trailing.drill.rawValue)) }
        if let sealedFlags {
            w.uint(UInt64(Trailing.sealedFlags.rawValue))
            w.blob(sealedFlags)
        }
        return w.bytes
    }

    /// Decodes a state; the student's text (summary, subject) is stored apart and passed in, and sealed
    /// flags are opened by `openFlags`.
    static func decodeState(_ bytes: [UInt8], summary: String, subject: String?,
                            openFlags: ([UInt8]) throws -> Set<IncidentFlag>) throws -> IncidentState {
        var r = BinaryReader(bytes)
        guard try r.uint() == UInt64(stateVersion) else { throw BinaryReader.Malformed() }
        let id = IncidentID(try r.string())
        let number = try r.int()
        let type = IncidentTypeID(try r.string())
        let severity = try r.choice(Severity.self)
        let site = SiteID(try r.string())
        let reporter = try actor(&r)
        var flags = Set<IncidentFlag>()
        for _ in 0..<(try r.uint()) { flags.insert(IncidentFlag(try r.string())) }
        let reportedAt = try r.date()
        let report = Report(type: type, severity: severity, site: site, reporter: reporter, summary: summary, subject: subject,
                            flags: flags, receivedAt: reportedAt)
        let incident = Incident(id: id, number: number, report: report)
        let playbook = PlaybookID(try r.string())
        let version = try r.string()
        let variant = try r.choice(PlanVariant.self)
        let phase: IncidentPhase
        switch try r.uint() {
        case 0: phase = .escalating(step: try r.int(), round: try r.int())
        case 1: phase = .acknowledged
        case 2: phase = .unowned
        case 3: phase = .resolved
        default: throw BinaryReader.Malformed()
        }
        let owner = try r.optional { try actor(&$0) }
        let acknowledgedAt = try r.optional { try $0.date() }
        let acknowledgedStep = try r.optional { try $0.int() }
        var tasks: [TaskState] = []
        for _ in 0..<(try r.uint()) {
            tasks.append(TaskState(id: TaskID(try r.string()), dueAt: try r.optional { try $0.date() },
                                   completedAt: try r.optional { try $0.date() }, completedBy: try r.optional { try actor(&$0) },
                                   overdue: try r.bool()))
        }
        var timers: [ScheduledTimer] = []
        for _ in 0..<(try r.uint()) {
            guard let key = TimerKey(try r.string()) else { throw BinaryReader.Malformed() }
            timers.append(ScheduledTimer(key: key, due: try r.date()))
        }
        var pages: [OutstandingPage] = []
        for _ in 0..<(try r.uint()) {
            pages.append(OutstandingPage(notificationID: try notificationID(&r), failed: try r.bool()))
        }
        let state = IncidentState(
            incident: incident, playbook: playbook, playbookVersion: version, variant: variant, phase: phase, owner: owner,
            acknowledgedAt: acknowledgedAt, acknowledgedStep: acknowledgedStep, tasks: tasks, timers: timers, currentPages: pages,
            reportCount: try r.int(), cycle: try r.int(), nextAuditSequence: try r.int(), resolvedAt: try r.optional { try $0.date() })
        var decoded = state
        while !r.atEnd {
            switch Trailing(rawValue: try r.byte()) {
            case .drill: decoded.incident.drill = true
            case .sealedFlags: decoded.incident.flags = try openFlags(try r.blob())
            case nil: throw BinaryReader.Malformed()
            }
        }
        return decoded
    }

    static func encode(_ notification: QueuedNotification) -> [UInt8] {
        var w = BinaryWriter(capacity: 128)
        w.uint(UInt64(notificationVersion))
        notificationID(notification.id, &w)
        w.int(notification.incidentNumber)
        w.string(notification.type.rawValue)
        w.string(notification.severity.rawValue)
        w.string(notification.site.rawValue)
        w.string(notification.address)
        if notification.drill { w.bool(true) }
        return w.bytes
    }

    static func decodeNotification(_ bytes: [UInt8]) throws -> QueuedNotification {
        var r = BinaryReader(bytes)
        guard try r.uint() == UInt64(notificationVersion) else { throw BinaryReader.Malformed() }
        let notification = QueuedNotification(id: try notificationID(&r), incidentNumber: try r.int(), type: IncidentTypeID(try r.string()),
                                              severity: try r.choice(Severity.self), site: SiteID(try r.string()), address: try r.string(),
                                              drill: false)
        var read = notification
        if !r.atEnd {
            guard try r.bool() else { throw BinaryReader.Malformed() }  // written only when set
            read.drill = true
        }
        guard r.atEnd else { throw BinaryReader.Malformed() }
        return read
    }

    private static func actor(_ actor: Actor, _ w: inout BinaryWriter) { w.string(actor.description) }

    private static func actor(_ r: inout BinaryReader) throws -> Actor {
        guard let actor = Actor(try r.string()) else { throw BinaryReader.Malformed() }
        return actor
    }

    private static func notificationID(_ id: NotificationID, _ w: inout BinaryWriter) { w.string(id.description) }

    private static func notificationID(_ r: inout BinaryReader) throws -> NotificationID {
        guard let id = NotificationID(try r.string()) else { throw BinaryReader.Malformed() }
        return id
    }
}
