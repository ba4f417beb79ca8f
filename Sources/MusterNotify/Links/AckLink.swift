// Acknowledgement links: a token that names one notification (so one person, one incident, one
// step of one cycle) and an expiry, signed with HMAC-SHA256 (cut to 128 bits). Anyone holding the link may
// acknowledge once, before it expires; the engine refuses a second acknowledgement in the same
// cycle, and a reopened incident starts a new cycle, so a used link never acknowledges again.
import Crypto
import Foundation
import MusterCore

public struct AckLinkClaim: Sendable, Hashable {
    public var notification: NotificationID
    public var expires: Date
}

public enum AckLinkRejection: Error, Sendable, Hashable, CustomStringConvertible {
    case malformed
    case forged
    case expired(Date)

    public var description: String {
        switch self {
        case .malformed: "the acknowledgement link is malformed"
        case .forged: "the acknowledgement link's signature does not match"
        case .expired(let at): "the acknowledgement link expired at \(ZoneRules.utc.iso8601(at))"
        }
    }
}

public struct AckLinkSigner: Sendable {
    private let key: SymmetricKey
    /// How long a link works after it was sent.
    public let lifetime: TimeInterval

    /// `secret` must be at least 32 random bytes (a per-deployment key from configuration).
    public init(secret: Data, lifetime: TimeInterval = 24 * 3600) {
        key = SymmetricKey(data: secret)
        self.lifetime = lifetime
    }

    /// The token for a link to `notification`, valid until `now + lifetime`.
    public func token(for notification: NotificationID, now: Date) -> String {
        let payload = Data("v1|\(Int64((now.timeIntervalSince1970 + lifetime).rounded(.up)))|\(notification)".utf8)
        return Base64URL.encode(payload) + "." + Base64URL.encode(mac(payload))
    }

    /// HMAC-SHA256 cut to 128 bits: as strong as a forger needs to be refused, and 21 characters shorter in an SMS.
    private func mac(_ payload: Data) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: payload, using: key)).prefix(16)
    }

    /// The notification a token names, when its signature is ours and it has not expired.
    public func verify(_ token: String, now: Date) -> Result<AckLinkClaim, AckLinkRejection> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Base64URL.decode(String(parts[0])),
              let mac = Base64URL.decode(String(parts[1])) else { return .failure(.malformed) }
        // Signature first: nothing in an unsigned payload is trusted, not even its shape.
        let expected = self.mac(payload)
        // Compared in constant time: every byte is looked at whatever the first difference.
        guard mac.count == expected.count, zip(mac, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return .failure(.forged) }
        let fields = String(decoding: payload, as: UTF8.self).split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "v1", let seconds = Int64(fields[1]),
              let id = NotificationID(String(fields[2])) else { return .failure(.malformed) }
        let expires = Date(timeIntervalSince1970: TimeInterval(seconds))
        guard now < expires else { return .failure(.expired(expires)) }
        return .success(AckLinkClaim(notification: id, expires: expires))
    }
}
