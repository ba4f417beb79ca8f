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

    /// The member on shift at an instant, with the shift's start and end. Boundaries are wall-clock
    /// readings turned into instants, so a fall-back night's repeated hour never hands back.
    public func shift(at instant: Date, zone: ZoneRules) -> (person: PersonID, start: Date, end: Date)? {
        guard !members.isEmpty, shiftLength.seconds > 0 else { return nil }
        let length = Int64(shiftLength.seconds)
        func boundary(_ k: Int64) -> Date { zone.instant(LocalDateTime(seconds: start.seconds + k * length)) }
        guard instant >= boundary(0) else { return nil }  // before the first shift
        let naive = zone.local(instant).seconds - start.seconds
        var k = max(0, naive / length)
        var lower = boundary(k)
        while k > 0, lower > instant {
            k -= 1
            lower = boundary(k)
        }
        var upper = boundary(k + 1)
        while upper <= instant {
            k += 1
            lower = upper
            upper = boundary(k + 1)
        }
        return (members[Int(k % Int64(members.count))], lower, upper)
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

/// Who answers for one role at one scope, around the clock. Immutable, shared by reference.
public final class OnCallSchedule: Sendable {
    public let id: ScheduleID
    public let role: RoleID
    public let scope: ScheduleScope
    public let zone: ZoneRules
    /// Later layers sit on top: the highest layer that has someone on call at an instant wins.
    public let layers: [ScheduleLayer]
    public let overrides: [ScheduleOverride]
    /// The overrides' periods as instants, computed once.
    private let overridePeriods: [Range<Date>]

    public init(id: ScheduleID, role: RoleID, scope: ScheduleScope, zone: ZoneRules,
                layers: [ScheduleLayer], overrides: [ScheduleOverride] = []) {
        self.id = id
        self.role = role
        self.scope = scope
        self.zone = zone
        self.layers = layers
        self.overrides = overrides
        overridePeriods = overrides.map { zone.instant($0.from)..<max(zone.instant($0.from), zone.instant($0.to)) }
    }

    /// Who is on call at an instant, and why; a gap when nobody is.
    public func onCall(at instant: Date) -> OnCallAnswer {
        for index in overrides.indices.reversed() where overridePeriods[index].contains(instant) {
            let override = overrides[index]
            return .person(override.person, source: .override(reason: override.reason), until: overridePeriods[index].upperBound)
        }
        let local = zone.local(instant)
        for index in layers.indices.reversed() {
            if !layers[index].active.isEmpty, !layers[index].active.contains(where: { $0.contains(local) }) { continue }
            if let shift = layers[index].rotation.shift(at: instant, zone: zone) {
                return .person(shift.person, source: .layer(layers[index].id), until: shift.end)
            }
        }
        return .gap(schedule: id)
    }
}

extension OnCallSchedule {
    /// The instants in `from..<to` at which who is on call may change: shift hand-offs, the ends of
    /// overrides, the edges of active windows and the time zone's own changes. Between two of them the
    /// answer is constant, so a period is answered from its boundaries, not by sampling it.
    public func changes(from: Date, to: Date) -> [Date] {
        guard from < to else { return [] }
        let range = from..<to
        var instants = Set(overridePeriods.flatMap { [$0.lowerBound, $0.upperBound] })
        instants.formUnion(zone.transitions(in: range))
        for layer in layers {
            let rotation = layer.rotation
            instants.insert(zone.instant(rotation.start))  // before it, the layer has nobody
            var cursor = from
            while cursor < to, let shift = rotation.shift(at: cursor, zone: zone), shift.end > cursor {
                instants.insert(shift.end)
                cursor = shift.end
            }
            // Each day's window edges, from the day before the period (an overnight window) to the day after it.
            guard !layer.active.isEmpty else { continue }
            for day in zone.local(from).dayNumber - 1...zone.local(to).dayNumber + 1 {
                for window in layer.active {
                    for time in [window.from, window.to] {
                        instants.formUnion(zone.instants(LocalDateTime(date: LocalDate(dayNumber: day), time: time)))
                    }
                }
            }
        }
        return instants.filter { $0 > from && $0 < to }.sorted()
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
