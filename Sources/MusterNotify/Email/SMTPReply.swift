// SMTP replies as they come off the wire (RFC 5321 §4.2): a three-digit code and one or more lines,
// where every line but the last has a hyphen after the code ("250-SIZE 1000", "250 HELP").
import NIOCore

public struct SMTPReply: Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    /// The text of each line, without the code and separator.
    public var lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    public var isPositive: Bool { (200..<400).contains(code) }
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    public var isPermanentFailure: Bool { (500..<600).contains(code) }

    /// The reply's text on one line, for details and logs.
    public var text: String { lines.joined(separator: " / ") }

    public var description: String { lines.isEmpty ? "\(code)" : "\(code) \(text)" }
}

/// The server sent something that is not an SMTP reply.
struct SMTPProtocolViolation: Error, CustomStringConvertible {
    var description: String
}

/// Cuts the byte stream into replies. Tolerates bare LF endings; refuses endless lines, so a
/// misbehaving server cannot make us buffer without bound.
struct SMTPReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = SMTPReply

    /// RFC 5321 allows 512 octets per reply line; servers exceed it with long texts, so allow more.
    static let maximumLineLength = 16 * 1024

    private var pendingCode: Int?
    private var pendingLines: [String] = []

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > Self.maximumLineLength {
                throw SMTPProtocolViolation(description: "a reply line longer than \(Self.maximumLineLength) bytes")
            }
            return .needMoreData
        }
        let length = view.distance(from: view.startIndex, to: newline) + 1
        guard var bytes = buffer.readBytes(length: length) else { return .needMoreData }
        bytes.removeLast()  // LF
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        if let reply = try self.take(line: bytes) {
            context.fireChannelRead(Self.wrapInboundOut(reply))
        }
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try self.decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }

    /// Adds one line; returns the reply when the line was its last.
    private mutating func take(line: [UInt8]) throws -> SMTPReply? {
        let digits = line.prefix(3)
        guard digits.count == 3, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let code = Int(String(decoding: digits, as: UTF8.self)), (200..<600).contains(code) else {
            throw SMTPProtocolViolation(description: "not an SMTP reply: \(Self.printable(line))")
        }
        let separator = line.count > 3 ? line[3] : UInt8(ascii: " ")
        guard separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else {
            throw SMTPProtocolViolation(description: "not an SMTP reply: \(Self.printable(line))")
        }
        if let pendingCode, pendingCode != code {
            throw SMTPProtocolViolation(description: "a multi-line reply changed its code from \(pendingCode) to \(code)")
        }
        pendingCode = code
        pendingLines.append(String(decoding: line.dropFirst(4), as: UTF8.self))
        guard separator == UInt8(ascii: " ") else { return nil }
        let reply = SMTPReply(code: code, lines: pendingLines)
        pendingCode = nil
        pendingLines = []
        return reply
    }

    private static func printable(_ line: [UInt8]) -> String {
        let text = String(decoding: line.prefix(80), as: UTF8.self)
        return "\"" + text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : String($0) }.joined() + "\""
    }
}
