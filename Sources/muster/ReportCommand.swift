// `muster report`: the compliance report for a period, from the stored record (ComplianceReport).
import ArgumentParser
import Foundation
import MusterCore
import MusterRuntime
import MusterStore

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The compliance report for a period: per incident and summed by site and type, time to the first page, to acknowledgement and to resolution, escalations, missed deadlines, tasks done late or never, unowned periods. Drills are left out.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case json, csv
    }

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "The first day (2026-09-01, in the district's time zone) or an RFC 3339 date-time.")
    var from: String
    @Option(help: "The last day, included (2026-12-18), or an RFC 3339 date-time, excluded.")
    var to: String
    @Option(help: "Only this site.")
    var site: String?
    @Option(help: "Only this incident type.")
    var type: String?
    @Option(help: "json (both tables) or csv (one table).")
    var format: Format = .json
    @Option(help: "With --format csv: incidents (one row each) or summary (by site and type, and in all).")
    var table: String = "incidents"
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.")
    var output: String?
    @Option(help: "The playbook folder (for the directory's sites, types and time zone).")
    var playbooks: String = "playbooks"

    func run() async throws {
        let directory = try loadCatalog(playbooks).directory
        guard let table = ComplianceReport.Table(rawValue: table) else { throw ValidationError("--table: incidents or summary, not '\(self.table)'") }
        if let site, directory.sites[SiteID(site)] == nil { throw ValidationError("--site: no site '\(site)' in the directory") }
        if let type, !directory.incidentTypes.contains(where: { $0.id.rawValue == type }) {
            throw ValidationError("--type: no incident type '\(type)' in the directory")
        }
        let period: (from: Date, to: Date)
        switch ComplianceReport.period(from: from, to: to, zone: directory.district.zone) {
        case .success(let found): period = found
        case .failure(let error): throw ValidationError("--\(error.field): \(error.detail)")
        }
        let (store, description) = try storeOptions.open()
        defer { (store as? PostgresStore)?.shutdown() }
        try await requireCurrentSchema(store, description)
        let report = try await ComplianceReport.build(store: store, from: period.from, to: period.to, site: site.map(SiteID.init),
                                                      type: type.map(IncidentTypeID.init), asOf: Date())
        let bytes = format == .json ? try report.json() + Data("\n".utf8) : Data(report.csv(table).utf8)
        if let output {
            try bytes.write(to: URL(fileURLWithPath: output), options: .atomic)
        } else {
            FileHandle.standardOutput.write(bytes)
        }
    }
}
