// A discrete-event simulator: runs the real escalation engine on a virtual clock, delivering each
// timer exactly when it falls due, and turns the audit trail into a timeline ("who is paged, when,
// if this happens at 2 a.m. on a Sunday"). The property tests use it too.
import Foundation

public struct ScriptedEvent: Hashable, Sendable {
    /// Seconds after the report.
    public var offset: Int
    public var event: IncidentEvent

    public init(offset: Int, event: IncidentEvent) {
        self.offset = offset
        self.event = event
    }
}

public struct TimelineLine: Hashable, Sendable, Codable {
    public var at: Date
    public var offsetSeconds: Int
    public var kind: String
    /// 1-based, as people count steps.
    public var step: Int?
    public var round: Int?
    public var person: String?
    public var partner: String?
    public var channel: String?
    public var task: String?
    public var target: String?
    public var detail: String?
    /// For `task_due` lines: when the task falls due.
    public var due: Date?

    public init(at: Date, offsetSeconds: Int, kind: String, step: Int? = nil, round: Int? = nil, person: String? = nil,
                partner: String? = nil, channel: String? = nil, task: String? = nil, target: String? = nil,
                detail: String? = nil, due: Date? = nil) {
        self.at = at
        self.offsetSeconds = offsetSeconds
        self.kind = kind
        self.step = step
        self.round = round
        self.person = person
        self.partner = partner
        self.channel = channel
        self.task = task
        self.target = target
        self.detail = detail
        self.due = due
    }
}

public struct SimulationResult: Sendable {
    public var lines: [TimelineLine]
    public var state: IncidentState
    /// Every effect the engine asked for, in order (the property tests check them).
    public var effects: [(offset: Int, effect: Effect)]
    /// Scripted events the engine refused, with why.
    public var rejections: [(offset: Int, rejection: EngineRejection)]
    /// Timers still pending when the simulation stopped at its horizon.
    public var pendingTimers: [ScheduledTimer]
}

public struct Simulator: Sendable {
    public let engine: EscalationEngine
    /// The simulation stops at this offset even if timers remain (a week by default).
    public var horizon: Int

    /// Fallback repeats simulated once nothing else is left to happen (the rest are left pending).
    static let fallbackRepeatsShown = 2

    public init(engine: EscalationEngine, horizon: Int = 7 * 86_400) {
        self.engine = engine
        self.horizon = horizon
    }

    public func run(_ incident: Incident, script: [ScriptedEvent]) -> SimulationResult {
        let start = incident.reportedAt
        var effects: [Effect] = []
        var state = engine.start(incident, now: start, effects: &effects)
        var log: [(Int, Effect)] = effects.map { (0, $0) }
        var timers: [ScheduledTimer] = []
        var rejections: [(Int, EngineRejection)] = []
        track(effects, timers: &timers)
        // Scripted events at the same moment as a deadline come first: an acknowledgement at the
        // deadline still counts, and the order among scripted events is the script's.
        var pending = script.enumerated().sorted { ($0.element.offset, $0.offset) < ($1.element.offset, $1.offset) }.map(\.element)
        while true {
            let nextTimer = timers.min { ($0.due, $0.key.description) < ($1.due, $1.key.description) }
            let timerOffset = nextTimer.map { Int($0.due.timeIntervalSince(start)) }
            let event: IncidentEvent, offset: Int
            if let scripted = pending.first, timerOffset.map({ scripted.offset <= $0 }) ?? true {
                pending.removeFirst()
                (event, offset) = (scripted.event, scripted.offset)
            } else if let timer = nextTimer, let timerOffset {
                // An unowned incident pages its fallback for ever: two repeats show the rhythm.
                if pending.isEmpty, case .fallbackRepeat(let round) = timer.key, round > Self.fallbackRepeatsShown { break }
                timers.removeAll { $0.key == timer.key }
                (event, offset) = (.timerFired(timer.key), timerOffset)
            } else {
                break
            }
            if offset > horizon { break }
            effects.removeAll(keepingCapacity: true)
            do {
                try engine.apply(event, to: &state, now: start.addingTimeInterval(TimeInterval(offset)), effects: &effects)
            } catch {
                rejections.append((offset, error))
            }
            track(effects, timers: &timers)
            log += effects.map { (offset, $0) }
        }
        var lines = log.compactMap { line(for: $0.1, offset: $0.0, start: start) }
        for index in lines.indices where lines[index].kind == "task_due" {
            lines[index].due = state.tasks.first { $0.id.rawValue == lines[index].task }?.dueAt
        }
        return SimulationResult(lines: lines, state: state,
                                effects: log, rejections: rejections, pendingTimers: timers)
    }

    private func track(_ effects: [Effect], timers: inout [ScheduledTimer]) {
        for effect in effects {
            switch effect {
            case .scheduleTimer(let key, let due):
                timers.removeAll { $0.key == key }
                timers.append(ScheduledTimer(key: key, due: due))
            case .cancelTimer(let key):
                timers.removeAll { $0.key == key }
            case .audit, .notify:
                break
            }
        }
    }

    /// Timeline lines come from audit entries: the timeline is what the audit trail will say.
    private func line(for effect: Effect, offset: Int, start: Date) -> TimelineLine? {
        guard case .audit(let record) = effect else { return nil }
        var line = TimelineLine(at: record.at, offsetSeconds: offset, kind: record.action.rawValue,
                                step: record.step.map { $0 + 1 }, round: record.round, channel: record.channel?.rawValue,
                                task: record.task?.rawValue, target: record.target, detail: record.detail)
        switch record.recipient {
        case .person(let id): line.person = id.rawValue
        case .partner(let id): line.partner = id.rawValue
        case nil: break
        }
        // Who answered a page: the line names them as it names whom a page went to.
        if record.action == .acknowledged || record.action == .declined {
            switch record.actor {
            case .person(let id): line.person = id.rawValue
            case .partner(let id): line.partner = id.rawValue
            case .integration, .system: break
            }
        }
        switch record.action {
        case .paged: line.kind = record.task == nil ? (record.detail == "assigned" ? "assigned" : "page")
            : (record.detail == NotificationKind.taskReminder.rawValue ? "reminder" : "overdue_alert")
        case .fallbackPaged: line.kind = "fallback"
        case .acknowledged: line.kind = "ack"
        case .escalated: line.kind = "escalate"
        case .stepRepeated: line.kind = "repeat"
        case .stepStarted: line.kind = "step"
        case .taskScheduled: line.kind = "task_due"
        case .taskCompleted: line.kind = "task_done"
        case .resolved: line.kind = "resolve"
        case .reported: line.kind = "report"
        default: break
        }
        if record.action == .paged, record.detail == "assigned" || record.task != nil { line.detail = nil }
        return line
    }
}
