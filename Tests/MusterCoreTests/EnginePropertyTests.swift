// Properties of the escalation engine over random playbooks and random event scripts:
// it never pages after an acknowledgement or resolution, never loses a timer, and always ends
// acknowledged, resolved or unowned.
import Foundation
import MusterCore
import PropertyBased
import Testing

private let targetPool: [Target] = [
    .onCall("social-worker", .incidentSite), .onCall("counselor", .incidentSite), .onCall("crisis-team", .district),
    .role("principal", .incidentSite), .partner("mcrt"), .person("pr1"), .reporter,
]
private let channelPool: [[ChannelKind]] = [[.sms], [.voice], [.sms, .push], [.voice, .sms], [.email]]
private let reportTimes = ["2026-12-02T10:00:00-06:00", "2026-12-02T02:00:00-06:00", "2026-12-05T13:00:00-06:00", "2026-03-08T01:50:00-06:00"]
private let actors: [Actor] = [.person("sw1"), .person("c1"), .person("ct1"), .person("pr1")]

/// Step i: targets bitmask, channels, ack window in minutes, repeats.
private func randomPlaybook(_ steps: [[Int]], tasks: [[Int]]) -> Playbook {
    let built = steps.map { spec in
        let targets = targetPool.indices.filter { spec[0] & (1 << $0) != 0 }.map { targetPool[$0] }
        return EscalationStep(targets: targets.isEmpty ? [targetPool[spec[0] % targetPool.count]] : targets,
                              channels: channelPool[spec[1] % channelPool.count], ackWithin: .minutes(spec[2]), repeats: spec[3])
    }
    let protocolTasks = tasks.enumerated().map { index, spec in
        ProtocolTask(id: TaskID("task-\(index)"), title: "Task \(index)", due: .minutes(spec[0]),
                     after: spec[1] == 0 ? .report : .acknowledgement,
                     overdue: OverdueAlert(targets: [targetPool[spec[2] % targetPool.count]], channels: [.sms]))
    }
    return Playbook(id: "random", title: "Random", version: "test", match: PlaybookMatch(types: ["suicide-risk"]),
                    steps: built, outsideSchoolHours: steps.count > 2 ? Array(built.reversed()) : nil,
                    fallback: Fallback(targets: [.partner("mcrt"), .onCall("counselor", .incidentSite)], channels: [.voice]),
                    tasks: protocolTasks)
}

/// Event: kind, offset in seconds, actor index.
private func script(_ events: [[Int]], taskCount: Int) -> [ScriptedEvent] {
    events.map { spec in
        let actor = actors[spec[2] % actors.count]
        let event: IncidentEvent = switch spec[0] {
        case 0, 1: .acknowledged(by: actor, path: .link, step: spec[2] % 3)
        case 2: .resolved(by: actor, note: nil)
        case 3: .escalatedByHand(by: actor, reason: nil)
        case 4: .reopened(by: actor, reason: nil)
        case 5: .taskCompleted(TaskID("task-\(spec[2] % max(taskCount, 1))"), by: actor)
        case 6: .noteAdded(by: actor, text: "note")
        default: .reassigned(to: "c1", by: actor)
        }
        return ScriptedEvent(offset: spec[1], event: event)
    }
}

@Suite("Escalation engine properties")
struct EnginePropertyTests {
    @Test("over random playbooks and scripts the engine's invariants hold")
    func invariants() async {
        let steps = zip(Gen.int(in: 0...127), Gen.int(in: 0...4), Gen.int(in: 1...15), Gen.int(in: 0...3))
            .map { [$0, $1, $2, $3] }.array(of: 1...5)
        let tasks = zip(Gen.int(in: 1...600), Gen.int(in: 0...1), Gen.int(in: 0...6)).map { [$0, $1, $2] }.array(of: 0...3)
        let events = zip(Gen.int(in: 0...7), Gen.int(in: 0...14_400), Gen.int(in: 0...11)).map { [$0, $1, $2] }.array(of: 0...8)
        let time = Gen.int(in: 0...(reportTimes.count - 1))
        await propertyCheck(count: 400, input: steps, tasks, events, time) { steps, tasks, events, time in
            let playbook = randomPlaybook(steps, tasks: tasks)
            let engine = EscalationEngine(playbook: playbook, directory: Fixture.directory)
            let run = Simulator(engine: engine, horizon: 30 * 86_400)
                .run(Fixture.incident(at: reportTimes[time]), script: script(events, taskCount: tasks.count))
            checkInvariants(run)
        }
    }

    private func checkInvariants(_ run: SimulationResult) {
        // 1. No page (or fallback) between an acknowledgement or resolution and the next restart;
        //    nothing at all is sent while resolved.
        var owned = false, resolved = false
        for (_, effect) in run.effects {
            switch effect {
            case .audit(let record):
                switch record.action {
                case .acknowledged, .reassigned: owned = true
                case .resolved: resolved = true
                case .reopened: (owned, resolved) = (false, false)
                case .escalatedByHand: owned = false
                default: break
                }
            case .notify(let n):
                #expect(!resolved, "notification \(n.id) sent while resolved")
                if n.kind == .page || n.kind == .fallback {
                    #expect(!owned, "page \(n.id) sent after an acknowledgement")
                }
            case .scheduleTimer(let key, _):
                #expect(!resolved, "timer \(key) scheduled while resolved")
                if case .ackDeadline = key { #expect(!owned, "acknowledgement deadline scheduled while owned") }
            case .cancelTimer:
                break
            }
        }
        // 2. No timer is lost: the engine's pending timers are the runtime's, and all of them ran out or were
        // cancelled, but an unowned incident's next fallback round (the simulator stops before it; it never ends).
        #expect(run.pendingTimers.sorted { $0.key.description < $1.key.description } == run.state.timers.sorted { $0.key.description < $1.key.description })
        if run.state.phase == .unowned {
            #expect(run.state.timers.contains { if case .fallbackRepeat = $0.key { true } else { false } }, "an unowned incident is paged again")
        } else {
            #expect(run.state.timers.isEmpty)
            #expect(!run.state.timers.contains { if case .fallbackRepeat = $0.key { true } else { false } }, "only an unowned incident repeats its fallback")
        }
        // 3. Every incident ends acknowledged, resolved or unowned.
        #expect([.acknowledged, .resolved, .unowned].contains(run.state.phase))
        // 4. The audit trail is numbered without gaps, and notification ids never repeat.
        let sequences = run.effects.compactMap { if case .audit(let r) = $0.effect { r.sequence } else { nil } }
        #expect(sequences == Array(1..<(sequences.count + 1)))
        let ids = run.effects.compactMap { if case .notify(let n) = $0.effect { n.id } else { nil } }
        #expect(Set(ids).count == ids.count)
    }
}
