// How Muster reaches its mail relay: where it is, how the connection is secured, who logs in, and
// how long each step may take. One value configures both the SMTP client and the email channel.
import Foundation

public struct SMTPSettings: Sendable, Hashable {
    /// How the connection to the relay is protected.
    public enum Security: String, Sendable, Hashable {
        /// Plain text throughout; for a relay on the same host or a test server.
        case none
        /// STARTTLS when the server offers it, plain text otherwise (never with credentials, unless allowed):
        /// whoever strips STARTTLS from the relay's answer reads every acknowledgement link.
        case startTLSIfOffered
        /// STARTTLS or nothing: a server that does not offer it is not sent any mail. The default.
        case startTLSRequired
        /// TLS from the first byte ("submissions", port 465).
        case implicitTLS
    }

    /// Extra certificate authorities to trust besides the system's: a private CA, or a test CA.
    public enum TrustRoot: Sendable, Hashable {
        /// A PEM file holding one or more certificates.
        case pemFile(String)
        /// PEM text holding one or more certificates.
        case pem(String)
    }

    public var host: String
    public var port: Int
    public var security: Security
    /// Log in (AUTH PLAIN or LOGIN) when both are set.
    public var username: String?
    public var password: String?
    /// Credentials travel only over TLS unless this is set (a relay on a trusted network).
    public var allowsCredentialsOverPlainText: Bool
    /// The envelope sender and the From address.
    public var fromAddress: String
    /// The From display name ("Muster").
    public var fromName: String?
    /// The name this client gives in EHLO/HELO.
    public var heloName: String
    /// The right-hand side of every Message-ID ("muster.district.example").
    public var messageIDDomain: String
    /// How long the TCP connection may take to open.
    public var connectTimeout: Duration
    /// How long the server may take to answer any one command (and the TLS handshake).
    public var commandTimeout: Duration
    public var additionalTrustRoots: [TrustRoot]

    public init(host: String, port: Int = 587, security: Security = .startTLSRequired,
                username: String? = nil, password: String? = nil, allowsCredentialsOverPlainText: Bool = false,
                fromAddress: String, fromName: String? = "Muster", heloName: String = "localhost",
                messageIDDomain: String? = nil, connectTimeout: Duration = .seconds(10),
                commandTimeout: Duration = .seconds(60), additionalTrustRoots: [TrustRoot] = []) {
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.allowsCredentialsOverPlainText = allowsCredentialsOverPlainText
        self.fromAddress = fromAddress
        self.fromName = fromName
        self.heloName = heloName
        // The sender's domain is the natural owner of the ids when none is configured.
        self.messageIDDomain = messageIDDomain
            ?? fromAddress.split(separator: "@").last.map(String.init).flatMap { $0.isEmpty ? nil : $0 }
            ?? "muster.invalid"
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.additionalTrustRoots = additionalTrustRoots
    }

    /// Credentials, when both halves are configured.
    var credentials: (username: String, password: String)? {
        guard let username, let password else { return nil }
        return (username, password)
    }
}

extension SMTPSettings: CustomStringConvertible {
    /// For logs and start-up banners: everything but the password.
    public var description: String {
        "smtp://\(username.map { "\($0)@" } ?? "")\(host):\(port) (\(security.rawValue), from \(fromAddress)"
            + (password == nil ? "" : ", password set") + ")"
    }
}

extension SMTPSettings.Security {
    /// Whether mail may travel in clear text (a configuration must say so in so many words).
    public var allowsPlainText: Bool { self == .none || self == .startTLSIfOffered }
}
