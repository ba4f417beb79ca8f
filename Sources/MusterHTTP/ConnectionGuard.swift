// Slow clients cannot hold the server. Hummingbird's idle timeout closes a connection that sends
// nothing parseable, but every byte of a body counts as activity, and nothing caps how many
// connections are open. This handler, one per connection after the HTTP decoder, gives a request's
// head `headerTimeout` from the connection's start (or the previous response's end) and its body
// `bodyTimeout` from the head, and refuses a connection beyond `maxConnections` at once. The server's
// own time to answer never counts: no timer runs between a request's end and its response's end.
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import Synchronization

/// How long a client may take, and how many may be connected at once (the `server` section of the configuration).
public struct ConnectionLimits: Sendable, Hashable {
    public var headerTimeout: Duration
    public var bodyTimeout: Duration
    /// Between requests on a kept-alive connection, and between the parts of one.
    public var idleTimeout: Duration
    public var maxConnections: Int

    public init(headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(75),
                maxConnections: Int = 2_000) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }

    /// Hummingbird's HTTP/1 server with a guard on every connection.
    func http1() -> HTTPServerBuilder {
        let gate = ConnectionGate(limit: maxConnections)
        let limits = self
        return .http1(configuration: HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionGuard(limits: limits, gate: gate)],  // evaluated anew for each connection
            idleTimeout: TimeAmount(idleTimeout),
            // 16 KiB of headers is plenty for a browser; 500 dribbling clients then hold at most 8 MB.
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 16 * 1024, maxHeaderFieldCount: 200)))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The count of open connections, shared by every connection's guard.
final class ConnectionGate: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    func acquire() -> Bool {
        if open.add(1, ordering: .relaxed).newValue <= limit { return true }
        open.subtract(1, ordering: .relaxed)
        return false
    }

    func release() {
        open.subtract(1, ordering: .relaxed)
    }
}

/// Confined to its connection's event loop, like Hummingbird's own handlers.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limits: ConnectionLimits
    private let gate: ConnectionGate
    private var activated = false, holdsSlot = false, readingBody = false
    private var headsRead = 0, responsesEnded = 0
    private var timer: Scheduled<Void>?

    init(limits: ConnectionLimits, gate: ConnectionGate) {
        self.limits = limits
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            headsRead += 1
            readingBody = true
            arm(context, limits.bodyTimeout)
        case .body:
            break
        case .end:
            readingBody = false
            if headsRead == responsesEnded { arm(context, limits.headerTimeout) } else { cancelTimer() }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            responsesEnded += 1
            if responsesEnded == headsRead, !readingBody { arm(context, limits.headerTimeout) }
        }
        context.write(data, promise: promise)
    }

    private func activate(_ context: ChannelHandlerContext) {
        guard !activated else { return }
        activated = true
        guard gate.acquire() else {
            context.close(promise: nil)  // over the cap: refused at once, never queued
            return
        }
        holdsSlot = true
        arm(context, limits.headerTimeout)
    }

    private func arm(_ context: ChannelHandlerContext, _ delay: Duration) {
        cancelTimer()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) {
            self.timer = nil
            context.close(promise: nil)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    private func teardown() {
        cancelTimer()
        if holdsSlot {
            holdsSlot = false
            gate.release()
        }
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
