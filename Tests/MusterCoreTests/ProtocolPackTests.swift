// Tasks as state laws shape them: owed by the reporter personally, in stages, with reminders before
// the deadline (issue 24, item 9).
import Foundation
import MusterCore
import MusterPlaybooks
import Testing

@Suite("Protocol packs: who owes a task, its stages and its reminders")
struct ProtocolPackTests {
    static let playbookYAML = """
        id: abuse
        title: Abuse disclosure
        match: { types: [other-concern] }
        steps:
          - { notify: [on-call:social-worker@site], via: [sms], ack_within: 5m }
        fallback: { notify: [person:pr1], via: [voice] }
        tasks:
          - id: phone-report
            title: Reported by phone to the hotline
            due: 1h
            after: report
            owner: reporter
            remind_before: [10m, 30m]
            then:
              - { title: Written report sent, due: 36h, remind_before: [12h] }
          - { id: debrief, title: Debrief with the team, due: 4h, after: acknowledgement, remind_before: [1h, 3h] }
        overdue: { notify: [role:principal@site], via: [sms, email] }
        """

    static let engine: EscalationEngine = {
        let result = PlaybookLoader.load(directory: ("directory.yaml", Fixture.directoryYAML), playbooks: [("abuse.yaml", playbookYAML)])
        guard let playbook = result.catalog?.playbooks[PlaybookID("abuse")] else { preconditionFailure("\(result.diagnostics)") }
        return EscalationEngine(playbook: playbook, directory: Fixture.directory)
    }()

    let start = Fixture.instant("2026-12-02T10:00:00-06:00")
    let reporter = Actor.person("c1")

    func started() -> (IncidentState, [Effect]) {
        var effects: [Effect] = []
        let state = Self.engine.start(Fixture.incident(at: "2026-12-02T10:00:00-06:00", type: "other-concern", reporter: reporter),
                                      now: start, effects: &effects)
        return (state, effects)
    }

    func notified(_ effects: [Effect], _ kind: NotificationKind) -> [NotificationID] {
        effects.compactMap { if case .notify(let n) = $0, n.kind == kind { n.id } else { nil } }
    }

    @Test("a task the reporter owes: only they complete it, they are reminded and alerted, and its stages go in order")
    func reporterOwesStagedTask() throws {
        var (state, effects) = started()
        #expect(state.tasks.map(\.id) == ["phone-report", "phone-report-2", "debrief"])
        let hours = { (h: Double) in self.start.addingTimeInterval(h * 3600) }
        // Each stage's deadline counts from the report; reminders sit before each, longest first.
        for (key, due) in [(TimerKey.taskDue("phone-report"), hours(1)), (.taskReminder("phone-report", index: 0), hours(0.5)),
                           (.taskReminder("phone-report", index: 1), hours(50.0 / 60)), (.taskDue("phone-report-2"), hours(36)),
                           (.taskReminder("phone-report-2", index: 0), hours(24))] {
            #expect(state.timers.contains(ScheduledTimer(key: key, due: due)), "\(key) at \(due)")
        }
        #expect(effects.contains { if case .audit(let r) = $0 { r.task == "phone-report" && r.detail?.contains("owed by the reporter personally") == true } else { false } })

        // Nobody else completes it, whatever their role; the written stage waits for the phone call.
        #expect(throws: EngineRejection.taskOwedByReporter("phone-report")) {
            try Self.engine.apply(.taskCompleted("phone-report", by: .person("sw1")), to: &state, now: hours(0.1), effects: &effects)
        }
        #expect(throws: EngineRejection.taskStageOpen("phone-report-2", before: "phone-report")) {
            try Self.engine.apply(.taskCompleted("phone-report-2", by: reporter), to: &state, now: hours(0.1), effects: &effects)
        }

        // The first reminder goes to the reporter alone, over the overdue alert's channels they have.
        effects = []
        try Self.engine.apply(.timerFired(.taskReminder("phone-report", index: 0)), to: &state, now: hours(0.5), effects: &effects)
        let reminders = notified(effects, .taskReminder)
        #expect(reminders.map(\.recipient) == [.person("c1")])
        #expect(reminders.first?.qualifier == .reminder("phone-report", 0))
        #expect(effects.contains { if case .audit(let r) = $0 { r.action == .taskReminded && r.detail == "due in 30m" } else { false } })
        #expect(NotificationID(try #require(reminders.first).description) == reminders.first, "the text form reads back")

        // Done by the reporter: its deadline and the reminder still ahead are cancelled.
        effects = []
        try Self.engine.apply(.taskCompleted("phone-report", by: reporter), to: &state, now: hours(0.7), effects: &effects)
        #expect(effects.contains(.cancelTimer(.taskDue("phone-report"))))
        #expect(effects.contains(.cancelTimer(.taskReminder("phone-report", index: 1))))
        #expect(!state.timers.contains { if case .taskReminder("phone-report", _) = $0.key { true } else { false } })

        // The written stage runs late: the overdue alert goes to the reporter as well as the principal.
        effects = []
        try Self.engine.apply(.timerFired(.taskDue("phone-report-2")), to: &state, now: hours(36), effects: &effects)
        #expect(Set(notified(effects, .taskOverdue).map(\.recipient)) == [.person("c1"), .person("pr1")])
        try Self.engine.apply(.taskCompleted("phone-report-2", by: reporter), to: &state, now: hours(37), effects: &effects)
        #expect(state.tasks.first { $0.id == "phone-report-2" }?.completedBy == reporter)
    }

    @Test("a responder task's reminders go to the incident's owner; a resolved incident reminds nobody, and reopened, none for a moment past")
    func responderTaskReminders() throws {
        var (state, effects) = started()
        let minutes = { (m: Double) in self.start.addingTimeInterval(m * 60) }
        try Self.engine.apply(.acknowledged(by: .person("sw1"), path: .api, step: 0), to: &state, now: minutes(3), effects: &effects)
        // Due 4h after the acknowledgement, reminded 3h and 1h before.
        #expect(state.timers.contains(ScheduledTimer(key: .taskReminder("debrief", index: 0), due: minutes(3 + 60))))
        #expect(state.timers.contains(ScheduledTimer(key: .taskReminder("debrief", index: 1), due: minutes(3 + 180))))
        effects = []
        try Self.engine.apply(.timerFired(.taskReminder("debrief", index: 0)), to: &state, now: minutes(63), effects: &effects)
        #expect(notified(effects, .taskReminder).map(\.recipient) == [.person("sw1")])
        #expect(notified(effects, .taskReminder).map(\.channel) == [.sms])

        // Once resolved, every reminder of a responders' task still ahead goes with the other timers.
        try Self.engine.apply(.resolved(by: .person("sw1"), note: nil), to: &state, now: minutes(70), effects: &effects)
        #expect(!state.timers.contains { if case .taskReminder("debrief", _) = $0.key { true } else { false } })
        // Reopened after the last reminder's moment: the deadline comes back, that reminder does not.
        try Self.engine.apply(.reopened(by: .person("sw1"), reason: "more"), to: &state, now: minutes(190), effects: &effects)
        #expect(state.timers.contains(ScheduledTimer(key: .taskDue("debrief"), due: minutes(243))))
        #expect(!state.timers.contains { if case .taskReminder("debrief", _) = $0.key { true } else { false } })
    }

    static let waitingYAML = """
        id: concern
        title: Concern
        match: { types: [other-concern] }
        steps:
          - { notify: [on-call:social-worker@site], via: [sms], ack_within: 5m }
        outside_school_hours:
          steps:
            - { notify: [role:counselor@site], via: [sms], ack_within: school-opens }
            - { notify: [on-call:social-worker@site], via: [sms], ack_within: 5m }
        fallback: { notify: [person:pr1], via: [voice] }
        """

    @Test("a step that waits for school: one message at night, the next step when school hours begin, past weekends and closures",
          arguments: [("2026-12-01T21:40:00-06:00", "2026-12-02T07:30:00-06:00"),   // Tuesday night: Wednesday morning
                      ("2026-12-04T22:10:00-06:00", "2026-12-07T07:30:00-06:00"),   // Friday night: Monday
                      ("2026-11-25T20:00:00-06:00", "2026-11-27T07:30:00-06:00"),   // before Thanksgiving, a closed day: Friday
                      ("2026-12-02T06:00:00-06:00", "2026-12-02T07:30:00-06:00")])  // early morning: the same day
    func waitsForSchool(reportedAt: String, opens: String) throws {
        let result = PlaybookLoader.load(directory: ("directory.yaml", Fixture.directoryYAML), playbooks: [("concern.yaml", Self.waitingYAML)])
        let playbook = try #require(result.catalog?.playbooks[PlaybookID("concern")], "\(result.diagnostics)")
        let engine = EscalationEngine(playbook: playbook, directory: Fixture.directory)
        var effects: [Effect] = []
        var state = engine.start(Fixture.incident(at: reportedAt, type: "other-concern"), now: Fixture.instant(reportedAt), effects: &effects)
        #expect(notified(effects, .page).map(\.recipient) == [.person("c1")], "one message, to the counselor")
        let deadline = try #require(state.timers.first { $0.key == .ackDeadline(step: 0, round: 0) })
        #expect(deadline.due == Fixture.instant(opens))
        #expect(effects.contains { if case .audit(let r) = $0 { r.detail == "acknowledge before school opens" } else { false } })
        effects = []
        try engine.apply(.timerFired(.ackDeadline(step: 0, round: 0)), to: &state, now: deadline.due, effects: &effects)
        #expect(state.phase == .escalating(step: 1, round: 0))
        #expect(effects.contains { if case .audit(let r) = $0 { r.action == .escalated && r.detail == "school opened with no acknowledgement" } else { false } })
    }

    @Test("waiting for school is refused in the school-hours steps, and with a repeat")
    func waitingErrors() {
        let inSteps = Self.waitingYAML.replacingOccurrences(of: "ack_within: 5m }\noutside", with: "ack_within: school-opens }\noutside")
        let repeated = Self.waitingYAML.replacingOccurrences(of: "ack_within: school-opens }", with: "ack_within: school-opens, repeat: 1 }")
        let messages = { (yaml: String) in
            PlaybookLoader.load(directory: ("directory.yaml", Fixture.directoryYAML), playbooks: [("c.yaml", yaml)]).diagnostics.map(\.message)
        }
        #expect(messages(inSteps).contains("step 1 waits for school to open, but these steps run during school hours: use school-opens under outside_school_hours or non_school_days"))
        #expect(messages(repeated).contains("step 1 waits for school to open, so it pages once: remove 'repeat'"))
        #expect(messages(Self.waitingYAML).isEmpty)
    }

    @Test("closing the incident does not discharge the reporter's own task: its deadline and reminders stay, and the reporter completes it")
    func personalTaskOutlivesClosing() throws {
        var (state, effects) = started()
        let hours = { (h: Double) in self.start.addingTimeInterval(h * 3600) }
        try Self.engine.apply(.acknowledged(by: .person("sw1"), path: .api, step: 0), to: &state, now: hours(0.05), effects: &effects)
        effects = []
        try Self.engine.apply(.resolved(by: .person("sw1"), note: nil), to: &state, now: hours(0.1), effects: &effects)
        #expect(state.timers.map(\.key).filter { if case .ackDeadline = $0 { true } else { false } }.isEmpty)
        #expect(!effects.contains(.cancelTimer(.taskDue("phone-report"))))
        #expect(!effects.contains(.cancelTimer(.taskReminder("phone-report-2", index: 0))))
        #expect(effects.contains(.cancelTimer(.taskDue("debrief"))), "a responders' task goes with the incident")
        effects = []
        try Self.engine.apply(.timerFired(.taskReminder("phone-report", index: 0)), to: &state, now: hours(0.5), effects: &effects)
        #expect(notified(effects, .taskReminder).map(\.recipient) == [.person("c1")])
        try Self.engine.apply(.taskCompleted("phone-report", by: reporter), to: &state, now: hours(0.6), effects: &effects)
        #expect(state.tasks.first { $0.id == "phone-report" }?.completedBy == reporter)
        #expect(state.phase == .resolved)
    }

    @Test("a reminder the reporter cannot be reached for goes to the overdue alert's targets instead: never to nobody")
    func unreachableReporterReminder() throws {
        var effects: [Effect] = []
        var state = Self.engine.start(Fixture.incident(at: "2026-12-02T10:00:00-06:00", type: "other-concern", reporter: .person("not-in-directory")),
                                      now: start, effects: &effects)
        effects = []
        try Self.engine.apply(.timerFired(.taskReminder("phone-report", index: 0)), to: &state, now: start.addingTimeInterval(1800), effects: &effects)
        #expect(notified(effects, .taskReminder).map(\.recipient) == [.person("pr1")], "the principal, over the email they have")
    }

    @Test("a long closure holds a waiting step back no longer than a long weekend")
    func longBreakDoesNotHoldBack() throws {
        let yaml = Fixture.directoryYAML.replacingOccurrences(of: "closed: [ { date: 2026-11-26, reason: Thanksgiving } ]",
                                                              with: "closed: [ { from: 2026-12-21, to: 2027-01-01, reason: Winter break } ]")
        let loaded = PlaybookLoader.load(directory: ("directory.yaml", yaml), playbooks: [("abuse.yaml", Self.playbookYAML)])
        let directory = try #require(loaded.catalog?.directory, "\(loaded.diagnostics)")
        // Friday 18 December, evening: the break's closed days count for three days, then Tuesday's opening is taken.
        #expect(directory.nextSchoolOpening(at: "north", after: Fixture.instant("2026-12-18T20:00:00-06:00"))
                == Fixture.instant("2026-12-22T07:30:00-06:00"))
        // Saturday evening: Monday and Tuesday, closed, count; Wednesday is the fourth day.
        #expect(directory.nextSchoolOpening(at: "north", after: Fixture.instant("2026-12-19T20:00:00-06:00"))
                == Fixture.instant("2026-12-23T07:30:00-06:00"))
        #expect(directory.nextSchoolOpening(at: "nowhere", after: start) == nil)
    }

    @Test("reminder timers and notification ids have stable text forms")
    func textForms() {
        let key = TimerKey.taskReminder("mandated-report", index: 2)
        #expect(key.description == "remind:2:mandated-report")
        #expect(TimerKey(key.description) == key)
        let id = NotificationID(incident: "inc-1", cycle: 0, kind: .taskReminder, qualifier: .reminder("mandated-report", 1),
                                recipient: .person("c1"), channel: .sms)
        #expect(id.description == "inc-1/c0/task_reminder/m1:mandated-report/person:c1/sms")
        #expect(NotificationID(id.description) == id)
    }
}
