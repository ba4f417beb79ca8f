// How `muster simulate` prints a timeline: aligned text for people, JSON lines for programs.
import Foundation
import MusterCore

enum TimelineJSON {
    /// One object per line; the documented fields are always present (null when they do not apply).
    struct Line: Encodable {
        let line: TimelineLine
        let zone: ZoneRules

        enum Key: String, CodingKey {
            case at, offset_s, kind, step, round, person, partner, channel, task, target, due, detail
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(zone.iso8601(line.at), forKey: .at)
            try c.encode(line.offsetSeconds, forKey: .offset_s)
            try c.encode(line.kind, forKey: .kind)
            try c.encode(line.step, forKey: .step)
            try c.encode(line.person, forKey: .person)
            try c.encode(line.channel, forKey: .channel)
            try c.encode(line.task, forKey: .task)
            try c.encodeIfPresent(line.round, forKey: .round)
            try c.encodeIfPresent(line.partner, forKey: .partner)
            try c.encodeIfPresent(line.target, forKey: .target)
            try c.encodeIfPresent(line.due.map(zone.iso8601), forKey: .due)
            try c.encodeIfPresent(line.detail, forKey: .detail)
        }
    }

    static func print(_ simulation: SimulationResult, zone: ZoneRules) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]  // stable order; "at" comes first
        var out = ""
        for line in simulation.lines {
            out += String(decoding: try encoder.encode(Line(line: line, zone: zone)), as: UTF8.self) + "\n"
        }
        let end = endLine(simulation)
        out += String(decoding: try encoder.encode(Line(line: end, zone: zone)), as: UTF8.self) + "\n"
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    /// The end state as a last line of kind `end`; its detail is the phase.
    static func endLine(_ simulation: SimulationResult) -> TimelineLine {
        let state = simulation.state
        let last = simulation.lines.last
        var person: String?
        if case .person(let id) = state.owner { person = id.rawValue }
        return TimelineLine(at: last?.at ?? state.incident.reportedAt, offsetSeconds: last?.offsetSeconds ?? 0, kind: "end",
                            person: person, detail: phaseName(state.phase))
    }
}

func phaseName(_ phase: IncidentPhase) -> String {
    switch phase {
    case .escalating: "escalating"
    case .acknowledged: "acknowledged"
    case .unowned: "unowned"
    case .resolved: "resolved"
    }
}

enum TimelineText {
    static func print(_ simulation: SimulationResult, incident: Incident, playbook: Playbook, directory: Directory, zone: ZoneRules) {
        let state = simulation.state
        let siteName = directory.sites[incident.site]?.name ?? incident.site.rawValue
        let schoolTime = directory.schoolTime(at: incident.site, instant: incident.reportedAt)
        var out = "Incident #\(incident.number): \(incident.type), \(incident.severity), at \(siteName) (\(incident.site))\n"
        let when = switch schoolTime {
        case .schoolHours: "during school hours"
        case .outsideSchoolHours: "a school day, outside school hours"
        case .nonSchoolDay: "a non-school day"
        }
        out += "Reported \(zone.iso8601(incident.reportedAt)), \(when)\n"
        out += "Playbook \(playbook.id) \(playbook.version.prefix(19))…, \(state.variant.rawValue) steps\n\n"
        for line in simulation.lines {
            let offset = formatOffset(line.offsetSeconds).padding(toLength: 9, withPad: " ", startingAt: 0)
            let step = (line.step.map { "step \($0)" } ?? "").padding(toLength: 8, withPad: " ", startingAt: 0)
            let kind = line.kind.padding(toLength: 18, withPad: " ", startingAt: 0)
            out += "  \(offset)\(step)\(kind)\(describe(line, directory: directory, zone: zone, start: incident.reportedAt))\n"
        }
        out += "\nEnd: \(phaseName(state.phase))"
        if let resolvedAt = state.resolvedAt {
            out += " at \(formatOffset(Int(resolvedAt.timeIntervalSince(incident.reportedAt))))"
        }
        if let owner = state.owner, let at = state.acknowledgedAt {
            out += state.phase == .acknowledged ? " by " : "; acknowledged by "
            out += "\(ownerName(owner, directory)) at \(formatOffset(Int(at.timeIntervalSince(incident.reportedAt))))"
        }
        let overdue = state.tasks.filter { $0.overdue && $0.completedAt == nil }.map(\.id.rawValue)
        let done = state.tasks.filter { $0.completedAt != nil }.map(\.id.rawValue)
        if !done.isEmpty { out += "; tasks done: " + done.joined(separator: ", ") }
        if !overdue.isEmpty { out += "; overdue: " + overdue.joined(separator: ", ") }
        for rejection in simulation.rejections {
            out += "\n  (at \(formatOffset(rejection.offset)) the engine refused a scripted event: \(rejection.rejection))"
        }
        Swift.print(out)
    }

    private static func ownerName(_ actor: Actor, _ directory: Directory) -> String {
        if case .person(let id) = actor { return "\(directory.name(of: .person(id))) (\(id))" }
        return actor.description
    }

    private static func describe(_ line: TimelineLine, directory: Directory, zone: ZoneRules, start: Date) -> String {
        var who = ""
        if let person = line.person { who = "\(directory.name(of: .person(PersonID(person)))) (\(person))" }
        if let partner = line.partner { who = "\(directory.name(of: .partner(PartnerID(partner)))) (partner:\(partner))" }
        let via = line.channel.map { " via \($0)" } ?? ""
        switch line.kind {
        case "page", "fallback", "assigned": return who + via
        case "overdue_alert", "reminder": return "\(who)\(via) about task \(line.task ?? "")"
        case "task_reminded": return "\(line.task ?? ""): \(line.detail ?? "")"
        case "ack": return "acknowledged by \(who), \(line.detail ?? "")"
        case "task_due":
            let due = line.due.map { " at \(formatOffset(Int($0.timeIntervalSince(start)))) (\(zone.iso8601($0)))" } ?? ""
            return "\(line.task ?? "") due\(due)"
        case "task_overdue", "task_done", "task_withdrawn": return "\(line.task ?? ""): \(line.detail ?? "")"
        case "resolve": return "resolved" + (line.detail.map { ": \($0)" } ?? "")
        case "report": return "reported: " + (line.detail?.split(separator: ";").first.map(String.init) ?? "")
        case "target_unresolved": return "\(line.target ?? who) skipped: \(line.detail ?? "")"
        case "channel_substituted": return "\(who): \(line.detail ?? "")"
        default: return line.detail ?? ""
        }
    }
}
