// The single place where an HTTP answer or an HTTP client error becomes a typed delivery failure,
// so that every HTTP channel agrees on what is worth retrying.
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

extension DeliveryFailure {
    /// nil for 2xx; otherwise 408 is a timeout, 429 rate limiting (with Retry-After in the detail),
    /// 5xx a server error, and every other status (3xx, since redirects are not followed, and 4xx,
    /// among them Slack's 404 no_service and 410 channel_is_archived) a client error.
    public init?(httpStatus status: HTTPResponseStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        let code = Int(status.code)
        if (200..<300).contains(code) { return nil }
        var detail = "HTTP \(code)"
        let snippet = Self.snippet(body)
        if !snippet.isEmpty { detail += ": \(snippet)" }
        let answer = "HTTP \(code)"
        switch code {
        case 408:
            self.init(.timeout, detail, code: answer)
        case 429:
            let retryAfter = headers.first(name: "Retry-After")
            if let retryAfter { detail += " (Retry-After: \(Self.snippet(Array(retryAfter.utf8), limit: 64)))" }
            self.init(.rateLimited, detail, retryAfter: retryAfter.flatMap(Self.retryAfter), code: answer)
        case 500..<600:
            self.init(.serverError, detail, code: answer)
        case 300..<400:
            if let location = headers.first(name: "Location") {
                detail += " (redirect to \(HTTPDelivery.redactedURL(location)) not followed)"
            }
            self.init(.clientError, detail, code: answer)
        default:
            self.init(.clientError, detail, code: answer)
        }
    }

    /// RFC 9110 §10.2.3: a number of seconds, or an HTTP-date; nil for anything else.
    static func retryAfter(_ value: String) -> RetryAfter? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let seconds = UInt32(text) { return .seconds(TimeInterval(seconds)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.date(from: text).map { .date($0) }
    }

    /// Classifies what `HTTPClient.execute` or the body stream threw: nothing answered (refused, DNS,
    /// TLS) is unreachable, a connect, read or overall deadline is a timeout, a URL the client cannot
    /// use is a bad address.
    public init(transportError error: any Error) {
        switch error {
        case let failure as DeliveryFailure:
            self = failure
        case let error as HTTPClientError:
            self = Self.classify(error)
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                self.init(.unreachable, "DNS lookup for \(error.host) failed: \(dns)")
            } else {
                self.init(.unreachable, "cannot connect to \(error.host):\(error.port): \(error)")
            }
        case let error as ChannelError:
            if case .connectTimeout = error {
                self.init(.timeout, "connect timed out")
            } else {
                self.init(.unreachable, "connection failed: \(error)")
            }
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            self.init(.unreachable, "connection refused")
        case let error as NIOSSLError:
            self.init(.unreachable, "TLS handshake failed: \(error)")
        case let error as BoringSSLError:
            self.init(.unreachable, "TLS error: \(error)")
        case let error as NIOSSLExtraError:
            self.init(.unreachable, "TLS error: \(error)")
        default:
            self.init(.unreachable, "\(type(of: error)): \(error)")
        }
    }

    private static func classify(_ error: HTTPClientError) -> DeliveryFailure {
        switch error {
        case .connectTimeout, .getConnectionFromPoolTimeout:
            DeliveryFailure(.timeout, "connect timed out")
        case .tlsHandshakeTimeout:
            DeliveryFailure(.timeout, "TLS handshake timed out")
        case .readTimeout, .writeTimeout, .deadlineExceeded:
            DeliveryFailure(.timeout, "no answer in time (\(error))")
        case .invalidURL, .emptyHost, .emptyScheme:
            DeliveryFailure(.badAddress, "the client cannot use this URL (\(error))")
        case .remoteConnectionClosed:
            DeliveryFailure(.unreachable, "the server closed the connection before answering")
        default:
            // unsupportedScheme carries the scheme, so it cannot be matched as a constant.
            if String(describing: error).contains("unsupportedScheme") {
                DeliveryFailure(.badAddress, "the client cannot use this URL (\(error))")
            } else {
                DeliveryFailure(.unreachable, "\(error)")
            }
        }
    }

    /// The first `limit` characters of a body, on one line, for failure details.
    static func snippet(_ body: [UInt8], limit: Int = 200) -> String {
        let text = String(decoding: body.prefix(limit * 4), as: UTF8.self)
            .replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
            .trimmingCharacters(in: .whitespaces)
        return text.count > limit ? String(text.prefix(limit)) + "…" : text
    }
}
