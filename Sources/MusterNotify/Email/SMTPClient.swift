// An SMTP client (RFC 5321, STARTTLS per RFC 3207, AUTH per RFC 4954): the conversation, one
// connection per message, every step under a timeout, and the connection closed on every path. The
// NIO plumbing (the channel pipeline, TLS, reply timeouts) is in SMTPConnection.swift.
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// The step of a session a failure happened in; failures name it so an operator knows where to look.
public enum SMTPStep: String, Sendable, Hashable {
    case connect
    case greeting
    case ehlo = "EHLO"
    case helo = "HELO"
    case startTLS = "STARTTLS"
    case tlsHandshake = "TLS handshake"
    case auth = "AUTH"
    case mailFrom = "MAIL FROM"
    case rcptTo = "RCPT TO"
    case data = "DATA"
    /// The message itself, up to the server's answer to the final dot.
    case message = "end of DATA"
}

public struct SMTPError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The connection could not be opened (refused, no route, DNS).
        case unreachable
        /// The connection, the handshake or a reply took longer than allowed.
        case timeout
        /// TLS could not be established: a handshake or certificate failure, or STARTTLS required but not offered.
        case tls
        /// The server answered with a failure code.
        case rejected(SMTPReply)
        /// The server closed or reset the connection in the middle of the session.
        case connectionLost
        /// The server sent something that is not SMTP.
        case protocolViolation
        /// This client would not go on: credentials over plain text, no common AUTH mechanism, an address
        /// that cannot be put on the wire, TLS settings that cannot be loaded.
        case refused
    }

    public var kind: Kind
    public var step: SMTPStep
    public var detail: String

    public init(_ kind: Kind, _ step: SMTPStep, _ detail: String) {
        self.kind = kind
        self.step = step
        self.detail = detail
    }

    public var description: String { "\(step.rawValue): \(detail)" }
}

/// Sends messages through one relay. Cheap to copy; each `send` opens and closes its own connection.
public struct SMTPClient: Sendable {
    public let settings: SMTPSettings
    private let eventLoopGroup: any EventLoopGroup
    /// Built once: loading trust roots is not free, and bad TLS settings should fail at start-up.
    private let tlsContext: NIOSSLContext?

    public init(settings: SMTPSettings,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws(SMTPError) {
        // The name goes onto a command line as it is; a space or line break there would be a second command.
        guard !settings.heloName.isEmpty, Self.isCommandToken(settings.heloName) else {
            throw SMTPError(.refused, .ehlo, "the HELO name is not a host name: \(Self.printable(settings.heloName))")
        }
        self.settings = settings
        self.eventLoopGroup = eventLoopGroup
        self.tlsContext = settings.security == .none ? nil : try SMTPConnection.makeTLSContext(settings)
    }

    /// Delivers `message` (RFC 5322 bytes, any line endings) from `sender` to `recipients`.
    public func send(from sender: String, to recipients: [String], message: some Collection<UInt8>) async throws(SMTPError) {
        guard Self.isTransmittable(address: sender) else {
            throw SMTPError(.refused, .mailFrom, "the sender address cannot be sent in SMTP: \(Self.printable(sender))")
        }
        guard !recipients.isEmpty else { throw SMTPError(.refused, .rcptTo, "no recipients") }
        for recipient in recipients where !Self.isTransmittable(address: recipient) {
            throw SMTPError(.refused, .rcptTo, "the recipient address cannot be sent in SMTP: \(Self.printable(recipient))")
        }
        let payload = Self.dataPayload(message)

        let connection = try await SMTPConnection.open(settings: settings, group: eventLoopGroup,
                                                       implicitTLS: settings.security == .implicitTLS ? tlsContext : nil)
        defer { connection.close() }
        do throws(SMTPError) {
            try await converse(on: connection, sender: sender, recipients: recipients, payload: payload)
        } catch {
            // A server that answered deserves a goodbye; the others get the connection closed.
            if case .rejected = error.kind { connection.quit() }
            throw error
        }
        connection.quit()
    }

    private func converse(on connection: SMTPConnection, sender: String, recipients: [String],
                          payload: ByteBuffer) async throws(SMTPError) {
        let greeting = try await connection.exchange(nil, step: .greeting)
        try expect(greeting, [220], .greeting)

        var capabilities = try await hello(on: connection)
        var secured = settings.security == .implicitTLS
        if settings.security == .startTLSIfOffered || settings.security == .startTLSRequired {
            if capabilities.startTLS, let tlsContext {
                try expect(try await connection.exchange("STARTTLS", step: .startTLS), [220], .startTLS)
                try await connection.startTLS(context: tlsContext, serverHostname: Self.serverName(settings.host))
                // RFC 3207: everything learnt before TLS is forgotten; ask again over the secured channel.
                capabilities = try await hello(on: connection)
                secured = true
            } else if settings.security == .startTLSRequired {
                throw SMTPError(.tls, .startTLS, "TLS is required but the server does not offer STARTTLS")
            }
        }

        if let credentials = settings.credentials {
            guard secured || settings.allowsCredentialsOverPlainText else {
                let why = settings.security == .none ? "TLS is turned off" : "the server offers no STARTTLS"
                throw SMTPError(.refused, .auth, "credentials are configured but the connection is not encrypted "
                                + "(\(why)); refusing to send them in plain text")
            }
            try await authenticate(on: connection, credentials: credentials, mechanisms: capabilities.authMechanisms)
        }

        try expect(try await connection.exchange("MAIL FROM:<\(sender)>", step: .mailFrom), [250], .mailFrom)
        for recipient in recipients {
            try expect(try await connection.exchange("RCPT TO:<\(recipient)>", step: .rcptTo), [250, 251], .rcptTo)
        }
        try expect(try await connection.exchange("DATA", step: .data), [354], .data)
        try expect(try await connection.exchange(payload: payload, step: .message), [250], .message)
    }

    /// EHLO, or HELO for a server that does not know EHLO.
    private func hello(on connection: SMTPConnection) async throws(SMTPError) -> SMTPCapabilities {
        let ehlo = try await connection.exchange("EHLO \(settings.heloName)", step: .ehlo)
        if ehlo.code == 250 { return SMTPCapabilities(ehlo) }
        // 500/502/504: command unknown or not implemented (RFC 5321 §3.2); 550 from some old servers.
        guard [500, 502, 504, 550].contains(ehlo.code) else { throw SMTPError(.rejected(ehlo), .ehlo, ehlo.description) }
        try expect(try await connection.exchange("HELO \(settings.heloName)", step: .helo), [250], .helo)
        return SMTPCapabilities()
    }

    private func authenticate(on connection: SMTPConnection, credentials: (username: String, password: String),
                              mechanisms: Set<String>) async throws(SMTPError) {
        if mechanisms.contains("PLAIN") {
            // RFC 4616: authorization identity (empty), NUL, user, NUL, password.
            let token = Data(([0] + Array(credentials.username.utf8) + [0] + Array(credentials.password.utf8))).base64EncodedString()
            var reply = try await connection.exchange("AUTH PLAIN \(token)", step: .auth)
            if reply.code == 334 {  // a server that wants the response on its own line
                reply = try await connection.exchange(token, step: .auth)
            }
            try expect(reply, [235], .auth)
        } else if mechanisms.contains("LOGIN") {
            try expect(try await connection.exchange("AUTH LOGIN", step: .auth), [334], .auth)
            try expect(try await connection.exchange(Data(credentials.username.utf8).base64EncodedString(), step: .auth), [334], .auth)
            try expect(try await connection.exchange(Data(credentials.password.utf8).base64EncodedString(), step: .auth), [235], .auth)
        } else if mechanisms.isEmpty {
            throw SMTPError(.refused, .auth, "credentials are configured but the server does not offer AUTH")
        } else {
            throw SMTPError(.refused, .auth, "the server offers no supported AUTH mechanism (it offers "
                            + mechanisms.sorted().joined(separator: ", ") + "; this client speaks PLAIN and LOGIN)")
        }
    }

    private func expect(_ reply: SMTPReply, _ codes: Set<Int>, _ step: SMTPStep) throws(SMTPError) {
        guard codes.contains(reply.code) else { throw SMTPError(.rejected(reply), step, reply.description) }
    }

    // MARK: - Wire format

    /// The DATA payload: lines ending in CRLF, a leading dot doubled (RFC 5321 §4.5.2), and the final
    /// "." line. Bare CR and LF become CRLF, so whatever the caller built, the server sees one message.
    static func dataPayload(_ message: some Collection<UInt8>) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(message.count + message.count / 40 + 8)
        var atLineStart = true
        var previousWasCR = false
        for byte in message {
            switch byte {
            case UInt8(ascii: "\r"):
                out.writeBytes([13, 10])
                atLineStart = true
                previousWasCR = true
                continue
            case UInt8(ascii: "\n"):
                if !previousWasCR { out.writeBytes([13, 10]) }
                atLineStart = true
            default:
                if atLineStart && byte == UInt8(ascii: ".") { out.writeInteger(UInt8(ascii: ".")) }
                out.writeInteger(byte)
                atLineStart = false
            }
            previousWasCR = false
        }
        if !atLineStart { out.writeBytes([13, 10]) }
        out.writeString(".\r\n")
        return out
    }

    /// An address that can go between < and > on a command line: printable ASCII, no spaces or brackets,
    /// one @ with something on both sides. (No SMTPUTF8: addresses are configured by district staff.)
    static func isTransmittable(address: String) -> Bool {
        guard address.unicodeScalars.count <= 254, isCommandToken(address),
              !address.contains("<"), !address.contains(">") else { return false }
        guard let at = address.lastIndex(of: "@") else { return false }
        return at != address.startIndex && address.index(after: at) != address.endIndex
    }

    /// Printable ASCII without spaces: safe to put on a command line.
    static func isCommandToken(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F }
    }

    static func printable(_ text: String) -> String {
        "\"" + text.prefix(100).unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : String($0) }.joined() + "\""
    }

    /// SNI takes host names only; for an IP literal the certificate's IP address entries are checked instead.
    static func serverName(_ host: String) -> String? {
        var v4 = in_addr()
        var v6 = in6_addr()
        let isIPAddress = host.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
        return isIPAddress ? nil : host
    }
}

/// What the server said it can do in its EHLO reply.
struct SMTPCapabilities: Sendable, Hashable {
    var startTLS = false
    var authMechanisms: Set<String> = []

    init() {}

    init(_ ehlo: SMTPReply) {
        for line in ehlo.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "=" }).map { $0.uppercased() }
            guard let keyword = words.first else { continue }
            switch keyword {
            case "STARTTLS": startTLS = true
            // "AUTH PLAIN LOGIN", and the pre-standard "AUTH=LOGIN" some servers still send.
            case "AUTH": authMechanisms.formUnion(words.dropFirst())
            default: break
            }
        }
    }
}
