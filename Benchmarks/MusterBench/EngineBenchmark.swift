// The engine on one core, and loading and validating the playbooks.
import Foundation
import MusterCore
import MusterPlaybooks

func engineBenchmark(folder: String) throws {
    // 1. Loading and validating every playbook and the directory.
    var loadTimes: [Double] = []
    var loaded: Catalog?
    for _ in 0..<30 {
        let start = ContinuousClock.now
        loaded = PlaybookLoader.load(folder: URL(fileURLWithPath: folder)).catalog
        loadTimes.append(milliseconds(ContinuousClock.now - start))
    }
    guard let catalog = loaded else { throw BenchmarkError("the playbooks in \(folder) do not load; run `muster playbook lint \(folder)`") }
    loadTimes.sort()
    print(String(format: "load+validate %@: median %.2f ms, min %.2f ms, max %.2f ms (%d playbooks, %d people, %d schedules)",
                 folder, loadTimes[loadTimes.count / 2], loadTimes[0], loadTimes[loadTimes.count - 1],
                 catalog.playbooks.playbooks.count, catalog.directory.people.count, catalog.directory.schedules.count))

    // 2. A typical incident's life, six events: reported (pages step 1), its acknowledgement window
    //    runs out (pages again), acknowledged, a task completed, a note, resolved.
    let site = SiteID("lincoln-high")
    guard let playbook = catalog.playbooks.playbook(type: "suicide-risk", severity: .high, site: site),
          let firstTask = playbook.tasks.first?.id, let engine = catalog.engines[playbook.id] else {
        throw BenchmarkError("no suicide-risk playbook with tasks for \(site)")
    }
    let reportedAt = iso8601("2026-12-02T16:00:00Z")
    let responder = Actor.person("dchen")
    let report = Report(type: "suicide-risk", severity: .high, site: site, reporter: responder, summary: "text", subject: "S-1", receivedAt: reportedAt)
    let ackWindow = playbook.steps(of: playbook.variant(for: catalog.directory.schoolTime(at: site, instant: reportedAt)))[0].ackWithin.seconds
    let script: [(Int, IncidentEvent)] = [
        (ackWindow, .timerFired(.ackDeadline(step: 0, round: 0))),
        (ackWindow + 60, .acknowledged(by: responder, path: .link, step: 0)),
        (ackWindow + 600, .taskCompleted(firstTask, by: responder)),
        (ackWindow + 700, .noteAdded(by: responder, text: "note")),
        (ackWindow + 900, .resolved(by: responder, note: nil)),
    ]

    func round(incidents: Int) -> (rate: Double, effectsPerEvent: Double, rejected: Int) {
        var effects: [Effect] = []
        effects.reserveCapacity(64)
        var events = 0, effectCount = 0, rejected = 0
        let start = ContinuousClock.now
        for n in 0..<incidents {
            effects.removeAll(keepingCapacity: true)
            var state = engine.start(Incident(id: IncidentID("inc"), number: n, report: report), now: reportedAt, effects: &effects)
            effectCount += effects.count
            for (offset, event) in script {
                effects.removeAll(keepingCapacity: true)
                do {
                    try engine.apply(event, to: &state, now: reportedAt.addingTimeInterval(TimeInterval(offset)), effects: &effects)
                } catch {
                    rejected += 1
                }
                effectCount += effects.count
            }
            events += 1 + script.count
        }
        return (Double(events) / (milliseconds(ContinuousClock.now - start) / 1000), Double(effectCount) / Double(events), rejected)
    }

    var rates: [Double] = []
    var last = (rate: 0.0, effectsPerEvent: 0.0, rejected: 0)
    for _ in 0..<7 {
        last = round(incidents: 100_000)
        rates.append(last.rate)
    }
    rates.sort()
    print(String(format: "engine (%@ playbook, 6 events per incident): best %.0f, median %.0f events/s on one core (%.1f effects per event, %d refused)",
                 playbook.id.rawValue, rates[rates.count - 1], rates[rates.count / 2], last.effectsPerEvent, last.rejected))
}
