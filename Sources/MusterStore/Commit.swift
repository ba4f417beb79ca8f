// The commit contract between the runtime, which decides, and a store, which keeps: the store reads
// what a batch needs under lock (`CommitNeeds` → `CommitSnapshot`), hands it to the runtime's
// decision, and writes the rows that come back (`BatchWrites`) in the same transaction. The store
// knows nothing of playbooks or the engine; both stores write the same row types.
import Foundation
import MusterAudit
import MusterCore

/// What a batch must read, under lock, before it can be decided.
public struct CommitNeeds: Sendable, Hashable {
    /// Idempotency keys whose reports may already be taken (sorted: locks are taken in this order).
    public var idempotencyKeys: [String]
    /// Grouping-key hashes whose open incident may take a report (sorted).
    public var groupKeyHashes: [String]
    /// Incidents the batch changes.
    public var incidentIDs: [IncidentID]
    /// How many new incident numbers may be needed.
    public var newNumbers: Int
    /// Delivery attempts to record, each only if its worker still holds the notification: the outbox
    /// row is updated and the attempt's row written under the row's lock, after the incidents' locks
    /// and before the decision; the snapshot says which were recorded, so the decision reacts to
    /// exactly those. An attempt is a fact: it stays recorded even when the engine refuses the event.
    public var deliveryAttempts: [DeliveryRecord]
    /// Provider ids of inbound messages (an SMS reply's MessageSid) to take once: each is recorded in
    /// this transaction unless an earlier one recorded it; the snapshot says which were new. Like an
    /// attempt, a received message is a fact: it stays recorded even when the engine refuses its event.
    public var inboundMessages: [InboundMessage]

    public init(idempotencyKeys: [String] = [], groupKeyHashes: [String] = [], incidentIDs: [IncidentID] = [], newNumbers: Int = 0,
                deliveryAttempts: [DeliveryRecord] = [], inboundMessages: [InboundMessage] = []) {
        self.idempotencyKeys = idempotencyKeys
        self.groupKeyHashes = groupKeyHashes
        self.incidentIDs = incidentIDs
        self.newNumbers = newNumbers
        self.deliveryAttempts = deliveryAttempts
        self.inboundMessages = inboundMessages
    }
}

/// A message that arrived from a provider (an SMS reply), by the provider's own id for it.
public struct InboundMessage: Sendable, Hashable {
    /// The provider's id (Twilio's MessageSid), unique per message; a replayed request carries the same.
    public var id: String
    public var incident: IncidentID

    public init(id: String, incident: IncidentID) {
        self.id = id
        self.incident = incident
    }
}

/// One attempt at a claimed notification, as the outbox records it.
public struct DeliveryRecord: Sendable, Hashable {
    public var notification: QueuedNotification
    /// The worker that claimed the notification; nothing is recorded unless it still holds it.
    public var owner: String
    public var outcome: DeliveryOutcome

    public var id: NotificationID { notification.id }

    public init(notification: QueuedNotification, owner: String, outcome: DeliveryOutcome) {
        self.notification = notification
        self.owner = owner
        self.outcome = outcome
    }
}

/// What the store read for a batch, under the locks the commit holds until it ends.
public struct CommitSnapshot: Sendable {
    /// Reports already taken, by idempotency key.
    public var idempotent: [String: IncidentRef] = [:]
    /// Open incidents whose grouping window is still open, by grouping-key hash (the newest of a group).
    public var openByGroup: [String: IncidentID] = [:]
    /// The current state of every incident the batch touches (events' and open groups'), its text opened.
    public var states: [IncidentID: IncidentState] = [:]
    /// Fresh incident numbers, in order.
    public var numbers: [Int] = []
    /// The data key of every incident in `states` that still has one (purged incidents have none).
    public var dataKeys: [IncidentID: DataKey] = [:]
    /// The leaf hash of each incident's last audit entry, which the next entry carries as `prev`.
    public var auditHeads: [IncidentID: [UInt8]] = [:]
    /// The delivery attempts of `CommitNeeds.deliveryAttempts` that were recorded (their worker still held them).
    public var recordedDeliveries: Set<NotificationID> = []
    /// The ids of `CommitNeeds.inboundMessages` seen for the first time (recorded by this transaction).
    public var newInboundMessages: Set<String> = []

    public init() {}

    mutating func add(_ row: StoredIncidentRow, keys: some DataKeyOpening) throws {
        let (state, key) = try row.open(keys: keys)
        states[row.id] = state
        dataKeys[row.id] = key
        auditHeads[row.id] = row.auditHead
    }
}

/// The database refused a batch (a constraint, a deadlock): nothing of it was written. The runtime
/// then commits its commands one by one, so one bad command cannot sink the others.
public struct CommitRefused: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

public struct IncidentWrite: Sendable {
    public var state: IncidentState
    public var isNew: Bool
    /// Only audit entries were added (a receipt, a read): the incident's row is not rewritten. Its next
    /// audit sequence and head are read back from its last entry.
    public var auditOnly = false
    public var groupKeyHash: String?
    public var groupUntil: Date?
    /// The leaf hash of the incident's last audit entry after this batch.
    public var auditHead: [UInt8]?
    /// New incidents only: the summary and subject, sealed, and the data key that sealed them (the
    /// store keeps it wrapped by the master key).
    public var summarySealed: [UInt8]?
    public var subjectSealed: [UInt8]?
    public var dataKey: DataKey?
    /// The incident's flags as they stand after this write, sealed under its data key; nil when it
    /// has none, or no key to seal them with (an incident from before sealing keeps them in clear).
    public var flagsSealed: [UInt8]?

    public init(state: IncidentState, isNew: Bool, groupKeyHash: String? = nil, groupUntil: Date? = nil) {
        self.state = state
        self.isNew = isNew
        self.groupKeyHash = groupKeyHash
        self.groupUntil = groupUntil
    }
}

public struct ReportWrite: Sendable {
    public var incident: IncidentID
    public var report: Report
    public var idempotencyKey: String?
    public var summarySealed: [UInt8]
    public var subjectSealed: [UInt8]?
    /// The report's flags, sealed; nil when it set none.
    public var flagsSealed: [UInt8]?

    public init(incident: IncidentID, report: Report, idempotencyKey: String?, summarySealed: [UInt8], subjectSealed: [UInt8]?,
                flagsSealed: [UInt8]? = nil) {
        self.incident = incident
        self.report = report
        self.idempotencyKey = idempotencyKey
        self.summarySealed = summarySealed
        self.subjectSealed = subjectSealed
        self.flagsSealed = flagsSealed
    }
}

public struct AuditWrite: Sendable {
    public var incident: IncidentID
    public var record: AuditRecord
    public var body: [UInt8]
    public var leafHash: [UInt8]

    public init(incident: IncidentID, record: AuditRecord, body: [UInt8], leafHash: [UInt8]) {
        self.incident = incident
        self.record = record
        self.body = body
        self.leafHash = leafHash
    }
}

public enum TimerWrite: Sendable {
    case upsert(Date)
    case delete
}

public struct TimerRowKey: Sendable, Hashable {
    public var incident: IncidentID
    public var key: TimerKey

    public init(incident: IncidentID, key: TimerKey) {
        self.incident = incident
        self.key = key
    }
}

/// Every row a batch writes.
public struct BatchWrites: Sendable {
    /// Final state per incident (the last write wins).
    public var incidents: [IncidentID: IncidentWrite] = [:]
    public var incidentOrder: [IncidentID] = []
    public var reports: [ReportWrite] = []
    public var audits: [AuditWrite] = []
    /// The net effect on each timer row.
    public var timers: [TimerRowKey: TimerWrite] = [:]
    public var outbox: [QueuedNotification] = []
    /// Incidents whose queued pages (and fallback pages) are cancelled: acknowledged.
    public var cancelPages: Set<IncidentID> = []
    /// Incidents whose every queued notification is cancelled: resolved.
    public var cancelAll: Set<IncidentID> = []
    /// Timer rows to delete even if the command fails (rows of incidents that do not exist).
    public var discardedTimers: [TimerRowKey] = []
    /// Incidents whose data key is destroyed (retention purge), in the same transaction as the purge entry.
    public var purgedKeys: Set<IncidentID> = []

    public init() {}

    public mutating func absorb(_ other: BatchWrites) {
        for id in other.incidentOrder {
            guard let write = other.incidents[id] else { continue }
            if let existing = incidents[id] {
                incidents[id] = write.merged(over: existing)
            } else {
                incidents[id] = write
                incidentOrder.append(id)
            }
        }
        reports += other.reports
        audits += other.audits
        for (key, write) in other.timers { timers[key] = write }
        outbox += other.outbox
        purgedKeys.formUnion(other.purgedKeys)
        cancel(pages: other.cancelPages, all: other.cancelAll)
    }

    /// Cancels queued notifications, including those this batch queued earlier for the same incidents.
    public mutating func cancel(pages: Set<IncidentID>, all: Set<IncidentID>) {
        guard !pages.isEmpty || !all.isEmpty else { return }
        cancelPages.formUnion(pages)
        cancelAll.formUnion(all)
        outbox.removeAll { n in all.contains(n.incident) || (pages.contains(n.incident) && (n.kind == .page || n.kind == .fallback)) }
    }

    public var isEmpty: Bool {
        incidents.isEmpty && reports.isEmpty && audits.isEmpty && timers.isEmpty && outbox.isEmpty && cancelPages.isEmpty && cancelAll.isEmpty
            && purgedKeys.isEmpty
    }
}

extension IncidentWrite {
    /// A later write of the same incident in the batch: its state wins, what only the first write knows stays.
    public func merged(over earlier: IncidentWrite) -> IncidentWrite {
        var write = self
        write.isNew = isNew || earlier.isNew
        write.auditOnly = auditOnly && earlier.auditOnly
        write.groupKeyHash = groupKeyHash ?? earlier.groupKeyHash
        write.groupUntil = groupUntil ?? earlier.groupUntil
        write.auditHead = auditHead ?? earlier.auditHead
        write.summarySealed = summarySealed ?? earlier.summarySealed
        write.subjectSealed = subjectSealed ?? earlier.subjectSealed
        write.dataKey = dataKey ?? earlier.dataKey
        return write
    }
}
