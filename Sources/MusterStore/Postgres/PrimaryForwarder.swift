// libpq's host list and target_session_attrs, which PostgresNIO lacks. With several hosts (a
// Patroni or CloudNativePG cluster), the connection pool connects to this forwarder on 127.0.0.1,
// and each new connection is relayed, byte for byte (TLS included), to the first listed host that is
// what target_session_attrs asks for at that moment, checked by a connection of its own as libpq
// checks. When the primary dies, its connections break, queries fail quickly as "unavailable", and
// the pool's next connections find the promoted standby: no restart, no configuration change.
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

final class PrimaryForwarder: Sendable {
    let endpoint: PostgresSettings.Endpoint
    private let channel: any Channel

    /// Listens on 127.0.0.1 at once (the socket is bound before this returns, so the pool can connect
    /// straight away); nil when no socket could be bound.
    init?(settings: PostgresSettings, logger: Logger) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(descriptor, socketAddress, length) == 0 && listen(descriptor, 128) == 0 && getsockname(descriptor, socketAddress, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            return nil
        }
        endpoint = PostgresSettings.Endpoint(host: "127.0.0.1", port: Int(UInt16(bigEndian: address.sin_port)))
        let chooser = HostChooser(settings: settings, logger: logger)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)  // nothing is read before the relay is in place
            .childChannelInitializer { child in
                Task { await chooser.relay(child) }
                return child.eventLoop.makeSucceededVoidFuture()
            }
        do {
            channel = try bootstrap.withBoundSocket(descriptor).wait()
        } catch {
            logger.error("the database host chooser could not start", metadata: ["error": "\(error)"])
            return nil
        }
    }

    deinit { channel.close(promise: nil) }
}

/// Finds the host to relay a connection to, and relays it.
private struct HostChooser: Sendable {
    let settings: PostgresSettings
    let logger: Logger

    func relay(_ child: any Channel) async {
        guard let target = await choose() else {
            logger.warning("no database host is \(settings.targetSession.rawValue) now", metadata: ["hosts": "\(settings.hostDescription)"])
            child.close(promise: nil)
            return
        }
        do {
            let peer = try await ClientBootstrap(group: child.eventLoop)
                .connectTimeout(.seconds(3))
                .connect(host: target.host, port: target.port).get()
            try await child.eventLoop.submit {
                let (inbound, outbound) = GlueHandler.matchedPair()
                try child.pipeline.syncOperations.addHandler(inbound)
                try peer.pipeline.syncOperations.addHandler(outbound)
            }.get()
            try await child.setOption(.autoRead, value: true).get()
        } catch {
            logger.warning("the database host \(target) did not take the connection", metadata: ["error": "\(error)"])
            child.close(promise: nil)
        }
    }

    /// The first listed host that is what the target session asks for (libpq's order).
    private func choose() async -> PostgresSettings.Endpoint? {
        for endpoint in settings.hosts {
            if await accepts(endpoint) { return endpoint }
        }
        return nil
    }

    private func accepts(_ endpoint: PostgresSettings.Endpoint) async -> Bool {
        do {
            let connection = try await PostgresConnection.connect(configuration: try settings.connectionConfiguration(endpoint), id: 0, logger: logger)
            defer { Task { try? await connection.close() } }
            switch settings.targetSession {
            case .any:
                return true
            case .readWrite:
                for try await value in try await connection.query("SHOW transaction_read_only", logger: logger).decode(String.self) {
                    return value == "off"
                }
            case .primary:
                for try await inRecovery in try await connection.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) {
                    return !inRecovery
                }
            }
            return false
        } catch {
            return false
        }
    }
}

/// Copies everything each side reads to the other, with back-pressure, and closes both together
/// (after SwiftNIO's connect-proxy example).
private final class GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler(), second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.context?.write(data, promise: nil) }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }

    func channelInactive(context: ChannelHandlerContext) { partner?.context?.close(promise: nil) }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { partner?.context?.close(promise: nil) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event { partner?.context?.close(mode: .output, promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner, partner.pendingRead {
            partner.pendingRead = false
            partner.context?.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if partner?.context?.channel.isWritable ?? false { context.read() } else { pendingRead = true }
    }
}

@available(*, unavailable)
extension GlueHandler: Sendable {}
