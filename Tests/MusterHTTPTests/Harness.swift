// The service under test, live on 127.0.0.1 with its workers running, on either store, with one
// account per role. PostgreSQL comes from scripts/test (MUSTER_TEST_DATABASE_URL): without it these
// tests fail, never skip.
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MusterAudit
import MusterCore
import MusterHTTP
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import NIOCore
import PostgresNIO
import Synchronization
import Testing

/// The base URL the service under test believes it is reached at (links and Twilio signatures use it).
let testPublicURL = "https://muster.test"
let testTwilioAuthToken = "twilio-test-auth-token"

/// The test accounts: id → (role, sites).
let testAccounts: [(id: String, role: AccessRole, sites: [String])] = [
    ("reporter-lincoln", .reporter, ["lincoln-high"]),
    ("responder-lincoln", .responder, ["lincoln-high"]),
    ("coordinator-lincoln", .coordinator, ["lincoln-high"]),
    ("auditor", .auditor, []),
    ("admin", .admin, []),
    ("monitoring", .integration, []),
    ("prometheus", .scrape, []),
]

struct Harness: Sendable {
    let backend: Backend
    let store: any Store
    let server: MusterServer
    /// Account id → bearer token.
    let tokens: [String: String]
    let deliveryFile: String
    /// Signs the acknowledgement links in messages (the tests forge and expire links with it).
    let links: AckLinkSigner

    func auth(_ account: String) -> HTTPFields {
        [.authorization: "Bearer \(tokens[account] ?? "none")", .contentType: "application/json"]
    }

    /// Notifications delivered so far (the file channel's lines).
    func deliveries() -> [[String: String]] {
        guard let text = try? String(contentsOfFile: deliveryFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            try? JSONDecoder().decode([String: String].self, from: Data(line.utf8))
        }
    }
}

/// Rate limits no test reaches unless it means to (the rate limit tests set their own).
let generousRateLimits: RateLimitSettings = {
    var limits = RateLimitSettings()
    limits.integration = RateLimit(perMinute: 100_000, burst: 100_000)
    limits.account = RateLimit(perMinute: 100_000, burst: 100_000)
    return limits
}()

/// Runs `body` against a live server on a fresh database of `backend`, with the workers running.
/// `logs`, when given, receives every log line of the service at every level (the tests read what a log would show).
/// `providerReports`: SMS and voice pages are taken as a provider with status callbacks takes them
/// (`sent`, sid "SID-" + the notification id), so the tests can post the callbacks.
func withService(_ backend: Backend, playbookFolder: String? = nil, logs: LogCapture? = nil, providerReports: Bool = false,
                 web: WebSettings = WebSettings(), trustedProxies: Set<String> = [], rateLimits: RateLimitSettings = generousRateLimits,
                 _ body: @Sendable (Harness, any TestClientProtocol) async throws -> Void) async throws {
    let (store, cleanup) = try await freshStore(backend)
    do {
        try await store.migrate()
        var tokens: [String: String] = [:]
        for account in testAccounts {
            try await store.addUser(UserAccount(id: account.id, name: account.id, role: account.role, sites: account.sites.map(SiteID.init),
                                                createdAt: Date()))
            let token = account.role == .integration ? APIToken.generateIntegrationKey() : APIToken.generate()
            try await store.addToken(id: APIToken.generateID(), user: account.id, label: "test", hash: APIToken.hash(token), at: Date())
            tokens[account.id] = token
        }
        let deliveryFile = FileManager.default.temporaryDirectory.appendingPathComponent("muster-deliveries-\(UUID().uuidString).jsonl").path
        let metrics = MusterMetrics()
        var logger = logs.map { capture in Logger(label: "muster.test") { _ in capture.handler } } ?? Logger(label: "muster.test")
        logger.logLevel = logs == nil ? .warning : .trace
        let signer = CheckpointSigner(try NoteSigner.generate(name: "muster.test/http-audit-log"))
        let links = AckLinkSigner(secret: Data((0..<32).map { _ in UInt8.random(in: 0...255) }))
        let names = DirectoryNames(shippedCatalog)
        let file = FileChannel(path: deliveryFile)
        let providerChannels: [ChannelKind: any MusterNotify.Channel] = providerReports ? [.sms: AwaitingStatus(file), .voice: AwaitingStatus(file)] : [:]
        let renderer = try MessageRenderer(publicURL: testPublicURL, links: links, names: { names.current })
        let runtime = Runtime(store: store, catalog: shippedCatalog,
                              notifier: Notifier(renderer: renderer, channel: ChannelRouter(providerChannels, fallback: FileChannel(path: deliveryFile))),
                              names: names, instance: "test-\(UUID().uuidString.prefix(8))",
                              auditLog: AuditLogSettings(signer: signer, interval: 0.05), observer: metrics.observer(), logger: logger)
        let server = MusterServer(runtime: runtime, metrics: metrics, clock: SystemClock(),
                                  playbookFolder: playbookFolder ?? repositoryRoot.appendingPathComponent("playbooks").path,
                                  auditVerifierKey: signer.verifierKey,
                                  acknowledgement: AcknowledgementSettings(links: links, publicURL: testPublicURL, twilioAuthToken: testTwilioAuthToken),
                                  web: web, trustedProxies: trustedProxies, rateLimits: rateLimits, logger: logger)
        let harness = Harness(backend: backend, store: store, server: server, tokens: tokens, deliveryFile: deliveryFile, links: links)
        let workers = Task { await runtime.run() }
        let app = Application(router: server.makeRouter(), configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
                              logger: logger)
        do {
            try await app.test(.live) { client in try await body(harness, client) }
        } catch {
            workers.cancel()
            throw error
        }
        workers.cancel()
        await workers.value
        try? FileManager.default.removeItem(atPath: deliveryFile)
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
}

/// Writes as the file channel does, and answers as a provider whose status callback will say whether
/// the message arrived (Twilio with a StatusCallback): not yet delivered, with sid "SID-" + the notification id.
struct AwaitingStatus: MusterNotify.Channel {
    let file: FileChannel
    init(_ file: FileChannel) { self.file = file }

    func forms(for notification: QueuedNotification) -> Set<MessageForm> { file.forms(for: notification) }

    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        _ = try await file.deliver(message)
        return DeliveryReceipt(reference: "SID-" + message.id, awaitsStatus: true)
    }
}

/// Keeps each log line it is given, message and metadata, as text.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var captured: [String] { lines.withLock { $0 } }

    /// A handler per logger (metadata is per logger); all write here.
    var handler: some LogHandler { Handler(sink: self) }

    private struct Handler: LogHandler {
        let sink: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = "\(event.level) \(event.message) " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            sink.lines.withLock { $0.append(line) }
        }
    }
}

// MARK: Requests

extension TestClientProtocol {
    @discardableResult
    func call(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields = [:], json: String? = nil) async throws -> TestResponse {
        try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }
}

extension TestClientProtocol {
    /// A webhook as Twilio sends it: the form url-encoded, signed with the test auth token over the
    /// public URL Twilio called (Twilio's documented algorithm; its own vectors are in TwilioSignature's tests).
    func twilio(_ path: String, _ form: [String: String]) async throws -> TestResponse {
        let signature = TwilioSignature.signature(url: testPublicURL + path, parameters: form, authToken: testTwilioAuthToken)
        let body = form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        return try await execute(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded",
                                                                     HTTPField.Name("X-Twilio-Signature")!: signature],
                                 body: ByteBuffer(string: body))
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as a JSON object (an empty one if it is not).
    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }
}

/// A report body.
func reportJSON(type: String = "suicide-risk", severity: String = "high", site: String = "lincoln-high", summary: String = "Student wrote a goodbye note",
                subject: String? = nil) -> String {
    var object: [String: Any] = ["type": type, "severity": severity, "site": site, "summary": summary]
    if let subject { object["subject"] = subject }
    return String(decoding: (try? JSONSerialization.data(withJSONObject: object)) ?? Data(), as: UTF8.self)
}

/// Polls until `condition` holds or `seconds` pass; true if it held.
func eventually(_ seconds: Double = 5, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
