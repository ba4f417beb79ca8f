// Connection settings the way libpq reads them, so operators configure Muster as they configure
// psql: a postgres:// URL, or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and PGSSLMODE.
import Foundation
import NIOSSL
import PostgresNIO

public struct PostgresSettings: Sendable, Hashable {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// libpq's target_session_attrs: which of the listed hosts a connection may use.
    public enum TargetSession: String, Sendable, CaseIterable {
        /// The first host that answers.
        case any
        /// The first host whose sessions accept writes (`SHOW transaction_read_only` is off).
        case readWrite = "read-write"
        /// The first host that is not in recovery (`pg_is_in_recovery()` is false).
        case primary
    }

    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The first host; `hosts` lists them all, in the order they are tried.
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// Every host of a libpq host list (`postgres://h1:p1,h2:p2/db`), in order; one for a plain URL.
    public var hosts: [Endpoint]
    public var targetSession: TargetSession

    public init(host: String = "localhost", port: Int = 5432, user: String, password: String? = nil, database: String, sslMode: SSLMode = .prefer,
                hosts: [Endpoint]? = nil, targetSession: TargetSession = .any) {
        self.host = hosts?.first?.host ?? host
        self.port = hosts?.first?.port ?? port
        self.user = user
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.hosts = hosts ?? [Endpoint(host: host, port: port)]
        self.targetSession = targetSession
    }

    /// Whether connections go through the host chooser (PrimaryForwarder): several hosts, or a target
    /// session other than any.
    var choosesHost: Bool { hosts.count > 1 || targetSession != .any }

    /// "host:port", or the host list.
    public var hostDescription: String { hosts.map(\.description).joined(separator: ",") }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `postgres://user:password@host:port/database?sslmode=…`, or a libpq host list
    /// (`postgres://user@h1:p1,h2:p2/database?target_session_attrs=read-write`); the environment fills what
    /// the URL leaves out.
    public init(url original: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        // A host list is not a URL URLComponents reads: its hosts are taken out, and the first put back.
        var text = original
        var listed: [Endpoint]?
        if let schemeEnd = text.range(of: "://") {
            let rest = text[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            let hostPart = authority.lastIndex(of: "@").map { authority[authority.index(after: $0)...] } ?? authority
            if hostPart.contains(",") {
                var endpoints: [Endpoint] = []
                for item in hostPart.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let endpoint = Self.endpoint(String(item), defaultPort: Int(environment["PGPORT"] ?? "") ?? 5432) else {
                        throw Invalid(description: "bad host '\(item)' in the database URL's host list; write host:port,host:port")
                    }
                    endpoints.append(endpoint)
                }
                listed = endpoints
                text.replaceSubrange(hostPart.startIndex..<hostPart.endIndex, with: endpoints[0].description)
            }
        }
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? "") else {
            throw Invalid(description: "bad database URL: expected postgres://user:password@host:port/database")
        }
        var target = TargetSession.any
        if let value = url.queryItems?.first(where: { $0.name == "target_session_attrs" })?.value ?? environment["PGTARGETSESSIONATTRS"] {
            guard let parsed = TargetSession(rawValue: value) else {
                throw Invalid(description: "target_session_attrs '\(value)' is not supported; use one of: "
                              + TargetSession.allCases.map(\.rawValue).joined(separator: ", "))
            }
            target = parsed
        }
        let base = PostgresSettings(environment: environment)
        var mode = base.sslMode
        if let value = url.queryItems?.first(where: { $0.name == "sslmode" })?.value {
            guard let parsed = SSLMode(rawValue: value) else {
                throw Invalid(description: "bad sslmode '\(value)' in the database URL; use one of: \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            mode = parsed
        }
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        self.init(host: url.host.flatMap { $0.isEmpty ? nil : $0 } ?? base.host, port: url.port ?? base.port,
                  user: url.user.flatMap { $0.isEmpty ? nil : $0 }.map { $0.removingPercentEncoding ?? $0 } ?? base.user,
                  password: url.password.map { $0.removingPercentEncoding ?? $0 } ?? base.password,
                  database: path.isEmpty ? base.database : path, sslMode: mode, hosts: listed, targetSession: target)
    }

    /// "host", "host:port" or "[v6]:port".
    static func endpoint(_ text: String, defaultPort: Int) -> Endpoint? {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return Endpoint(host: host, port: defaultPort) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) else { return nil }
            return Endpoint(host: host, port: port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard let host = parts.first, !host.isEmpty, parts.count <= 2 else { return nil }
        guard parts.count == 2 else { return Endpoint(host: String(host), port: defaultPort) }
        guard let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return Endpoint(host: String(host), port: port)
    }

    /// libpq's variables, with libpq's defaults (the user defaults to the login name, the database to the user).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let user = environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        self.init(host: environment["PGHOST"] ?? "localhost", port: environment["PGPORT"].flatMap(Int.init) ?? 5432, user: user,
                  password: environment["PGPASSWORD"], database: environment["PGDATABASE"] ?? user,
                  sslMode: environment["PGSSLMODE"].flatMap(SSLMode.init(rawValue:)) ?? .prefer)
    }

    /// Why the connection could be read or redirected on the network, or nil: anything short of
    /// verify-full to a host that is not this machine (libpq's default, prefer, falls back to clear text
    /// and checks no certificate).
    public var transportWarning: String? {
        let local = hosts.allSatisfy { $0.host.hasPrefix("/") || ["localhost", "127.0.0.1", "::1"].contains($0.host) }
        guard !local, sslMode != .verifyFull else { return nil }
        return "the database connection to \(hostDescription) uses sslmode=\(sslMode.rawValue): "
            + (sslMode == .verifyCA ? "the server's name is not checked" : "it is not checked to be encrypted to the right server")
            + "; use sslmode=verify-full"
    }

    /// What sslmode asks of TLS: nil when it is off, else the configuration and whether it is required.
    private var tls: (configuration: TLSConfiguration, required: Bool)? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable:
            return nil
        case .allow, .prefer:
            configuration.certificateVerification = .none
            return (configuration, false)
        case .require:
            configuration.certificateVerification = .none
            return (configuration, true)
        case .verifyCA:
            configuration.certificateVerification = .noHostnameVerification
            return (configuration, true)
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            return (configuration, true)
        }
    }

    /// The pool's configuration: straight to the host, or through the host chooser at `forwarder`, in
    /// which case TLS still checks the certificate against the first listed host's name.
    func clientConfiguration(via forwarder: Endpoint? = nil) -> PostgresClient.Configuration {
        let target = forwarder ?? Endpoint(host: host, port: port)
        let mode: PostgresClient.Configuration.TLS = switch tls {
        case nil: .disable
        case let (configuration, required)?: required ? .require(configuration) : .prefer(configuration)
        }
        var configuration = PostgresClient.Configuration(host: target.host, port: target.port, username: user, password: password,
                                                         database: database, tls: mode)
        configuration.options.connectTimeout = .seconds(3)
        if forwarder != nil { configuration.options.tlsServerName = host }
        return configuration
    }

    /// A single connection to one listed host (the host chooser's check of what it accepts).
    func connectionConfiguration(_ endpoint: Endpoint) throws -> PostgresConnection.Configuration {
        let mode: PostgresConnection.Configuration.TLS = switch tls {
        case nil: .disable
        case let (configuration, required)?:
            required ? .require(try NIOSSLContext(configuration: configuration)) : .prefer(try NIOSSLContext(configuration: configuration))
        }
        var configuration = PostgresConnection.Configuration(host: endpoint.host, port: endpoint.port, username: user, password: password,
                                                             database: database, tls: mode)
        configuration.options.connectTimeout = .seconds(3)
        return configuration
    }
}
