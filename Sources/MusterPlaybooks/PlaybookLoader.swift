// Loads a playbook folder: `directory.yaml` and one playbook per other YAML file, with every
// diagnostic from every file, and the checks that span playbooks (duplicate ids, ambiguous matches).
import Crypto
import Foundation
import MusterCore
import Yams

public struct LoadResult: Sendable {
    /// nil when there were errors: an invalid set is never half used.
    public let catalog: Catalog?
    public let diagnostics: [Diagnostic]
    /// Where each loaded playbook's steps are written (empty when there were errors).
    public let sources: [PlaybookID: PlaybookSource]
    /// Every contact point in the directory and where it is written (empty when there were errors).
    public let contacts: [ContactSource]
    /// Each loaded playbook's file, to keep while incidents run it (empty when there were errors).
    public let kept: [KeptPlaybook]

    init(catalog: Catalog?, diagnostics: [Diagnostic], sources: [PlaybookID: PlaybookSource] = [:], contacts: [ContactSource] = [],
         kept: [KeptPlaybook] = []) {
        self.catalog = catalog
        self.diagnostics = diagnostics
        self.sources = sources
        self.contacts = contacts
        self.kept = kept
    }

    /// An error at each contact point whose channel has no provider among `providers`: a page sent there
    /// would reach nobody, so a service that has no demonstration inbox switched on refuses such a set.
    public func contactsWithoutProvider(_ providers: Set<ChannelKind>) -> [Diagnostic] {
        contacts.filter { !providers.contains($0.contact.channel) }.map { source in
            Diagnostic(.error, source.location,
                       "\(source.owner)'s \(source.contact.channel.rawValue) contact point has no provider: \(Self.howToProvide(source.contact.channel)), "
                       + "remove the contact point, or switch on the demonstration inbox (channels.demonstration_inbox: true) to try Muster out; "
                       + "pages sent there would reach nobody")
        }
    }

    static func howToProvide(_ channel: ChannelKind) -> String {
        switch channel {
        case .sms, .voice: "configure channels.twilio (and MUSTER_TWILIO_AUTH_TOKEN)"
        case .email: "configure channels.email"
        case .push: "configure channels.ntfy"
        case .webhook: "set MUSTER_WEBHOOK_SECRET (or channels.webhook.secret)"
        case .chat: "chat needs no provider"
        case .inbox: "Muster has no inbox provider yet"
        }
    }
}

public enum PlaybookLoader {
    public static let directoryFileName = "directory.yaml"

    /// Loads and validates a folder. `displayPath` is how file names appear in diagnostics.
    public static func load(folder: URL, displayPath: String? = nil) -> LoadResult {
        let prefix = (displayPath ?? folder.path).hasSuffix("/") ? (displayPath ?? folder.path) : (displayPath ?? folder.path) + "/"
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        } catch {
            return LoadResult(catalog: nil, diagnostics: [Diagnostic(.error, SourceLocation(file: displayPath ?? folder.path, line: 1, column: 1),
                                                                     "cannot read the playbook folder: \(error.localizedDescription)")])
        }
        var files: [(name: String, text: String, digest: String)] = []
        var diagnostics: [Diagnostic] = []
        for name in names where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
            let url = folder.appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: url.path) else { continue }
            guard let text = String(data: data, encoding: .utf8) else {
                diagnostics.append(Diagnostic(.error, SourceLocation(file: prefix + name, line: 1, column: 1), "the file is not UTF-8 text"))
                continue
            }
            files.append((prefix + name, text, version(of: data)))
        }
        guard let directoryFile = files.first(where: { $0.name.hasSuffix("/" + directoryFileName) }) else {
            diagnostics.append(Diagnostic(.error, SourceLocation(file: prefix + directoryFileName, line: 1, column: 1),
                                          "no \(directoryFileName) in the playbook folder: the directory of sites, people and schedules is required"))
            return LoadResult(catalog: nil, diagnostics: diagnostics)
        }
        return load(directory: directoryFile, playbooks: files.filter { $0.name != directoryFile.name }, earlier: diagnostics)
    }

    /// Loads from text already in memory (tests use this); each playbook is (file name, text).
    public static func load(directory: (name: String, text: String), playbooks: [(name: String, text: String)]) -> LoadResult {
        load(directory: (directory.name, directory.text, ""),
             playbooks: playbooks.map { ($0.name, $0.text, version(of: Data($0.text.utf8))) },
             earlier: [])
    }

    /// A kept playbook read again, against today's directory (whom its targets name is today's); when
    /// it no longer checks out against it (a role or person it names is gone), read without the
    /// directory: such targets then name nobody at run time, and the engine says so and moves on.
    public static func playbook(from kept: KeptPlaybook, directory: Directory) -> Playbook? {
        PlaybookParser(file: kept.file, directory: directory, version: kept.version).parse(kept.source)?.playbook
            ?? PlaybookParser(file: kept.file, directory: nil, version: kept.version).parse(kept.source)?.playbook
    }

    /// "sha256:…" of a file's bytes: the version an incident records.
    private static func version(of data: Data) -> String { "sha256:" + SHA256.hash(data: data).hex }

    private static func load(directory file: (name: String, text: String, digest: String),
                             playbooks files: [(name: String, text: String, digest: String)], earlier: [Diagnostic]) -> LoadResult {
        var diagnostics = earlier
        let directoryParser = DirectoryParser(file: file.name)
        let directory = directoryParser.parse(file.text)
        diagnostics += directoryParser.reader.diagnostics
        var located: [PlaybookParser.Located] = []
        var locatedFiles: [String] = []
        for playbookFile in files {
            let parser = PlaybookParser(file: playbookFile.name, directory: directory, version: playbookFile.digest)
            if let playbook = parser.parse(playbookFile.text) {
                located.append(playbook)
                locatedFiles.append(playbookFile.name)
            }
            diagnostics += parser.reader.diagnostics
        }
        if files.isEmpty {
            diagnostics.append(Diagnostic(.error, SourceLocation(file: file.name, line: 1, column: 1), "no playbooks beside the directory"))
        }
        if let directory { diagnostics += crossChecks(located, files: locatedFiles, directory: directory) }
        diagnostics.sort { $0.location < $1.location }
        guard let directory, !diagnostics.hasErrors else { return LoadResult(catalog: nil, diagnostics: diagnostics) }
        return LoadResult(catalog: Catalog(directory: directory, playbooks: PlaybookSet(located.map(\.playbook))), diagnostics: diagnostics,
                          sources: Dictionary(located.map { ($0.playbook.id, $0.source) }, uniquingKeysWith: { first, _ in first }),
                          contacts: directoryParser.contactSources.entries,
                          kept: zip(located, locatedFiles).compactMap { entry, name in
                              files.first { $0.name == name }.map { KeptPlaybook(version: entry.playbook.version, id: entry.playbook.id, file: name, source: $0.text) }
                          })
    }

    /// Duplicate ids, two playbooks matching the same incident equally, and playbooks that can never run.
    private static func crossChecks(_ located: [PlaybookParser.Located], files: [String], directory: Directory) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        func at(_ index: Int, _ node: Yams.Node?) -> SourceLocation {
            SourceLocation(file: files[index], line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1)
        }
        var firstByID: [PlaybookID: Int] = [:]
        for (index, entry) in located.enumerated() {
            if let first = firstByID[entry.playbook.id] {
                diagnostics.append(Diagnostic(.error, at(index, entry.idNode),
                                              "duplicate playbook id '\(entry.playbook.id)' (also in \(files[first]))"))
            } else {
                firstByID[entry.playbook.id] = index
            }
        }
        let types = directory.incidentTypes.map(\.id)
        let sites = directory.sites.keys.sorted()
        for (index, entry) in located.enumerated() {
            let match = entry.playbook.match
            var runs = false
            var ambiguous: Set<Int> = []
            for type in types where match.catchAll || match.types.contains(type) {
                for severity in Severity.allCases {
                    for site in sites where match.matches(type: type, severity: severity, site: site) {
                        var wins = true
                        for (other, otherEntry) in located.enumerated() where other != index
                            && otherEntry.playbook.match.matches(type: type, severity: severity, site: site) {
                            let (mine, theirs) = (match.specificity, otherEntry.playbook.match.specificity)
                            if theirs > mine { wins = false }
                            if theirs == mine, other < index { ambiguous.insert(other) }
                        }
                        runs = runs || wins
                    }
                }
            }
            for other in ambiguous.sorted() {
                diagnostics.append(Diagnostic(.error, at(index, entry.matchNode),
                    "playbooks '\(located[other].playbook.id)' and '\(entry.playbook.id)' both match some incidents equally; narrow one of them with types, severities or sites"))
            }
            if !runs {
                diagnostics.append(Diagnostic(.error, at(index, entry.matchNode),
                    "playbook '\(entry.playbook.id)' can never run: more specific playbooks take every incident it matches"))
            }
        }
        return diagnostics
    }
}
