// `muster playbook lint [DIR]`: compiler-style diagnostics for a playbook folder.
import ArgumentParser
import Foundation
import MusterCore
import MusterPlaybooks

struct LintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint",
        abstract: "Check the playbooks and the directory in a folder.",
        discussion: "Prints file:line:column: error|warning: message for each problem. Exits 0 when there are no errors, 1 otherwise."
    )

    @Argument(help: "The playbook folder (holds directory.yaml and one YAML file per playbook).")
    var folder: String = "playbooks"

    func run() throws {
        let result = PlaybookLoader.load(folder: URL(fileURLWithPath: folder), displayPath: folder)
        for diagnostic in result.diagnostics { printError(diagnostic.description) }
        let errors = result.diagnostics.errors.count, warnings = result.diagnostics.count - errors
        if let catalog = result.catalog {
            print("\(folder): \(catalog.playbooks.playbooks.count) playbooks, \(catalog.directory.sites.count) sites, "
                  + "\(catalog.directory.people.count) people, \(catalog.directory.schedules.count) schedules: no errors"
                  + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : ""))
        } else {
            printError("\(folder): \(errors) error\(errors == 1 ? "" : "s")" + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : ""))
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
