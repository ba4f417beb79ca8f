// The escalation rules, one case each, on a virtual clock (the simulator delivers each timer exactly
// when due). Fixture: Wednesday 2026-12-02 is a school day at North High; sw2 and ct2 are on call at
// 10:00, sw2 and ct1 at 02:00; the counselor's schedule only covers 07:00-17:00 on weekdays.
import Foundation
import MusterCore
import Testing

@Suite("Escalation engine")
struct EscalationEngineTests {
    let schoolHours = "2026-12-02T10:00:00-06:00"
    let night = "2026-12-02T02:00:00-06:00"

    @Test("a step pages all its targets over each listed channel they have, then repeats, then escalates, then falls back")
    func fullLadder() {
        let run = Fixture.simulate(at: schoolHours)
        #expect(run.lines("page", "fallback", "escalate", "repeat", "unowned") == [
            "+0s page step 1 sw2 sms", "+0s page step 1 sw2 push",
            "+5m repeat step 1", "+5m page step 1 sw2 sms", "+5m page step 1 sw2 push",
            "+10m escalate step 2", "+10m page step 2 c1 sms",
            "+15m escalate step 3", "+15m page step 3 ct2 voice", "+15m page step 3 pr1 voice",
            "+25m escalate", "+25m fallback partner:mcrt voice", "+25m unowned",
            "+30m unowned", "+30m fallback partner:mcrt voice", "+35m unowned", "+35m fallback partner:mcrt voice",
        ])
        #expect(run.state.phase == .unowned)
        #expect(run.state.owner == nil)
    }

    @Test("an acknowledgement stops escalation and starts the deadlines that count from it")
    func acknowledgementStopsEscalation() throws {
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 180, event: .acknowledged(by: .person("sw2"), path: .link, step: 0))])
        let afterAck = run.lines.filter { $0.offsetSeconds > 180 }
        #expect(!afterAck.contains { $0.kind == "page" || $0.kind == "escalate" || $0.kind == "fallback" })
        #expect(run.state.phase == .acknowledged)
        #expect(run.state.owner == .person("sw2"))
        let screening = try #require(run.state.tasks.first { $0.id == "screening" })
        #expect(screening.dueAt == Fixture.instant(schoolHours).addingTimeInterval(180 + 7200))
        #expect(run.lines("task_overdue", "overdue_alert") == [
            "+2h3m task_overdue screening", "+2h3m overdue_alert pr1 email screening",
            "+4h task_overdue guardian", "+4h overdue_alert pr1 email guardian",
        ])
    }

    @Test("deadlines that count from the report are set when it arrives")
    func reportDeadlines() throws {
        let run = Fixture.simulate(at: schoolHours)
        let guardian = try #require(run.state.tasks.first { $0.id == "guardian" })
        #expect(guardian.dueAt == Fixture.instant(schoolHours).addingTimeInterval(4 * 3600))
        let screening = try #require(run.state.tasks.first { $0.id == "screening" })
        #expect(screening.dueAt == nil, "never acknowledged, so the screening clock never started")
    }

    @Test("resolving cancels every outstanding timer and nothing is paged afterwards")
    func resolveCancelsEverything() {
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 60, event: .resolved(by: .person("sw2"), note: nil))])
        #expect(run.lines.filter { $0.offsetSeconds > 60 }.isEmpty)
        #expect(run.state.phase == .resolved)
        #expect(run.state.timers.isEmpty)
        #expect(run.pendingTimers.isEmpty)
        let cancelled = run.effects.compactMap { if case .cancelTimer(let key) = $0.effect { key } else { nil } }
        #expect(Set(cancelled) == [.ackDeadline(step: 0, round: 0), .taskDue("guardian")])
    }

    @Test("a late acknowledgement of an earlier step's page still counts")
    func lateAcknowledgement() throws {
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 720, event: .acknowledged(by: .person("sw2"), path: .link, step: 0))])
        #expect(run.state.phase == .acknowledged)
        #expect(run.state.owner == .person("sw2"))
        let ack = try #require(run.lines.first { $0.kind == "ack" })
        #expect(ack.detail?.contains("page of step 1 acknowledged during step 2") == true)
        #expect(!run.lines.contains { $0.offsetSeconds > 720 && $0.kind == "page" })
    }

    @Test("while unowned the fallback is paged again every repeat_every (5 minutes by default), each round audited, with ids of its own")
    func fallbackRepeatsWhileUnowned() throws {
        let run = Fixture.simulate(at: schoolHours)
        #expect(run.lines("fallback", "unowned") == [
            "+25m fallback partner:mcrt voice", "+25m unowned",
            "+30m unowned", "+30m fallback partner:mcrt voice",
            "+35m unowned", "+35m fallback partner:mcrt voice",
        ])
        let repeats = run.lines.filter { $0.kind == "unowned" && $0.round != nil }
        #expect(repeats.map(\.round) == [1, 2])
        #expect(repeats.first?.detail == "still unowned 5m after the last fallback page; paging the fallback again (round 2)")
        let fallbackIDs = run.effects.compactMap { if case .notify(let n) = $0.effect, n.kind == .fallback { n.id.qualifier } else { nil } }
        #expect(fallbackIDs == [.none, .round(1), .round(2)], "each round is a notification of its own, so none is taken for a duplicate")
        #expect(run.pendingTimers.map(\.key).contains(.fallbackRepeat(round: 3)), "it goes on for as long as nobody takes it")
    }

    @Test("an acknowledgement, or an escalation by hand, ends the fallback's repeats")
    func fallbackRepeatsStop() {
        let acknowledged = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 31 * 60, event: .acknowledged(by: .partner("mcrt"), path: .sms, step: nil))])
        #expect(acknowledged.lines("fallback") == ["+25m fallback partner:mcrt voice", "+30m fallback partner:mcrt voice"])
        #expect(!acknowledged.state.timers.contains { if case .fallbackRepeat = $0.key { true } else { false } })
        #expect(acknowledged.state.phase == .acknowledged)
        let byHand = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 26 * 60, event: .escalatedByHand(by: .person("pr1"), reason: nil))])
        // The ladder starts again at +26m and runs out at +51m: the first fallback's repeat (+30m) never comes.
        #expect(byHand.lines("fallback") == ["+25m fallback partner:mcrt voice", "+51m fallback partner:mcrt voice",
                                             "+56m fallback partner:mcrt voice", "+1h1m fallback partner:mcrt voice"])
    }

    @Test("an acknowledgement after the fallback still takes ownership")
    func acknowledgementAfterFallback() {
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 3600, event: .acknowledged(by: .person("ct2"), path: .sms, step: nil))])
        #expect(run.lines("unowned", "ack") == ["+25m unowned", "+30m unowned", "+35m unowned", "+40m unowned", "+45m unowned",
                                                "+50m unowned", "+55m unowned", "+1h ack step 3 ct2"])
        #expect(!run.lines.contains { $0.offsetSeconds > 3600 && $0.kind == "fallback" }, "the repeats end with the acknowledgement")
        #expect(run.state.phase == .acknowledged)
    }

    @Test("a target that names nobody is skipped with the reason, and a step that names nobody moves on at once")
    func unresolvedTargetSkipsStep() throws {
        let run = Fixture.simulate(at: night)
        #expect(run.lines("target_unresolved", "step_skipped", "page", "fallback") == [
            "+0s page step 1 sw2 sms", "+0s page step 1 sw2 push",
            "+5m page step 1 sw2 sms", "+5m page step 1 sw2 push",
            "+10m target_unresolved step 2", "+10m step_skipped step 2",
            "+10m page step 3 ct1 voice", "+10m page step 3 ct1 sms", "+10m page step 3 pr1 voice",
            "+20m fallback partner:mcrt voice", "+25m fallback partner:mcrt voice", "+30m fallback partner:mcrt voice",
        ])
        let skip = try #require(run.lines.first { $0.kind == "target_unresolved" })
        #expect(skip.target == "on-call:counselor@site")
        #expect(skip.detail == "nobody on call for counselor at north (gap in schedule north-counselor)")
    }

    @Test("when a repeat round reaches nobody (a shift ended into a gap), the next step starts at its first round")
    func repeatIntoGap() {
        let playbook = Playbook(
            id: "gap", title: "Gap", version: "test", match: PlaybookMatch(types: ["suicide-risk"]),
            steps: [EscalationStep(targets: [.onCall("counselor", .incidentSite)], channels: [.sms], ackWithin: .minutes(5), repeats: 1),
                    EscalationStep(targets: [.onCall("crisis-team", .district)], channels: [.voice], ackWithin: .minutes(5), repeats: 1)],
            fallback: Fallback(targets: [.partner("mcrt")], channels: [.voice]))
        // The counselor's layer ends at 17:00: round 0 at 16:57 reaches c1, round 1 at 17:02 reaches nobody.
        let run = Fixture.simulate(at: "2026-12-02T16:57:00-06:00", playbook: playbook)
        #expect(run.lines("page", "repeat", "step", "step_skipped") == [
            "+0s step step 1", "+0s page step 1 c1 sms",
            "+5m step_skipped step 1", "+5m step step 2", "+5m page step 2 ct2 voice",
            "+10m repeat step 2", "+10m page step 2 ct2 voice",
        ])
    }

    @Test("the variant follows the site's calendar", arguments: [
        ("2026-12-02T10:00:00-06:00", PlanVariant.standard, "+0s page step 1 sw2 sms"),            // Wednesday, school hours
        ("2026-12-02T19:00:00-06:00", .outsideSchoolHours, "+0s page step 1 ct2 voice"),           // Wednesday evening
        ("2026-12-05T10:00:00-06:00", .nonSchoolDays, "+0s page step 1 partner:mcrt voice"),       // Saturday
        ("2026-11-26T10:00:00-06:00", .nonSchoolDays, "+0s page step 1 partner:mcrt voice"),       // Thanksgiving (district closure)
    ])
    func variantChoice(at: String, variant: PlanVariant, firstPage: String) throws {
        let playbook = try #require(Fixture.catalog.playbooks[PlaybookID("other")])
        let run = Fixture.simulate(at: at, playbook: playbook)
        #expect(run.state.variant == variant)
        #expect(run.lines("page").first == firstPage)
    }

    @Test("a flag on the report leaves out the tasks that say `unless` it")
    func unlessFlag() {
        let run = Fixture.simulate(at: schoolHours, flags: ["family-may-be-source"])
        #expect(run.state.tasks.map(\.id) == ["screening"])
        // Never scheduled or paged; only the record that the report left it out.
        #expect(run.lines.filter { $0.task == "guardian" }.map(\.kind) == ["task_withdrawn"])
    }

    @Test("a flag in a later report by the first reporter withdraws the open tasks it rules out, timer and all")
    func mergedFlagWithdrawsTask() {
        let report = Report(type: "suicide-risk", severity: .high, site: "north", reporter: .person("pr1"),
                            summary: "Older sibling is the concern", subject: "S-1", flags: ["family-may-be-source"],
                            receivedAt: Fixture.instant(schoolHours).addingTimeInterval(600))
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 600, event: .reportMerged(report))])
        #expect(run.state.tasks.map(\.id) == ["screening"])
        #expect(run.lines("task_withdrawn") == ["+10m task_withdrawn guardian"])
        #expect(!run.lines.contains { $0.kind == "task_overdue" && $0.task == "guardian" })
        #expect(run.effects.contains { $0.offset == 600 && $0.effect == .cancelTimer(.taskDue("guardian")) })
    }

    @Test("a flag in someone else's later report is only proposed; a responder's confirmation withdraws the task")
    func otherReportersFlagIsProposed() {
        let report = Report(type: "suicide-risk", severity: .high, site: "north", reporter: .person("c1"),
                            summary: "Older sibling is the concern", subject: "S-1", flags: ["family-may-be-source"],
                            receivedAt: Fixture.instant(schoolHours).addingTimeInterval(600))
        let proposed = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 600, event: .reportMerged(report))])
        #expect(proposed.state.tasks.map(\.id) == ["screening", "guardian"], "nothing is withdrawn on another person's word")
        #expect(proposed.state.incident.flags.isEmpty)
        #expect(proposed.lines.filter { $0.kind == "flag_proposed" }.map(\.target) == ["F1"])
        #expect(proposed.lines("task_withdrawn").isEmpty)

        let confirmed = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: 600, event: .reportMerged(report)),
            ScriptedEvent(offset: 900, event: .flagConfirmed("family-may-be-source", by: .person("sw2"))),
        ])
        #expect(confirmed.state.tasks.map(\.id) == ["screening"])
        #expect(confirmed.state.incident.flags == ["family-may-be-source"])
        #expect(confirmed.lines("task_withdrawn") == ["+15m task_withdrawn guardian"])
        #expect(confirmed.lines.contains { $0.kind == "flag_confirmed" && $0.target == "F1" })
    }

    @Test("the family decision is on the record: the report's flag and the task it leaves out; a responder clears it with a reason and the task comes back")
    func familyDecisionIsRecorded() throws {
        let engine = Fixture.engine
        var effects: [Effect] = []
        let start = Fixture.instant(schoolHours)
        var state = engine.start(Fixture.incident(at: schoolHours, flags: ["family-may-be-source"]), now: start, effects: &effects)
        func records(_ action: AuditAction) -> [AuditRecord] {
            effects.compactMap { if case .audit(let record) = $0, record.action == action { record } else { nil } }
        }
        #expect(state.tasks.map(\.id) == ["screening"])
        // The log names the flag by its neutral code, its place in the playbook's list, never by its name.
        #expect(records(.flagSet).map(\.target) == ["F1"])
        #expect(records(.flagSet).first?.actor == .person("pr1"))
        #expect(records(.taskWithdrawn).map(\.task) == ["guardian"])
        #expect(records(.taskWithdrawn).first?.detail == "left out: the report set flag F1")
        #expect(!effects.contains { if case .audit(let record) = $0 { "\(record)".contains("family") } else { false } })

        // Five hours later a responder learns the family is safe: the guardian task is back, already past its 4h deadline.
        effects = []
        let later = start.addingTimeInterval(5 * 3600)
        try engine.apply(.flagDecided("family-may-be-source", set: false, by: .person("sw2"), reason: "Spoke with the aunt; the threat is a classmate"),
                         to: &state, now: later, effects: &effects)
        #expect(state.incident.flags.isEmpty)
        #expect(state.tasks.map(\.id) == ["screening", "guardian"])
        #expect(state.tasks.first { $0.id == "guardian" }?.dueAt == start.addingTimeInterval(4 * 3600))
        let cleared = try #require(records(.flagCleared).first)
        #expect(cleared.actor == .person("sw2") && cleared.target == "F1")
        #expect(records(.taskRestored).first?.detail == "restored: flag F1 cleared")
        #expect(cleared.sensitive == "Spoke with the aunt; the threat is a classmate", "the why is sealed, not in the detail")
        #expect(cleared.detail?.contains("aunt") == false)
        #expect(records(.taskRestored).map(\.task) == ["guardian"])
        #expect(effects.contains { $0 == .scheduleTimer(.taskDue("guardian"), at: start.addingTimeInterval(4 * 3600)) })
        #expect(throws: EngineRejection.flagNotSet("family-may-be-source")) {
            try engine.apply(.flagDecided("family-may-be-source", set: false, by: .person("sw2"), reason: "again"), to: &state, now: later, effects: &effects)
        }
        // Set again by a responder, with why: the task goes again.
        effects = []
        try engine.apply(.flagDecided("family-may-be-source", set: true, by: .person("sw2"), reason: "The aunt called back: it is the stepfather"),
                         to: &state, now: later.addingTimeInterval(60), effects: &effects)
        #expect(state.tasks.map(\.id) == ["screening"])
        #expect(records(.flagSet).first?.sensitive == "The aunt called back: it is the stepfather")
        #expect(records(.taskWithdrawn).map(\.task) == ["guardian"])
    }

    @Test("a flag's neutral code is its place in the playbook's list, and reads back to the flag; an unlisted flag has none")
    func flagCodes() throws {
        let playbook = Playbook(id: "p", title: "P", version: "v", match: PlaybookMatch(types: ["t"]), steps: [],
                                fallback: Fallback(targets: [], channels: []),
                                flags: ["zeta": "Z?", "alpha": "A?"], flagOrder: ["zeta", "alpha"])
        #expect(playbook.code(of: "zeta") == "F1")
        #expect(playbook.code(of: "alpha") == "F2")
        #expect(playbook.flag(code: "F2") == "alpha")
        #expect(playbook.code(of: "other") == "F?")
        for code in ["F0", "F3", "F?", "2", "Falpha"] { #expect(playbook.flag(code: code) == nil) }
    }

    @Test("a purge takes the flags with the key that sealed them: no later write can store them in clear")
    func purgeClearsFlags() throws {
        let engine = Fixture.engine
        var effects: [Effect] = []
        let start = Fixture.instant(schoolHours)
        var state = engine.start(Fixture.incident(at: schoolHours, flags: ["family-may-be-source"]), now: start, effects: &effects)
        try engine.apply(.resolved(by: .person("sw1"), note: nil), to: &state, now: start.addingTimeInterval(60), effects: &effects)
        try engine.apply(.purged(policy: "7y", closedBefore: start.addingTimeInterval(3600)), to: &state, now: start.addingTimeInterval(7200), effects: &effects)
        #expect(state.incident.flags.isEmpty)
    }

    @Test("a page to a partner agency is a disclosure: recorded with the page, with its channel and the playbook's basis; a person's own is sealed")
    func partnerPagesAreDisclosures() throws {
        let run = Fixture.simulate(at: schoolHours, [])
        let pages = run.lines.filter { $0.kind == "fallback" && $0.partner == "mcrt" }
        let disclosures = run.lines.filter { $0.kind == "disclosed" }
        #expect(!pages.isEmpty)
        #expect(disclosures.count == pages.count, "one disclosure per page to the partner")
        #expect(disclosures.allSatisfy { $0.partner == "mcrt" && $0.detail?.contains("basis: FERPA health or safety emergency, 34 CFR 99.36") == true })
        #expect(run.lines.filter { $0.kind == "page" }.allSatisfy { $0.partner == nil }, "pages to staff are not disclosures")

        let engine = Fixture.engine
        var effects: [Effect] = []
        var state = engine.start(Fixture.incident(at: schoolHours), now: Fixture.instant(schoolHours), effects: &effects)
        effects = []
        try engine.apply(.disclosureRecorded(by: .person("sw2"), recipient: "Riverbend Police Department",
                                             what: "the attendance record for the last month", basis: "the student is missing, believed at risk"),
                         to: &state, now: Fixture.instant(schoolHours), effects: &effects)
        guard case .audit(let record)? = effects.first else { Issue.record("no audit entry"); return }
        #expect(record.action == .disclosed && record.actor == .person("sw2") && record.target == "Riverbend Police Department")
        #expect(record.sensitive?.contains("the attendance record for the last month") == true)
        #expect(record.detail?.contains("attendance") == false, "what and why are sealed")
    }

    @Test("confirming a flag the playbook does not have is refused")
    func unknownFlagRefused() throws {
        let engine = Fixture.engine
        var effects: [Effect] = []
        var state = engine.start(Fixture.incident(at: schoolHours), now: Fixture.instant(schoolHours), effects: &effects)
        #expect(throws: EngineRejection.unknownFlag("no-such-flag")) {
            try engine.apply(.flagConfirmed("no-such-flag", by: .person("sw2")), to: &state, now: Fixture.instant(schoolHours), effects: &effects)
        }
    }

    @Test("notification ids read back from their text form", arguments: [
        NotificationID(incident: "inc-1", cycle: 0, kind: .page, qualifier: .step(1, round: 2), recipient: .person("ann"), channel: .sms),
        NotificationID(incident: "inc-1", cycle: 3, kind: .fallback, qualifier: .none, recipient: .partner("mcrt"), channel: .voice),
        NotificationID(incident: "inc-1", cycle: 3, kind: .fallback, qualifier: .round(4), recipient: .partner("mcrt"), channel: .voice),
        NotificationID(incident: "inc-1", cycle: 1, kind: .taskOverdue, qualifier: .task("guardian"), recipient: .person("bo"), channel: .email),
        NotificationID(incident: "inc-1", cycle: 1, kind: .assigned, qualifier: .sequence(17), recipient: .person("bo"), channel: .push),
    ])
    func notificationIDText(id: NotificationID) {
        #expect(NotificationID(id.description) == id)
    }

    @Test("actors and recipients read back from their text form; anything else is refused")
    func actorText() {
        for actor in [Actor.person("ann"), .partner("mcrt"), .integration("alertmanager:prod"), .system] {
            #expect(Actor(actor.description) == actor)
        }
        for recipient in [Recipient.person("ann"), .partner("mcrt")] {
            #expect(Recipient(recipient.description) == recipient)
        }
        for bad in ["", "person:", "ann", "robot:r2", "System"] { #expect(Actor(bad) == nil, "\(bad)") }
        #expect(Recipient("system") == nil)
        #expect(Recipient("integration:x") == nil)
    }

    @Test("malformed notification ids are refused", arguments: ["", "inc-1", "inc-1/c0/page/s0r0/person:ann/sms", "inc-1/cx/page/s1r0/person:ann/sms",
                                                                "inc-1/c0/page/s1r0/ann/sms", "inc-1/c0/page/s1r0/person:ann/fax"])
    func badNotificationIDs(text: String) {
        #expect(NotificationID(text) == nil)
    }

    @Test("when every page of a round fails for good, the next step starts at once")
    func deliveryFailureEscalates() {
        let first = Fixture.simulate(at: schoolHours)
        let ids = first.effects.compactMap { entry -> QueuedNotification? in
            if case .notify(let n) = entry.effect, entry.offset == 0 { n } else { nil }
        }
        #expect(ids.count == 2)
        let failures = ids.map { n in
            ScriptedEvent(offset: 30, event: .deliveryFailed(notificationID: n.id, recipient: n.recipient, channel: n.channel,
                                                             reason: "number not in service", permanent: true))
        }
        let run = Fixture.simulate(at: schoolHours, failures)
        #expect(run.lines("step_unreachable", "escalate").prefix(2) == ["+30s step_unreachable step 1", "+30s escalate step 2"])
        #expect(run.lines("page").contains("+30s page step 2 c1 sms"))
    }

    @Test("when everyone paged in a round declines, the next step starts at once")
    func everyoneDeclines() {
        // Step 1 pages sw2 alone (over SMS and push); their "NO" ends the round.
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 60, event: .declined(by: .person("sw2"), path: .sms))])
        #expect(run.lines("declined", "step_unreachable", "escalate").prefix(3) == [
            "+1m declined step 1 sw2", "+1m step_unreachable step 1", "+1m escalate step 2",
        ])
        #expect(run.lines("page").contains("+1m page step 2 c1 sms"))
        #expect(!run.lines("repeat").contains("+5m repeat step 1"), "the round's deadline was cancelled")
    }

    @Test("a decline waits for the others paged in the round; a decliner is not paged again; a decline from someone not paged changes nothing")
    func partialDecline() {
        // Step 3 pages ct2 and pr1 (voice); pr1 declines, then pr1's call fails for good (pr1 also has
        // email, which a failure would otherwise try); sw1, not paged in step 3, declines too.
        let call = NotificationID(incident: "inc-1", cycle: 0, kind: .page, qualifier: .step(2, round: 0), recipient: .person("pr1"), channel: .voice)
        let run = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: 16 * 60, event: .declined(by: .person("pr1"), path: .sms)),
            ScriptedEvent(offset: 16 * 60 + 30, event: .deliveryFailed(notificationID: call, recipient: .person("pr1"), channel: .voice,
                                                                        reason: "no-answer", permanent: true)),
            ScriptedEvent(offset: 17 * 60, event: .declined(by: .person("sw1"), path: .sms)),
        ])
        #expect(run.lines("escalate").last == "+25m escalate", "step 3 runs to its deadline while ct2 may answer")
        #expect(!run.lines.contains { $0.kind == "channel_substituted" && $0.person == "pr1" }, "pr1 declined: not sent on to email")
        let declines = run.lines.filter { $0.kind == "declined" }
        #expect(declines.map(\.person) == ["pr1", "sw1"])
        #expect(declines.last?.detail?.contains("not paged in this round") == true)
    }

    @Test("a decline after someone took the incident is refused; an unparsed reply is kept sealed and changes nothing")
    func declineAfterAcknowledgement() throws {
        let engine = Fixture.engine
        var effects: [Effect] = []
        let start = Fixture.instant(schoolHours)
        var state = engine.start(Fixture.incident(at: schoolHours), now: start, effects: &effects)
        try engine.apply(.acknowledged(by: .person("sw2"), path: .sms, step: 0), to: &state, now: start.addingTimeInterval(60), effects: &effects)
        let acknowledged = state
        #expect(throws: EngineRejection.alreadyAcknowledged(by: .person("sw2"))) {
            try engine.apply(.declined(by: .person("c1"), path: .sms), to: &state, now: start.addingTimeInterval(90), effects: &effects)
        }
        effects = []
        try engine.apply(.replyReceived(from: .person("c1"), path: .sms, text: "No, not ok"), to: &state, now: start.addingTimeInterval(99), effects: &effects)
        var expected = acknowledged
        expected.nextAuditSequence += 1
        #expect(state == expected)
        guard case .audit(let record)? = effects.first, effects.count == 1 else {
            Issue.record("expected one audit entry, got \(effects)")
            return
        }
        #expect(record.action == .replyReceived)
        #expect(record.sensitive == "No, not ok")
        #expect(record.detail?.contains("No, not ok") != true, "the reply's words stay in the sealed field")
    }

    @Test("one failed page does not escalate while another page of the round may still arrive")
    func partialDeliveryFailure() {
        let first = Fixture.simulate(at: schoolHours)
        guard case .notify(let n)? = first.effects.first(where: { if case .notify = $0.effect { true } else { false } })?.effect else {
            Issue.record("no page was queued")
            return
        }
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 30, event: .deliveryFailed(
            notificationID: n.id, recipient: n.recipient, channel: n.channel, reason: "rejected", permanent: true))])
        #expect(run.lines("escalate").first == "+10m escalate step 2")
    }

    @Test("a page that fails for good goes to the person's next contact point, and the round waits for it")
    func failedPageTriesNextContact() throws {
        // Step 3 pages the principal (email, then voice in the directory) over voice: no email in the step.
        let first = Fixture.simulate(at: schoolHours)
        let page = try #require(first.effects.compactMap { entry -> (Int, QueuedNotification)? in
            if case .notify(let n) = entry.effect, n.recipient == .person("pr1"), n.kind == .page { (entry.offset, n) } else { nil }
        }.first)
        let failedAt = page.0 + 30
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: failedAt, event: .deliveryFailed(
            notificationID: page.1.id, recipient: page.1.recipient, channel: page.1.channel, reason: "call failed", permanent: true))])
        let at = formatOffset(failedAt)
        #expect(run.lines("channel_substituted").contains("\(at) channel_substituted step 3 pr1 email"))
        #expect(run.lines("page").contains("\(at) page step 3 pr1 email"))
        #expect(!run.lines("step_unreachable").contains { $0.hasPrefix(at) }, "the email may still arrive")
        // When the substitute fails too, nothing is left to try for pr1; the round goes on for the others.
        let email = try #require(run.effects.compactMap { entry -> QueuedNotification? in
            if case .notify(let n) = entry.effect, n.recipient == .person("pr1"), n.channel == .email { n } else { nil }
        }.first)
        let both = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: failedAt, event: .deliveryFailed(notificationID: page.1.id, recipient: page.1.recipient,
                                                                   channel: page.1.channel, reason: "call failed", permanent: true)),
            ScriptedEvent(offset: failedAt + 30, event: .deliveryFailed(notificationID: email.id, recipient: email.recipient,
                                                                        channel: email.channel, reason: "mailbox unknown", permanent: true)),
        ])
        #expect(both.lines("page").filter { $0.hasPrefix(formatOffset(failedAt + 30)) }.isEmpty)
        #expect(both.lines("channel_substituted").count == run.lines("channel_substituted").count)
    }

    @Test("a failure after acknowledgement tries no other contact point; deliveries and attempts are audited")
    func noSubstituteAfterAcknowledgement() throws {
        let first = Fixture.simulate(at: schoolHours)
        let page = try #require(first.effects.compactMap { entry -> QueuedNotification? in
            if case .notify(let n) = entry.effect, entry.offset == 0 { n } else { nil }
        }.first)
        let run = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: 10, event: .delivered(notificationID: page.id, reference: "SM123")),
            ScriptedEvent(offset: 20, event: .deliveryFailed(notificationID: page.id, recipient: page.recipient, channel: page.channel,
                                                             reason: "server_error: 503", permanent: false)),
            ScriptedEvent(offset: 60, event: .acknowledged(by: .person("sw2"), path: .link, step: 0)),
            ScriptedEvent(offset: 90, event: .deliveryFailed(notificationID: page.id, recipient: page.recipient, channel: page.channel,
                                                             reason: "bad_address", permanent: true)),
        ])
        #expect(run.lines("channel_substituted").isEmpty)
        #expect(run.lines("page").allSatisfy { $0.hasPrefix("+0s") })
        let delivered = try #require(run.lines.first { $0.kind == "delivered" })
        #expect(delivered.detail == "receipt SM123")
        #expect(run.lines.filter { $0.kind == "delivery_failed" }.map { $0.detail ?? "" } == ["attempt failed: server_error: 503", "gave up: bad_address"])
    }

    @Test("escalating by hand after acknowledging releases ownership and pages the next step")
    func escalateByHandWhenAcknowledged() {
        let run = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: 60, event: .acknowledged(by: .person("sw2"), path: .api, step: nil)),
            ScriptedEvent(offset: 600, event: .escalatedByHand(by: .person("sw2"), reason: "need the counselor")),
        ])
        #expect(run.lines("page").filter { $0.hasPrefix("+10m") } == ["+10m page step 2 c1 sms"])
        #expect(run.state.owner == nil)
        #expect(run.state.phase == .unowned, "nobody acknowledged the later steps")
    }

    @Test("reassigning hands ownership to another person and tells them")
    func reassign() {
        let run = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: 60, event: .acknowledged(by: .person("sw2"), path: .api, step: nil)),
            ScriptedEvent(offset: 120, event: .reassigned(to: "c1", by: .person("sw2"))),
        ])
        #expect(run.state.owner == .person("c1"))
        #expect(run.lines("assigned") == ["+2m assigned c1 sms"])
        #expect(run.lines("reassigned").count == 1)
    }

    @Test("reopening pages step 1 again with new notification ids and restarts missed deadlines")
    func reopen() {
        let run = Fixture.simulate(at: schoolHours, [
            ScriptedEvent(offset: 60, event: .resolved(by: .person("sw2"), note: nil)),
            ScriptedEvent(offset: 120, event: .reopened(by: .person("sw2"), reason: "student disclosed more")),
            ScriptedEvent(offset: 180, event: .acknowledged(by: .person("sw2"), path: .api, step: nil)),
        ])
        let ids = run.effects.compactMap { if case .notify(let n) = $0.effect { n.id } else { nil } }
        #expect(Set(ids).count == ids.count, "every notification id is unique")
        #expect(run.lines("page").filter { $0.hasPrefix("+2m") } == ["+2m page step 1 sw2 sms", "+2m page step 1 sw2 push"])
        #expect(run.state.tasks.first { $0.id == "guardian" }?.overdue == true, "the guardian deadline was rescheduled and passed")
    }

    @Test("a merged report raises the severity but pages nobody again")
    func mergedReport() {
        let report = Report(type: "suicide-risk", severity: .imminent, site: "north", reporter: .person("c1"),
                            summary: "Second teacher's account", subject: "S-1", receivedAt: Fixture.instant(schoolHours).addingTimeInterval(60))
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 60, event: .reportMerged(report))])
        #expect(run.state.incident.severity == .imminent)
        #expect(run.state.reportCount == 2)
        #expect(!run.lines.contains { $0.offsetSeconds == 60 && $0.kind == "page" })
        #expect(run.lines("severity_raised").count == 1)
    }

    @Test("events that make no sense in the incident's state are refused and change nothing", arguments: [
        (IncidentEvent.reopened(by: .system, reason: nil), EngineRejection.notResolved),
        (.taskCompleted("no-such-task", by: .system), .unknownTask("no-such-task")),
        (.reassigned(to: "nobody", by: .system), .unknownPerson("nobody")),
        (.reported(Fixture.incident(at: "2026-12-02T10:00:00-06:00")), .alreadyReported),
    ])
    func rejections(event: IncidentEvent, expected: EngineRejection) throws {
        let engine = Fixture.engine
        let (state, _) = try engine.step(nil, .reported(Fixture.incident(at: schoolHours)), now: Fixture.instant(schoolHours))
        var changed = state
        var effects: [Effect] = []
        #expect(throws: expected) { try engine.apply(event, to: &changed, now: Fixture.instant(schoolHours), effects: &effects) }
        #expect(changed == state)
        #expect(effects.isEmpty)
    }

    @Test("acknowledging twice: the same person changes nothing, another person is refused")
    func doubleAcknowledgement() throws {
        let engine = Fixture.engine
        let now = Fixture.instant(schoolHours)
        var (state, _) = try engine.step(nil, .reported(Fixture.incident(at: schoolHours)), now: now)
        (state, _) = try engine.step(state, .acknowledged(by: .person("sw2"), path: .link, step: 0), now: now)
        let (again, effects) = try engine.step(state, .acknowledged(by: .person("sw2"), path: .sms, step: 0), now: now)
        #expect(again == state)
        #expect(effects.isEmpty)
        #expect(throws: EngineRejection.alreadyAcknowledged(by: .person("sw2"))) {
            try engine.step(state, .acknowledged(by: .person("c1"), path: .api, step: nil), now: now)
        }
        (state, _) = try engine.step(state, .resolved(by: .person("sw2"), note: "safe with family"), now: now)
        #expect(throws: EngineRejection.resolved) {
            try engine.step(state, .acknowledged(by: .person("c1"), path: .api, step: nil), now: now)
        }
    }

    @Test("resolving with an outcome: one of the playbook's, and a false alarm only with a reason; the entry names it")
    func resolutionOutcomes() throws {
        let engine = Fixture.engine
        let now = Fixture.instant(schoolHours)
        let (state, _) = try engine.step(nil, .reported(Fixture.incident(at: schoolHours)), now: now)
        #expect(throws: EngineRejection.unknownOutcome("sorted", allowed: ResolutionOutcome.defaults.map(\.id))) {
            try engine.step(state, .resolved(by: .person("sw2"), note: nil, outcome: "sorted"), now: now)
        }
        for blank in [nil, "", "  \n"] {
            #expect(throws: EngineRejection.outcomeNeedsReason("false-alarm")) {
                try engine.step(state, .resolved(by: .person("sw2"), note: blank, outcome: "false-alarm"), now: now)
            }
        }
        let (resolved, effects) = try engine.step(state, .resolved(by: .person("sw2"), note: "the note was a song lyric", outcome: "false-alarm"), now: now)
        #expect(resolved.phase == .resolved)
        let entry = effects.compactMap { effect -> AuditRecord? in if case .audit(let record) = effect { record } else { nil } }.last
        #expect(entry?.action == .resolved)
        #expect(entry?.target == "false-alarm")
        #expect(entry?.detail == "outcome: False alarm")
        #expect(entry?.sensitive == "the note was a song lyric", "the reason is sealed like any note")
    }

    @Test("a purge takes an incident closed before its date only: one reopened and closed again since keeps its text")
    func purgeRechecksTheClosingTime() throws {
        let engine = Fixture.engine
        let reported = Fixture.instant(schoolHours)
        var (state, _) = try engine.step(nil, .reported(Fixture.incident(at: schoolHours)), now: reported)
        (state, _) = try engine.step(state, .resolved(by: .person("sw2"), note: nil), now: reported.addingTimeInterval(3600))
        let cutOff = reported.addingTimeInterval(86_400)
        // Chosen for the purge, then reopened and closed again after the cut-off, before the purge commits.
        var reopened = state
        (reopened, _) = try engine.step(reopened, .reopened(by: .person("sw2"), reason: nil), now: cutOff.addingTimeInterval(60))
        (reopened, _) = try engine.step(reopened, .resolved(by: .person("sw2"), note: nil), now: cutOff.addingTimeInterval(120))
        #expect(throws: EngineRejection.closedTooRecently(cutOff)) {
            try engine.step(reopened, .purged(policy: "7y", closedBefore: cutOff), now: cutOff.addingTimeInterval(180))
        }
        let (purged, _) = try engine.step(state, .purged(policy: "7y", closedBefore: cutOff), now: cutOff.addingTimeInterval(180))
        #expect(purged.nextAuditSequence == state.nextAuditSequence + 1)
    }

    @Test("a timer that was cancelled but delivered anyway is ignored")
    func staleTimer() throws {
        let engine = Fixture.engine
        let now = Fixture.instant(schoolHours)
        var (state, _) = try engine.step(nil, .reported(Fixture.incident(at: schoolHours)), now: now)
        (state, _) = try engine.step(state, .acknowledged(by: .person("sw2"), path: .link, step: 0), now: now)
        let (after, effects) = try engine.step(state, .timerFired(.ackDeadline(step: 0, round: 0)), now: now.addingTimeInterval(300))
        #expect(after == state)
        #expect(effects.isEmpty)
    }

    @Test("audit entries are numbered from 1 without gaps, and the student's words stay in the sensitive field")
    func auditSequence() {
        let run = Fixture.simulate(at: schoolHours, [ScriptedEvent(offset: 60, event: .noteAdded(by: .person("sw2"), text: "Spoke with S-1"))])
        let records = run.effects.compactMap { if case .audit(let r) = $0.effect { r } else { nil } }
        #expect(records.map(\.sequence) == Array(1...records.count))
        #expect(records.first?.sensitive == "Student said they have a plan")
        #expect(records.allSatisfy { !($0.detail ?? "").contains("plan") && !($0.detail ?? "").contains("Spoke") })
        #expect(records.contains { $0.action == .noteAdded && $0.sensitive == "Spoke with S-1" })
    }

    @Test("the same inputs give the same effects")
    func deterministic() {
        let script = [ScriptedEvent(offset: 400, event: .acknowledged(by: .person("c1"), path: .sms, step: nil))]
        let a = Fixture.simulate(at: schoolHours, script), b = Fixture.simulate(at: schoolHours, script)
        #expect(a.effects.map(\.effect) == b.effects.map(\.effect))
        #expect(a.state == b.state)
    }
}
