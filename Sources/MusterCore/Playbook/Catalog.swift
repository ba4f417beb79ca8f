// The loaded model: a directory and the playbooks that run against it, with one engine per playbook.
import Foundation

/// A directory and a set of playbooks that passed validation together.
public struct Catalog: Sendable {
    public let directory: Directory
    public let playbooks: PlaybookSet
    /// One engine per playbook, built once: engines are immutable and shared.
    public let engines: [PlaybookID: EscalationEngine]

    public init(directory: Directory, playbooks: PlaybookSet) {
        self.directory = directory
        self.playbooks = playbooks
        engines = Dictionary(playbooks.playbooks.map { ($0.id, EscalationEngine(playbook: $0, directory: directory)) },
                             uniquingKeysWith: { first, _ in first })
    }
}

/// A playbook's file as it was loaded, kept by its version ("sha256:…" of its bytes) for as long as
/// incidents may run it: a reload never changes a running incident's steps, nor does a restart.
public struct KeptPlaybook: Hashable, Sendable {
    public var version: String
    public var id: PlaybookID
    public var file: String
    public var source: String

    public init(version: String, id: PlaybookID, file: String, source: String) {
        self.version = version
        self.id = id
        self.file = file
        self.source = source
    }
}
