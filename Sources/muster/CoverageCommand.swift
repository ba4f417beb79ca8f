// `muster playbook coverage [FOLDER]`: every hour of the coming days at every site where a
// playbook's first step would reach nobody, as compiler-style warnings at the step in its file.
import ArgumentParser
import Foundation
import MusterCore
import MusterPlaybooks

struct CoverageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coverage",
        abstract: "Find the hours in which a playbook's first step would reach nobody.",
        discussion: """
            Walks every site, incident type and severity, hour by hour in the site's time zone (daylight-saving \
            nights and closed days included), picks the playbook and its steps as the engine would, and checks \
            that the first step pages at least one person on a channel that has a provider. Consecutive hours \
            with the same cause are one gap, printed as file:line:column: warning: message at the step (or its \
            only target), with the time range and whether a later step or the fallback would still reach someone.

            The channels that have a provider are those `muster serve` would configure from the same \
            configuration file and environment (chat always; webhook with a signing secret; email with \
            channels.email; sms and voice with channels.twilio and its auth token); --channel replaces that list.

            Exits 0 when there are no gaps, 1 when there is at least one.
            """
    )

    @Argument(help: "The playbook folder (holds directory.yaml); default: the service's playbooks setting.")
    var folder: String?
    @Option(help: "How many days to check, from the start of the current hour.")
    var days: Int = 14
    @Option(help: "Start from this instant instead of now: ISO-8601 with an offset, e.g. 2026-11-01T00:00:00-05:00.")
    var from: String?
    @Option(name: .customLong("channel"),
            help: "A channel that has a provider (repeatable, or comma-separated: sms,voice,email); default: as `muster serve` configures them.")
    var channels: [String] = []
    @Option(help: "The service's configuration file, for its channels (default: ./muster.yaml if present).")
    var config: String?

    func run() throws {
        guard (1...366).contains(days) else { throw ValidationError("--days must be between 1 and 366") }
        let start: Date
        if let from {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            guard let instant = formatter.date(from: from) else {
                throw ValidationError("bad --from '\(from)': write ISO-8601 with an offset, e.g. 2026-11-01T00:00:00-05:00")
            }
            start = instant
        } else {
            start = Date()
        }
        let environment = ProcessInfo.processInfo.environment
        let commandLine: [Setting: String] = config.map { [.configFile: $0] } ?? [:]
        let file = try loadConfigFile(config, Settings(commandLine: commandLine, environment: environment))
        let settings = Settings(commandLine: commandLine, environment: environment, file: file)
        let providers: Set<ChannelKind>
        let origin: String
        if channels.isEmpty {
            providers = ChannelProviders.configured(file.channels, settings: settings)
            origin = "as `muster serve` would configure them"
        } else {
            providers = try Self.parseChannels(channels)
            origin = "from --channel"
        }
        let folder = folder ?? settings.value(.playbooks)
        let result = PlaybookLoader.load(folder: URL(fileURLWithPath: folder), displayPath: folder)
        guard let catalog = result.catalog else {
            for diagnostic in result.diagnostics { printError(diagnostic.description) }
            throw ValidationError("the playbooks in \(folder) have errors; run `muster playbook lint \(folder)`")
        }
        let gaps = CoverageCheck(catalog: catalog, providers: providers).gaps(from: start, days: days)
        if channels.isEmpty, providers == [.chat], !gaps.isEmpty {
            // The usual first run: no configuration, so every page would land in the demonstration file.
            printError("note: no configuration gives sms, voice, email or webhook a provider, so `muster serve` would write those pages "
                       + "to its demonstration file; pass --config, or --channel sms,voice,email,... to check against the providers you will have")
        }
        for line in coverageWarnings(gaps, catalog: catalog, sources: result.sources) { printError(line) }
        let zone = catalog.directory.district.zone
        print("\(folder): \(days) day\(days == 1 ? "" : "s") from \(zone.iso8601(start)) at \(catalog.directory.sites.count) sites; "
              + "channels with a provider (\(origin)): \(ChannelProviders.describe(providers)): "
              + (gaps.isEmpty ? "no gaps" : "\(gaps.count) gap\(gaps.count == 1 ? "" : "s")"))
        if !gaps.isEmpty { throw ExitCode(1) }
    }

    static func parseChannels(_ values: [String]) throws -> Set<ChannelKind> {
        var kinds: Set<ChannelKind> = []
        for name in values.flatMap({ $0.split(separator: ",") }).map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let kind = ChannelKind(rawValue: name) else {
                throw ValidationError("unknown channel '\(name)' in --channel" + suggestion(for: name, among: ChannelKind.allCases.map(\.rawValue)))
            }
            kinds.insert(kind)
        }
        return kinds
    }
}

/// One compiler-style warning per gap, at the first step (or its only target) of the variant that ran.
/// Positions are used only for the file version the catalog was loaded from.
/// `label` follows the position ("warning: " for the command; a log line has its own level).
func coverageWarnings(_ gaps: [CoverageGap], catalog: Catalog, sources: [PlaybookID: PlaybookSource], label: String = "warning: ") -> [String] {
    gaps.map { gap in
        let location: String
        if let source = sources[gap.playbook], source.version == catalog.playbooks[gap.playbook]?.version {
            location = source.location(variant: gap.variant, step: 0, target: gap.target).description
        } else {
            location = "playbook \(gap.playbook)"
        }
        return "\(location): \(label)" + gap.message(zone: catalog.directory.zone(of: gap.site))
    }
}
