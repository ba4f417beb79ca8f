// The NIO side of the SMTP client: one TCP connection with its pipeline ([TLS] → reply decoder →
// handler), STARTTLS, reply timeouts, and how socket and TLS errors become `SMTPError`s. The
// conversation itself is in SMTPClient.swift.
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// No reply came within the command timeout.
struct SMTPReplyTimeout: Error {}
/// The connection closed while a reply was awaited.
struct SMTPConnectionClosed: Error {}

/// One TCP connection with its pipeline: [TLS] → reply decoder → `SMTPClientHandler`. Its methods may
/// be called from any task; the handler is touched only on the channel's event loop.
final class SMTPConnection: Sendable {
    private let channel: any NIOCore.Channel
    /// Held here rather than looked up in the pipeline: after a failure closes the channel the handler
    /// leaves the pipeline, and it is the one that knows what the failure was.
    private let handler: NIOLoopBound<SMTPClientHandler>
    private let commandTimeout: Duration

    private init(channel: any NIOCore.Channel, handler: NIOLoopBound<SMTPClientHandler>, commandTimeout: Duration) {
        self.channel = channel
        self.handler = handler
        self.commandTimeout = commandTimeout
    }

    static func open(settings: SMTPSettings, group: any EventLoopGroup, implicitTLS: NIOSSLContext?) async throws(SMTPError) -> SMTPConnection {
        let replyTimeout = TimeAmount(settings.commandTimeout)
        let serverName = SMTPClient.serverName(settings.host)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(settings.connectTimeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let implicitTLS {
                        try pipeline.addHandler(NIOSSLClientHandler(context: implicitTLS, serverHostname: serverName))
                    }
                    try pipeline.addHandler(ByteToMessageHandler(SMTPReplyDecoder()))
                    try pipeline.addHandler(SMTPClientHandler(replyTimeout: replyTimeout))
                }
            }
        let channel: any NIOCore.Channel
        do {
            channel = try await bootstrap.connect(host: settings.host, port: settings.port).get()
        } catch {
            throw SMTPConnection.classify(error, step: .connect, settings: settings)
        }
        do {
            let handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: SMTPClientHandler.self), eventLoop: channel.eventLoop)
            }.get()
            return SMTPConnection(channel: channel, handler: handler, commandTimeout: settings.commandTimeout)
        } catch {
            // Closed again before we could look: as good as never connected.
            channel.close(promise: nil)
            throw SMTPError(.unreachable, .greeting, "the server closed the connection at once")
        }
    }

    /// Sends one command line (nil: sends nothing and waits, for the greeting) and returns the reply.
    func exchange(_ command: String?, step: SMTPStep) async throws(SMTPError) -> SMTPReply {
        try await exchange(payload: command.map { ByteBuffer(string: $0 + "\r\n") }, step: step)
    }

    func exchange(payload bytes: ByteBuffer?, step: SMTPStep) async throws(SMTPError) -> SMTPReply {
        let channel = self.channel
        let handler = self.handler
        let reply = channel.eventLoop.flatSubmit {
            handler.value.exchange(bytes, on: channel.eventLoop)
        }
        do {
            // A cancelled delivery closes the connection, which fails the awaited reply at once.
            return try await withTaskCancellationHandler {
                try await reply.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch {
            throw classify(error, step: step)
        }
    }

    /// Puts TLS in front of the decoder after the server's 220 to STARTTLS. The handshake runs before
    /// the next command leaves; its failure fails that command's reply.
    func startTLS(context: NIOSSLContext, serverHostname: String?) async throws(SMTPError) {
        let channel = self.channel
        let handler = self.handler
        do {
            try await channel.eventLoop.submit {
                // Anything that came after the 220 arrived in plain text and could have been injected
                // on the way (RFC 3207 §5); refuse it rather than read it as if it were secured.
                guard !handler.value.hasUnclaimedReplies else {
                    throw SMTPProtocolViolation(description: "the server sent more after its 220 to STARTTLS")
                }
                let tls = try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
                try channel.pipeline.syncOperations.addHandler(tls, position: .first)
            }.get()
        } catch {
            throw classify(error, step: .tlsHandshake)
        }
    }

    /// Says goodbye without waiting for the answer: the outcome is settled already.
    func quit() {
        let channel = self.channel
        channel.writeAndFlush(ByteBuffer(string: "QUIT\r\n")).whenComplete { _ in channel.close(promise: nil) }
    }

    func close() {
        // Runs after a QUIT written just before it (the loop keeps order); closing twice is harmless.
        channel.close(promise: nil)
    }

    private func classify(_ error: any Error, step: SMTPStep) -> SMTPError {
        if error is SMTPReplyTimeout {
            return SMTPError(.timeout, step, "no reply within \(Self.seconds(commandTimeout))")
        }
        return Self.classify(error, step: step, settings: nil)
    }

    static func classify(_ error: any Error, step: SMTPStep, settings: SMTPSettings?) -> SMTPError {
        let target = settings.map { "\($0.host):\($0.port)" } ?? "the server"
        switch error {
        case let error as SMTPError:
            return error
        case ChannelError.connectTimeout(let amount):
            return SMTPError(.timeout, .connect, "the connection to \(target) did not open within \(seconds(amount))")
        case let error as NIOConnectionError:
            var causes = error.connectionErrors.map { "\($0.target): \($0.error)" }
            if let dns = error.dnsAError { causes.append("DNS A: \(dns)") }
            if let dns = error.dnsAAAAError { causes.append("DNS AAAA: \(dns)") }
            return SMTPError(.unreachable, .connect, "cannot connect to \(target): "
                             + (causes.isEmpty ? "no address" : causes.joined(separator: "; ")))
        case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError:
            return SMTPError(.tls, .tlsHandshake, "TLS failed: \(error)")
        case let error as SMTPProtocolViolation:
            return SMTPError(.protocolViolation, step, error.description)
        case is SMTPConnectionClosed, ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed, ChannelError.eof:
            return SMTPError(step == .greeting ? .unreachable : .connectionLost, step, "the server closed the connection")
        case let error as IOError:
            return SMTPError(step == .connect ? .unreachable : .connectionLost, step, "\(error)")
        default:
            return SMTPError(step == .connect ? .unreachable : .connectionLost, step, "\(error)")
        }
    }

    private static func seconds(_ duration: Duration) -> String {
        let (whole, attoseconds) = duration.components
        let tenths = attoseconds / 100_000_000_000_000_000
        return tenths == 0 ? "\(whole) s" : "\(whole).\(tenths) s"
    }

    private static func seconds(_ amount: TimeAmount) -> String {
        seconds(Duration.nanoseconds(amount.nanoseconds))
    }
}

/// Matches each reply to the command that asked for it, and fails the wait when the server is silent
/// too long or the connection goes away. Lives on the event loop; one command in flight at a time.
final class SMTPClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = SMTPReply
    typealias OutboundOut = ByteBuffer

    private let replyTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var awaiting: EventLoopPromise<SMTPReply>?
    /// Replies that came before anyone asked (the greeting, usually).
    private var early: [SMTPReply] = []
    private var timer: Scheduled<Void>?
    /// Once set, every later exchange fails with it.
    private var failure: (any Error)?

    init(replyTimeout: TimeAmount) {
        self.replyTimeout = replyTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        fail(with: SMTPConnectionClosed())
        self.context = nil
    }

    var hasUnclaimedReplies: Bool { !early.isEmpty }

    func exchange(_ command: ByteBuffer?, on eventLoop: any EventLoop) -> EventLoopFuture<SMTPReply> {
        if let failure { return eventLoop.makeFailedFuture(failure) }
        guard let context else { return eventLoop.makeFailedFuture(SMTPConnectionClosed()) }
        guard awaiting == nil else {
            return eventLoop.makeFailedFuture(SMTPProtocolViolation(description: "a command was sent before the last reply"))
        }
        if let command { context.writeAndFlush(wrapOutboundOut(command), promise: nil) }
        if !early.isEmpty { return context.eventLoop.makeSucceededFuture(early.removeFirst()) }
        let promise = context.eventLoop.makePromise(of: SMTPReply.self)
        awaiting = promise
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: replyTimeout) { [weak self] in
            self?.timedOut()
        }
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let reply = unwrapInboundIn(data)
        timer?.cancel()
        timer = nil
        if let awaiting {
            self.awaiting = nil
            awaiting.succeed(reply)
        } else {
            early.append(reply)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(with: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(with: SMTPConnectionClosed())
        context.fireChannelInactive()
    }

    private func timedOut() {
        fail(with: SMTPReplyTimeout())
        context?.close(promise: nil)
    }

    /// Keeps the first cause: a TLS error followed by the close it causes reports the TLS error.
    private func fail(with error: any Error) {
        if failure == nil { failure = error }
        timer?.cancel()
        timer = nil
        if let awaiting {
            self.awaiting = nil
            awaiting.fail(failure ?? error)
        }
    }
}

extension SMTPConnection {
    /// The client TLS context: TLS 1.2 or later, the system roots and any configured extra roots.
    static func makeTLSContext(_ settings: SMTPSettings) throws(SMTPError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        do {
            configuration.additionalTrustRoots = try settings.additionalTrustRoots.map { root in
                switch root {
                case .pemFile(let path): .file(path)
                case .pem(let text): .certificates(try NIOSSLCertificate.fromPEMBytes(Array(text.utf8)))
                }
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SMTPError(.refused, .tlsHandshake, "the TLS settings cannot be loaded (extra trust roots?): \(error)")
        }
    }
}
