// The running core of a Muster instance: intake through group commit (the `Committer` below), and the
// timer and delivery workers, over one store and one set of channels.
import Foundation
import Logging
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterNotify
import MusterStore
import Synchronization

public final class Runtime: Sendable {
    public let store: any Store
    /// The plain reads the service may do; every change goes through `report` and `apply`.
    public let reads: IncidentReads
    /// Accounts, passwords, web sessions and sign-in links.
    public let accounts: AccountRecords
    public let committer: Committer
    public let timerLateness = LatencySamples()
    /// The directory's display names the messages show; updated on reload.
    public let names: DirectoryNames
    private let clock: any MusterClock
    private let timers: TimerWorker
    private let deliveries: DeliveryWorker
    /// What sends pages, for test pages (DeliveryWorker sends the incidents').
    private let notifier: Notifier
    /// Nil when this runtime runs no sequencer (tools and tests that commit only).
    let sequencer: AuditSequencer?
    /// Nil when no retention policy is configured.
    let retention: RetentionWorker?
    private let timerSignal = WorkSignal()
    private let deliverySignal = WorkSignal()
    private let logger: Logger
    /// This instance's name in the claims it takes.
    public let instance: String

    /// A runtime whose messages are rendered with the shipped templates, with no acknowledgement links
    /// (tools, tests and benchmarks that need only a channel).
    public convenience init(store: any Store, catalog: Catalog, channel: any Channel, clock: any MusterClock = SystemClock(),
                            instance: String = ProcessInfo.processInfo.hostName + "/\(ProcessInfo.processInfo.processIdentifier)",
                            retry: RetryPolicy = RetryPolicy(), random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                            auditLog: AuditLogSettings? = nil, retention: RetentionPolicy? = nil, observer: RuntimeObserver = RuntimeObserver(),
                            logger: Logger = Logger(label: "muster.runtime")) throws {
        let names = DirectoryNames(catalog)
        let renderer = try MessageRenderer(publicURL: "http://127.0.0.1:8080", links: nil, names: { names.current })
        self.init(store: store, catalog: catalog, notifier: Notifier(renderer: renderer, channel: channel), names: names, clock: clock,
                  instance: instance, retry: retry, random: random, auditLog: auditLog, retention: retention, observer: observer, logger: logger)
    }

    /// `names` is what `notifier`'s renderer reads, so a reload reaches the messages.
    public init(store: any Store, catalog: Catalog, notifier: Notifier, names: DirectoryNames, clock: any MusterClock = SystemClock(),
                instance: String = ProcessInfo.processInfo.hostName + "/\(ProcessInfo.processInfo.processIdentifier)",
                retry: RetryPolicy = RetryPolicy(), random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                auditLog: AuditLogSettings? = nil, retention: RetentionPolicy? = nil, observer: RuntimeObserver = RuntimeObserver(),
                logger: Logger = Logger(label: "muster.runtime")) {
        self.store = store
        self.clock = clock
        self.notifier = notifier
        reads = IncidentReads(store: store)
        accounts = AccountRecords(store: store)
        self.names = names
        self.instance = instance
        self.logger = logger
        let timerSignal = timerSignal, deliverySignal = deliverySignal
        committer = Committer(store: store, catalog: catalog, clock: clock) { commands, results in
            observer.committed(commands, results)
            // New timers may fall due sooner than the worker's sleep; new pages are waiting to go.
            timerSignal.notify()
            if results.contains(where: { !((try? $0.get())?.outcome.queued.isEmpty ?? true) }) {
                deliverySignal.notify()
            }
        }
        timers = TimerWorker(store: store, committer: committer, clock: clock, signal: timerSignal, owner: instance,
                             lateness: timerLateness, observer: observer, logger: logger)
        deliveries = DeliveryWorker(store: store, committer: committer, notifier: notifier, clock: clock, signal: deliverySignal,
                                    owner: instance, retry: retry, random: random, logger: logger, observer: observer)
        sequencer = auditLog.map { AuditSequencer(store: store, settings: $0, clock: clock, observer: observer, logger: logger) }
        self.retention = retention.map { [committer] in
            RetentionWorker(store: store, committer: committer, policy: $0, clock: clock, logger: logger)
        }
    }

    /// Sends a test page to one of a person's contact points (1-based, in the directory's order) through
    /// the same renderer, limits, breakers and channel as a real page, and says what became of it. It
    /// belongs to no incident: nothing is queued, retried or recorded in an incident's log.
    public func sendTestPage(to person: PersonID, contact index: Int) async -> Result<TestPageResult, TestPageError> {
        let directory = await committer.currentCatalog.directory
        guard let found = directory.people[person] else { return .failure(.unknownPerson(person)) }
        guard found.contacts.indices.contains(index - 1) else { return .failure(.unknownContact(person, index, count: found.contacts.count)) }
        let contact = found.contacts[index - 1]
        let now = clock.now()
        let site = found.assignedSites.first ?? SiteID("district")
        let id = NotificationID(incident: IncidentID("test-page"), cycle: 0, kind: .test, qualifier: .sequence(Int(now.timeIntervalSince1970 * 1000)),
                                recipient: .person(person), channel: contact.channel)
        let notification = QueuedNotification(id: id, incidentNumber: 0, type: IncidentTypeID("test-page"), severity: .low, site: site,
                                              address: contact.address)
        let result: TestPageResult
        do {
            let receipt = try await Deadline.run(after: { [clock] in try? await clock.sleep(until: now.addingTimeInterval(30)) },
                                                 timedOut: { DeliveryFailure(.timeout, "no answer within 30 s") }) { [notifier, clock] in
                try await notifier.send(notification, now: { clock.now() })
            }
            result = TestPageResult(channel: contact.channel, outcome: receipt.demonstration ? .demonstrated : receipt.awaitsStatus ? .accepted : .delivered,
                                    detail: nil)
        } catch let failure as DeliveryFailure {
            result = TestPageResult(channel: contact.channel, outcome: .failed, detail: failure.summary)
        } catch {
            result = TestPageResult(channel: contact.channel, outcome: .failed, detail: "\(error)")
        }
        logger.info("test page to \(person)'s \(contact.channel.rawValue) contact point \(index): \(result.outcome.rawValue)")
        return .success(result)
    }

    /// Exports incidents' timelines with proofs (JSON) or as CSV.
    /// The playbook version an incident runs under: its tasks, flags and outcomes as the engine applies them.
    public func playbook(for state: IncidentState) async -> Playbook? { await committer.playbook(for: state) }

    public func auditExporter(verifierKey: String) -> AuditExporter { AuditExporter(store: store, verifierKey: verifierKey) }

    /// Checks the whole audit log against the checkpoints signed with `verifier`.
    public func auditVerifier(_ verifier: NoteVerifier) -> AuditLogVerifier { AuditLogVerifier(store: store, verifiers: [verifier]) }

    /// Puts a new set of playbooks and directory into use.
    public func reload(_ catalog: Catalog) async {
        await committer.reload(catalog)
        names.update(catalog)
    }

    /// Keeps the loaded playbook files in the store (so a restart, or another instance, runs an open
    /// incident's version), and takes every version kept there before into use.
    public func keepPlaybooks(_ loaded: [KeptPlaybook]) async throws {
        try await store.keepPlaybooks(loaded, at: clock.now())
        await committer.keep(try await store.keptPlaybooks())
    }

    /// Takes a report: opens an incident, or merges it into an open one, or recognises a retry.
    public func report(_ intake: ReportIntake) async throws -> Result<Committed, StoreError> {
        try await committer.submit(.report(intake))
    }

    /// Takes several reports in order (an integration's batch), in as few transactions as fit.
    public func report(_ intakes: [ReportIntake]) async throws -> [Result<Committed, StoreError>] {
        try await committer.submit(intakes.map { .report($0) })
    }

    /// Applies an event (an acknowledgement, a note, a resolution…) to an incident.
    public func apply(_ event: IncidentEvent, to incident: IncidentID) async throws -> Result<Committed, StoreError> {
        try await committer.submit(.event(incident, event))
    }

    /// Applies an event only if the incident still has `reportCount` reports (else `.changed`): for a
    /// decision taken on its reports as read.
    public func apply(_ event: IncidentEvent, to incident: IncidentID, ifReports reportCount: Int) async throws -> Result<Committed, StoreError> {
        try await committer.submit(.eventIfReports(incident, event, reportCount: reportCount))
    }

    /// Takes an inbound message that changes no incident, so that the same message replayed later is
    /// recognised; false when it was taken before.
    public func takeInboundMessage(_ id: String, at: Date) async throws -> Bool {
        try await store.takeInboundMessage(id, at: at)
    }

    /// Joins `source` into `target` (a responder's explicit action): the source's reports, as read, go to
    /// the target and the source closes, together. Answers with the target.
    public func join(_ source: IncidentID, into target: IncidentID, reports: [Report], by actor: Actor) async throws -> Result<Committed, StoreError> {
        try await committer.submit(.join(source: source, into: target, reports: reports, by: actor))
    }

    /// Applies an event a provider's inbound message carries (an SMS reply), once per message id: a
    /// replayed message is answered `.duplicate` and changes nothing.
    public func apply(_ event: IncidentEvent, to incident: IncidentID, inboundMessage messageID: String) async throws -> Result<Committed, StoreError> {
        try await committer.submit(.inbound(incident, event, messageID: messageID))
    }

    /// Runs one sequencer pass now (tools, tests); false when this runtime has no sequencer.
    @discardableResult
    public func sequenceAuditLog() async throws -> Bool {
        guard let sequencer else { return false }
        while try await sequencer.passOnce() {}
        return true
    }

    /// Runs the workers until the task is cancelled. With PostgreSQL, NOTIFY from any instance wakes them.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.timers.run() }
            group.addTask { await self.deliveries.run() }
            if let sequencer { group.addTask { await sequencer.run() } }
            if let retention { group.addTask { await retention.run() } }
            if let postgres = store as? PostgresStore {
                group.addTask { [timerSignal, deliverySignal, logger] in
                    while !Task.isCancelled {
                        do {
                            try await postgres.listenForWork {
                                timerSignal.notify()
                                deliverySignal.notify()
                            }
                        } catch {
                            if Task.isCancelled { return }
                            logger.warning("LISTEN failed, polling until it is back: \(error)")
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                }
            }
            await group.waitForAll()
        }
        // Stopped: hand back what this instance still holds, so another instance need not wait for the leases.
        do {
            // In a task of its own: this one is cancelled, and the store would refuse to start.
            try await Task { [store, instance] in try await store.releaseClaims(owner: instance) }.value
        } catch {
            logger.warning("claims not released; they lapse with their leases: \(error)")
        }
    }
}

/// Group commit: commands submitted while a commit is in flight wait and go together in the next
/// one, so a burst of reports costs a few transactions instead of one each. Each command stays
/// all-or-nothing (the store guarantees it); each caller gets its own result.
public actor Committer {
    private let store: any Store
    private let clock: any MusterClock
    private var dispatcher: Dispatcher
    private let maxBatch: Int
    private var pending: [(commands: [IncidentCommand], reply: CheckedContinuation<[Result<Committed, StoreError>], any Error>)] = []
    /// Commits under way. Several overlap the application's work with the database's; commands in
    /// different batches were submitted concurrently, so no order between them is lost.
    private var inFlight = 0
    private let maxInFlight: Int
    /// Called after each commit with its outcomes (wakes workers, counts metrics).
    private let committed: @Sendable ([IncidentCommand], [Result<Committed, StoreError>]) -> Void

    public init(store: any Store, catalog: Catalog, clock: any MusterClock, maxBatch: Int = 500, maxInFlight: Int = 4,
                committed: @escaping @Sendable ([IncidentCommand], [Result<Committed, StoreError>]) -> Void = { _, _ in }) {
        self.store = store
        self.maxInFlight = maxInFlight
        dispatcher = Dispatcher(catalog: catalog)
        self.clock = clock
        self.maxBatch = maxBatch
        self.committed = committed
    }

    public var currentCatalog: Catalog { dispatcher.catalog }

    /// The playbook version the incident runs under (kept when it started), as the engine sees it; a
    /// read, so a version never kept falls back to the loaded one without the commit path's warning.
    public func playbook(for state: IncidentState) -> Playbook? {
        dispatcher.kept[state.playbookVersion]?.playbook ?? dispatcher.catalog.playbooks[state.playbook]
    }

    /// Playbook versions loaded before, by version: open incidents may still run them.
    private var kept: [String: Playbook] = [:]

    /// Replaces the playbooks and directory for commands committed from now on; the versions loaded
    /// before stay in use for the incidents that started under them.
    public func reload(_ catalog: Catalog) {
        for playbook in dispatcher.catalog.playbooks.playbooks { kept[playbook.version] = playbook }
        dispatcher = Dispatcher(catalog: catalog, kept: Array(kept.values))
    }

    /// Adds playbook versions read back from the store (loaded by an earlier run, or another instance).
    public func keep(_ playbooks: [KeptPlaybook]) {
        let directory = dispatcher.catalog.directory
        var added = false
        for entry in playbooks where kept[entry.version] == nil {
            guard let playbook = PlaybookLoader.playbook(from: entry, directory: directory) else { continue }
            kept[entry.version] = playbook
            added = true
        }
        if added { dispatcher = Dispatcher(catalog: dispatcher.catalog, kept: Array(kept.values)) }
    }

    /// Commits one command; throws `StoreError.unavailable` when the database cannot take it (nothing was written).
    public func submit(_ command: IncidentCommand) async throws -> Result<Committed, StoreError> {
        guard let result = try await submit([command]).first else { throw StoreError.unavailable("no result") }
        return result
    }

    /// Commits several commands, in order and in as few transactions as fit; results in order.
    public func submit(_ commands: [IncidentCommand]) async throws -> [Result<Committed, StoreError>] {
        guard !commands.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            pending.append((commands, continuation))
            startFlushing()
        }
    }

    private func startFlushing() {
        guard inFlight < maxInFlight else { return }
        inFlight += 1
        Task { await self.flush() }
    }

    /// Takes whole entries up to the batch size (an entry larger than it goes alone).
    private func takeBatch() -> [(commands: [IncidentCommand], reply: CheckedContinuation<[Result<Committed, StoreError>], any Error>)] {
        var count = 0, commandCount = 0
        while count < pending.count, count == 0 || commandCount + pending[count].commands.count <= maxBatch {
            commandCount += pending[count].commands.count
            count += 1
        }
        defer { pending.removeFirst(count) }
        return Array(pending.prefix(count))
    }

    private func flush() async {
        while !pending.isEmpty {
            let batch = takeBatch()
            do {
                let commands = batch.flatMap(\.commands)
                let results = try await dispatcher.commit(commands, to: store, now: clock.now())
                var offset = 0
                for entry in batch {
                    entry.reply.resume(returning: Array(results[offset..<(offset + entry.commands.count)]))
                    offset += entry.commands.count
                }
                committed(commands, results)
            } catch {
                for entry in batch { entry.reply.resume(throwing: error) }
            }
        }
        inFlight -= 1
    }
}

/// The loaded directory's display names, readable without waiting (the renderer runs per message).
public final class DirectoryNames: Sendable {
    private let names: Mutex<DisplayNames>

    public init(_ catalog: Catalog) {
        names = Mutex(DisplayNames(catalog.directory))
    }

    public var current: DisplayNames { names.withLock { $0 } }

    public func update(_ catalog: Catalog) {
        let fresh = DisplayNames(catalog.directory)
        names.withLock { $0 = fresh }
    }
}
