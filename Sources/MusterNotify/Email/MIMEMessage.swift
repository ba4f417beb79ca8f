// An email as it goes over the wire (RFC 5322, MIME per RFC 2045/2046/2047): a plain-text and an
// HTML alternative, both quoted-printable UTF-8, with a Message-ID that carries the notification id.
// Deterministic for given inputs (the date and the boundary are injectable), so tests can pin it.
import Foundation

public struct MIMEMessage: Sendable, Hashable {
    public var fromAddress: String
    public var fromName: String?
    public var to: String
    public var subject: String
    public var text: String
    public var html: String
    /// The stable notification id; it goes into Message-ID (encoded) and X-Muster-Notification-Id (verbatim).
    public var notificationID: String
    public var messageIDDomain: String
    public var date: Date
    /// Separates the parts. Starts with "=_" so it can never occur in quoted-printable text.
    public var boundary: String

    public init(fromAddress: String, fromName: String?, to: String, subject: String, text: String, html: String,
                notificationID: String, messageIDDomain: String, date: Date = Date(),
                boundary: String = MIMEMessage.randomBoundary()) {
        self.fromAddress = fromAddress
        self.fromName = fromName
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.notificationID = notificationID
        self.messageIDDomain = messageIDDomain
        self.date = date
        self.boundary = boundary
    }

    public static func randomBoundary() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<4).map { _ in String(generator.next() as UInt64, radix: 16) }.joined()
        return "=_muster_" + hex
    }

    /// `<id@domain>`: the same notification always gets the same Message-ID, so a re-send after a
    /// crash is recognisable as one (mail clients thread or drop duplicates by it).
    public var messageID: String {
        "<\(Self.messageIDLocalPart(for: notificationID))@\(Self.messageIDDomainPart(messageIDDomain))>"
    }

    /// The whole message, CRLF line endings, every line at most 998 octets.
    public var bytes: [UInt8] { Array(rendered.utf8) }

    public var rendered: String {
        var headers: [String] = [
            "Date: " + Self.rfc5322Date(date),
            "From: " + Self.mailbox(name: fromName, address: fromAddress),
            "To: " + Self.headerSafe(to),
            Self.field("Subject", subject),
            "Message-ID: " + messageID,
            Self.field("X-Muster-Notification-Id", notificationID),
            // RFC 3834: a machine sent this; autoresponders (out-of-office) must not answer it.
            "Auto-Submitted: auto-generated",
            "X-Auto-Response-Suppress: All",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
        ]
        headers.append("")
        let body = [
            "This is a message in MIME format: a plain-text and an HTML version of the same text.",
            "--\(boundary)",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            Self.quotedPrintable(text),
            "--\(boundary)",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            Self.quotedPrintable(html),
            "--\(boundary)--",
            "",
        ]
        return (headers + body).joined(separator: "\r\n")
    }

    // MARK: - Message-ID

    /// Bytes outside this set are written %XX, which keeps the id a valid dot-atom-text (RFC 5322 §3.6.4)
    /// and reversible; "%" and "." are escaped too so the mapping is one-to-one and dots never double.
    private static let idSafe: Set<UInt8> = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=".utf8))

    static func messageIDLocalPart(for id: String) -> String {
        // An empty local part is not allowed; NUL never occurs in an id, so "%00" stands for "" unambiguously.
        guard !id.isEmpty else { return "%00" }
        var out = ""
        for byte in id.utf8 {
            if idSafe.contains(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + hex(byte)
            }
        }
        return out
    }

    private static func messageIDDomainPart(_ domain: String) -> String {
        let cleaned = domain.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == ".") }
        let text = String(String.UnicodeScalarView(cleaned)).split(separator: ".").joined(separator: ".")
        return text.isEmpty ? "muster.invalid" : text
    }

    /// The notification id a Message-ID (with or without angle brackets) was made from.
    public static func notificationID(fromMessageID messageID: String) -> String? {
        var text = Substring(messageID)
        if text.hasPrefix("<") && text.hasSuffix(">") { text = text.dropFirst().dropLast() }
        guard let at = text.lastIndex(of: "@") else { return nil }
        var bytes: [UInt8] = []
        var iterator = text[..<at].utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else { bytes.append(byte); continue }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
        }
        return bytes == [0] ? "" : String(validating: bytes, as: UTF8.self)
    }

    // MARK: - Headers

    /// "Name: value", the value as it is when it is plain printable ASCII that cannot be mistaken for
    /// an encoded-word, RFC 2047 encoded-words otherwise; folded so lines stay near 78 octets.
    static func field(_ name: String, _ value: String) -> String {
        let clean = headerSafe(value)
        let plain = clean.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F } && !clean.contains("=?")
        if plain && clean.split(separator: " ").allSatisfy({ $0.utf8.count + name.utf8.count + 2 <= 998 }) {
            return "\(name): " + fold(clean, firstLineUsed: name.utf8.count + 2)
        }
        return "\(name): " + encodedWords(clean, firstLineUsed: name.utf8.count + 2).joined(separator: "\r\n ")
    }

    /// Header text on one line: line breaks and tabs become spaces (no header injection from a subject),
    /// other control characters go.
    static func headerSafe(_ value: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            switch scalar.value {
            case 0x09, 0x0A, 0x0D: scalars.append(" ")
            case 0x00..<0x20, 0x7F: continue
            default: scalars.append(scalar)
            }
        }
        return String(scalars)
    }

    /// Folds ASCII text at spaces (RFC 5322 §2.2.3) so each line is 78 octets or fewer where words allow.
    private static func fold(_ text: String, firstLineUsed: Int) -> String {
        var lines: [String] = []
        var line = ""
        var limit = 78 - firstLineUsed
        for (index, word) in text.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
            if index == 0 {
                line = String(word)
            } else if line.utf8.count + 1 + word.utf8.count > limit && !word.isEmpty
                        && !line.allSatisfy({ $0 == " " }) {
                // The fold's whitespace is the space the words had between them; no line is only spaces.
                lines.append(line)
                line = " " + word
                limit = 78
            } else {
                line += " " + word
            }
        }
        lines.append(line)
        return lines.joined(separator: "\r\n")
    }

    /// RFC 2047 B-encoded words, each at most 75 octets, split only between characters, so every
    /// word decodes to valid UTF-8 on its own; the first fits after the field name on a 76-octet line.
    static func encodedWords(_ text: String, firstLineUsed: Int) -> [String] {
        let overhead = "=?utf-8?B??=".utf8.count
        func capacity(_ room: Int) -> Int { max(3, (room - overhead) / 4 * 3) }  // raw octets per word
        var words: [String] = []
        var chunk: [UInt8] = []
        var room = capacity(76 - firstLineUsed)
        func flush() {
            words.append("=?utf-8?B?" + Data(chunk).base64EncodedString() + "?=")
            chunk = []
            room = capacity(75)
        }
        for character in text {
            // A character longer than a word (a long emoji sequence) is split between its scalars.
            let pieces = character.utf8.count <= capacity(75) ? [Array(character.utf8)] : character.unicodeScalars.map { Array(String($0).utf8) }
            for piece in pieces {
                if chunk.count + piece.count > room && !chunk.isEmpty { flush() }
                chunk += piece
            }
        }
        if !chunk.isEmpty || words.isEmpty { flush() }
        return words
    }

    /// `Name <address>`, the name as an atom sequence, a quoted string, or encoded-words.
    static func mailbox(name: String?, address: String) -> String {
        let address = headerSafe(address)
        guard let name = name.map(headerSafe), !name.trimmingCharacters(in: .whitespaces).isEmpty else { return address }
        let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~ ".unicodeScalars)
        if name.unicodeScalars.allSatisfy({ atext.contains($0) }) && !name.contains("=?") {
            return "\(name) <\(address)>"
        }
        if name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) && !name.contains("=?") {
            let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\" <\(address)>"
        }
        return encodedWords(name, firstLineUsed: "From: ".utf8.count).joined(separator: "\r\n ") + " <\(address)>"
    }

    /// "Thu, 03 Dec 2026 07:35:31 +0000" (RFC 5322 §3.3), in UTC, independent of the locale.
    static func rfc5322Date(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0) ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let weekday = days[((c.weekday ?? 1) - 1 + 7) % 7]
        let month = months[((c.month ?? 1) - 1 + 12) % 12]
        func two(_ n: Int?) -> String { let n = n ?? 0; return n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(c.day)) \(month) \(c.year ?? 1970) \(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }

    // MARK: - Quoted-printable

    /// RFC 2045 §6.7 over the UTF-8 bytes: hard line breaks become CRLF, encoded lines are at most 76
    /// octets, a soft break never splits a character, and whitespace at a line's end is encoded.
    /// A leading "." is left alone: SMTP dot-stuffing takes care of it on the wire.
    static func quotedPrintable(_ text: String) -> String {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var out: [String] = []
        for line in normalized.split(separator: "\n", omittingEmptySubsequences: false) {
            let scalars = Array(line.unicodeScalars)
            var encoded = ""
            var length = 0
            for (index, scalar) in scalars.enumerated() {
                let isLast = index == scalars.count - 1
                let token: String
                switch scalar.value {
                case 0x20, 0x09:
                    token = isLast ? "=" + hex(UInt8(scalar.value)) : String(scalar)
                case 0x21...0x7E where scalar != "=":
                    token = String(scalar)
                default:
                    token = String(scalar).utf8.map { "=" + hex($0) }.joined()
                }
                // 75 leaves room for the "=" of a soft break; the last token may use the 76th octet.
                if length + token.utf8.count > (isLast ? 76 : 75) {
                    out.append(encoded + "=")
                    encoded = ""
                    length = 0
                }
                encoded += token
                length += token.utf8.count
            }
            out.append(encoded)
        }
        return out.joined(separator: "\r\n")
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF".unicodeScalars)
        return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0x0F)])
    }
}
