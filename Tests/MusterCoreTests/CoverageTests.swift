// Coverage, checked before it is needed: the hours in which a playbook's first step would reach
// nobody. America/New_York in 2026: clocks spring forward on Sunday 2026-03-08 (02:00 EST -> 03:00
// EDT) and fall back on Sunday 2026-11-01 (02:00 EDT -> 01:00 EST).
import Foundation
@testable import MusterCore
import MusterPlaybooks
import Testing

private let newYork = ZoneRules(identifier: "America/New_York")!

/// Every day, around the clock: a morning window and one running from noon to midnight.
private let allWeek = """
    [ { days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "12:00" },
                          { days: [mon, tue, wed, thu, fri, sat, sun], from: "12:00", to: "00:00" } ]
    """

/// A district of one site in New York time, school Monday to Friday 08:00–15:00. `counselorActive`
/// is the counselor layer's active windows; `people` adds people (YAML lines); `closed` the district's closures.
private func directoryYAML(counselorActive: String = allWeek, people: String = "", closed: String = "[]") -> String {
    """
    district: { id: d, name: District, time_zone: America/New_York, closed: \(closed) }
    incident_types:
      - { id: suicide-risk, title: Suicide risk }
      - { id: other-concern, title: Other concern }
    roles:
      - { id: counselor, title: Counselor }
      - { id: crisis-team, title: Crisis team }
    sites:
      - id: east
        name: East High
        time_zone: America/New_York
        school_hours: { days: [mon, tue, wed, thu, fri], from: "08:00", to: "15:00" }
    people:
      - { id: c1, name: Cara One, roles: [counselor], sites: [east], contacts: [ { sms: "+15555550101" } ] }
      - { id: ct1, name: Cat Tee, roles: [crisis-team], sites: [district], contacts: [ { voice: "+15555550102" } ] }
    \(people)
    schedules:
      - id: east-counselors
        role: counselor
        scope: east
        layers:
          - id: main
            rotation: { start: 2026-01-05T00:00, shift: 1w, members: [c1] }
            active: \(counselorActive)
    """
}

/// One playbook for every incident type: step 1 pages the site's on-call counselor by SMS.
private let counselorFirst = """
    id: all
    title: All incidents
    match: { catch_all: true }
    steps:
      - notify: [on-call:counselor@site]
        via: [sms]
        ack_within: 5m
      - notify: [role:crisis-team@district]
        via: [voice]
        ack_within: 5m
    fallback: { notify: [person:ct1], via: [voice] }
    """

private func load(_ directory: String, _ playbooks: [(String, String)] = [("all.yaml", counselorFirst)]) throws -> LoadResult {
    let result = PlaybookLoader.load(directory: ("directory.yaml", directory), playbooks: playbooks)
    #expect(!result.diagnostics.hasErrors, "\(result.diagnostics)")
    return result
}

private func gaps(_ result: LoadResult, from: String, days: Int,
                  providers: Set<ChannelKind> = [.sms, .voice, .email, .chat, .webhook]) throws -> [CoverageGap] {
    let catalog = try #require(result.catalog)
    return CoverageCheck(catalog: catalog, providers: providers).gaps(from: Fixture.instant(from), days: days)
}

/// "2026-03-05T12:00:00-05:00 to 2026-03-05T15:00:00-05:00": a gap's range as the command prints it.
private func range(_ gap: CoverageGap) -> String {
    "\(newYork.iso8601(gap.from)) to \(newYork.iso8601(gap.until))"
}

@Suite("Coverage of the first step")
struct CoverageTests {
    @Test("a fully covered directory has no gaps, over two weeks that hold a daylight-saving change")
    func fullyCovered() throws {
        #expect(try gaps(load(directoryYAML()), from: "2026-03-02T00:00:00-05:00", days: 14).isEmpty)
        #expect(try gaps(load(directoryYAML()), from: "2026-10-26T09:17:00-04:00", days: 14).isEmpty)
    }

    @Test("a hole in a schedule is reported as exactly that range, once for every incident kind it affects")
    func scheduleHole() throws {
        // Thursday 12:00–15:00 has nobody on call.
        let active = """
            [ { days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", to: "12:00" },
                                  { days: [mon, tue, wed, fri, sat, sun], from: "12:00", to: "00:00" },
                                  { days: [thu], from: "15:00", to: "00:00" } ]
            """
        let result = try load(directoryYAML(counselorActive: active))
        let found = try gaps(result, from: "2026-03-02T00:00:00-05:00", days: 7)
        try #require(found.count == 1, "\(found)")
        let gap = found[0]
        #expect(range(gap) == "2026-03-05T12:00:00-05:00 to 2026-03-05T15:00:00-05:00")
        #expect(gap.hours == 3)
        #expect(gap.site == "east")
        #expect(gap.playbook == "all")
        #expect(gap.variant == .standard)
        #expect(gap.reason == "on-call:counselor@site: nobody on call for counselor at east (gap in schedule east-counselors)")
        #expect(gap.later == .step(1, after: TimeSpan(seconds: 0)), "step 2 is paged at once: step 1 queued no page")
        #expect(gap.incidents.count == 8, "both types, every severity, go to the one playbook")
        #expect(IncidentKind.describe(gap.incidents) == "suicide-risk and other-concern (any severity)")
        // The step's only target is where the warning points: line 5, column 14 of all.yaml.
        let source = try #require(result.sources["all"])
        #expect(source.location(variant: gap.variant, step: 0, target: gap.target).description == "all.yaml:5:14")
        #expect(source.location(variant: gap.variant, step: 0).description == "all.yaml:5:5")
        #expect(gap.message(zone: newYork).contains("from 2026-03-05T12:00:00-05:00 to 2026-03-05T15:00:00-05:00 (America/New_York, 3 hours)"))
    }

    @Test("a person reachable only on a channel with no provider is a gap, and says so")
    func providerlessChannel() throws {
        let people = """
              - { id: pp, name: Pat Push, roles: [counselor], sites: [east], contacts: [ { push: pp-device } ] }
            """
        let playbook = """
            id: all
            title: All incidents
            match: { catch_all: true }
            steps:
              - { notify: [person:pp], via: [sms, push], ack_within: 5m, repeat: 1 }
              - { notify: [person:c1], via: [sms], ack_within: 5m }
            fallback: { notify: [person:ct1], via: [voice] }
            """
        let result = try load(directoryYAML(people: people), [("all.yaml", playbook)])
        let found = try gaps(result, from: "2026-03-02T00:00:00-05:00", days: 7)
        try #require(found.count == 1, "\(found)")
        #expect(range(found[0]) == "2026-03-02T00:00:00-05:00 to 2026-03-09T00:00:00-04:00")
        #expect(found[0].hours == 167)
        #expect(found[0].reason == "person:pp, who has only push contact points, and push has no provider")
        // The page goes out (to nowhere) and is waited for twice, five minutes each, before step 2.
        #expect(found[0].later == .step(1, after: .minutes(10)))
        // With a push provider there is nothing to report.
        #expect(try gaps(result, from: "2026-03-02T00:00:00-05:00", days: 7, providers: [.sms, .push]).isEmpty)
        // Nobody anywhere: step 2 and the fallback have no provider either.
        let none = try gaps(result, from: "2026-03-02T00:00:00-05:00", days: 1, providers: [.email])
        #expect(none.map(\.later) == [.nobody])
    }

    @Test("a person with a provider-backed contact point the step does not use is a gap, and names the channel used")
    func unusedContactPoint() throws {
        let people = """
              - { id: pe, name: Pam Email, roles: [counselor], sites: [east], contacts: [ { push: pe-device }, { email: pe@d.example } ] }
            """
        let playbook = """
            id: all
            title: All incidents
            match: { catch_all: true }
            steps:
              - { notify: [person:pe], via: [sms, voice], ack_within: 5m }
            fallback: { notify: [person:ct1], via: [voice] }
            """
        let found = try gaps(load(directoryYAML(people: people), [("all.yaml", playbook)]), from: "2026-03-02T00:00:00-05:00", days: 1)
        try #require(found.count == 1)
        #expect(found[0].reason == "person:pe, who has no sms or voice contact point and so is paged on their first, push, and push has no provider")
        #expect(found[0].later == .fallback(after: .minutes(5)))
    }

    @Test("the walk neither skips nor doubles an hour on a daylight-saving night", arguments: [
        // (from, days, hours walked)
        ("2026-03-02T00:00:00-05:00", 7, 167),  // spring forward: a 23-hour Sunday
        ("2026-10-26T00:00:00-04:00", 7, 169),  // fall back: a 25-hour Sunday
        ("2026-06-01T00:00:00-04:00", 7, 168),
        ("2026-03-08T00:00:00-05:00", 1, 23),
        ("2026-11-01T00:00:00-04:00", 1, 25),
        ("2026-11-01T00:30:00-04:00", 1, 25),   // from inside an hour: that hour's start
    ])
    func hoursWalked(from: String, days: Int, count: Int) {
        let hours = CoverageCheck.hours(from: Fixture.instant(from), days: days, zone: newYork)
        #expect(hours.count == count)
        #expect(Set(hours).count == hours.count)
        // Each slot is an hour of real time, and each starts on the hour of the wall clock.
        for (a, b) in zip(hours, hours.dropFirst()) { #expect(b.timeIntervalSince(a) == 3600) }
        for hour in hours { #expect(newYork.local(hour).secondOfDay % 3600 == 0) }
    }

    @Test("the daylight-saving nights' wall-clock hours: 02:00 is skipped in spring, 01:00 happens twice in autumn")
    func dstNightHours() {
        let spring = CoverageCheck.hours(from: Fixture.instant("2026-03-08T00:00:00-05:00"), days: 1, zone: newYork).prefix(4)
        #expect(spring.map(newYork.iso8601) == ["2026-03-08T00:00:00-05:00", "2026-03-08T01:00:00-05:00",
                                               "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"])
        let autumn = CoverageCheck.hours(from: Fixture.instant("2026-11-01T00:00:00-04:00"), days: 1, zone: newYork).prefix(4)
        #expect(autumn.map(newYork.iso8601) == ["2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00",
                                               "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"])
    }

    @Test("a gap over a daylight-saving Sunday is that day's 23 or 25 hours, from midnight to midnight", arguments: [
        ("2026-03-02T00:00:00-05:00", "2026-03-08T00:00:00-05:00 to 2026-03-09T00:00:00-04:00", 23),
        ("2026-10-26T00:00:00-04:00", "2026-11-01T00:00:00-04:00 to 2026-11-02T00:00:00-05:00", 25),
    ])
    func dstSundayGap(from: String, expected: String, hours: Int) throws {
        let weekdays = """
            [ { days: [mon, tue, wed, thu, fri, sat], from: "00:00", to: "12:00" },
                                  { days: [mon, tue, wed, thu, fri, sat], from: "12:00", to: "00:00" } ]
            """
        let found = try gaps(load(directoryYAML(counselorActive: weekdays)), from: from, days: 7)
        #expect(found.map(range) == [expected])
        #expect(found.map(\.hours) == [hours])
    }

    @Test("a closed day runs the non-school-day steps, and only that day shows their gap")
    func closedDay() throws {
        let people = """
              - { id: pp, name: Pat Push, roles: [counselor], sites: [east], contacts: [ { push: pp-device } ] }
              - { id: pq, name: Pia Push, roles: [counselor], sites: [east], contacts: [ { push: pq-device } ] }
            """
        let playbook = """
            id: all
            title: All incidents
            match: { catch_all: true }
            steps:
              - { notify: [on-call:counselor@site], via: [sms], ack_within: 5m }
            outside_school_hours:
              steps:
                - { notify: [role:crisis-team@district], via: [voice], ack_within: 5m }
            non_school_days:
              steps:
                - { notify: [person:pp, person:pq], via: [push], ack_within: 5m }
            fallback: { notify: [person:ct1], via: [voice] }
            """
        // Wednesday 2026-03-04 is closed; Monday to Thursday are walked (no weekend in range).
        let closed = "[ { date: 2026-03-04, reason: Snow day } ]"
        let result = try load(directoryYAML(people: people, closed: closed), [("all.yaml", playbook)])
        let found = try gaps(result, from: "2026-03-02T00:00:00-05:00", days: 4)
        #expect(found.map(range) == ["2026-03-04T00:00:00-05:00 to 2026-03-05T00:00:00-05:00"])
        #expect(found.map(\.variant) == [.nonSchoolDays])
        #expect(found.first?.target == nil, "two targets: the warning points at the step")
        #expect(found.first?.reason == "person:pp, who has only push contact points, and push has no provider; "
                + "person:pq, who has only push contact points, and push has no provider")
        #expect(found.first?.later == .fallback(after: .minutes(5)))
        let source = try #require(result.sources["all"])
        #expect(source.location(variant: .nonSchoolDays, step: 0).description == "all.yaml:11:7")
        #expect(source.location(variant: .outsideSchoolHours, step: 0).description == "all.yaml:8:7")
    }

    @Test("hours with different causes are separate gaps; the same cause merges")
    func causesSplit() throws {
        // Nobody on call on Thursdays; on Fridays the layer's member is pp, whom push alone reaches.
        let people = """
              - { id: pp, name: Pat Push, roles: [counselor], sites: [east], contacts: [ { push: pp-device } ] }
            """
        let directory = directoryYAML(counselorActive: """
            [ { days: [mon, tue, wed, fri, sat, sun], from: "00:00", to: "12:00" },
                                  { days: [mon, tue, wed, fri, sat, sun], from: "12:00", to: "00:00" } ]
            """, people: people) + "\n    overrides:\n      - { person: pp, from: 2026-03-06T00:00, to: 2026-03-07T00:00 }\n"
        let found = try gaps(load(directory), from: "2026-03-02T00:00:00-05:00", days: 7)
        #expect(found.map(range) == ["2026-03-05T00:00:00-05:00 to 2026-03-06T00:00:00-05:00",
                                     "2026-03-06T00:00:00-05:00 to 2026-03-07T00:00:00-05:00"])
        #expect(found.last?.reason == "on-call:counselor@site names person:pp, who has only push contact points, and push has no provider")
    }

    @Test("a gap is exactly when the engine's first step queues no page on a channel with a provider")
    func agreesWithTheEngine() throws {
        let providers: Set<ChannelKind> = [.voice, .email]
        let catalog = Fixture.catalog
        let check = CoverageCheck(catalog: catalog, providers: providers)
        let site: SiteID = "north"
        let from = Fixture.instant("2026-11-23T00:00:00-06:00")  // Thanksgiving week: school, after hours, closed days
        var gapHours = 0
        for playbook in catalog.playbooks.playbooks {
            let engine = EscalationEngine(playbook: playbook, directory: catalog.directory)
            for hour in CoverageCheck.hours(from: from, days: 7, zone: catalog.directory.zone(of: site)) {
                let type = playbook.match.types.first ?? "other-concern"
                let incident = Incident(id: "inc-1", number: 1, report: Report(
                    type: type, severity: .high, site: site, reporter: .integration("coverage-test"), summary: "", receivedAt: hour))
                var effects: [Effect] = []
                _ = engine.start(incident, now: hour, effects: &effects)
                let reached = effects.contains { effect in
                    guard case .notify(let notification) = effect, notification.id.kind == .page,
                          case .step(0, round: 0) = notification.id.qualifier else { return false }
                    return providers.contains(notification.id.channel)
                }
                let gap = check.firstStepGap(site: site, playbook: playbook, at: hour)
                #expect(reached == (gap == nil), "\(playbook.id) at \(ZoneRules.utc.iso8601(hour))")
                if gap != nil { gapHours += 1 }
            }
        }
        #expect(gapHours > 0, "the fixture has gaps with these providers, so the comparison tests both answers")
        // The gaps' hours add up to the hours the walk found wanting.
        #expect(check.gaps(from: from, days: 7).reduce(0) { $0 + $1.hours } == gapHours)
    }
}
