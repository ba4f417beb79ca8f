// The escalation engine: a pure function of (state, event, now, playbook, directory) that returns
// the new state and the effects to carry out. No I/O and no clock: the service, the simulator and
// the tests all run this same code, the last two on a virtual clock.
import Foundation

public final class EscalationEngine: Sendable {
    public let playbook: Playbook
    public let directory: Directory
    /// Each variant's steps and texts, resolved once and indexed by variant (no hashing per event).
    let stepsByVariant: [[EscalationStep]]
    let ackWindowText: [[String]]
    let noAckText: [[String]]
    let playbookText: String
    /// The deadline text of each playbook task, in the playbook's task order.
    let taskDeadlineText: [String]

    public init(playbook: Playbook, directory: Directory) {
        self.playbook = playbook
        self.directory = directory
        stepsByVariant = PlanVariant.allCases.map { playbook.steps(of: $0) }
        ackWindowText = PlanVariant.allCases.map {
            playbook.steps(of: $0).map { $0.untilSchoolOpens ? "acknowledge before school opens" : "acknowledge within \($0.ackWithin)" }
        }
        noAckText = PlanVariant.allCases.map {
            playbook.steps(of: $0).map { $0.untilSchoolOpens ? "school opened with no acknowledgement" : "no acknowledgement within \($0.ackWithin)" }
        }
        playbookText = "playbook \(playbook.id.rawValue) \(playbook.version)"
        taskDeadlineText = playbook.tasks.map { task in
            "due \(task.due) after the \(task.after.rawValue)" + (task.follows.map { "; a later stage of \($0)" } ?? "")
                + (task.owner == .reporter ? "; owed by the reporter personally" : "")
        }
    }

    /// The engine's signature as a function: `state` is nil before the incident is reported.
    public func step(_ state: IncidentState?, _ event: IncidentEvent, now: Date) throws(EngineRejection)
        -> (IncidentState, [Effect]) {
        var effects: [Effect] = []
        if case .reported(let incident) = event {
            guard state == nil else { throw .alreadyReported }
            return (start(incident, now: now, effects: &effects), effects)
        }
        guard var state else { throw .notReported }
        try apply(event, to: &state, now: now, effects: &effects)
        return (state, effects)
    }

    /// Handles the report that opens an incident: chooses the variant, schedules the tasks, pages step 1.
    public func start(_ incident: Incident, now: Date, effects: inout [Effect]) -> IncidentState {
        let schoolTime = directory.schoolTime(at: incident.site, instant: now)
        let variant = playbook.variant(for: schoolTime)
        var run = Run(engine: self, state: IncidentState(
            incident: incident, playbook: playbook.id, playbookVersion: playbook.version,
            variant: variant, phase: .escalating(step: 0, round: 0), owner: nil,
            acknowledgedAt: nil, acknowledgedStep: nil, tasks: [], timers: [], currentPages: [], reportCount: 1,
            cycle: 0, nextAuditSequence: 1, resolvedAt: nil), now: now, effects: [])
        swap(&effects, &run.effects)  // append to the caller's buffer, no copy
        // A drill says so in its first entry, which the record and the compliance report read.
        run.audit(incident.reporter, .reported,
                  detail: (incident.drill ? "DRILL: " : "") + incident.type.rawValue + " " + incident.severity.rawValue + " at " + incident.site.rawValue + "; " + self.playbookText
                      + "; " + schoolTime.rawValue + ", " + variant.rawValue + " steps",
                  sensitive: incident.summary)
        run.state.tasks.reserveCapacity(playbook.tasks.count)
        run.state.timers.reserveCapacity(playbook.tasks.count + 1)
        for task in playbook.tasks where incident.flags.isEmpty || task.unless.isDisjoint(with: incident.flags) {
            run.state.tasks.append(TaskState(id: task.id, dueAt: nil, completedAt: nil, completedBy: nil, overdue: false))
        }
        // The report's answers are decisions too: who set each flag, and which task it left out, are on the record.
        // The log names flags by their neutral codes; the flags themselves are sealed with the report.
        for flag in incident.flags.sorted(by: { playbook.code(of: $0) < playbook.code(of: $1) }) {
            let code = playbook.code(of: flag)
            run.audit(incident.reporter, .flagSet, target: code, detail: "flag \(code) set in the report")
        }
        for task in playbook.tasks where !task.unless.isDisjoint(with: incident.flags) {
            run.audit(incident.reporter, .taskWithdrawn, task: task.id,
                      detail: "left out: the report set \(run.codes(task.unless.intersection(incident.flags)))")
        }
        run.scheduleTasks(anchor: .report, at: incident.reportedAt)
        run.page(step: 0, round: 0)
        swap(&effects, &run.effects)
        var state = IncidentState.placeholder
        swap(&state, &run.state)
        return state
    }

    /// Applies one event to an open incident. On a rejection nothing is changed and no effect is added.
    public func apply(_ event: IncidentEvent, to state: inout IncidentState, now: Date,
                      effects: inout [Effect]) throws(EngineRejection) {
        // The state and effects move into the run and back (swap, no copy). Every rejection is
        // raised before anything is changed, so a refused event leaves both as they were.
        var run = Run(engine: self, state: .placeholder, now: now, effects: [])
        swap(&state, &run.state)
        swap(&effects, &run.effects)
        defer {
            swap(&state, &run.state)
            swap(&effects, &run.effects)
        }
        try run.handle(event)
    }
}

/// One event's worth of work: the state being changed and the effects collected so far.
private struct Run {
    let engine: EscalationEngine
    var state: IncidentState
    let now: Date
    var effects: [Effect]

    var playbook: Playbook { engine.playbook }
    var steps: [EscalationStep] { engine.stepsByVariant[state.variant.index] }

    mutating func handle(_ event: IncidentEvent) throws(EngineRejection) {
        switch event {
        case .reported:
            throw .alreadyReported
        case .reportMerged(let report):
            guard state.isOpen else { throw .resolved }
            merge(report)
        case .flagConfirmed(let flag, let actor):
            guard state.isOpen else { throw .resolved }
            guard playbook.flags[flag] != nil else { throw .unknownFlag(flag) }
            guard !state.incident.flags.contains(flag) else { return }
            state.incident.flags.insert(flag)
            audit(actor, .flagConfirmed, target: playbook.code(of: flag), detail: "flag \(playbook.code(of: flag)) confirmed")
            withdrawTasks(excludedBy: [flag], by: actor, because: "a responder confirmed")
        case .flagDecided(let flag, let set, let actor, let reason):
            guard state.isOpen else { throw .resolved }
            guard playbook.flags[flag] != nil else { throw .unknownFlag(flag) }
            if set {
                guard !state.incident.flags.contains(flag) else { return }
                state.incident.flags.insert(flag)
                audit(actor, .flagSet, target: playbook.code(of: flag), detail: "flag \(playbook.code(of: flag)) set by a responder", sensitive: reason)
                withdrawTasks(excludedBy: [flag], by: actor, because: "a responder set")
            } else {
                guard state.incident.flags.contains(flag) else { throw .flagNotSet(flag) }
                state.incident.flags.remove(flag)
                audit(actor, .flagCleared, target: playbook.code(of: flag), detail: "flag \(playbook.code(of: flag)) cleared by a responder",
                      sensitive: reason)
                restoreTasks(clearedFlag: flag, by: actor)
            }
        case .disclosureRecorded(let actor, let recipient, let what, let basis):
            audit(actor, .disclosed, target: recipient, detail: "recorded by \(actor): what and why are sealed",
                  sensitive: "What: \(what)\nBasis: \(basis)")
        case .joinedFrom(let source, let reports, let flags, let actor):
            guard state.isOpen else { throw .resolved }
            audit(actor, .joined, target: "incident:\(source.number)",
                  detail: "incident #\(source.number) joined into this one with its \(reports.count) report(s)")
            for report in reports { merge(report) }
            // What held there holds here: the joining responder vouches for it.
            for flag in flags.subtracting(state.incident.flags).sorted(by: { $0.rawValue < $1.rawValue }) where playbook.flags[flag] != nil {
                state.incident.flags.insert(flag)
                audit(actor, .flagConfirmed, target: playbook.code(of: flag),
                      detail: "flag \(playbook.code(of: flag)) held in incident #\(source.number), joined into this one")
                withdrawTasks(excludedBy: [flag], by: actor, because: "a responder confirmed")
            }
        case .joinedInto(let target, let actor):
            guard state.isOpen else { throw .resolved }
            close()
            audit(actor, .joined, target: "incident:\(target.number)",
                  detail: "joined into incident #\(target.number): its reports and escalation carry on there")
        case .timerFired(let key):
            timerFired(key)
        case .acknowledged(let actor, let path, let step):
            try acknowledge(by: actor, path: path, step: step)
        case .declined(let actor, let path):
            try decline(by: actor, path: path)
        case .replyReceived(let actor, let path, let text):
            audit(actor, .replyReceived, detail: "via \(path.rawValue); not understood, the accepted replies were sent back", sensitive: text)
        case .escalatedByHand(let actor, let reason):
            guard state.isOpen else { throw .resolved }
            escalateByHand(actor, reason: reason)
        case .reassigned(let person, let actor):
            guard state.isOpen else { throw .resolved }
            guard engine.directory.people[person] != nil else { throw .unknownPerson(person) }
            reassign(to: person, by: actor)
        case .taskCompleted(let id, let actor):
            guard let index = state.tasks.firstIndex(where: { $0.id == id }) else { throw .unknownTask(id) }
            guard state.tasks[index].completedAt == nil else { throw .taskAlreadyCompleted(id) }
            if let spec = playbook.tasks.first(where: { $0.id == id }) {
                // Owed personally: only the reporter (when the reporter is a person who can act here).
                if spec.owner == .reporter, case .person = state.incident.reporter, actor != state.incident.reporter {
                    throw .taskOwedByReporter(id)
                }
                if let before = spec.follows, state.tasks.contains(where: { $0.id == before && $0.completedAt == nil }) {
                    throw .taskStageOpen(id, before: before)
                }
            }
            state.tasks[index].completedAt = now
            state.tasks[index].completedBy = actor
            cancelDeadline(of: id)
            let late = state.tasks[index].overdue ? "after its deadline" : "on time"
            audit(actor, .taskCompleted, task: id, detail: late)
        case .noteAdded(let actor, let text):
            audit(actor, .noteAdded, sensitive: text)
        case .resolved(let actor, let note, let outcome):
            guard state.isOpen else { throw .resolved }
            var detail: String?, chosenID: String?
            if let outcome {
                guard let chosen = engine.playbook.outcomes.first(where: { $0.id == outcome }) else {
                    throw .unknownOutcome(outcome, allowed: engine.playbook.outcomes.map(\.id))
                }
                if chosen.needsReason, (note ?? "").allSatisfy(\.isWhitespace) { throw .outcomeNeedsReason(outcome) }
                detail = "outcome: \(chosen.title)"
                chosenID = chosen.id
            }
            close()
            audit(actor, .resolved, target: chosenID, detail: detail, sensitive: note)
        case .reopened(let actor, let reason):
            guard state.phase == .resolved else { throw .notResolved }
            reopen(by: actor, reason: reason)
        case .sent(let id, let reference):
            audit(.system, .sent, recipient: id.recipient, channel: id.channel, notification: id,
                  detail: "accepted by the provider" + (reference.map { " as " + $0 } ?? "") + "; its delivery report will say whether it arrived")
        case .delivered(let id, let reference):
            audit(.system, .delivered, recipient: id.recipient, channel: id.channel, notification: id,
                  detail: reference.map { "receipt " + $0 })
        case .demonstrated(let id):
            audit(.system, .demonstrated, recipient: id.recipient, channel: id.channel, notification: id,
                  detail: "written to the demonstration inbox: \(id.channel.rawValue) has no provider, so nobody was reached")
        case .deliveryFailed(let id, let recipient, let channel, let reason, let permanent):
            deliveryFailed(id: id, recipient: recipient, channel: channel, reason: reason, permanent: permanent)
        case .refused(let actor, let action, let reason):
            audit(actor, .refused, detail: "\(action) refused: \(reason)")
        case .accessed(let actor, let origin):
            audit(actor, .accessed, detail: origin.map { "from " + $0 })
        case .exported(let actor, let format, let origin):
            audit(actor, .accessed, detail: "exported as \(format)" + (origin.map { " from " + $0 } ?? ""))
        case .purged(let policy, let closedBefore):
            guard state.phase == .resolved else { throw .notResolved }
            // Checked here, where the commit holds the incident: one reopened and closed again since the
            // purge chose it keeps its text until its own time comes.
            guard let resolvedAt = state.resolvedAt, resolvedAt < closedBefore else { throw .closedTooRecently(closedBefore) }
            let date = LocalDateTime(seconds: Int64(closedBefore.timeIntervalSince1970.rounded(.down))).date
            // The flags go with the key that sealed them: no later write can store them in clear.
            state.incident.flags = []
            audit(.system, .purged, detail: "student text purged under the retention policy '\(policy)' (closed before \(date))")
        }
    }

    /// Adds a report to the incident: counted, audited with its words sealed, raising the severity and
    /// adding flags (which withdraw the tasks they rule out).
    mutating func merge(_ report: Report) {
        state.reportCount += 1
        audit(report.reporter, .reportMerged, detail: "report \(state.reportCount): " + report.type.rawValue + " " + report.severity.rawValue,
              sensitive: report.summary)
        if report.severity > state.incident.severity {
            audit(report.reporter, .severityRaised, detail: state.incident.severity.rawValue + " to " + report.severity.rawValue)
            state.incident.severity = report.severity
        }
        let newFlags = report.flags.subtracting(state.incident.flags)
        guard !newFlags.isEmpty else { return }
        if report.reporter == state.incident.reporter {
            // The first reporter adding to what they said: taken as their first report's flags were.
            state.incident.flags.formUnion(newFlags)
            withdrawTasks(excludedBy: newFlags, by: report.reporter, because: "a merged report set")
        } else {
            // Someone else's word about another person's incident withdraws nothing by itself: a
            // responder confirms it first (`flagConfirmed`).
            for flag in newFlags.sorted(by: { $0.rawValue < $1.rawValue }) {
                audit(report.reporter, .flagProposed, target: engine.playbook.code(of: flag),
                      detail: "report \(state.reportCount) proposes flag \(engine.playbook.code(of: flag)); a responder must confirm it before any task is withdrawn")
            }
        }
    }

    /// Closes the incident: every timer is cancelled and no page is waited for.
    mutating func close() {
        // A task the reporter owes personally is not discharged by someone else closing the incident
        // (or joining it into another): its deadline and reminders stay, and the reporter can still complete it.
        let owed = Set(playbook.tasks.filter { $0.owner == .reporter }.map(\.id))
            .intersection(state.tasks.filter { $0.completedAt == nil }.map(\.id))
        let kept = { (key: TimerKey) -> Bool in
            switch key {
            case .taskDue(let id), .taskReminder(let id, _): owed.contains(id)
            case .ackDeadline, .fallbackRepeat: false
            }
        }
        for timer in state.timers where !kept(timer.key) { effects.append(.cancelTimer(timer.key)) }
        state.timers.removeAll { !kept($0.key) }
        state.phase = .resolved
        state.resolvedAt = now
        state.currentPages.removeAll()
    }

    // MARK: Escalation

    /// Pages a step's targets; a step whose targets all name nobody is skipped and the next starts at once.
    mutating func page(step first: Int, round firstRound: Int) {
        var index = first, round = firstRound
        while index < steps.count {
            let step = steps[index]
            let recipients = resolve(step.targets, step: index, round: round)
            state.phase = .escalating(step: index, round: round)
            state.currentPages.removeAll(keepingCapacity: true)
            if !recipients.isEmpty {
                audit(.system, round == 0 ? .stepStarted : .stepRepeated, step: index, round: round,
                      detail: engine.ackWindowText[state.variant.index][index])
                for recipient in recipients {
                    send(to: recipient, channels: step.channels, kind: .page, step: index, round: round, disclosureBasis: step.disclosureBasis)
                }
            }
            if !state.currentPages.isEmpty {
                schedule(.ackDeadline(step: index, round: round), at: ackDeadline(of: step))
                return
            }
            audit(.system, .stepSkipped, step: index, round: round,
                  detail: recipients.isEmpty ? "every target named nobody" : "no one it named can be reached")
            index += 1
            round = 0  // the next step starts with its first round, whatever round this one was in
            if index < steps.count {
                audit(.system, .escalated, step: index, detail: "step \(index) reached nobody")
            }
        }
        runFallback()
    }

    /// Notifies one recipient over each of the channels they have; with none of them, over their first contact point.
    mutating func send(to recipient: Recipient, channels: [ChannelKind], kind: NotificationKind,
                       step: Int?, round: Int?, task: TaskID? = nil, disclosureBasis: String? = nil) {
        let contacts = engine.directory.contacts(of: recipient)
        var sent = 0
        for channel in channels {
            guard let contact = contacts.first(where: { $0.channel == channel }) else { continue }
            emit(contact, to: recipient, kind: kind, step: step, round: round, task: task, disclosureBasis: disclosureBasis)
            sent += 1
        }
        guard sent == 0 else { return }
        if let first = contacts.first {
            audit(.system, .channelSubstituted, step: step, round: round, recipient: recipient, channel: first.channel, task: task,
                  detail: "no \(channels.map(\.rawValue).joined(separator: " or ")) contact point; using " + first.channel.rawValue)
            emit(first, to: recipient, kind: kind, step: step, round: round, task: task, disclosureBasis: disclosureBasis)
        } else {
            audit(.system, .targetUnresolved, step: step, round: round, recipient: recipient, task: task,
                  detail: "\(recipient) has no contact points")
        }
    }

    private mutating func emit(_ contact: ContactPoint, to recipient: Recipient, kind: NotificationKind,
                               step: Int?, round: Int?, task: TaskID?, disclosureBasis: String? = nil) {
        let id = notificationID(kind: kind, recipient: recipient, channel: contact.channel, step: step, round: round, task: task)
        effects.append(.notify(QueuedNotification(
            id: id, incidentNumber: state.incident.number, type: state.incident.type,
            severity: state.incident.severity, site: state.incident.site, address: contact.address, drill: state.incident.drill)))
        if kind == .page { state.currentPages.append(OutstandingPage(notificationID: id, failed: false)) }
        audit(.system, kind == .fallback ? .fallbackPaged : .paged, step: step, round: round, recipient: recipient,
              channel: contact.channel, task: task, notification: id, detail: kind == .page ? nil : kind.rawValue)
        // A page to a partner agency is a disclosure outside the school: recorded with it, in the same commit.
        if case .partner = recipient {
            audit(.system, .disclosed, step: step, round: round, recipient: recipient, channel: contact.channel, task: task, notification: id,
                  detail: "incident number, category, site, severity and a link, by \(contact.channel.rawValue); basis: "
                      + (disclosureBasis ?? "none recorded in the playbook"))
        }
    }

    /// Everyone the targets name now, each once, in order; a target that names nobody is audited with why.
    mutating func resolve(_ targets: [Target], step: Int? = nil, round: Int? = nil, task: TaskID? = nil,
                          context: String = "") -> [Recipient] {
        var recipients: [Recipient] = []
        recipients.reserveCapacity(targets.count)
        for target in targets {
            switch engine.directory.resolve(target, site: state.incident.site, reporter: state.incident.reporter, at: now) {
            case .one(let recipient):
                if !recipients.contains(recipient) { recipients.append(recipient) }
            case .recipients(let found):
                for recipient in found where !recipients.contains(recipient) { recipients.append(recipient) }
            case .nobody(let reason):
                audit(.system, .targetUnresolved, step: step, round: round, task: task, target: target.description, detail: context + reason)
            }
        }
        return recipients
    }

    func notificationID(kind: NotificationKind, recipient: Recipient, channel: ChannelKind,
                        step: Int?, round: Int?, task: TaskID?) -> NotificationID {
        let qualifier: NotificationID.Qualifier = switch kind {
        case .page: .step(step ?? 0, round: round ?? 0)
        case .fallback: (round ?? 0) > 0 ? .round(round ?? 0) : .none
        case .taskOverdue: task.map { .task($0) } ?? .none
        case .taskReminder: task.map { .reminder($0, round ?? 0) } ?? .none
        case .assigned: .sequence(state.nextAuditSequence)
        case .test: .none  // never the engine's: a test page belongs to no incident (Runtime.sendTestPage)
        }
        return NotificationID(incident: state.incident.id, cycle: state.cycle, kind: kind, qualifier: qualifier,
                              recipient: recipient, channel: channel)
    }

    mutating func timerFired(_ key: TimerKey) {
        // A timer that was cancelled (or already fired) may still be delivered by the runtime: ignore it.
        guard let index = state.timers.firstIndex(where: { $0.key == key }) else { return }
        state.timers.remove(at: index)
        switch key {
        case .ackDeadline(let stepIndex, let round):
            guard state.phase == .escalating(step: stepIndex, round: round), stepIndex < steps.count else { return }
            let step = steps[stepIndex]
            if round < step.repeats {
                page(step: stepIndex, round: round + 1)
            } else {
                advance(from: stepIndex, reason: engine.noAckText[state.variant.index][stepIndex])
            }
        case .taskDue(let id):
            taskDue(id)
        case .taskReminder(let id, let index):
            remind(id, index: index)
        case .fallbackRepeat(let round):
            guard state.phase == .unowned else { return }
            runFallback(round: round)
        }
    }

    /// When a step's acknowledgement window ends. A step that waits for school ends when school hours
    /// next begin at the site (at once when they already have: the morning has come).
    func ackDeadline(of step: EscalationStep) -> Date {
        guard step.untilSchoolOpens else { return now.adding(step.ackWithin) }
        if engine.directory.schoolTime(at: state.incident.site, instant: now) == .schoolHours { return now }
        return engine.directory.nextSchoolOpening(at: state.incident.site, after: now) ?? now.adding(step.ackWithin)
    }

    mutating func advance(from stepIndex: Int, reason: String) {
        if stepIndex + 1 < steps.count {
            audit(.system, .escalated, step: stepIndex + 1, detail: reason)
            page(step: stepIndex + 1, round: 0)
        } else {
            audit(.system, .escalated, detail: "\(reason) at the last step; paging the fallback")
            runFallback()
        }
    }

    /// Pages the fallback (round 0 when the last step expires) and pages it again every `repeat_every`
    /// for as long as nobody takes the incident: unowned is never quiet.
    mutating func runFallback(round: Int = 0) {
        let fallback = engine.playbook.fallback
        state.currentPages.removeAll()
        if round > 0 {
            audit(.system, .unowned, round: round,
                  detail: "still unowned \(fallback.repeatEvery) after the last fallback page; paging the fallback again (round \(round + 1))")
        }
        let repeated = round > 0 ? round : nil
        for recipient in resolve(fallback.targets, round: repeated, context: "fallback: ") {
            send(to: recipient, channels: fallback.channels, kind: .fallback, step: nil, round: repeated, disclosureBasis: fallback.disclosureBasis)
        }
        if round == 0 {
            state.phase = .unowned
            audit(.system, .unowned, detail: "every step expired without an acknowledgement; the fallback is paged again every \(fallback.repeatEvery) until someone acknowledges")
        }
        schedule(.fallbackRepeat(round: round + 1), at: now.adding(fallback.repeatEvery))
    }

    /// The incident leaves `unowned` (taken, escalated by hand): its fallback is paged no more.
    mutating func stopFallbackRepeats() {
        for timer in state.timers { if case .fallbackRepeat = timer.key { cancel(timer.key) } }
    }

    mutating func acknowledge(by actor: Actor, path: AckPath, step: Int?) throws(EngineRejection) {
        switch state.phase {
        case .resolved:
            throw .resolved
        case .acknowledged:
            if state.owner == actor { return }  // a repeated tap changes nothing
            throw .alreadyAcknowledged(by: state.owner ?? .system)
        case .escalating(let current, _):
            let late = step.map { $0 < current } ?? false
            takeOwnership(actor, step: current,
                          detail: "via \(path.rawValue)" + (late ? "; page of step \((step ?? 0) + 1) acknowledged during step \(current + 1)" : ""))
        case .unowned:
            takeOwnership(actor, step: step ?? max(steps.count - 1, 0), detail: "via \(path.rawValue); after the fallback (late)")
        }
    }

    mutating func takeOwnership(_ actor: Actor, step: Int, detail: String, action: AuditAction = .acknowledged) {
        if case .escalating(let s, let r) = state.phase { cancel(.ackDeadline(step: s, round: r)) }
        if state.phase == .unowned { stopFallbackRepeats() }
        state.phase = .acknowledged
        state.owner = actor
        state.acknowledgedStep = step
        state.currentPages.removeAll()
        let firstAcknowledgement = state.acknowledgedAt == nil
        if firstAcknowledgement { state.acknowledgedAt = now }
        if action == .acknowledged { audit(actor, .acknowledged, step: step, detail: detail) }
        if firstAcknowledgement { scheduleTasks(anchor: .acknowledgement, at: now) }
    }

    mutating func escalateByHand(_ actor: Actor, reason: String?) {
        // The reason is free text and may describe the student: it is sealed, like notes.
        let detail = "escalated by hand"
        switch state.phase {
        case .escalating(let stepIndex, let round):
            cancel(.ackDeadline(step: stepIndex, round: round))
            audit(actor, .escalatedByHand, step: stepIndex, detail: detail, sensitive: reason)
            advance(from: stepIndex, reason: "escalated by hand")
        case .acknowledged:
            // The owner asks for more help: ownership is released and the next step is paged.
            let from = state.acknowledgedStep ?? 0
            audit(actor, .escalatedByHand, step: from, detail: detail, sensitive: reason)
            state.owner = nil
            state.cycle += 1
            advance(from: from, reason: "escalated by hand")
        case .unowned:
            audit(actor, .escalatedByHand, detail: detail + "; starting again from step 1", sensitive: reason)
            stopFallbackRepeats()
            state.cycle += 1
            page(step: 0, round: 0)
        case .resolved:
            break
        }
    }

    mutating func reassign(to person: PersonID, by actor: Actor) {
        let previous = state.owner
        takeOwnership(.person(person), step: state.acknowledgedStep ?? currentStepIndex, detail: "", action: .reassigned)
        audit(actor, .reassigned, recipient: .person(person),
              detail: previous.map { "from \($0) to person:\(person)" } ?? "to person:\(person)")
        let channels = engine.directory.people[person]?.contacts.first.map { [$0.channel] } ?? []
        send(to: .person(person), channels: channels, kind: .assigned, step: nil, round: nil)
    }

    var currentStepIndex: Int {
        if case .escalating(let step, _) = state.phase { return step }
        return max(steps.count - 1, 0)
    }

    mutating func reopen(by actor: Actor, reason: String?) {
        state.cycle += 1
        state.owner = nil
        state.resolvedAt = nil
        let schoolTime = engine.directory.schoolTime(at: state.incident.site, instant: now)
        state.variant = playbook.variant(for: schoolTime)
        audit(actor, .reopened, detail: "\(schoolTime.rawValue), \(state.variant.rawValue) steps", sensitive: reason)
        for index in state.tasks.indices where state.tasks[index].completedAt == nil {
            guard let due = state.tasks[index].dueAt else { continue }
            if due > now {
                scheduleDeadline(of: state.tasks[index].id, at: due)
            } else if !state.tasks[index].overdue {
                taskDue(state.tasks[index].id)
            }
        }
        page(step: 0, round: 0)
    }

    mutating func deliveryFailed(id: NotificationID, recipient: Recipient, channel: ChannelKind, reason: String, permanent: Bool) {
        audit(.system, .deliveryFailed, recipient: recipient, channel: channel, notification: id,
              detail: (permanent ? "gave up: " : "attempt failed: ") + reason)
        guard permanent else { return }
        let page = state.currentPages.firstIndex(where: { $0.notificationID == id })
        if let page { state.currentPages[page].failed = true }
        // The person's next contact point is tried while the message still matters.
        if sendToNextContact(after: id) { return }
        // Escalation never waits on pages that can no longer arrive.
        guard page != nil else { return }
        advanceIfNobodyCanAnswer(declined: false)
    }

    /// Escalation never waits on a round nobody in it can answer: when every page of the current
    /// round has failed for good or its recipient has declined, the next step starts at once.
    /// `declined`: the last answer missing was a decline (it words the timeline).
    mutating func advanceIfNobodyCanAnswer(declined: Bool) {
        // A decline takes the decliner's pages out of the round, so an empty round means everyone declined.
        guard declined || !state.currentPages.isEmpty, state.currentPages.allSatisfy(\.failed),
              case .escalating(let stepIndex, let round) = state.phase else { return }
        cancel(.ackDeadline(step: stepIndex, round: round))
        audit(.system, .stepUnreachable, step: stepIndex, round: round,
              detail: declined ? "everyone paged in this round declined or could not be reached" : "every page of this round failed")
        advance(from: stepIndex, reason: declined ? "everyone paged in step \(stepIndex + 1) declined or could not be reached"
                                                  : "every page of step \(stepIndex + 1) failed")
    }

    /// A paged recipient says they cannot take the incident: their pages leave the round, so none of
    /// them counts as a chance of an answer and none that fails later is sent on to another of their
    /// contact points. Only a recipient paged in the current round is heard; anyone else's "no" is
    /// recorded and changes nothing.
    mutating func decline(by actor: Actor, path: AckPath) throws(EngineRejection) {
        switch state.phase {
        case .resolved:
            throw .resolved
        case .acknowledged:
            throw .alreadyAcknowledged(by: state.owner ?? .system)
        case .unowned:
            audit(actor, .declined, detail: "via \(path.rawValue); after the fallback")
        case .escalating(let stepIndex, let round):
            let pages = state.currentPages.indices.filter { state.currentPages[$0].notificationID.recipient.actor == actor }
            audit(actor, .declined, step: stepIndex, round: round,
                  detail: "via \(path.rawValue)" + (pages.isEmpty ? "; not paged in this round, so escalation goes on as before" : ""))
            guard !pages.isEmpty else { return }
            state.currentPages.removeAll { $0.notificationID.recipient.actor == actor }
            advanceIfNobodyCanAnswer(declined: true)
        }
    }

    /// After a notification failed for good, sends it again over the recipient's next contact point:
    /// for a page, the first in order of preference not yet used in this round; otherwise the first
    /// after the failed one. Only while it still matters (same cycle; a page's round still running;
    /// an overdue task still open). True when a substitute went out.
    mutating func sendToNextContact(after failed: NotificationID) -> Bool {
        guard state.isOpen, failed.cycle == state.cycle else { return false }
        let contacts = engine.directory.contacts(of: failed.recipient)
        let next: ContactPoint?
        var step: Int?, round: Int?, task: TaskID?
        switch (failed.kind, failed.qualifier) {
        case (.page, .step(let s, let r)):
            // A page no longer in the round (its recipient declined) is not sent on.
            guard state.phase == .escalating(step: s, round: r), state.currentPages.contains(where: { $0.notificationID == failed }) else { return false }
            let used = Set(state.currentPages.filter { $0.notificationID.recipient == failed.recipient }.map(\.notificationID.channel))
            next = contacts.first { !used.contains($0.channel) }
            (step, round) = (s, r)
        case (.taskOverdue, .task(let id)), (.taskReminder, .reminder(let id, _)):
            guard state.tasks.contains(where: { $0.id == id && $0.completedAt == nil }) else { return false }
            next = contacts.drop { $0.channel != failed.channel }.dropFirst().first { $0.channel != failed.channel }
            task = id
            if case .reminder(_, let index) = failed.qualifier { round = index }
        case (.fallback, let qualifier):
            guard state.phase == .unowned else { return false }
            next = contacts.drop { $0.channel != failed.channel }.dropFirst().first { $0.channel != failed.channel }
            if case .round(let n) = qualifier { round = n }
        case (.assigned, _):
            guard state.phase == .acknowledged else { return false }
            next = contacts.drop { $0.channel != failed.channel }.dropFirst().first { $0.channel != failed.channel }
        default:
            return false
        }
        guard let next else { return false }
        audit(.system, .channelSubstituted, step: step, round: round, recipient: failed.recipient, channel: next.channel, task: task,
              notification: failed, detail: "\(failed.channel.rawValue) failed for good; trying \(next.channel.rawValue)")
        emit(next, to: failed.recipient, kind: failed.kind, step: step, round: round, task: task)
        return true
    }

    // MARK: Tasks

    mutating func scheduleTasks(anchor: DeadlineAnchor, at anchorTime: Date) {
        let tasks = engine.playbook.tasks
        for index in state.tasks.indices where state.tasks[index].dueAt == nil {
            guard let spec = tasks.firstIndex(where: { $0.id == state.tasks[index].id }), tasks[spec].after == anchor else { continue }
            let due = anchorTime.adding(tasks[spec].due)
            state.tasks[index].dueAt = due
            scheduleDeadline(of: state.tasks[index].id, at: due)
            audit(.system, .taskScheduled, task: state.tasks[index].id, detail: engine.taskDeadlineText[spec])
        }
    }

    /// "flag F1, F3": how the log names a set of flags.
    func codes(_ flags: Set<IncidentFlag>) -> String {
        (flags.count == 1 ? "flag " : "flags ") + flags.map { engine.playbook.code(of: $0) }.sorted().joined(separator: ", ")
    }

    /// A later report can say what an earlier one did not ("a family member may be the source of
    /// harm"): open tasks the playbook leaves out under that flag are withdrawn, timers and all.
    mutating func withdrawTasks(excludedBy flags: Set<IncidentFlag>, by actor: Actor, because why: String) {
        for task in engine.playbook.tasks where !task.unless.isDisjoint(with: flags) {
            guard let index = state.tasks.firstIndex(where: { $0.id == task.id }), state.tasks[index].completedAt == nil else { continue }
            state.tasks.remove(at: index)
            cancelDeadline(of: task.id)
            audit(actor, .taskWithdrawn, task: task.id, detail: "\(why) \(codes(task.unless.intersection(flags)))")
        }
    }

    /// A cleared flag puts back the tasks it alone ruled out, with their deadlines from their anchors
    /// (a deadline already past makes the task overdue at once, and its overdue pages go out).
    mutating func restoreTasks(clearedFlag flag: IncidentFlag, by actor: Actor) {
        for task in engine.playbook.tasks where task.unless.contains(flag) && task.unless.isDisjoint(with: state.incident.flags) {
            guard !state.tasks.contains(where: { $0.id == task.id }) else { continue }
            state.tasks.append(TaskState(id: task.id, dueAt: nil, completedAt: nil, completedBy: nil, overdue: false))
            audit(actor, .taskRestored, task: task.id, detail: "restored: flag \(engine.playbook.code(of: flag)) cleared")
        }
        scheduleTasks(anchor: .report, at: state.incident.reportedAt)
        if let acknowledgedAt = state.acknowledgedAt { scheduleTasks(anchor: .acknowledgement, at: acknowledgedAt) }
    }

    /// A task's deadline timer and its reminders still ahead.
    mutating func scheduleDeadline(of id: TaskID, at due: Date) {
        schedule(.taskDue(id), at: due)
        guard let task = playbook.tasks.first(where: { $0.id == id }) else { return }
        for (index, before) in task.remindBefore.enumerated() {
            let at = due.addingTimeInterval(-TimeInterval(before.seconds))
            if at > now { schedule(.taskReminder(id, index: index), at: at) }
        }
    }

    mutating func cancelDeadline(of id: TaskID) {
        cancel(.taskDue(id))
        for timer in state.timers {
            if case .taskReminder(id, _) = timer.key { cancel(timer.key) }
        }
    }

    mutating func taskDue(_ id: TaskID) {
        guard let index = state.tasks.firstIndex(where: { $0.id == id }), state.tasks[index].completedAt == nil,
              let task = playbook.tasks.first(where: { $0.id == id }) else { return }
        state.tasks[index].overdue = true
        audit(.system, .taskOverdue, task: id, detail: "not completed within \(task.due) of the \(task.after.rawValue)")
        // A task the reporter owes alerts the reporter too: it is theirs to do.
        let targets = task.owner == .reporter && !task.overdue.targets.contains(.reporter) ? [.reporter] + task.overdue.targets : task.overdue.targets
        for recipient in resolve(targets, task: id) {
            send(to: recipient, channels: task.overdue.channels, kind: .taskOverdue, step: nil, round: nil, task: id)
        }
    }

    /// A reminder before the deadline, to whoever owes the task: the reporter for a task they owe, else
    /// the incident's owner, else (nobody owns it yet) the task's overdue alert targets.
    mutating func remind(_ id: TaskID, index: Int) {
        guard let position = state.tasks.firstIndex(where: { $0.id == id }), state.tasks[position].completedAt == nil,
              !state.tasks[position].overdue, let due = state.tasks[position].dueAt,
              let task = playbook.tasks.first(where: { $0.id == id }) else { return }
        let targets: [Target] = if task.owner == .reporter {
            [.reporter]
        } else if case .person(let owner) = state.owner {
            [.person(owner)]
        } else {
            task.overdue.targets
        }
        audit(.system, .taskReminded, task: id, detail: "due in \(TimeSpan(seconds: max(0, Int(due.timeIntervalSince(now)))))")
        // Never a reminder to nobody: a reporter or owner the directory cannot reach leaves it to the overdue targets.
        var recipients = resolve(targets, task: id)
        if recipients.isEmpty, targets != task.overdue.targets { recipients = resolve(task.overdue.targets, task: id) }
        for recipient in recipients {
            // The reminder's place in `remind_before` travels as the round: it tells its notification ids apart.
            send(to: recipient, channels: task.overdue.channels, kind: .taskReminder, step: nil, round: index, task: id)
        }
    }

    // MARK: Timers and audit

    mutating func schedule(_ key: TimerKey, at due: Date) {
        state.timers.removeAll { $0.key == key }
        state.timers.append(ScheduledTimer(key: key, due: due))
        effects.append(.scheduleTimer(key, at: due))
    }

    mutating func cancel(_ key: TimerKey) {
        guard let index = state.timers.firstIndex(where: { $0.key == key }) else { return }
        state.timers.remove(at: index)
        effects.append(.cancelTimer(key))
    }

    mutating func audit(_ actor: Actor, _ action: AuditAction, step: Int? = nil, round: Int? = nil,
                        recipient: Recipient? = nil, channel: ChannelKind? = nil, task: TaskID? = nil,
                        target: String? = nil, notification: NotificationID? = nil, detail: String? = nil, sensitive: String? = nil) {
        effects.append(.audit(AuditRecord(
            sequence: state.nextAuditSequence, at: now, actor: actor, action: action, step: step, round: round,
            recipient: recipient, channel: channel, task: task, target: target, notification: notification,
            detail: detail, sensitive: sensitive)))
        state.nextAuditSequence += 1
    }
}
