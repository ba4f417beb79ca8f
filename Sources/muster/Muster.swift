// The `muster` command line.
import ArgumentParser

@main
struct Muster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muster",
        abstract: "Crisis-intervention alerting and escalation for schools and districts.",
        subcommands: [ServeCommand.self, PlaybookCommand.self, SimulateCommand.self, MigrateCommand.self, WorkerCommand.self,
                      UserCommand.self, TokenCommand.self, AuditCommand.self, RetentionCommand.self, ReportCommand.self]
    )
}

struct PlaybookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "playbook",
        abstract: "Work with escalation playbooks.",
        subcommands: [LintCommand.self, CoverageCommand.self]
    )
}
