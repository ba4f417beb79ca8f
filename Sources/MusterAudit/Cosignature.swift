// A witness's cosignature on a checkpoint (C2SP tlog-cosignature, the Ed25519 type): a note signature
// line whose bytes are key hash ‖ u64 timestamp ‖ Ed25519 signature over
// "cosignature/v1\ntime <timestamp>\n" followed by the checkpoint's text.
import Crypto
import Foundation

public struct CosignatureVerifier: Sendable {
    public let name: String
    public let keyHash: UInt32
    private let key: Curve25519.Signing.PublicKey
    static let algorithm: UInt8 = 0x04

    /// A verifier key `<name>+<8 hex>+<base64(0x04 ‖ 32-byte public key)>`.
    public init(verifierKey: String) throws {
        (name, key) = try NoteFormat.parseVerifierKey(verifierKey, algorithm: Self.algorithm, algorithmName: "4 (Ed25519 cosignature/v1)")
        keyHash = NoteFormat.keyHash(name: name, encodedKey: [Self.algorithm] + [UInt8](key.rawRepresentation))
    }

    /// What the cosigner signs.
    public static func message(checkpointText: String, timestamp: UInt64) -> [UInt8] {
        Array("cosignature/v1\ntime \(timestamp)\n\(checkpointText)".utf8)
    }

    /// The time of this cosigner's signature among `lines` (note signature lines, each ending in a
    /// newline) over `checkpointText`; throws when none of the lines is this cosigner's valid signature.
    /// Lines of other keys are ignored, as the spec says.
    public func verify(lines: String, checkpointText: String) throws -> Date {
        let prefix = NoteFormat.signaturePrefix + name + " "
        for line in lines.split(separator: "\n") where line.hasPrefix(prefix) {
            guard let raw = Base64.decodeCanonical(String(line.dropFirst(prefix.count))), raw.count == 4 + 8 + 64 else { continue }
            guard raw.prefix(4).reduce(UInt32(0), { $0 << 8 | UInt32($1) }) == keyHash else { continue }
            let timestamp = raw[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard timestamp < 1 << 63,
                  key.isValidSignature(Array(raw[12...]), for: Self.message(checkpointText: checkpointText, timestamp: timestamp))
            else { throw NoteError("the cosignature of \(name) does not verify") }
            return Date(timeIntervalSince1970: TimeInterval(timestamp))
        }
        throw NoteError("no cosignature by \(name)+\(NoteFormat.hex8(keyHash)) in the witness's answer")
    }
}
