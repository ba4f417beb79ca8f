// On-call schedules: rotations with wall-clock hand-offs, layers and overrides.
// "Who is on call" is a pure function of the schedule and an instant.
import Foundation

/// Members take turns in fixed-length shifts; shift boundaries fall at the same wall-clock time
/// (a daily 08:00 hand-off stays at 08:00 across daylight-saving changes).
public struct Rotation: Hashable, Sendable {
    /// The wall-clock start of the first shift, in the schedule's time zone.
    public var start: LocalDateTime
    public var shiftLength: TimeSpan
    public var members: [PersonID]

    public init(start: LocalDateTime, shiftLength: TimeSpan, members: [PersonID]) {
        self.start = start
        self.shiftLength = shiftLength
        self.members = members
    }

    /// The member on shift at a wall-clock reading, with the shift's start and end (wall clock).
    public func shift(at local: LocalDateTime) -> (person: PersonID, start: LocalDateTime, end: LocalDateTime)? {
        guard !members.isEmpty, shiftLength.seconds > 0, local >= start else { return nil }
        let length = Int64(shiftLength.seconds)
        let index = (local.seconds - start.seconds) / length
        let shiftStart = LocalDateTime(seconds: start.seconds + index * length)
        let member = members[Int(index % Int64(members.count))]
        return (member, shiftStart, LocalDateTime(seconds: shiftStart.seconds + length))
    }
}

public struct ScheduleLayer: Hashable, Sendable {
    public var id: String
    public var rotation: Rotation
    /// When set, the layer has someone on call only inside these windows.
    public var active: [WeeklyWindow]

    public init(id: String, rotation: Rotation, active: [WeeklyWindow] = []) {
        self.id = id
        self.rotation = rotation
        self.active = active
    }
}

public struct ScheduleOverride: Hashable, Sendable {
    public var person: PersonID
    public var from: LocalDateTime
    public var to: LocalDateTime
    public var reason: String?

    public init(person: PersonID, from: LocalDateTime, to: LocalDateTime, reason: String? = nil) {
        self.person = person
        self.from = from
        self.to = to
        self.reason = reason
    }
}

public enum ScheduleScope: Hashable, Sendable, CustomStringConvertible {
    case district
    case site(SiteID)

    public var description: String {
        switch self {
        case .district: "district"
        case .site(let id): id.rawValue
        }
    }
}

/// Who answers for one role at one scope, around the clock.
public struct OnCallSchedule: Hashable, Sendable {
    public var id: ScheduleID
    public var role: RoleID
    public var scope: ScheduleScope
    public var zone: ZoneRules
    /// Later layers sit on top: the highest layer that has someone on call at an instant wins.
    public var layers: [ScheduleLayer]
    public var overrides: [ScheduleOverride]

    public init(id: ScheduleID, role: RoleID, scope: ScheduleScope, zone: ZoneRules,
                layers: [ScheduleLayer], overrides: [ScheduleOverride] = []) {
        self.id = id
        self.role = role
        self.scope = scope
        self.zone = zone
        self.layers = layers
        self.overrides = overrides
    }

    /// Who is on call at an instant, and why; a gap when nobody is.
    public func onCall(at instant: Date) -> OnCallAnswer {
        let local = zone.local(instant)
        for override in overrides.reversed() where override.from <= local && local < override.to {
            return .person(override.person, source: .override(reason: override.reason),
                           until: zone.instant(override.to))
        }
        for layer in layers.reversed() {
            if !layer.active.isEmpty, !layer.active.contains(where: { $0.contains(local) }) { continue }
            if let shift = layer.rotation.shift(at: local) {
                return .person(shift.person, source: .layer(layer.id), until: zone.instant(shift.end))
            }
        }
        return .gap(schedule: id)
    }
}

public enum OnCallSource: Hashable, Sendable, Codable {
    case layer(String)
    case override(reason: String?)
}

public enum OnCallAnswer: Hashable, Sendable {
    /// `until` is when the current shift or override ends (a layer's active window may end sooner).
    case person(PersonID, source: OnCallSource, until: Date)
    case gap(schedule: ScheduleID)

    public var person: PersonID? {
        if case .person(let id, _, _) = self { return id }
        return nil
    }
}
