// The plain reads the runtime hands to the service: incidents, their timelines and reports, the
// account behind a token, and the figures operations look at. Everything that changes an incident
// goes through the runtime (`Runtime.report`, `Runtime.apply`); these only read what the store keeps.
import Foundation
import MusterAudit
import MusterCore
import MusterStore

public struct IncidentReads: Sendable {
    private let store: any Store

    public init(store: any Store) {
        self.store = store
    }

    public func incident(_ id: IncidentID) async throws -> IncidentState? { try await store.incident(id) }
    /// The incident with this number, the one people say and type.
    public func incidentID(number: Int) async throws -> IncidentID? { try await store.incidentID(number: number) }
    /// The incident a report with this idempotency key opened or joined (integrations find their incident by it).
    public func incidentID(idempotencyKey: String) async throws -> IncidentID? { try await store.incidentID(idempotencyKey: idempotencyKey) }
    public func incidents(_ filter: IncidentFilter) async throws -> [IncidentSummary] { try await store.incidents(filter) }
    /// The incident's audit entries in order, student text included.
    public func timeline(_ id: IncidentID) async throws -> [AuditRecord] { try await store.timeline(id) }

    public func complianceReport(from: Date, to: Date, site: SiteID?, type: IncidentTypeID?, asOf: Date) async throws -> ComplianceReport {
        try await ComplianceReport.build(store: store, from: from, to: to, site: site, type: type, asOf: asOf)
    }
    /// Every report of an incident, oldest first.
    public func reports(_ id: IncidentID) async throws -> [Report] { try await store.reports(id) }
    /// Whether an inbound message (an SMS's MessageSid) was taken before.
    public func inboundMessageTaken(_ id: String) async throws -> Bool { try await store.inboundMessageTaken(id) }

    /// How tokens are kept: their SHA-256, never the token itself.
    public static func tokenHash(_ token: String) -> String { APIToken.hash(token) }
    /// The account an active API token or integration key belongs to, by the token's hash.
    public func account(tokenHash: String) async throws -> UserAccount? { try await store.account(tokenHash: tokenHash) }

    /// The newest signed checkpoint of the audit log.
    public func latestCheckpoint() async throws -> StoredCheckpoint? { try await store.latestCheckpoint() }
    /// The highest migration applied, and the highest this build knows (readiness).
    public func schemaVersion() async throws -> (applied: Int, known: Int) { try await store.schemaVersion() }
    /// Counts by outbox status ("queued", "sent", "failed", "demonstrated").
    public func outboxCounts() async throws -> [String: Int] { try await store.outboxCounts() }
    /// Committed audit entries not yet in the tree.
    public func pendingAuditEntries() async throws -> Int { try await store.pendingAuditEntries() }

    /// Every disclosure concerning one student reference (a parent's request under FERPA, 34 CFR 99.32):
    /// the incidents with a report naming the reference, and their `disclosed` entries, oldest first.
    /// References are sealed, so each incident's reports are opened to compare.
    public func disclosures(concerningSubject subject: String) async throws -> [Disclosure] {
        let wanted = subject.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !wanted.isEmpty else { return [] }
        var found: [Disclosure] = []
        var before: Int?
        while true {
            let page = try await store.incidents(IncidentFilter(before: before, limit: 500))
            for incident in page where try await store.reports(incident.ref.id).contains(where: { $0.subject == wanted }) {
                for entry in try await store.timeline(incident.ref.id) where entry.action == .disclosed {
                    found.append(Disclosure(incident: incident.ref, record: entry))
                }
            }
            guard page.count == 500, let last = page.last else { break }
            before = last.ref.number
        }
        return found.sorted { $0.record.at < $1.record.at }
    }
}

/// A `disclosed` entry and its incident.
public struct Disclosure: Sendable {
    public var incident: IncidentRef
    public var record: AuditRecord

    /// Who received it: the partner paged, or the recipient a person named.
    public var recipient: String { record.recipient?.description ?? record.target ?? "" }
}
