// Incidents keep the playbook they started with: a reload that removes the playbook (or a step of
// it) never changes a running incident's ladder, and neither does a restart on the new files.
import Foundation
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

private let directory = """
    district: { id: d, name: District, time_zone: America/Chicago }
    incident_types:
      - { id: suicide-risk, title: Suicide risk }
    roles:
      - { id: counselor, title: Counselor }
    sites:
      - { id: north, name: North, time_zone: America/Chicago, school_hours: { days: [mon, fri], from: "08:00", to: "15:00" } }
    people:
      - { id: ann, name: Ann, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550100" } ] }
      - { id: bo, name: Bo, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550101" } ] }
      - { id: cy, name: Cy, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550102" } ] }
      - { id: di, name: Di, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550103" } ] }
    """

/// Version 1: two one-minute steps, then cy.
private let first = """
    id: suicide-risk
    title: Suicide risk
    match: { types: [suicide-risk] }
    steps:
      - { notify: [person:ann], via: [sms], ack_within: 1m }
      - { notify: [person:bo], via: [sms], ack_within: 1m }
    fallback: { notify: [person:cy], via: [sms] }
    """

/// The edit: the playbook renamed (its old id is gone), one step only, another fallback.
private let second = """
    id: suicide-risk-2027
    title: Suicide risk (2027)
    match: { types: [suicide-risk] }
    steps:
      - { notify: [person:di], via: [sms], ack_within: 10m }
    fallback: { notify: [person:di], via: [sms] }
    """

private func load(_ playbook: String) throws -> LoadResult {
    let loaded = PlaybookLoader.load(directory: ("directory.yaml", directory), playbooks: [("suicide-risk.yaml", playbook)])
    _ = try #require(loaded.catalog, "\(loaded.diagnostics)")
    return loaded
}

@Suite("Kept playbook versions")
struct KeptPlaybookTests {
    @Test("a reload that removes an incident's playbook, then a restart on the new files: the incident runs its own version to the end",
          arguments: Backend.allCases)
    func incidentsKeepTheirVersion(backend: Backend) async throws {
        let store = try await freshStore(backend)
        let v1 = try load(first), v2 = try load(second)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-kept-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let clock = ManualClock(schoolMorning)
        // Sends finish before the clock moves on: advancing the virtual clock past a send still in
        // flight would time it out, which is the clock's doing, not the provider's.
        func settle() async throws {
            try await eventually("the timers to catch up") { (try await store.nextTimerDue(now: clock.now()) ?? .distantFuture) > clock.now() }
            try await eventually("the sends to finish") { try await store.outboxCounts()["queued", default: 0] == 0 }
        }

        let before = try Runtime(store: store, catalog: try #require(v1.catalog), channel: FileChannel(path: file), clock: clock, instance: "a")
        try await before.keepPlaybooks(v1.kept)
        let workers = Task { await before.run() }
        let report = Report(type: "suicide-risk", severity: .high, site: "north", reporter: .person("di"),
                            summary: "Student wrote a goodbye note", subject: "S-9", receivedAt: schoolMorning)
        guard case .success(.created(let ref, _)) = try await before.report(ReportIntake(report: report)).map(\.outcome) else {
            Issue.record("no incident was created")
            return
        }
        // The edit is loaded while the incident runs step 1.
        await before.reload(try #require(v2.catalog))
        try await before.keepPlaybooks(v2.kept)
        try await settle()
        clock.advance(by: 60)
        try await settle()
        // Step 2 of its own version, which the new files no longer have.
        try await eventually("step 2") { try await store.incident(ref.id)?.phase == .escalating(step: 1, round: 0) }
        workers.cancel()
        clock.wakeAll()
        await workers.value

        // A restart on the new files only: the old version comes back from the database.
        let after = try Runtime(store: store, catalog: try #require(v2.catalog), channel: FileChannel(path: file), clock: clock, instance: "b")
        try await after.keepPlaybooks(v2.kept)
        let restarted = Task { await after.run() }
        defer {
            restarted.cancel()
            clock.wakeAll()
        }
        try await settle()
        clock.advance(by: 60)
        try await settle()
        try await eventually("the fallback") { try await store.incident(ref.id)?.phase == .unowned }
        let state = try #require(try await store.incident(ref.id))
        #expect(state.playbookVersion == v1.kept.first?.version)
        // What the pages and the API read of it (its tasks, flags, outcomes) is that version too.
        #expect(await after.playbook(for: state)?.version == v1.kept.first?.version)
        #expect(v2.catalog?.playbooks.playbooks.first { $0.id == state.playbook }?.version != v1.kept.first?.version)
        let timeline = try await store.timeline(ref.id)
        let paged = timeline.filter { $0.action == .paged || $0.action == .fallbackPaged }.compactMap(\.recipient)
        #expect(paged == [.person("ann"), .person("bo"), .person("cy")], "its own ladder to the end; nobody from the new playbook")
        #expect(!timeline.contains { $0.action == .deliveryFailed }, "\(timeline.filter { $0.action == .deliveryFailed }.map { "\($0.recipient.map(String.init(describing:)) ?? "") \($0.channel?.rawValue ?? "") \($0.detail ?? "")" })")
        #expect(timeline.first?.detail?.contains("playbook suicide-risk \(v1.kept.first?.version ?? "?")") == true, "the timeline says which version it runs")
        #expect(Set(try await store.keptPlaybooks().map(\.version)) == Set((v1.kept + v2.kept).map(\.version)))
    }
}
