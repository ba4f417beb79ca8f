// Prometheus metrics for the service: what was reported, opened, paged, escalated and
// acknowledged, and how the queues and timers are doing. One registry per service instance.
import Foundation
import MusterCore
import MusterRuntime
import Prometheus
import Synchronization

public final class MusterMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let timeToAcknowledge: ValueHistogram
    private let timerLateness: ValueHistogram
    private let checkpointLatency: ValueHistogram
    private static let escalationsHelp = "Escalations to a further step or the fallback."
    private static let overdueHelp = "Protocol tasks that passed their deadline."
    private let counters = Mutex<[String: Counter]>([:])

    public init() {
        timeToAcknowledge = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "time_to_acknowledge", unitName: "seconds",
                                             helpText: "Time from an incident's report to its acknowledgement."),
            labels: [], buckets: [15, 30, 60, 120, 300, 600, 900, 1800, 3600])
        timerLateness = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "timer_lateness", unitName: "seconds",
                                             helpText: "How late timers fired after falling due."),
            labels: [], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5])
        checkpointLatency = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "audit_checkpoint_latency", unitName: "seconds",
                                             helpText: "From an audit entry's commit to the signed checkpoint covering it (the oldest entry of each sequencer pass)."),
            labels: [], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10])
        // Registered now, so they read 0 before the first escalation.
        _ = counter("escalations", Self.escalationsHelp, [])
        _ = counter("tasks_overdue", Self.overdueHelp, [])
    }

    /// The counter `muster_NAME_total` with these labels, made once and then found in a cache (the
    /// registry would validate the name and labels again on every increment).
    private func counter(_ name: String, _ help: String, _ labels: [(String, String)]) -> Counter {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        if let found = counters.withLock({ $0[key] }) { return found }
        let made = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "muster", metricName: name, unitName: "total", helpText: help),
                                        labels: labels)
        counters.withLock { $0[key] = made }
        return made
    }

    /// A report arrived ("api", "alertmanager", "pagerduty").
    public func reportReceived(source: String) {
        counter("reports_received", "Reports received, by source.", [("source", source)]).increment()
    }

    /// A person's report past their account's budget, taken and grouped (RateLimiter).
    public func reportOverBudget(source: String) {
        counter("reports_over_budget", "Reports taken past their account's rate budget and grouped, by source.", [("source", source)]).increment()
    }

    /// How many coverage gaps (`muster playbook coverage`) the next 24 hours held when the service started.
    public func coverageGaps(_ count: Int) {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "coverage_gaps", unitName: "",
                                                            helpText: "Runs of hours in the next 24 hours, as checked at start, in which a playbook's first step would reach nobody."),
                           labels: []).set(Double(count))
    }

    /// Hooks for the runtime.
    public func observer() -> RuntimeObserver {
        RuntimeObserver(
            committed: { [self] commands, results in committed(commands, results) },
            timerFired: { [timerLateness] lateness in timerLateness.record(max(0, lateness)) },
            deliveryAttempted: { [self] channel, outcome in
                counter("pages", "Notification delivery attempts, by channel and outcome.",
                        [("channel", channel.rawValue), ("outcome", outcome)]).increment()
            },
            checkpointed: { [self] entries, latency in
                counter("audit_entries_sequenced", "Audit entries integrated into the Merkle tree by this instance's sequencer.", []).increment(by: Int64(entries))
                checkpointLatency.record(max(0, latency))
            })
    }

    private func committed(_ commands: [IncidentCommand], _ results: [Result<Committed, StoreError>]) {
        for (command, result) in zip(commands, results) {
            guard case .success(let committed) = result else { continue }
            let outcome = committed.outcome
            if case .report(let intake) = command, case .created = outcome {
                counter("incidents_opened", "Incidents opened, by type and severity.",
                        [("type", intake.report.type.rawValue), ("severity", intake.report.severity.rawValue)]).increment()
            }
            var stepsEscalated = Set<String>(), tasksOverdue = Set<String>()
            for notification in outcome.queued {
                switch (notification.kind, notification.id.qualifier) {
                case (.page, .step(let step, round: 0)) where step > 0: stepsEscalated.insert("\(step)")
                case (.fallback, .none): stepsEscalated.insert("fallback")
                case (.taskOverdue, .task(let task)): tasksOverdue.insert(task.rawValue)
                default: break
                }
            }
            if !stepsEscalated.isEmpty { counter("escalations", Self.escalationsHelp, []).increment(by: Int64(stepsEscalated.count)) }
            if !tasksOverdue.isEmpty { counter("tasks_overdue", Self.overdueHelp, []).increment(by: Int64(tasksOverdue.count)) }
            // By the API or a link (an event), or by an SMS reply (an inbound message; a repeat is a duplicate).
            let acknowledgement = switch command {
            case .event(_, .acknowledged): true
            case .inbound(_, .acknowledged, _): if case .applied = outcome { true } else { false }
            default: false
            }
            if acknowledgement, let at = committed.state.acknowledgedAt {
                timeToAcknowledge.record(max(0, at.timeIntervalSince(committed.state.incident.reportedAt)))
            }
        }
    }

    /// The exposition text, with the queue depths read now.
    public func render(_ reads: IncidentReads, now: Date) async -> [UInt8] {
        if let counts = try? await reads.outboxCounts() {
            for status in ["queued", "sent", "failed", "demonstrated"] {
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "outbox_notifications", unitName: "",
                                                                    helpText: "Notifications in the outbox, by status (queued is the delivery queue's depth)."),
                                   labels: [("status", status)]).set(Double(counts[status] ?? 0))
            }
        }
        // What an alert on "nobody owns this" needs: how many open incidents are in each phase, and how long
        // the oldest one still escalating (unacknowledged) or unowned has waited.
        if let open = try? await reads.incidents(IncidentFilter(phases: IncidentFilter.openPhases, limit: 10_000)) {
            for phase in IncidentFilter.openPhases.sorted() {
                let inPhase = open.filter { $0.phase == phase }
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "incidents_open", unitName: "",
                                                                    helpText: "Open incidents, by phase (escalating: nobody has acknowledged yet; unowned: every step and the fallback were paged)."),
                                   labels: [("phase", phase)]).set(Double(inPhase.count))
                guard phase != "acknowledged" else { continue }
                let oldest = inPhase.map { now.timeIntervalSince($0.reportedAt) }.max() ?? 0
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "incident_oldest_waiting", unitName: "seconds",
                                                                    helpText: "How long the oldest open incident in the phase has waited since its report (0 when there is none)."),
                                   labels: [("phase", phase)]).set(oldest)
            }
        }
        if let pending = try? await reads.pendingAuditEntries() {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "audit_entries_pending", unitName: "",
                                                                helpText: "Committed audit entries not yet in a signed checkpoint (the sequencer's queue)."),
                               labels: []).set(Double(pending))
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
