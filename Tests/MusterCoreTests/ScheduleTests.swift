// On-call schedules across daylight-saving changes, with layers, active windows, overrides and gaps.
// America/Chicago in 2026: clocks spring forward 2026-03-08 02:00 CST -> 03:00 CDT (08:00Z) and
// fall back 2026-11-01 02:00 CDT -> 01:00 CST (07:00Z).
import Foundation
import MusterCore
import Testing

private let chicago = ZoneRules(identifier: "America/Chicago")!

private func utc(_ text: String) -> Date { Fixture.instant(text) }
private func local(_ text: String) -> LocalDateTime { LocalDateTime.parse(text)! }

private func schedule(start: String, shift: TimeSpan, members: [PersonID], active: [WeeklyWindow] = [],
                      overrides: [ScheduleOverride] = [], extraLayers: [ScheduleLayer] = []) -> OnCallSchedule {
    OnCallSchedule(id: "s", role: "counselor", scope: .district, zone: chicago,
                   layers: [ScheduleLayer(id: "base", rotation: Rotation(start: local(start), shiftLength: shift, members: members), active: active)] + extraLayers,
                   overrides: overrides)
}

@Suite("Time zones and on-call schedules")
struct ScheduleTests {
    @Test("the zone table has the 2026 transitions at the right instants")
    func transitions() {
        #expect(chicago.offset(at: utc("2026-03-08T07:59:59Z")) == -6 * 3600)
        #expect(chicago.offset(at: utc("2026-03-08T08:00:00Z")) == -5 * 3600)
        #expect(chicago.offset(at: utc("2026-11-01T06:59:59Z")) == -5 * 3600)
        #expect(chicago.offset(at: utc("2026-11-01T07:00:00Z")) == -6 * 3600)
        #expect(chicago.offset(at: utc("2026-11-01T07:00:00Z")) == TimeZone(identifier: "America/Chicago")!.secondsFromGMT(for: utc("2026-11-01T07:00:00Z")))
    }

    @Test("wall-clock readings map to instants; gaps map to the moment of the change, overlaps to the earlier instant", arguments: [
        ("2026-03-08T01:59", "2026-03-08T07:59:00Z"),
        ("2026-03-08T02:00", "2026-03-08T08:00:00Z"),  // does not exist: the change itself
        ("2026-03-08T02:30", "2026-03-08T08:00:00Z"),  // does not exist: the change itself
        ("2026-03-08T03:00", "2026-03-08T08:00:00Z"),
        ("2026-03-08T03:30", "2026-03-08T08:30:00Z"),
        ("2026-11-01T00:59", "2026-11-01T05:59:00Z"),
        ("2026-11-01T01:30", "2026-11-01T06:30:00Z"),  // happens twice: the first (CDT)
        ("2026-11-01T02:00", "2026-11-01T08:00:00Z"),
        ("2026-07-01T12:00", "2026-07-01T17:00:00Z"),
        ("2026-12-01T12:00", "2026-12-01T18:00:00Z"),
    ])
    func localToInstant(reading: String, expected: String) {
        #expect(chicago.instant(local(reading)) == utc(expected))
    }

    @Test("civil dates round-trip and know their weekday")
    func civilDates() {
        for day in Int64(-800)...Int64(40_000) {
            #expect(LocalDate(dayNumber: day).dayNumber == day)
        }
        #expect(LocalDate(year: 2026, month: 12, day: 6).weekday == .sun)
        #expect(LocalDate(year: 2024, month: 2, day: 29).weekday == .thu)
        #expect(LocalDate.parse("2026-02-29") == nil)
        #expect(LocalDate.parse("2028-02-29") != nil)
    }

    @Test("a daily 08:00 hand-off stays at 08:00 local across spring-forward", arguments: [
        // Shift n starts at 08:00 local on 2026-03-(n+1); even shifts are a's.
        ("2026-03-07T13:59:59Z", "b"), ("2026-03-07T14:00:00Z", "a"),   // Saturday 08:00 CST = 14:00Z
        ("2026-03-08T12:59:59Z", "a"), ("2026-03-08T13:00:00Z", "b"),   // Sunday 08:00 CDT = 13:00Z
        ("2026-03-09T12:59:59Z", "b"), ("2026-03-09T13:00:00Z", "a"),
    ])
    func springForwardHandOff(at: String, expected: PersonID) {
        let s = schedule(start: "2026-03-01T08:00", shift: .days(1), members: ["a", "b"])
        #expect(s.onCall(at: utc(at)).person == expected)
    }

    @Test("a daily 08:00 hand-off stays at 08:00 local across fall-back", arguments: [
        // Shift 30 starts at 08:00 on 2026-10-31 and is a's.
        ("2026-10-31T12:59:59Z", "b"), ("2026-10-31T13:00:00Z", "a"),   // Saturday 08:00 CDT = 13:00Z
        ("2026-11-01T13:59:59Z", "a"), ("2026-11-01T14:00:00Z", "b"),   // Sunday 08:00 CST = 14:00Z
    ])
    func fallBackHandOff(at: String, expected: PersonID) {
        let s = schedule(start: "2026-10-01T08:00", shift: .days(1), members: ["a", "b"])
        #expect(s.onCall(at: utc(at)).person == expected)
    }

    @Test("a hand-off inside the spring-forward gap happens at the change")
    func handOffInGap() {
        let s = schedule(start: "2026-03-01T02:30", shift: .days(1), members: ["a", "b"])
        // 2026-03-07 02:30 CST starts a's shift (index 6); the next hand-off, 02:30 on the 8th, does not exist.
        #expect(s.onCall(at: utc("2026-03-08T07:59:59Z")).person == "a")
        #expect(s.onCall(at: utc("2026-03-08T08:00:00Z")).person == "b")
        if case .person(_, _, let until) = s.onCall(at: utc("2026-03-08T08:00:00Z")) {
            #expect(until == utc("2026-03-09T07:30:00Z"))  // 02:30 CDT on the 9th
        }
    }

    @Test("a hand-off in the repeated fall-back hour happens once and never hands back")
    func handOffInOverlap() {
        let s = schedule(start: "2026-10-01T01:30", shift: .days(1), members: ["a", "b"])
        // Shift 30 (2026-10-31 01:30) is a's; shift 31 starts at the first 01:30 on 2026-11-01 (06:30Z) and is b's.
        #expect(s.onCall(at: utc("2026-11-01T06:29:59Z")).person == "a")
        for minute in stride(from: 0, through: 90, by: 10) {
            let at = utc("2026-11-01T06:30:00Z").addingTimeInterval(TimeInterval(minute * 60))
            #expect(s.onCall(at: at).person == "b", "at 06:30Z + \(minute)m, during and after the repeated hour")
        }
    }

    @Test("a weekly rotation cycles through its members")
    func weeklyRotation() {
        let s = schedule(start: "2026-08-17T08:00", shift: .days(7), members: ["a", "b", "c"])
        #expect(s.onCall(at: utc("2026-08-17T12:59:59Z")).person == nil, "before the first shift is a gap")
        #expect(s.onCall(at: utc("2026-08-17T13:00:00Z")).person == "a")
        #expect(s.onCall(at: utc("2026-08-24T13:00:00Z")).person == "b")
        #expect(s.onCall(at: utc("2026-08-31T13:00:00Z")).person == "c")
        #expect(s.onCall(at: utc("2026-09-07T13:00:00Z")).person == "a")
        // Across the fall-back change, still Monday 08:00 local: 14:00Z in November.
        #expect(s.onCall(at: utc("2026-11-02T13:59:59Z")).person == s.onCall(at: utc("2026-10-26T14:00:00Z")).person)
        #expect(s.onCall(at: utc("2026-11-02T14:00:00Z")).person != s.onCall(at: utc("2026-11-02T13:59:59Z")).person)
    }

    @Test("a higher layer wins where it has someone; outside its active window the lower layer answers")
    func layers() {
        let weekday = WeeklyWindow(days: [.mon, .tue, .wed, .thu, .fri], from: LocalTime(hour: 7, minute: 0), to: LocalTime(hour: 17, minute: 0))
        let top = ScheduleLayer(id: "school-day", rotation: Rotation(start: local("2026-08-17T00:00"), shiftLength: .days(7), members: ["day"]),
                                active: [weekday])
        let s = schedule(start: "2026-08-17T08:00", shift: .days(1), members: ["night"], extraLayers: [top])
        #expect(s.onCall(at: utc("2026-12-02T16:00:00Z")).person == "day")     // Wednesday 10:00
        #expect(s.onCall(at: utc("2026-12-02T23:30:00Z")).person == "night")   // Wednesday 17:30
        #expect(s.onCall(at: utc("2026-12-05T16:00:00Z")).person == "night")   // Saturday
    }

    @Test("an overnight active window runs past midnight into the next day")
    func overnightWindow() {
        let nights = WeeklyWindow(days: [.fri], from: LocalTime(hour: 17, minute: 0), to: LocalTime(hour: 7, minute: 0))
        let s = schedule(start: "2026-08-17T00:00", shift: .days(7), members: ["a"], active: [nights])
        #expect(s.onCall(at: utc("2026-12-04T23:00:00Z")).person == "a")   // Friday 17:00
        #expect(s.onCall(at: utc("2026-12-05T12:59:00Z")).person == "a")   // Saturday 06:59
        #expect(s.onCall(at: utc("2026-12-05T13:00:00Z")).person == nil)   // Saturday 07:00
        #expect(s.onCall(at: utc("2026-12-04T22:59:00Z")).person == nil)   // Friday 16:59
    }

    @Test("a period's changes, found from the schedule's boundaries, are exactly where minute-by-minute sampling sees them", arguments: [
        ("2026-03-05T00:00:00Z", "2026-03-12T00:00:00Z"), ("2026-10-29T00:00:00Z", "2026-11-04T00:00:00Z"), ("2026-12-01T00:00:00Z", "2026-12-08T00:00:00Z"),
        ("2026-08-10T00:00:00Z", "2026-08-20T00:00:00Z"),
    ])
    func changesMatchSampling(from: String, to: String) {
        // Layers, an overnight window across the DST nights, a hand-off in the repeated hour, an override: every kind of edge.
        let weekday = WeeklyWindow(days: [.mon, .tue, .wed, .thu, .fri], from: LocalTime(hour: 7, minute: 15), to: LocalTime(hour: 17, minute: 0))
        let nights = WeeklyWindow(days: [.sat, .sun], from: LocalTime(hour: 1, minute: 30), to: LocalTime(hour: 2, minute: 30))
        let top = ScheduleLayer(id: "school-day", rotation: Rotation(start: local("2026-08-17T00:00"), shiftLength: .days(2), members: ["d1", "d2"]),
                                active: [weekday])
        let small = ScheduleLayer(id: "small-hours", rotation: Rotation(start: local("2026-01-01T00:00"), shiftLength: .hours(7), members: ["n1", "n2", "n3"]),
                                  active: [nights])
        let swap = ScheduleOverride(person: "c", from: local("2026-12-05T18:00"), to: local("2026-12-07T08:00"), reason: "swap")
        let s = schedule(start: "2026-08-17T01:30", shift: .days(1), members: ["a", "b", "c"], overrides: [swap], extraLayers: [top, small])
        let start = utc(from), end = utc(to)
        var sampled: [Date] = []
        var previous = s.onCall(at: start)
        var minute = start.addingTimeInterval(60)
        while minute < end {
            let answer = s.onCall(at: minute)
            if answer.person != previous.person { sampled.append(minute) }
            previous = answer
            minute = minute.addingTimeInterval(60)
        }
        let changes = s.changes(from: start, to: end)
        var found: [Date] = []
        previous = s.onCall(at: start)
        for instant in changes {
            let answer = s.onCall(at: instant)
            if answer.person != previous.person { found.append(instant) }
            previous = answer
        }
        #expect(!sampled.isEmpty)
        #expect(found == sampled)
        #expect(changes.count < 200, "a week has few boundaries, not 10,080 minutes")
    }

    @Test("an override wins over every layer for its period, in local time")
    func overrides() {
        let swap = ScheduleOverride(person: "c", from: local("2026-12-05T18:00"), to: local("2026-12-07T08:00"), reason: "swap")
        let s = schedule(start: "2026-08-17T08:00", shift: .days(1), members: ["a", "b"], overrides: [swap])
        #expect(s.onCall(at: utc("2026-12-05T23:59:59Z")).person != "c")
        #expect(s.onCall(at: utc("2026-12-06T00:00:00Z")).person == "c")
        #expect(s.onCall(at: utc("2026-12-07T13:59:59Z")).person == "c")
        #expect(s.onCall(at: utc("2026-12-07T14:00:00Z")).person != "c")
        if case .person(_, let source, let until) = s.onCall(at: utc("2026-12-06T08:00:00Z")) {
            #expect(source == .override(reason: "swap"))
            #expect(until == utc("2026-12-07T14:00:00Z"))
        } else {
            Issue.record("expected someone on call")
        }
    }

    @Test("nobody on call is a gap that names the schedule, never an empty answer")
    func gap() {
        let window = WeeklyWindow(days: [.mon], from: LocalTime(hour: 9, minute: 0), to: LocalTime(hour: 10, minute: 0))
        let s = schedule(start: "2026-08-17T00:00", shift: .days(7), members: ["a"], active: [window])
        #expect(s.onCall(at: utc("2026-12-02T16:00:00Z")) == .gap(schedule: "s"))
    }

    @Test("school time follows the site's hours, weekends and closures")
    func schoolTime() {
        let d = Fixture.directory
        #expect(d.schoolTime(at: "north", instant: utc("2026-12-02T13:29:00Z")) == .outsideSchoolHours)  // 07:29
        #expect(d.schoolTime(at: "north", instant: utc("2026-12-02T13:30:00Z")) == .schoolHours)         // 07:30
        #expect(d.schoolTime(at: "north", instant: utc("2026-12-02T21:29:00Z")) == .schoolHours)         // 15:29
        #expect(d.schoolTime(at: "north", instant: utc("2026-12-02T21:30:00Z")) == .outsideSchoolHours)  // 15:30
        #expect(d.schoolTime(at: "north", instant: utc("2026-12-06T16:00:00Z")) == .nonSchoolDay)        // Sunday
        #expect(d.schoolTime(at: "north", instant: utc("2026-11-26T16:00:00Z")) == .nonSchoolDay)        // Thanksgiving
    }

    @Test("durations parse strictly and print in their shortest form", arguments: [
        ("30s", 30), ("5m", 300), ("2h", 7200), ("1h30m", 5400), ("2d", 172_800), ("1w", 604_800), ("1w2d", 777_600),
    ])
    func durations(text: String, seconds: Int) {
        #expect(TimeSpan.parse(text) == TimeSpan(seconds: seconds))
        #expect(TimeSpan(seconds: seconds).description == text)
    }

    @Test("malformed durations are refused", arguments: ["", "5", "m", "5 m", "5min", "30m1h", "1h1h", "-5m", "5.5h", "1234567m"])
    func badDurations(text: String) {
        #expect(TimeSpan.parse(text) == nil)
    }
}
