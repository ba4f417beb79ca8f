// The storage contract the runtime needs; PostgreSQL and SQLite implement it, and one conformance
// suite runs against both. The store keeps what the runtime decided: it decides nothing itself.
import Foundation
import MusterCore

public protocol Store: AccessStore, AuditLogStore {
    /// Applies the numbered migrations that are missing; safe to call from several instances.
    func migrate() async throws
    /// The highest migration applied, and the highest this build knows.
    func schemaVersion() async throws -> (applied: Int, known: Int)

    /// One transaction: reads what `needs` names under lock (advisory locks on the grouping and
    /// idempotency keys, row locks on the incidents), hands it to `decide`, writes the rows it returns
    /// and commits. Throws `CommitRefused` when the database refused the batch (nothing was written),
    /// `StoreError.unavailable` when it could not be reached or did not answer in time.
    func commit<Answer: Sendable>(reading needs: CommitNeeds, now: Date,
                                  decide: @escaping @Sendable (CommitSnapshot) -> (BatchWrites, Answer)) async throws -> Answer

    func incident(_ id: IncidentID) async throws -> IncidentState?
    /// The incident with this number, the one people say and type.
    func incidentID(number: Int) async throws -> IncidentID?
    /// The incident a report with this idempotency key opened or joined (integrations find their incident by it).
    func incidentID(idempotencyKey: String) async throws -> IncidentID?
    func incidents(_ filter: IncidentFilter) async throws -> [IncidentSummary]
    /// The incident's audit entries in order, student text included.
    func timeline(_ id: IncidentID) async throws -> [AuditRecord]
    /// The canonical bytes of the incident's audit entries, as stored.
    func auditBytes(_ id: IncidentID) async throws -> [[UInt8]]
    /// Every report of an incident, oldest first.
    func reports(_ id: IncidentID) async throws -> [Report]
    /// Records an inbound message's provider id (an SMS's MessageSid) that changes no incident (a reply
    /// from an unknown number, or one that names nothing it may act on); false when it was taken before.
    /// Messages that change an incident are recorded in that commit (`CommitNeeds.inboundMessages`).
    func takeInboundMessage(_ id: String, at: Date) async throws -> Bool
    /// Whether an inbound message with this provider id was taken before, whatever it did.
    func inboundMessageTaken(_ id: String) async throws -> Bool

    /// Claims up to `limit` timers due at `now` whose lease is free, for `lease` seconds.
    func claimDueTimers(now: Date, limit: Int, owner: String, lease: TimeInterval) async throws -> [ClaimedTimer]
    /// The earliest moment any timer can be claimed (its due time, or its lease's end if claimed).
    func nextTimerDue(now: Date) async throws -> Date?
    /// Claims up to `limit` queued notifications ready to send at `now`, for `lease` seconds, highest
    /// `QueuedNotification.deliveryPriority` first; none on the `skipping` channels (their lanes are full).
    func claimDeliveries(now: Date, limit: Int, owner: String, lease: TimeInterval, skipping: Set<ChannelKind>) async throws -> [ClaimedDelivery]
    /// Hands back claimed notifications that were not attempted (their provider's circuit is open, it
    /// asked to wait, or their lane had no room in time): each waits until its date, its attempts unchanged.
    func deferDeliveries(_ deferrals: [NotificationID: Date], owner: String) async throws
    /// Keeps playbook files by version (a version already kept is left as it is): an incident runs the
    /// version it started with, after a reload and after a restart.
    func keepPlaybooks(_ playbooks: [KeptPlaybook], at: Date) async throws
    /// Every kept playbook file.
    func keptPlaybooks() async throws -> [KeptPlaybook]
    /// Hands back every timer and delivery `owner` has claimed (a clean shutdown), so others take them at once.
    func releaseClaims(owner: String) async throws
    /// Counts by outbox status ("queued", "sent", "failed"), for metrics and tests.
    func outboxCounts() async throws -> [String: Int]
}

extension Store {
    /// Claims on every channel.
    public func claimDeliveries(now: Date, limit: Int, owner: String, lease: TimeInterval) async throws -> [ClaimedDelivery] {
        try await claimDeliveries(now: now, limit: limit, owner: owner, lease: lease, skipping: [])
    }
}
