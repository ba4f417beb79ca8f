// Sites and the district: time zones, school hours and the calendar of non-school days,
// which decide whether an incident gets a playbook's daytime steps or its after-hours variant.
import Foundation

/// A weekly window on the wall clock, e.g. Monday to Friday 07:30–15:30. A window whose end is not
/// after its start runs past midnight into the next day (17:00–07:00).
public struct WeeklyWindow: Hashable, Sendable, Codable {
    /// One bit per weekday (Monday is bit 0): checked on every page, so no hashing.
    private var dayMask: UInt8
    public var from: LocalTime
    public var to: LocalTime

    public init(days: Set<Weekday>, from: LocalTime, to: LocalTime) {
        dayMask = days.reduce(0) { $0 | (1 << UInt8($1.index)) }
        self.from = from
        self.to = to
    }

    public var days: Set<Weekday> { Set(Weekday.allCases.filter { includes($0) }) }

    public func includes(_ day: Weekday) -> Bool { dayMask & (1 << UInt8(day.index)) != 0 }

    public func contains(_ local: LocalDateTime) -> Bool {
        let minute = Int(local.secondOfDay / 60)
        if from < to {
            return includes(local.weekday) && minute >= from.minutes && minute < to.minutes
        }
        // Overnight: today after `from`, or the early hours of the day after a listed day.
        if includes(local.weekday), minute >= from.minutes { return true }
        let yesterday = Weekday(dayNumber: local.dayNumber - 1)
        return includes(yesterday) && minute < to.minutes
    }
}

/// Days a site is closed (holidays, breaks), inclusive at both ends.
public struct ClosedPeriod: Hashable, Sendable, Codable {
    public var from: LocalDate
    public var to: LocalDate
    public var reason: String

    public init(from: LocalDate, to: LocalDate, reason: String) {
        self.from = from
        self.to = to
        self.reason = reason
    }

    public func contains(_ date: LocalDate) -> Bool { from <= date && date <= to }
}

public struct District: Hashable, Sendable {
    public var id: String
    public var name: String
    public var zone: ZoneRules
    /// Closures that apply to every site.
    public var closed: [ClosedPeriod]
    /// The number a partner agency calls to reach the district about an incident (E.164); partners'
    /// pages carry it.
    public var callBack: String?

    public init(id: String, name: String, zone: ZoneRules, closed: [ClosedPeriod], callBack: String? = nil) {
        self.id = id
        self.name = name
        self.zone = zone
        self.closed = closed
        self.callBack = callBack
    }
}

public struct Site: Hashable, Sendable {
    public var id: SiteID
    public var name: String
    public var zone: ZoneRules
    public var schoolHours: WeeklyWindow
    public var closed: [ClosedPeriod]

    public init(id: SiteID, name: String, zone: ZoneRules, schoolHours: WeeklyWindow, closed: [ClosedPeriod]) {
        self.id = id
        self.name = name
        self.zone = zone
        self.schoolHours = schoolHours
        self.closed = closed
    }
}

/// Which kind of time an instant is at a site, for choosing a playbook's variant.
public enum SchoolTime: String, Sendable, Codable {
    case schoolHours = "school_hours"
    case outsideSchoolHours = "outside_school_hours"
    case nonSchoolDay = "non_school_day"
}
