// Prometheus metrics for the service: what was reported, opened, paged, escalated and
// acknowledged, and how the queues and timers are doing. One registry per service instance.
import Foundation
import MusterCore
import MusterRuntime
import MusterStore
import Prometheus

public final class MusterMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let timeToAcknowledge: ValueHistogram
    private let timerLateness: ValueHistogram
    private let escalations: Counter
    private let overdueTasks: Counter

    public init() {
        timeToAcknowledge = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "time_to_acknowledge", unitName: "seconds",
                                             helpText: "Time from an incident's report to its acknowledgement."),
            labels: [], buckets: [15, 30, 60, 120, 300, 600, 900, 1800, 3600])
        timerLateness = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "timer_lateness", unitName: "seconds",
                                             helpText: "How late timers fired after falling due."),
            labels: [], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5])
        escalations = registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "escalations", unitName: "total",
                                             helpText: "Escalations to a further step or the fallback."), labels: [])
        overdueTasks = registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "muster", metricName: "tasks_overdue", unitName: "total",
                                             helpText: "Protocol tasks that passed their deadline."), labels: [])
    }

    /// A report arrived ("api", "alertmanager", "pagerduty").
    public func reportReceived(source: String) {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "reports_received", unitName: "total",
                                                              helpText: "Reports received, by source."),
                             labels: [("source", source)]).increment()
    }

    /// Hooks for the runtime; `store` is read when an acknowledgement's timing is needed.
    public func observer(store: any Store) -> RuntimeObserver {
        RuntimeObserver(
            committed: { [self] commands, results in committed(commands, results, store: store) },
            timerFired: { [timerLateness] lateness in timerLateness.record(max(0, lateness)) },
            deliveryAttempted: { [registry] channel, outcome in
                registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "pages", unitName: "total",
                                                                      helpText: "Notification delivery attempts, by channel and outcome."),
                                     labels: [("channel", channel.rawValue), ("outcome", outcome)]).increment()
            })
    }

    private func committed(_ commands: [StoreCommand], _ results: [Result<CommandOutcome, StoreError>], store: any Store) {
        for (command, result) in zip(commands, results) {
            guard case .success(let outcome) = result else { continue }
            if case .report(let intake) = command, case .created = outcome {
                registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "incidents_opened", unitName: "total",
                                                                      helpText: "Incidents opened, by type and severity."),
                                     labels: [("type", intake.report.type.rawValue), ("severity", intake.report.severity.rawValue)]).increment()
            }
            var stepsEscalated = Set<String>(), tasksOverdue = Set<String>()
            for notification in outcome.queued {
                switch (notification.kind, notification.id.qualifier) {
                case (.page, .step(let step, round: 0)) where step > 0: stepsEscalated.insert("\(step)")
                case (.fallback, _): stepsEscalated.insert("fallback")
                case (.taskOverdue, .task(let task)): tasksOverdue.insert(task.rawValue)
                default: break
                }
            }
            if !stepsEscalated.isEmpty { escalations.increment(by: Int64(stepsEscalated.count)) }
            if !tasksOverdue.isEmpty { overdueTasks.increment(by: Int64(tasksOverdue.count)) }
            if case .event(let id, .acknowledged) = command {
                Task { [timeToAcknowledge] in
                    guard let state = try? await store.incident(id), let at = state.acknowledgedAt else { return }
                    timeToAcknowledge.record(max(0, at.timeIntervalSince(state.incident.reportedAt)))
                }
            }
        }
    }

    /// The exposition text, with the queue depths read now.
    public func render(store: any Store) async -> [UInt8] {
        if let counts = try? await store.outboxCounts() {
            for status in ["queued", "sent", "failed"] {
                registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "muster", metricName: "outbox_notifications", unitName: "",
                                                                    helpText: "Notifications in the outbox, by status (queued is the delivery queue's depth)."),
                                   labels: [("status", status)]).set(Double(counts[status] ?? 0))
            }
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
