// Where webhooks may go. A webhook's URL comes from the directory, so whoever edits it could
// point Muster at the cloud's metadata service, the database's host or a port on loopback. A
// target must be https:// and resolve to public addresses only, unless its host is allowed by name
// in the configuration (a district's own paging bridge on its network). Redirects are never
// followed (HTTPDelivery), so an allowed host cannot send Muster on to another.
import Foundation
import MusterCore

public struct EgressPolicy: Sendable {
    /// Host names (or literal addresses) that may be plain http:// and resolve to private addresses.
    public var allowedHosts: Set<String>
    /// Resolves a host to its addresses (getaddrinfo); injectable for tests.
    let resolve: @Sendable (String) async -> [IPAddress]

    public init(allowedHosts: Set<String> = [], resolve: (@Sendable (String) async -> [IPAddress])? = nil) {
        self.allowedHosts = Set(allowedHosts.map { $0.lowercased() })
        self.resolve = resolve ?? { host in await IPAddress.resolve(host) }
    }

    /// Why `url` may not be a webhook target by its text alone (scheme, host), or nil.
    public func problem(with url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              let host = components.host, !host.isEmpty else {
            return "'\(HTTPDelivery.redactedURL(url))' is not an absolute http(s) URL"
        }
        if allowedHosts.contains(host.lowercased()) { return scheme == "https" || scheme == "http" ? nil : "'\(scheme)' is not http(s)" }
        guard scheme == "https" else {
            return "webhook targets must be https:// (\(host) is not in channels.webhook.allow_hosts)"
        }
        return nil
    }

    /// Refuses a target whose text or resolved addresses the policy does not allow: a bad address,
    /// which the pipeline moves past at once (the next contact point, the next step).
    func check(_ url: String) async throws(DeliveryFailure) {
        if let problem = problem(with: url) { throw DeliveryFailure(.badAddress, problem) }
        guard let host = URLComponents(string: url)?.host, !allowedHosts.contains(host.lowercased()) else { return }
        let addresses = await resolve(host)
        guard !addresses.isEmpty else { throw DeliveryFailure(.unreachable, "\(host) did not resolve") }
        if let refused = addresses.first(where: { !$0.isPublic }) {
            throw DeliveryFailure(.badAddress, "\(host) resolves to \(refused), which is not a public address; "
                                  + "allow it by name in channels.webhook.allow_hosts if it is your own receiver")
        }
    }
}

/// An IPv4 or IPv6 address, as bytes.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        let trimmed = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
        if inet_pton(AF_INET, trimmed, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, trimmed, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }

    /// Whether the address is reachable on the public internet: not loopback, private, link-local (the
    /// metadata service), shared, reserved, documentation, multicast or unspecified (RFC 6890).
    public var isPublic: Bool {
        if bytes.count == 4 { return Self.publicV4(bytes) }
        guard bytes.count == 16 else { return false }
        let zeros = bytes[0..<10].allSatisfy { $0 == 0 }
        // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses are judged as IPv4.
        if zeros && bytes[10] == 0xff && bytes[11] == 0xff { return Self.publicV4(Array(bytes[12...])) }
        if bytes[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return Self.publicV4(Array(bytes[12...])) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) { return false }  // :: and ::1
        if bytes[0] & 0xfe == 0xfc { return false }  // fc00::/7 unique local
        if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return false }  // fe80::/10 link-local
        if bytes[0] == 0xff { return false }  // multicast
        if bytes[0...3] == [0x20, 0x01, 0x0d, 0xb8] { return false }  // documentation
        if bytes[0...1] == [0x01, 0x00] && bytes[2...7].allSatisfy({ $0 == 0 }) { return false }  // discard-only
        return bytes[0] & 0xe0 == 0x20  // 2000::/3, the global unicast space
    }

    private static func publicV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1], b[2]) {
        case (0, _, _), (10, _, _), (127, _, _): false
        case (100, 64...127, _): false  // shared address space (carrier NAT)
        case (169, 254, _): false  // link-local: the cloud metadata service
        case (172, 16...31, _), (192, 168, _): false
        case (192, 0, 0), (192, 0, 2), (198, 51, 100), (203, 0, 113): false
        case (198, 18...19, _): false  // benchmarking
        case (224...255, _, _): false  // multicast, reserved, broadcast
        default: true
        }
    }

    /// Every address `host` resolves to (getaddrinfo, off the cooperative pool); empty when it does not resolve.
    static func resolve(_ host: String) async -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(host, nil, &hints, &list) == 0 else { return continuation.resume(returning: []) }
                defer { freeaddrinfo(list) }
                var addresses: [IPAddress] = []
                var entry = list
                while let info = entry?.pointee {
                    if info.ai_family == AF_INET, let address = info.ai_addr {
                        address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                            var value = pointer.pointee.sin_addr
                            addresses.append(IPAddress(bytes: withUnsafeBytes(of: &value) { Array($0) }))
                        }
                    } else if info.ai_family == AF_INET6, let address = info.ai_addr {
                        address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                            var value = pointer.pointee.sin6_addr
                            addresses.append(IPAddress(bytes: withUnsafeBytes(of: &value) { Array($0) }))
                        }
                    }
                    entry = info.ai_next
                }
                continuation.resume(returning: addresses)
            }
        }
    }
}
