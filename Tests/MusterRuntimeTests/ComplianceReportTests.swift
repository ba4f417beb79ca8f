// The compliance report, computed from the stored record on both stores.
import Foundation
import MusterCore
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

@Suite("Compliance report")
struct ComplianceReportTests {
    /// Commits `event` to incident `id` at `offset` seconds after the school morning.
    private func apply(_ event: IncidentEvent, to id: IncidentID, at offset: TimeInterval, _ store: any Store) async throws {
        let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(id, event)], to: store, now: schoolMorning.addingTimeInterval(offset))
        if case .failure(let error) = results.first { Issue.record("\(event) refused: \(error)") }
    }

    private func report(_ store: any Store, type: IncidentTypeID = "suicide-risk", site: SiteID = "lincoln-high", subject: String,
                        at offset: TimeInterval = 0, drill: Bool = false) async throws -> IncidentID {
        let report = Report(type: type, severity: .high, site: site, reporter: .person("aokafor"), summary: "A concern", subject: subject,
                            receivedAt: schoolMorning.addingTimeInterval(offset), drill: drill)
        let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report))], to: store,
                                                                            now: schoolMorning.addingTimeInterval(offset))
        return try #require(try results.first?.get()).incident.id
    }

    @Test("per incident and by site and type, from the record: acknowledgement, resolution and outcome, escalations, missed deadlines, tasks never done, unowned time; drills left out",
          arguments: Backend.allCases)
    func figures(backend: Backend) async throws {
        let (store, close) = try await freshStore(backend)
        defer { Task { await close() } }
        try await store.migrate()
        // A: acknowledged after 2 minutes, resolved after an hour as referred; its screening never done.
        let a = try await report(store, subject: "S-A")
        try await apply(.acknowledged(by: .person("dchen"), path: .api, step: 0), to: a, at: 120, store)
        try await apply(.taskCompleted("supervision", by: .person("dchen")), to: a, at: 300, store)
        try await apply(.resolved(by: .person("dchen"), note: nil, outcome: "referred"), to: a, at: 3600, store)
        // B: nobody answers. Every step's deadline passes and the supervision deadline too, until it is
        // unowned; someone takes it 10 minutes after that.
        let b = try await report(store, subject: "S-B")
        var unownedAt: TimeInterval?
        for _ in 0..<30 {
            let state = try #require(try await store.incident(b))
            if state.phase == .unowned {
                unownedAt = state.timers.isEmpty ? nil : unownedAt
                break
            }
            let next = try #require(state.timers.filter { if case .fallbackRepeat = $0.key { false } else { true } }.min { $0.due < $1.due })
            try await apply(.timerFired(next.key), to: b, at: next.due.timeIntervalSince(schoolMorning), store)
            if try await store.incident(b)?.phase == .unowned { unownedAt = next.due.timeIntervalSince(schoolMorning) }
        }
        let unowned = try #require(unownedAt, "the incident became unowned")
        try await apply(.acknowledged(by: .person("dchen"), path: .api, step: nil), to: b, at: unowned + 600, store)
        // A drill and an incident outside the period are left out; another type at another site has its own line.
        _ = try await report(store, subject: "S-D", drill: true)
        _ = try await report(store, subject: "S-E", at: -86_400)
        let c = try await report(store, type: "threat-of-violence", site: "washington-elementary", subject: "S-C", at: 60)
        try await apply(.escalatedByHand(by: .person("aokafor"), reason: nil), to: c, at: 90, store)

        let asOf = schoolMorning.addingTimeInterval(86_400)
        let built = try await ComplianceReport.build(store: store, from: schoolMorning.addingTimeInterval(-60), to: asOf, site: nil, type: nil, asOf: asOf)
        #expect(built.drillsLeftOut == 1)
        #expect(built.incidents.count == 3)
        let rows = Dictionary(uniqueKeysWithValues: built.incidents.map { ($0.id, $0) })
        let rowA = try #require(rows[a.rawValue]), rowB = try #require(rows[b.rawValue]), rowC = try #require(rows[c.rawValue])
        #expect(rowA.firstPageSeconds == 0 && rowA.acknowledgedSeconds == 120 && rowA.resolvedSeconds == 3600)
        #expect(rowA.outcome == "referred" && rowA.status == "resolved")
        #expect(rowA.tasksNeverDone.contains("screening") && !rowA.tasksNeverDone.contains("supervision"))
        #expect(rowA.deadlinesMissed == 0 && rowA.escalations == 0 && rowA.unownedPeriods == 0)
        #expect(rowB.acknowledgedSeconds == unowned + 600 && rowB.resolvedSeconds == nil && rowB.outcome == nil)
        #expect(rowB.escalations == 4, "three times to the next step, then to the fallback")
        // Only supervision's deadline fired; by the report's time B's tasks due by then are not done.
        #expect(rowB.deadlinesMissed == 1 && rowB.tasksLate.isEmpty)
        let dueByThen = try #require(try await store.incident(b)).tasks.filter { $0.dueAt.map { $0 <= asOf } ?? false }.map(\.id.rawValue)
        #expect(Set(rowB.tasksNeverDone) == Set(dueByThen))
        #expect(rowB.tasksNeverDone.contains("supervision"))
        #expect(rowB.unownedPeriods == 1 && rowB.unownedSeconds == 600)
        #expect(rowC.escalations == 1 && rowC.site == "washington-elementary")

        let all = try #require(built.summary.last)
        #expect(all.site == "all" && all.incidents == 3 && all.acknowledged == 2 && all.resolved == 1)
        #expect(all.medianAcknowledgedSeconds == (120 + unowned + 600) / 2 && all.maxAcknowledgedSeconds == unowned + 600)
        #expect(all.escalations == 5 && all.deadlinesMissed == 1 && all.unownedSeconds == 600)
        #expect(built.summary.map { "\($0.site) \($0.type) \($0.incidents)" }
                == ["lincoln-high suicide-risk 2", "washington-elementary threat-of-violence 1", "all all 3"])

        // Filtered by site and type; and the same figures from the record read again.
        let lincoln = try await ComplianceReport.build(store: store, from: schoolMorning.addingTimeInterval(-60), to: asOf,
                                                       site: "lincoln-high", type: "suicide-risk", asOf: asOf)
        #expect(lincoln.incidents.map(\.id).sorted() == [a.rawValue, b.rawValue].sorted())
        #expect(lincoln.incidents == built.incidents.filter { $0.site == "lincoln-high" })

        let csv = built.csv(.incidents).split(separator: "\r\n").map(String.init)
        #expect(csv.first?.hasPrefix("number,id,type,site,severity,reported_at,status,outcome,first_page_seconds") == true)
        #expect(csv.count == 4)
        #expect(csv.contains { $0.contains(",referred,0.000,") && $0.contains(",120.000,3600.000,") })
        let json = try #require(try JSONSerialization.jsonObject(with: built.json()) as? [String: Any])
        #expect(json["drills_left_out"] as? Int == 1)
        #expect((json["incidents"] as? [[String: Any]])?.count == 3)
    }

    @Test("the period: dates are whole days in the district's time zone, the last one included; instants as they are; errors say which end")
    func period() throws {
        let zone = shippedCatalog.directory.district.zone
        let days = try ComplianceReport.period(from: "2026-12-01", to: "2026-12-02", zone: zone).get()
        #expect(days.from == instant("2026-12-01T00:00:00-06:00") && days.to == instant("2026-12-03T00:00:00-06:00"))
        let instants = try ComplianceReport.period(from: "2026-12-01T10:00:00Z", to: "2026-12-01T11:00:00Z", zone: zone).get()
        #expect(instants.to.timeIntervalSince(instants.from) == 3600)
        #expect(throws: ComplianceReport.PeriodError.self) { try ComplianceReport.period(from: "2026-02-30", to: "2026-03-01", zone: zone).get() }
        if case .failure(let error) = ComplianceReport.period(from: "2026-12-02", to: "2026-12-01", zone: zone) {
            #expect(error.field == "to")
        } else {
            Issue.record("a period that ends before it starts was taken")
        }
    }
}
