// The dispatcher's one-by-one fallback after a refused group commit, against a real SQLite store behind
// a wrapper that refuses the batch and then stops answering.
import Foundation
import MusterAudit
import MusterCore
import MusterRuntime
import MusterStore
import MusterTestSupport
import Synchronization
import Testing

/// Forwards everything to `base`, but its commits answer from a script: `.refuse` (the database refused
/// the batch), `.noAnswer` (it did not answer), `.pass`. Counts the commits it was asked for.
private final class ScriptedStore: Store {
    enum Answer { case refuse, noAnswer, pass }
    let base: any Store
    private let script: Mutex<[Answer]>
    let commits = Mutex(0)

    init(base: any Store, script: [Answer]) {
        self.base = base
        self.script = Mutex(script)
    }

    func commit<A: Sendable>(reading needs: CommitNeeds, now: Date, decide: @escaping @Sendable (CommitSnapshot) -> (BatchWrites, A)) async throws -> A {
        commits.withLock { $0 += 1 }
        switch script.withLock({ $0.isEmpty ? .pass : $0.removeFirst() }) {
        case .refuse: throw CommitRefused("deadlock detected")
        case .noAnswer: throw StoreError.unavailable("the database did not answer in time")
        case .pass: return try await base.commit(reading: needs, now: now, decide: decide)
        }
    }

    func migrate() async throws { try await base.migrate() }
    func schemaVersion() async throws -> (applied: Int, known: Int) { try await base.schemaVersion() }
    func incident(_ id: IncidentID) async throws -> IncidentState? { try await base.incident(id) }
    func incidentID(number: Int) async throws -> IncidentID? { try await base.incidentID(number: number) }
    func incidentID(idempotencyKey: String) async throws -> IncidentID? { try await base.incidentID(idempotencyKey: idempotencyKey) }
    func incidents(_ filter: IncidentFilter) async throws -> [IncidentSummary] { try await base.incidents(filter) }
    func timeline(_ id: IncidentID) async throws -> [AuditRecord] { try await base.timeline(id) }
    func auditBytes(_ id: IncidentID) async throws -> [[UInt8]] { try await base.auditBytes(id) }
    func reports(_ id: IncidentID) async throws -> [Report] { try await base.reports(id) }
    func takeInboundMessage(_ id: String, at: Date) async throws -> Bool { try await base.takeInboundMessage(id, at: at) }
    func inboundMessageTaken(_ id: String) async throws -> Bool { try await base.inboundMessageTaken(id) }
    func claimDueTimers(now: Date, limit: Int, owner: String, lease: TimeInterval) async throws -> [ClaimedTimer] {
        try await base.claimDueTimers(now: now, limit: limit, owner: owner, lease: lease)
    }
    func nextTimerDue(now: Date) async throws -> Date? { try await base.nextTimerDue(now: now) }
    func claimDeliveries(now: Date, limit: Int, owner: String, lease: TimeInterval, skipping: Set<ChannelKind>) async throws -> [ClaimedDelivery] {
        try await base.claimDeliveries(now: now, limit: limit, owner: owner, lease: lease, skipping: skipping)
    }
    func deferDeliveries(_ deferrals: [NotificationID: Date], owner: String) async throws {
        try await base.deferDeliveries(deferrals, owner: owner)
    }
    func releaseClaims(owner: String) async throws { try await base.releaseClaims(owner: owner) }
    func keepPlaybooks(_ playbooks: [KeptPlaybook], at: Date) async throws { try await base.keepPlaybooks(playbooks, at: at) }
    func keptPlaybooks() async throws -> [KeptPlaybook] { try await base.keptPlaybooks() }
    func outboxCounts() async throws -> [String: Int] { try await base.outboxCounts() }
    func addUser(_ user: UserAccount) async throws { try await base.addUser(user) }
    func user(_ id: String) async throws -> UserAccount? { try await base.user(id) }
    func users() async throws -> [UserAccount] { try await base.users() }
    func addToken(id: String, user: String, label: String, hash: String, at: Date) async throws {
        try await base.addToken(id: id, user: user, label: label, hash: hash, at: at)
    }
    func revokeToken(id: String, at: Date) async throws -> Bool { try await base.revokeToken(id: id, at: at) }
    func tokens(user: String?) async throws -> [APITokenInfo] { try await base.tokens(user: user) }
    func account(tokenHash: String) async throws -> UserAccount? { try await base.account(tokenHash: tokenHash) }
    func updateUser(_ user: UserAccount) async throws { try await base.updateUser(user) }
    func setPasswordHash(user: String, hash: String?) async throws { try await base.setPasswordHash(user: user, hash: hash) }
    func passwordHash(user: String) async throws -> String? { try await base.passwordHash(user: user) }
    func addCredential(_ kind: WebCredentialKind, hash: String, user: String, at: Date, expires: Date) async throws {
        try await base.addCredential(kind, hash: hash, user: user, at: at, expires: expires)
    }
    func sessionAccount(hash: String, now: Date) async throws -> UserAccount? { try await base.sessionAccount(hash: hash, now: now) }
    func takeSignInLink(hash: String, now: Date) async throws -> String? { try await base.takeSignInLink(hash: hash, now: now) }
    func endCredentials(hash: String?, user: String?, at: Date) async throws { try await base.endCredentials(hash: hash, user: user, at: at) }
    func appendToLog(limit: Int, now: Date, extend: @escaping @Sendable (LogBatch) throws -> LogExtension) async throws -> SequencerPass? {
        try await base.appendToLog(limit: limit, now: now, extend: extend)
    }
    func pendingAuditEntries() async throws -> Int { try await base.pendingAuditEntries() }
    func checkpoints(fromSize size: Int64, limit: Int) async throws -> [StoredCheckpoint] { try await base.checkpoints(fromSize: size, limit: limit) }
    func latestCheckpoint() async throws -> StoredCheckpoint? { try await base.latestCheckpoint() }
    func treeHashes(_ indices: [Int64]) async throws -> [Int64: LogHash] { try await base.treeHashes(indices) }
    func treeHashes(from: Int64, limit: Int) async throws -> [LogHash] { try await base.treeHashes(from: from, limit: limit) }
    func logLeaves(from: Int64, limit: Int) async throws -> [LogHash] { try await base.logLeaves(from: from, limit: limit) }
    func auditEntries(after: (incident: IncidentID, sequence: Int)?, limit: Int) async throws -> [StoredAuditEntry] {
        try await base.auditEntries(after: after, limit: limit)
    }
    func auditEntries(of incident: IncidentID) async throws -> [StoredAuditEntry] { try await base.auditEntries(of: incident) }
    func dataKey(of incident: IncidentID) async throws -> DataKey? { try await base.dataKey(of: incident) }
    func purgeCandidates(closedBefore date: Date, limit: Int) async throws -> [IncidentID] { try await base.purgeCandidates(closedBefore: date, limit: limit) }
    func scrubDestroyedKeys() async throws { try await base.scrubDestroyedKeys() }
}

@Suite("Group commit fallback")
struct GroupCommitFallbackTests {
    private func report(_ subject: String) -> IncidentCommand {
        .report(ReportIntake(report: Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                                            summary: "note", subject: subject, receivedAt: schoolMorning)))
    }

    @Test("after a refused batch each command commits alone, and the first the database does not answer ends the retry")
    func fallbackStopsWhenTheDatabaseStopsAnswering() async throws {
        let base = try await freshStore(.sqlite, prefix: "muster-fallback-")
        defer { Task { await base.close() } }
        try await base.store.migrate()
        let store = ScriptedStore(base: base.store, script: [.refuse, .pass, .noAnswer])
        let results = try await Dispatcher(catalog: shippedCatalog)
            .outcomes([report("S-1"), report("S-2"), report("S-3"), report("S-4")], to: store, now: schoolMorning)
        guard case .success(.created)? = results.first, case .failure(.unavailable(let unanswered)) = results[1],
              case .failure(.unavailable(let skipped)) = results[2], case .failure(.unavailable) = results[3] else {
            Issue.record("expected created, then unavailable three times; got \(results)")
            return
        }
        #expect(unanswered.contains("did not answer in time"))
        #expect(skipped.hasPrefix("not tried"))
        #expect(store.commits.withLock { $0 } == 3, "the batch, the first command, the unanswered one: no more")
        #expect(try await base.store.incidents(IncidentFilter()).count == 1)
    }
}
