// `muster simulate`: run the real escalation engine on a virtual clock and print the timeline.
import ArgumentParser
import Foundation
import MusterCore
import MusterPlaybooks
import MusterRuntime

extension Severity: ExpressibleByArgument {}

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Show who is paged, when, for an incident at a given moment.",
        discussion: """
            Example: muster simulate --type suicide-risk --severity high --site lincoln-high \\
                       --at 2026-12-06T02:00:00-06:00 --ack druiz@+7m
            """
    )

    @Option(help: "The playbook folder (holds directory.yaml).")
    var playbooks: String = "playbooks"
    @Option(help: "The incident type, as declared in directory.yaml.")
    var type: String
    @Option(help: "low, moderate, high or imminent.")
    var severity: Severity
    @Option(help: "The site id.")
    var site: String
    @Option(help: "When the report arrives: ISO-8601 with an offset, e.g. 2026-12-06T02:00:00-06:00.")
    var at: String
    @Option(name: .customLong("ack"), help: "PERSON_ID@+OFFSET: that person acknowledges at that offset (repeatable).")
    var acks: [String] = []
    @Option(name: .customLong("complete"), help: "TASK_ID@+OFFSET: a task is completed at that offset (repeatable).")
    var completions: [String] = []
    @Option(help: "+OFFSET: the incident is resolved then.")
    var resolve: String?
    @Option(name: .customLong("flag"), help: "A flag the reporter sets, e.g. family-may-be-source (repeatable).")
    var flags: [String] = []
    @Option(help: "The reporting person's id (for 'reporter' targets).")
    var reporter: String?
    @Option(help: "Stop after this long, e.g. 2d.")
    var horizon: String = "7d"
    @Option(help: "text or json (one JSON object per line).")
    var format: OutputFormat = .text

    enum OutputFormat: String, ExpressibleByArgument {
        case text, json
    }

    func run() throws {
        let result = PlaybookLoader.load(folder: URL(fileURLWithPath: playbooks), displayPath: playbooks)
        guard let catalog = result.catalog else {
            for diagnostic in result.diagnostics { printError(diagnostic.description) }
            throw ValidationError("the playbooks in \(playbooks) have errors; run `muster playbook lint \(playbooks)`")
        }
        let directory = catalog.directory
        let typeID = IncidentTypeID(type), siteID = SiteID(site)
        let problems = IntakeCheck(catalog: catalog).problems(type: typeID, severity: severity, site: siteID, flags: flags.map(IncidentFlag.init))
        if let problem = problems.first {
            throw ValidationError(problem.field == .flags ? "--flag: \(problem.detail)" : problem.detail)
        }
        guard let reportedAt = parseInstant(at) else {
            throw ValidationError("bad --at '\(at)': write ISO-8601 with an offset, e.g. 2026-12-06T02:00:00-06:00")
        }
        guard let horizonSpan = TimeSpan.parse(horizon), horizonSpan.seconds > 0 else {
            throw ValidationError("bad --horizon '\(horizon)': write a duration such as 2d")
        }
        guard let playbook = catalog.playbooks.playbook(type: typeID, severity: severity, site: siteID) else {
            throw ValidationError("no playbook matches \(type) \(severity) at \(site)")
        }
        let reporterActor: Actor
        if let reporter {
            guard directory.people[PersonID(reporter)] != nil else {
                throw ValidationError("unknown --reporter '\(reporter)'" + suggestion(for: reporter, among: directory.people.keys.map(\.rawValue)))
            }
            reporterActor = .person(PersonID(reporter))
        } else {
            reporterActor = .integration("simulator")
        }
        let script = try buildScript(directory: directory, playbook: playbook, reporter: reporterActor)
        let report = Report(type: typeID, severity: severity, site: siteID, reporter: reporterActor,
                            summary: "(simulated report)", flags: Set(flags.map(IncidentFlag.init)), receivedAt: reportedAt)
        let incident = Incident(id: IncidentID("SIM-1"), number: 1, report: report)
        let engine = EscalationEngine(playbook: playbook, directory: directory)
        let simulation = Simulator(engine: engine, horizon: horizonSpan.seconds).run(incident, script: script)
        let zone = directory.zone(of: siteID)
        switch format {
        case .json: try TimelineJSON.print(simulation, zone: zone)
        case .text: TimelineText.print(simulation, incident: incident, playbook: playbook, directory: directory, zone: zone)
        }
    }

    private func buildScript(directory: Directory, playbook: Playbook, reporter: Actor) throws -> [ScriptedEvent] {
        var script: [ScriptedEvent] = []
        for ack in acks {
            let (who, offset) = try split(ack, option: "--ack", example: "druiz@+7m")
            guard directory.people[PersonID(who)] != nil else {
                throw ValidationError("--ack \(ack): unknown person '\(who)'" + suggestion(for: who, among: directory.people.keys.map(\.rawValue)))
            }
            script.append(ScriptedEvent(offset: offset, event: .acknowledged(by: .person(PersonID(who)), path: .api, step: nil)))
        }
        for completion in completions {
            let (task, offset) = try split(completion, option: "--complete", example: "screening@+90m")
            guard playbook.tasks.contains(where: { $0.id.rawValue == task }) else {
                throw ValidationError("--complete \(completion): playbook \(playbook.id) has no task '\(task)'"
                                      + suggestion(for: task, among: playbook.tasks.map(\.id.rawValue)))
            }
            // A task the reporter owes is completed by the reporter (--reporter), as only they can.
            let owedByReporter = playbook.tasks.first { $0.id.rawValue == task }?.owner == .reporter
            script.append(ScriptedEvent(offset: offset, event: .taskCompleted(TaskID(task), by: owedByReporter ? reporter : .system)))
        }
        if let resolve {
            guard let offset = parseOffset(resolve) else { throw ValidationError("bad --resolve '\(resolve)': write an offset such as +3h") }
            script.append(ScriptedEvent(offset: offset, event: .resolved(by: .system, note: nil)))
        }
        return script
    }

    private func split(_ text: String, option: String, example: String) throws -> (String, Int) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, let offset = parseOffset(String(parts[1])) else {
            throw ValidationError("bad \(option) '\(text)': write ID@+OFFSET, e.g. \(example)")
        }
        return (String(parts[0]), offset)
    }

    private func parseOffset(_ text: String) -> Int? {
        guard text.hasPrefix("+") else { return nil }
        if text == "+0" { return 0 }
        return TimeSpan.parse(String(text.dropFirst()))?.seconds
    }

    private func parseInstant(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
