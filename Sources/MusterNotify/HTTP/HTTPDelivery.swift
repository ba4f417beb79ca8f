// The one way the HTTP channels (webhook, Slack, Teams, Twilio) talk to a provider: a POST with a
// deadline through the caller's shared AsyncHTTPClient, returning the status and a bounded body.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Timeouts and limits for every HTTP delivery.
public struct HTTPDeliverySettings: Sendable, Hashable {
    /// Time allowed to open the connection (TCP and TLS). Applied by the client's configuration, so
    /// build the shared client with `clientConfiguration()`.
    public var connectTimeout: TimeInterval
    /// Time allowed for the whole request, from the call to the last byte of the response.
    public var totalTimeout: TimeInterval
    /// The most response body kept; providers answer with a few bytes, so anything longer is cut.
    public var maxResponseBytes: Int

    public init(connectTimeout: TimeInterval = 5, totalTimeout: TimeInterval = 15, maxResponseBytes: Int = 64 * 1024) {
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.maxResponseBytes = maxResponseBytes
    }

    /// The configuration to create the shared `HTTPClient` with.
    ///
    /// Redirects are not followed: a signed webhook or a request carrying Twilio credentials must not be
    /// replayed to a host nobody configured. The connect timeout should be shorter than the total one,
    /// so that a refused connection is reported as unreachable rather than as a timeout (the client
    /// keeps retrying the connection until its connect timeout).
    public func clientConfiguration() -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: Self.timeAmount(connectTimeout))
        configuration.redirectConfiguration = .disallow
        return configuration
    }

    static func timeAmount(_ seconds: TimeInterval) -> TimeAmount {
        .nanoseconds(Int64((max(0, seconds) * 1_000_000_000).rounded()))
    }
}

/// A provider's answer: the status, the headers, and at most `maxResponseBytes` of the body.
public struct HTTPDeliveryResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// Nothing when the status is 2xx; otherwise the typed failure it stands for.
    public func check() throws(DeliveryFailure) {
        if let failure = DeliveryFailure(httpStatus: status, headers: headers, body: body) { throw failure }
    }
}

/// POSTs through an injected `HTTPClient` (the caller owns it and shuts it down).
public struct HTTPDelivery: Sendable {
    public let client: HTTPClient
    public let settings: HTTPDeliverySettings

    public init(client: HTTPClient, settings: HTTPDeliverySettings = HTTPDeliverySettings()) {
        self.client = client
        self.settings = settings
    }

    /// Sends one POST and returns the response whatever its status; transport failures (refused,
    /// DNS, TLS, timeouts) come back as typed failures. Callers usually follow with `check()`.
    public func post(_ url: String, headers: HTTPHeaders, body: [UInt8]) async throws(DeliveryFailure) -> HTTPDeliveryResponse {
        try Self.validate(url)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers
        request.body = .bytes(ByteBuffer(bytes: body))
        let deadline = NIODeadline.now() + HTTPDeliverySettings.timeAmount(settings.totalTimeout)

        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, deadline: deadline)
        } catch {
            throw DeliveryFailure(transportError: error)
        }

        var collected: [UInt8] = []
        do {
            for try await chunk in response.body {
                let room = settings.maxResponseBytes - collected.count
                collected.append(contentsOf: chunk.readableBytesView.prefix(room))
                // Stop reading once the limit is reached: the rest is dropped with the connection.
                if chunk.readableBytes >= room { break }
            }
        } catch {
            // The provider has already said 2xx: it took the message, and sending it again would page
            // the person twice. Any other status is a failure in any case.
            if !(200..<300).contains(response.status.code) {
                throw DeliveryFailure(httpStatus: response.status, headers: response.headers, body: collected)
                    ?? DeliveryFailure(transportError: error)
            }
        }
        return HTTPDeliveryResponse(status: response.status, headers: response.headers, body: collected)
    }

    /// Only absolute http(s) URLs with a host are addresses; anything else cannot be fixed by retrying.
    static func validate(_ url: String) throws(DeliveryFailure) {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = parsed.host, !host.isEmpty else {
            throw DeliveryFailure(.badAddress, "not an http(s) URL: \(redactedURL(url))")
        }
    }

    /// The scheme, host and port of a URL, for failure details: webhook paths often carry secrets
    /// (Slack and Teams hook URLs are bearer credentials), so they stay out of logs and the audit trail.
    public static func redactedURL(_ url: String) -> String {
        guard let components = URLComponents(string: url), let host = components.host else { return "(unparseable URL)" }
        let port = components.port.map { ":\($0)" } ?? ""
        return "\(components.scheme ?? "?")://\(host)\(port)/…"
    }
}
