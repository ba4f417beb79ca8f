// Every kind of playbook and directory error, with its exact message and position.
import MusterCore
import MusterPlaybooks
import Testing

/// A valid directory that the playbook cases are checked against.
let baseDirectory = """
    district: { id: d, name: District, time_zone: America/Chicago }
    incident_types:
      - { id: suicide-risk, title: Suicide risk }
      - { id: threat-of-violence, title: Threat }
    roles:
      - { id: counselor, title: Counselor }
      - { id: principal, title: Principal }
      - { id: psychologist, title: Psychologist }
    sites:
      - { id: north, name: North, time_zone: America/Chicago, school_hours: { days: [mon, fri], from: "08:00", to: "15:00" } }
      - { id: south, name: South, time_zone: America/Denver, school_hours: { days: [mon, fri], from: "08:00", to: "15:00" } }
    people:
      - { id: ann, name: Ann, roles: [counselor], sites: [north, south], contacts: [ { sms: "+15555550100" } ] }
      - { id: bo, name: Bo, roles: [principal], sites: [north], contacts: [ { email: bo@x.example } ] }
      - { id: cy, name: Cy, roles: [psychologist], sites: [district], contacts: [ { voice: "+15555550101" } ] }
    partners:
      - { id: mcrt, name: Mobile Crisis, contacts: [ { voice: "+15555550199" } ] }
    schedules:
      - id: north-counselor
        role: counselor
        scope: north
        layers: [ { id: main, rotation: { start: 2026-08-17T08:00, shift: 1w, members: [ann] } } ]
    """

/// A valid playbook; cases replace one line of it.
let basePlaybook = """
    id: suicide-risk
    title: Suicide risk
    match: { types: [suicide-risk] }
    steps:
      - notify: [on-call:counselor@north]
        via: [sms]
        ack_within: 5m
    fallback: { disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36", notify: [partner:mcrt], via: [voice] }
    """

func load(playbook: String, directory: String = baseDirectory, more: [(String, String)] = []) -> [Diagnostic] {
    PlaybookLoader.load(directory: ("directory.yaml", directory), playbooks: [("p.yaml", playbook)] + more).diagnostics
}

func replacing(_ old: String, with new: String, in text: String = basePlaybook) -> String {
    precondition(text.contains(old), "the base text has no \(old)")
    return text.replacingOccurrences(of: old, with: new)
}

@Suite("Playbook diagnostics")
struct PlaybookDiagnosticsTests {
    @Test("the base fixtures load with no diagnostics")
    func baseIsValid() {
        let result = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", basePlaybook)])
        #expect(result.diagnostics.isEmpty)
        #expect(result.catalog?.playbooks.playbooks.count == 1)
        #expect(result.catalog?.playbooks.playbooks.first?.fallback.repeatEvery == .minutes(5), "the fallback repeats every 5 minutes unless told")
    }

    @Test("each contact point on a channel with no provider is an error at its place in the directory, saying what would provide it")
    func contactsWithoutProvider() {
        let result = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", basePlaybook)])
        #expect(result.contactsWithoutProvider(Set(ChannelKind.allCases)).isEmpty)
        #expect(result.contactsWithoutProvider([.sms]).map(\.description) == [
            "directory.yaml:14:75: error: person:bo's email contact point has no provider: configure channels.email, remove the contact point, "
                + "or switch on the demonstration inbox (channels.demonstration_inbox: true) to try Muster out; pages sent there would reach nobody",
            "directory.yaml:15:81: error: person:cy's voice contact point has no provider: configure channels.twilio (and MUSTER_TWILIO_AUTH_TOKEN), "
                + "remove the contact point, or switch on the demonstration inbox (channels.demonstration_inbox: true) to try Muster out; pages sent there would reach nobody",
            "directory.yaml:17:52: error: partner:mcrt's voice contact point has no provider: configure channels.twilio (and MUSTER_TWILIO_AUTH_TOKEN), "
                + "remove the contact point, or switch on the demonstration inbox (channels.demonstration_inbox: true) to try Muster out; pages sent there would reach nobody",
        ])
    }

    @Test("the fallback's repeat_every is read")
    func fallbackRepeatEvery() {
        let text = replacing("via: [voice] }", with: "via: [voice], repeat_every: 10m }")
        let result = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", text)])
        #expect(result.diagnostics.isEmpty)
        #expect(result.catalog?.playbooks.playbooks.first?.fallback.repeatEvery == .minutes(10))
    }

    @Test("playbook errors name the file, line, column, the problem and a fix", arguments: [
        (replacing("ack_within: 5m", with: "ack_whithin: 5m"),
         "p.yaml:7:5: error: unknown key 'ack_whithin' in step 1; did you mean 'ack_within'?"),
        (replacing("ack_within: 5m", with: "ack_within: 5"),
         "p.yaml:7:17: error: bad duration '5' for ack_within; add a unit, e.g. '5m': write a number and a unit (s, m, h, d, w), e.g. 5m, 2h, 1h30m"),
        (replacing("ack_within: 5m", with: "ack_within: 5 minutes"),
         "p.yaml:7:17: error: bad duration '5 minutes' for ack_within: write a number and a unit (s, m, h, d, w), e.g. 5m, 2h, 1h30m"),
        (replacing("ack_within: 5m", with: "ack_within: 0m"),
         "p.yaml:7:17: error: ack_within must be longer than zero"),
        (replacing("via: [sms]", with: "via: [sns]"),
         "p.yaml:6:11: error: unknown channel 'sns'; did you mean 'sms'?"),
        (replacing("via: [sms]", with: "via: [sms, sms]"),
         "p.yaml:6:16: error: channel 'sms' is listed twice"),
        (replacing("on-call:counselor@north", with: "on-call:counsellor@north"),
         "p.yaml:5:14: error: unknown role 'counsellor'; did you mean 'counselor'?"),
        (replacing("on-call:counselor@north", with: "on-call:counselor@nort"),
         "p.yaml:5:14: error: unknown scope 'nort': use site, district or a site id; did you mean 'north'?"),
        (replacing("on-call:counselor@north", with: "oncall:counselor@north"),
         "p.yaml:5:14: error: unknown kind of target 'oncall'; did you mean 'on-call'?: a target is on-call:ROLE@SCOPE, role:ROLE@SCOPE, person:ID, partner:ID or reporter"),
        (replacing("on-call:counselor@north", with: "on-call:counselor"),
         "p.yaml:5:14: error: bad target 'on-call:counselor': write on-call:ROLE@SCOPE, where SCOPE is site, district or a site id"),
        (replacing("on-call:counselor@north", with: "person:anne"),
         "p.yaml:5:14: error: unknown person 'anne'; did you mean 'ann'?"),
        (replacing(#"disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36", "#, with: ""),
         #"p.yaml:8:13: error: the fallback pages a partner agency (partner:mcrt): every such page is a disclosure outside the school, so say why it is lawful with disclosure_basis: (e.g. "FERPA health or safety emergency, 34 CFR 99.36: imminent risk to the student")"#),
        (replacing("partner:mcrt", with: "partner:mcrtt"),
         "p.yaml:8:90: error: unknown partner 'mcrtt'; did you mean 'mcrt'?"),
        (replacing("on-call:counselor@north", with: "on-call:principal@north"),
         "p.yaml:5:14: error: target 'on-call:principal@north' names no one: no on-call schedule for principal at north"),
        (replacing("on-call:counselor@north", with: "role:psychologist@north"),
         "p.yaml:5:14: error: target 'role:psychologist@north' names no one: nobody holds the role psychologist at north"),
        (replacing("types: [suicide-risk]", with: "types: [suicide-risc]"),
         "p.yaml:3:18: error: unknown incident type 'suicide-risc'; did you mean 'suicide-risk'? (incident types are declared in directory.yaml)"),
        (replacing(#"fallback: { disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36", notify: [partner:mcrt], via: [voice] }"#, with: ""),
         "p.yaml:1:1: error: missing required key 'fallback' in the playbook"),
        (replacing("id: suicide-risk", with: "id: Suicide Risk"),
         "p.yaml:1:5: error: the playbook id 'Suicide Risk' is not a valid id: use lowercase letters, digits and '-'"),
        (replacing("match: { types: [suicide-risk] }", with: "match: { types: [suicide-risk], catch_all: true }"),
         "p.yaml:3:10: error: a catch_all playbook matches every type: remove 'types'"),
        (replacing("steps:", with: "steps: []\nextra:"),
         "p.yaml:4:8: error: steps must not be empty"),
        (replacing("ack_within: 5m", with: "ack_within: 5m\n    repeat: 11"),
         "p.yaml:8:13: error: repeat must be a whole number from 0 to 10, not '11'"),
        (replacing("via: [voice] }", with: "via: [voice], repeat_every: 30s }"),
         "p.yaml:8:133: error: the fallback's repeat_every must be at least 1m: people paged more often cannot answer between pages"),
        (replacing("via: [voice] }", with: "via: [voice], repeat_every: often }"),
         "p.yaml:8:133: error: bad duration 'often' for the fallback's repeat_every: write a number and a unit (s, m, h, d, w), e.g. 5m, 2h, 1h30m"),
        (replacing("via: [voice] }", with: "via: [voice], repeat_evry: 5m }"),
         "p.yaml:8:119: error: unknown key 'repeat_evry' in fallback; did you mean 'repeat_every'?"),
        (replacing("title: Suicide risk", with: "title: [Suicide risk]"),
         "p.yaml:2:8: error: the playbook's title must be a single value, not a list"),
        (replacing("title: Suicide risk", with: "title: Suicide risk\ntitle: Again"),
         "p.yaml:2:1: error: duplicate key 'title' in one mapping"),
        ("id: [unclosed", "p.yaml:2:1: error: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence)"),
    ])
    func playbookError(text: String, expected: String) {
        let diagnostics = load(playbook: text)
        #expect(diagnostics.errors.first?.description == expected, "all: \(diagnostics.map(\.description))")
    }

    @Test("task errors: duplicate ids, unknown flags, nobody to alert when overdue, bad anchors")
    func taskErrors() {
        let tasks = """

            flags: [ { id: family-may-be-source, question: Could a family member be involved? } ]
            tasks:
              - { id: screening, title: Screening, due: 2h, after: acknowledgment }
              - { id: screening, title: Again, due: 2h, after: report }
              - { id: guardian, title: Guardian, due: 4h, after: report, unless: [family-may-be-sorce] }
            """
        let diagnostics = load(playbook: basePlaybook + tasks).map(\.description)
        #expect(diagnostics == [
            "p.yaml:11:5: error: task 'screening' has no one to alert when it is overdue: add 'overdue' to the task or to the playbook",
            "p.yaml:11:56: error: unknown deadline anchor 'acknowledgment'; did you mean 'acknowledgement'?",
            "p.yaml:12:11: error: duplicate task id 'screening'",
            "p.yaml:13:5: error: task 'guardian' has no one to alert when it is overdue: add 'overdue' to the task or to the playbook",
            "p.yaml:13:71: error: unknown flag 'family-may-be-sorce' in 'unless'; did you mean 'family-may-be-source'?",
        ])
    }

    @Test("protocol packs: an owner, reminders and stages are read; bad ones are errors at their place")
    func protocolPackErrors() throws {
        let good = """

            overdue: { notify: [role:principal@north], via: [email] }
            tasks:
              - id: report
                title: Phone report
                due: 1h
                after: report
                owner: reporter
                remind_before: [10m, 30m]
                then:
                  - { title: Written report, due: 36h }
                  - { id: follow-up, title: Follow-up, due: 48h, remind_before: [1d] }
            """
        let loaded = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", basePlaybook + good)])
        #expect(loaded.diagnostics.isEmpty)
        let tasks = try #require(loaded.catalog?.playbooks.playbooks.first?.tasks)
        #expect(tasks.map(\.id) == ["report", "report-2", "follow-up"])
        #expect(tasks.map(\.owner) == [.reporter, .reporter, .reporter])
        #expect(tasks.map(\.follows) == [nil, "report", "report-2"])
        #expect(tasks.map(\.remindBefore) == [[.minutes(30), .minutes(10)], [.minutes(30), .minutes(10)], [.hours(24)]])

        let bad = """

            overdue: { notify: [role:principal@north], via: [email] }
            tasks:
              - id: report
                title: Phone report
                due: 1h
                after: report
                owner: reporters
                remind_before: [2h, 10m, 10m]
                then:
                  - { title: Written report, due: 30m }
                  - { id: report, title: Again, due: 48h }
            """
        #expect(load(playbook: basePlaybook + bad).map(\.description) == [
            "p.yaml:15:12: error: unknown task owner 'reporters'; did you mean 'reporter'?",
            "p.yaml:16:21: error: a reminder 2h before a deadline 1h from its anchor would come before the clock starts: remind less than 1h before",
            "p.yaml:16:30: error: the reminder 10m before the deadline is listed twice",
            "p.yaml:18:39: error: a later stage is due 30m after the report, before the stage it follows (1h)",
            "p.yaml:19:15: error: duplicate task id 'report'",
        ])
    }

    @Test("outcomes: the defaults by id, or id and title with a reason required; errors name the place")
    func outcomes() throws {
        let listed = basePlaybook + """

            outcomes:
              - referred
              - { id: false-alarm, title: Not a real concern, reason: required }
              - { id: parent-informed, title: Handled with the family }
            """
        let result = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", listed)])
        #expect(result.diagnostics.isEmpty)
        let outcomes = try #require(result.catalog?.playbooks.playbooks.first?.outcomes)
        #expect(outcomes == [ResolutionOutcome(id: "referred", title: "Referred to an outside service"),
                             ResolutionOutcome(id: "false-alarm", title: "Not a real concern", needsReason: true),
                             ResolutionOutcome(id: "parent-informed", title: "Handled with the family")])
        let unlisted = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", basePlaybook)])
        #expect(unlisted.catalog?.playbooks.playbooks.first?.outcomes == ResolutionOutcome.defaults)

        let wrong = basePlaybook + """

            outcomes:
              - sorted
              - { id: referred, title: Referred, reason: sometimes }
              - referred
            """
        #expect(load(playbook: wrong).map(\.description) == [
            "p.yaml:10:5: error: 'sorted' is not one of the default outcomes (handled-at-school, referred, emergency-services, false-alarm, duplicate): write it as { id: sorted, title: ... }",
            "p.yaml:11:46: error: the outcome's reason must be required or optional, not 'sometimes'",
            "p.yaml:12:5: error: outcome 'referred' is listed twice",
        ])
    }

    @Test("a target that names no one at some matchable sites is a warning, not an error")
    func partialTargetIsWarning() {
        let text = replacing("on-call:counselor@north", with: "on-call:counselor@site")
        let diagnostics = load(playbook: text)
        #expect(diagnostics.map(\.description) == [
            "p.yaml:5:14: warning: target 'on-call:counselor@site' names no one at south (no on-call schedule for counselor); incidents there skip it",
        ])
        #expect(!diagnostics.hasErrors)
    }

    @Test("two playbooks that match the same incidents equally are ambiguous; a shadowed playbook can never run")
    func crossPlaybookErrors() {
        let twin = replacing("id: suicide-risk", with: "id: suicide-risk-two")
        #expect(load(playbook: basePlaybook, more: [("q.yaml", twin)]).map(\.description) == [
            "q.yaml:3:8: error: playbooks 'suicide-risk' and 'suicide-risk-two' both match some incidents equally; narrow one of them with types, severities or sites",
        ])
        let duplicate = load(playbook: basePlaybook, more: [("q.yaml", replacing("match: { types: [suicide-risk] }", with: "match: { types: [threat-of-violence] }"))])
        #expect(duplicate.map(\.description) == ["q.yaml:1:5: error: duplicate playbook id 'suicide-risk' (also in p.yaml)"])
        let narrower = replacing("match: { types: [suicide-risk] }", with: "match: { types: [suicide-risk], sites: [north, south] }",
                                 in: replacing("id: suicide-risk", with: "id: everywhere"))
        #expect(load(playbook: basePlaybook, more: [("q.yaml", narrower)]).map(\.description) == [
            "p.yaml:3:8: error: playbook 'suicide-risk' can never run: more specific playbooks take every incident it matches",
        ])
    }

    @Test("directory errors name the file, line and column", arguments: [
        ("time_zone: America/Denver", "time_zone: America/Denvr",
         "directory.yaml:11:42: error: unknown time zone 'America/Denvr'; did you mean 'America/Denver'? (use an IANA name such as America/Chicago)"),
        ("roles: [principal]", "roles: [principle]", "directory.yaml:14:33: error: unknown role 'principle'; did you mean 'principal'?"),
        ("sites: [district]", "sites: [distrct]", "directory.yaml:15:56: error: unknown site 'distrct'; did you mean 'district'?"),
        ("{ sms: \"+15555550100\" }", "{ sms: \"555-0100\" }", "directory.yaml:13:89: error: bad phone number '555-0100' for sms: use E.164, e.g. +15555550101"),
        ("{ sms: \"+15555550100\" }", "{ pager: \"+15555550100\" }", "directory.yaml:13:84: error: unknown channel 'pager'; expected one of: chat, email, inbox, push, sms, voice, webhook"),
        ("{ id: bo, name: Bo,", "{ id: ann, name: Bo,", "directory.yaml:14:11: error: duplicate person id 'ann' (first defined at line 13)"),
        ("from: \"08:00\", to: \"15:00\" } }\n  - { id: south", "from: \"8am\", to: \"15:00\" } }\n  - { id: south",
         "directory.yaml:10:99: error: bad time '8am' for school_hours.from: write HH:MM on a 24-hour clock, e.g. \"07:30\""),
        ("start: 2026-08-17T08:00", "start: 2026-02-30T08:00",
         "directory.yaml:22:46: error: bad date and time '2026-02-30T08:00' for rotation start: write YYYY-MM-DDTHH:MM in local time, e.g. 2026-08-17T08:00"),
        ("shift: 1w", "shift: 90m", "directory.yaml:22:71: error: shift must be whole hours (e.g. 12h, 1d, 1w), not 1h30m"),
        ("members: [ann]", "members: [bo]", "directory.yaml:22:85: error: 'bo' is on call for counselor but does not hold that role; add it to their roles"),
        ("scope: north", "scope: nroth", "directory.yaml:21:12: error: unknown scope 'nroth': use a site id or 'district'; did you mean 'north'?"),
        ("name: District,", "nmae: District,", "directory.yaml:1:20: error: unknown key 'nmae' in district; did you mean 'name'?"),
        // A number two people share: replies from it could not say who answered.
        ("{ voice: \"+15555550101\" }", "{ voice: \"+15555550100\" }",
         "directory.yaml:15:81: error: +15555550100 is already person:ann's (line 13): SMS replies and calls from it could not be told apart; give person:cy a number of their own"),
    ])
    func directoryError(old: String, new: String, expected: String) {
        let diagnostics = load(playbook: basePlaybook, directory: replacing(old, with: new, in: baseDirectory))
        #expect(diagnostics.errors.first?.description == expected, "all: \(diagnostics.map(\.description))")
    }

    @Test("a missing directory.yaml is an error and nothing is loaded")
    func invalidSetIsNeverUsed() {
        let result = PlaybookLoader.load(directory: ("directory.yaml", "district: {}"), playbooks: [("p.yaml", basePlaybook)])
        #expect(result.catalog == nil)
        #expect(result.diagnostics.hasErrors)
    }

    @Test("the version is the SHA-256 of the file's bytes")
    func versionHash() throws {
        let result = PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", "id: x\n")])
        #expect(result.catalog == nil)
        let ok = try #require(PlaybookLoader.load(directory: ("directory.yaml", baseDirectory), playbooks: [("p.yaml", basePlaybook)]).catalog)
        let version = try #require(ok.playbooks.playbooks.first?.version)
        #expect(version.hasPrefix("sha256:") && version.count == 7 + 64)
        let changed = try #require(PlaybookLoader.load(directory: ("directory.yaml", baseDirectory),
                                                       playbooks: [("p.yaml", basePlaybook + "\n# reviewed\n")]).catalog)
        #expect(changed.playbooks.playbooks.first?.version != version)
    }
}
