// A real HTTP(S) server on 127.0.0.1 for the channel tests: it records every request it receives and
// answers as the test says, or never answers at all (to provoke a timeout).
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// One request as the server received it.
struct RecordedRequest: Sendable {
    var method: HTTPMethod
    var uri: String
    var headers: HTTPHeaders
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var path: String { String(uri.prefix { $0 != "?" }) }
    func header(_ name: String) -> String? { headers.first(name: name) }

    /// The body as a JSON object (nil when it is not one).
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }

    /// The body as form fields, decoded (`+` in a value stays a plus only if it was sent as %2B).
    var form: [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part)
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}

/// What the server answers.
struct Reply: Sendable {
    var status: HTTPResponseStatus
    var headers: [(String, String)] = []
    var body: String = ""

    static func status(_ status: HTTPResponseStatus, _ body: String = "", headers: [(String, String)] = []) -> Reply {
        Reply(status: status, headers: headers, body: body)
    }
}

final class LocalHTTPServer: Sendable {
    let port: Int
    let scheme: String
    private let serverChannel: any Channel
    private let state: ServerState

    /// The requests received so far, in order.
    var requests: [RecordedRequest] { state.recorded.withLock { $0 } }

    /// `http://127.0.0.1:<port>` (or https).
    var baseURL: String { "\(scheme)://127.0.0.1:\(port)" }

    private init(port: Int, scheme: String, serverChannel: any Channel, state: ServerState) {
        self.port = port
        self.scheme = scheme
        self.serverChannel = serverChannel
        self.state = state
    }

    /// Starts a server on a free port. `respond` returns the reply for each request, or nil to leave
    /// the request unanswered; `tls` makes it an HTTPS server.
    static func start(tls: NIOSSLContext? = nil,
                      respond: @escaping @Sendable (RecordedRequest) -> Reply?) async throws -> LocalHTTPServer {
        let state = ServerState()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    state.children.withLock { $0.append(child) }
                    if let tls {
                        try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try child.pipeline.syncOperations.addHandler(RecordingHandler(state: state, respond: respond))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else { throw ServerError.noPort }
        return LocalHTTPServer(port: port, scheme: tls == nil ? "http" : "https", serverChannel: channel, state: state)
    }

    /// Closes the listening socket and every connection it accepted.
    func stop() async {
        try? await serverChannel.close()
        for child in state.children.withLock({ $0 }) {
            try? await child.close()
        }
    }

    enum ServerError: Error { case noPort }
}

private final class ServerState: Sendable {
    let recorded = Mutex<[RecordedRequest]>([])
    let children = Mutex<[any Channel]>([])
}

private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: ServerState
    private let respond: @Sendable (RecordedRequest) -> Reply?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(state: ServerState, respond: @escaping @Sendable (RecordedRequest) -> Reply?) {
        self.state = state
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            let request = RecordedRequest(method: head.method, uri: head.uri, headers: head.headers, body: body)
            state.recorded.withLock { $0.append(request) }
            guard let reply = respond(request) else { return }  // never answer
            var headers = HTTPHeaders(reply.headers)
            headers.replaceOrAdd(name: "Content-Length", value: String(reply.body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: reply.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: reply.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// A self-signed certificate for 127.0.0.1 made with `openssl` at test time; no client trusts it.
enum SelfSignedCertificate {
    static func makeServerContext() throws -> NIOSSLContext {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("key.pem").path
        let certificate = folder.appendingPathComponent("cert.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                             "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=127.0.0.1",
                             "-addext", "subjectAltName=IP:127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw OpenSSLFailed(status: process.terminationStatus) }
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        return try NIOSSLContext(configuration: configuration)
    }

    struct OpenSSLFailed: Error { var status: Int32 }
}
