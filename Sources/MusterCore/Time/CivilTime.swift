// Wall-clock ("civil") dates and times, as integers. Hand-offs and school hours are defined on the
// wall clock of a time zone, so schedules compute on this naive local timeline and convert to
// instants only through `ZoneRules`, which settles daylight-saving gaps and overlaps in one place.
import Foundation

public enum Weekday: String, CaseIterable, Sendable, Codable, Comparable {
    case mon, tue, wed, thu, fri, sat, sun

    /// Monday is 0.
    public var index: Int {
        switch self {
        case .mon: 0
        case .tue: 1
        case .wed: 2
        case .thu: 3
        case .fri: 4
        case .sat: 5
        case .sun: 6
        }
    }

    public static func < (lhs: Weekday, rhs: Weekday) -> Bool { lhs.index < rhs.index }

    private static let byIndex: [Weekday] = [.mon, .tue, .wed, .thu, .fri, .sat, .sun]

    /// The weekday of a day counted from 1970-01-01, which was a Thursday.
    public init(dayNumber: Int64) {
        self = Weekday.byIndex[Int(((dayNumber % 7) + 7 + 3) % 7)]
    }
}

/// A time of day on the wall clock, in minutes since midnight (0 ..< 1440).
public struct LocalTime: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var minutes: Int
    public init(hour: Int, minute: Int) { minutes = hour * 60 + minute }
    public init(minutes: Int) { self.minutes = minutes }
    public static func < (lhs: LocalTime, rhs: LocalTime) -> Bool { lhs.minutes < rhs.minutes }
    public var description: String {
        let h = minutes / 60, m = minutes % 60
        return (h < 10 ? "0" : "") + "\(h):" + (m < 10 ? "0" : "") + "\(m)"
    }

    /// Parses "HH:MM" (24-hour clock).
    public static func parse(_ text: String) -> LocalTime? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
              let h = Int(parts[0]), let m = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(m)
        else { return nil }
        return LocalTime(hour: h, minute: m)
    }
}

/// A calendar date with no time zone.
public struct LocalDate: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    public var dayNumber: Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day counted from 1970-01-01 (civil_from_days).
    public init(dayNumber: Int64) {
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.init(year: Int(yoe + era * 400 + (m <= 2 ? 1 : 0)), month: Int(m), day: Int(d))
    }

    public var weekday: Weekday { Weekday(dayNumber: dayNumber) }

    public static func < (lhs: LocalDate, rhs: LocalDate) -> Bool { lhs.dayNumber < rhs.dayNumber }

    public var description: String {
        let m = month < 10 ? "0\(month)" : "\(month)"
        let d = day < 10 ? "0\(day)" : "\(day)"
        return "\(year)-\(m)-\(d)"
    }

    /// Parses "YYYY-MM-DD", rejecting dates that do not exist (2026-02-30).
    public static func parse(_ text: String) -> LocalDate? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        let date = LocalDate(year: y, month: m, day: d)
        return LocalDate(dayNumber: date.dayNumber) == date ? date : nil
    }
}

/// A wall-clock moment with no time zone, as seconds on the naive local timeline from 1970-01-01T00:00.
public struct LocalDateTime: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var seconds: Int64
    public init(seconds: Int64) { self.seconds = seconds }
    public init(date: LocalDate, time: LocalTime) {
        seconds = date.dayNumber * 86_400 + Int64(time.minutes) * 60
    }

    public var date: LocalDate { LocalDate(dayNumber: dayNumber) }
    public var dayNumber: Int64 { seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400 }
    /// Seconds since local midnight.
    public var secondOfDay: Int64 { seconds - dayNumber * 86_400 }
    public var time: LocalTime { LocalTime(minutes: Int(secondOfDay / 60)) }
    public var weekday: Weekday { Weekday(dayNumber: dayNumber) }

    public static func < (lhs: LocalDateTime, rhs: LocalDateTime) -> Bool { lhs.seconds < rhs.seconds }
    public var description: String { "\(date)T\(time)" }

    /// Parses "YYYY-MM-DDTHH:MM" (a local time: the time zone comes from the context).
    public static func parse(_ text: String) -> LocalDateTime? {
        let parts = text.split(separator: "T", omittingEmptySubsequences: false)
        guard parts.count == 2, let date = LocalDate.parse(String(parts[0])),
              let time = LocalTime.parse(String(parts[1])) else { return nil }
        return LocalDateTime(date: date, time: time)
    }
}

/// A length of time written in a playbook or schedule ("5m", "2h", "1h30m", "2d", "1w").
public struct TimeSpan: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var seconds: Int
    public init(seconds: Int) { self.seconds = seconds }
    public static func minutes(_ m: Int) -> TimeSpan { TimeSpan(seconds: m * 60) }
    public static func hours(_ h: Int) -> TimeSpan { TimeSpan(seconds: h * 3600) }
    public static func days(_ d: Int) -> TimeSpan { TimeSpan(seconds: d * 86_400) }
    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.seconds < rhs.seconds }

    private static let units: [(Character, Int)] = [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)]

    /// The shortest form: 5400 seconds is "1h30m".
    public var description: String {
        if seconds == 0 { return "0s" }
        var rest = seconds, text = seconds < 0 ? "-" : ""
        rest = abs(rest)
        for (unit, size) in TimeSpan.units where rest >= size {
            text += "\(rest / size)\(unit)"
            rest %= size
        }
        return text
    }

    /// Parses one or more number-unit pairs, units in decreasing order ("1h30m"); nil when malformed.
    public static func parse(_ text: String) -> TimeSpan? {
        var total = 0, number = "", lastUnitIndex = -1
        guard !text.isEmpty else { return nil }
        for ch in text {
            if ch.isASCII, ch.isNumber {
                number.append(ch)
            } else if let index = units.firstIndex(where: { $0.0 == ch }) {
                guard !number.isEmpty, number.count <= 6, let n = Int(number), index > lastUnitIndex else { return nil }
                total += n * units[index].1
                lastUnitIndex = index
                number = ""
            } else {
                return nil
            }
        }
        return number.isEmpty ? TimeSpan(seconds: total) : nil
    }
}

extension Date {
    /// Whole seconds since 1970, as the engine and schedules count them.
    @inlinable public var epochSeconds: Int64 { Int64(timeIntervalSince1970.rounded(.down)) }
    @inlinable public init(epochSeconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(epochSeconds)) }
    @inlinable public func adding(_ span: TimeSpan) -> Date { addingTimeInterval(TimeInterval(span.seconds)) }
}
