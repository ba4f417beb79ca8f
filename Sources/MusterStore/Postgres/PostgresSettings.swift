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

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode

    public init(host: String = "localhost", port: Int = 5432, user: String, password: String? = nil, database: String, sslMode: SSLMode = .prefer) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.sslMode = sslMode
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `postgres://user:password@host:port/database?sslmode=…`; the environment fills what the URL leaves out.
    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? "") else {
            throw Invalid(description: "bad database URL: expected postgres://user:password@host:port/database")
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
                  database: path.isEmpty ? base.database : path, sslMode: mode)
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
        let local = host.hasPrefix("/") || ["localhost", "127.0.0.1", "::1"].contains(host)
        guard !local, sslMode != .verifyFull else { return nil }
        return "the database connection to \(host) uses sslmode=\(sslMode.rawValue): "
            + (sslMode == .verifyCA ? "the server's name is not checked" : "it is not checked to be encrypted to the right server")
            + "; use sslmode=verify-full"
    }

    var clientConfiguration: PostgresClient.Configuration {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case .disable:
            tls = .disable
        case .allow, .prefer:
            tlsConfiguration.certificateVerification = .none
            tls = .prefer(tlsConfiguration)
        case .require:
            tlsConfiguration.certificateVerification = .none
            tls = .require(tlsConfiguration)
        case .verifyCA:
            tlsConfiguration.certificateVerification = .noHostnameVerification
            tls = .require(tlsConfiguration)
        case .verifyFull:
            tlsConfiguration.certificateVerification = .fullVerification
            tls = .require(tlsConfiguration)
        }
        var configuration = PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(3)
        return configuration
    }
}
