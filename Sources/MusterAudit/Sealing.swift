// Seals the sensitive text beside audit entries with AES-256-GCM (NIST SP 800-38D) under per-incident data keys,
// wrapped by a master key: destroying a data key purges its text, and the log, which never hashed it, still verifies.
import Crypto
import Foundation

/// A sealed value or key that cannot be opened: wrong key, wrong context, damaged bytes or bad length.
public struct SealingError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The format byte that begins every sealed value and wrapped key, so the format can change later.
private let formatVersion: UInt8 = 0x01
private let nonceLength = 12
private let tagLength = 16

/// A 256-bit key that seals one incident's sensitive text.
public struct DataKey: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Exactly 32 bytes; nil otherwise.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    public static func generate() -> DataKey {
        DataKey(checked: SymmetricKey(size: .bits256).withUnsafeBytes { [UInt8]($0) })
    }

    private init(checked bytes: [UInt8]) {
        precondition(bytes.count == 32, "a data key is 32 bytes")
        self.bytes = bytes
    }

    /// Keys never print: a log line or a test failure must not leak one.
    public var description: String { "DataKey(redacted)" }

    var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }
}

/// The 256-bit key that wraps every data key; kept outside the database.
public struct MasterKey: Sendable, CustomStringConvertible {
    private let key: SymmetricKey
    /// Keys the stored grouping keys (groupKeyMAC), derived once: every commit that groups uses it.
    private let groupKey: SymmetricKey

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw SealingError("a master key is 32 bytes, not \(bytes.count)")
        }
        self.init(key: SymmetricKey(data: bytes))
    }

    /// Standard padded base64 of the 32 bytes, surrounding white space ignored (keys come from files
    /// and environment variables).
    public init(base64: String) throws {
        guard let bytes = Base64.decodeCanonical(base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SealingError("the master key is not padded base64")
        }
        try self.init(bytes: bytes)
    }

    public static func generate() -> MasterKey {
        MasterKey(key: SymmetricKey(size: .bits256))
    }

    private init(key: SymmetricKey) {
        self.key = key
        groupKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Array("muster/group-key".utf8), outputByteCount: 32)
    }

    public var base64: String { key.withUnsafeBytes { Base64.encode($0) } }

    public var description: String { "MasterKey(redacted)" }

    /// 0x01 ‖ 12-byte nonce ‖ ciphertext ‖ 16-byte tag, AAD = UTF-8("muster/data-key\n" + incident):
    /// the AAD binds the wrapped key to its incident, so it cannot be moved to another.
    public func wrap(_ key: DataKey, incident: String) -> [UInt8] {
        AESGCM.seal(key.bytes, key: self.key, aad: Self.aad(incident))
    }

    public func unwrap(_ wrapped: [UInt8], incident: String) throws -> DataKey {
        guard wrapped.count == 1 + nonceLength + 32 + tagLength else {
            throw SealingError("a wrapped data key is \(1 + nonceLength + 32 + tagLength) bytes, not \(wrapped.count)")
        }
        let bytes = try AESGCM.open(wrapped, key: key, aad: Self.aad(incident), what: "the data key of incident \(incident)")
        guard let dataKey = DataKey(bytes: bytes) else {
            throw SealingError("the data key of incident \(incident) unwrapped to \(bytes.count) bytes, not 32")
        }
        return dataKey
    }

    static func aad(_ incident: String) -> [UInt8] { Array("muster/data-key\n\(incident)".utf8) }

    /// The key that wraps data keys in one key generation: HKDF of this key with the generation's
    /// random secret (stored apart from the keys it wraps). Destroying the secret makes every copy of
    /// a key wrapped under it, live or left behind in a table's free space, a backup or the WAL, useless.
    public func keyEncryptionKey(secret: [UInt8], generation: Int64) -> KeyEncryptionKey {
        KeyEncryptionKey(key: HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: secret,
                                                     info: Array("muster/key-generation\n\(generation)".utf8), outputByteCount: 32))
    }

    /// A grouping key as stored (hex HMAC-SHA256 under a key derived from this one): whoever reads the
    /// database cannot test student numbers against it, as they could an unkeyed hash.
    public func groupKeyMAC(_ digest: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Array(digest.utf8), using: groupKey).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// Wraps and unwraps data keys in one key generation (`MasterKey.keyEncryptionKey`), in the master
/// key's format: the same bytes and the same binding to the incident.
public struct KeyEncryptionKey: Sendable {
    fileprivate let key: SymmetricKey

    /// 32 random bytes: a new generation's secret.
    public static func generateSecret() -> [UInt8] { SymmetricKey(size: .bits256).withUnsafeBytes { [UInt8]($0) } }

    public func wrap(_ dataKey: DataKey, incident: String) -> [UInt8] {
        AESGCM.seal(dataKey.bytes, key: key, aad: MasterKey.aad(incident))
    }

    public func unwrap(_ wrapped: [UInt8], incident: String) throws -> DataKey {
        let bytes = try AESGCM.open(wrapped, key: key, aad: MasterKey.aad(incident), what: "the data key of incident \(incident)")
        guard let dataKey = DataKey(bytes: bytes) else {
            throw SealingError("the data key of incident \(incident) unwrapped to \(bytes.count) bytes, not 32")
        }
        return dataKey
    }
}

public enum Seal: Sendable {
    /// 0x01 ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag; AAD = UTF-8(context). Callers pass
    /// contexts such as "muster/audit\n<incident>\n<sequence>", binding each text to its place.
    public static func seal(_ text: String, key: DataKey, context: String) -> [UInt8] {
        AESGCM.seal(Array(text.utf8), key: key.symmetricKey, aad: Array(context.utf8))
    }

    public static func open(_ sealed: [UInt8], key: DataKey, context: String) throws -> String {
        let bytes = try AESGCM.open(sealed, key: key.symmetricKey, aad: Array(context.utf8), what: "the sealed text")
        // Authenticated, so this is what `seal` was given: a String's UTF-8. Checked all the same.
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SealingError("the sealed text opened to bytes that are not UTF-8")
        }
        return text
    }
}

/// AES-256-GCM with a random 96-bit nonce, framed as version ‖ nonce ‖ ciphertext ‖ tag.
private enum AESGCM {
    static func seal(_ plaintext: [UInt8], key: SymmetricKey, aad: [UInt8]) -> [UInt8] {
        do {
            let box = try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(), authenticating: aad)
            // `combined` is nil only for nonces other than 12 bytes, and this one is 12.
            guard let combined = box.combined else {
                preconditionFailure("AES-GCM with a 12-byte nonce has a combined form")
            }
            return [formatVersion] + [UInt8](combined)
        } catch {
            // A 256-bit key and a fresh 12-byte nonce leave nothing to fail but the library itself.
            preconditionFailure("AES-GCM sealing failed: \(error)")
        }
    }

    static func open(_ sealed: [UInt8], key: SymmetricKey, aad: [UInt8], what: String) throws -> [UInt8] {
        guard sealed.count >= 1 + nonceLength + tagLength else {
            throw SealingError("\(what) is \(sealed.count) bytes, shorter than a sealed value can be")
        }
        guard sealed[0] == formatVersion else {
            throw SealingError("\(what) has format \(sealed[0]); only format \(formatVersion) is known")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
            return [UInt8](try AES.GCM.open(box, using: key, authenticating: aad))
        } catch {
            throw SealingError("\(what) cannot be opened: wrong key or context, or damaged")
        }
    }
}
