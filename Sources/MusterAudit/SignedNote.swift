// Signed notes: text signed by one or more Ed25519 keys, as C2SP signed-note ("Format", "Signatures",
// "Ed25519 signatures") specifies, with the signer and verifier key strings of Go's sumdb/note.
import Crypto
import Foundation

/// A malformed key or note, a note no known key signed, or a known key's bad signature.
public struct NoteError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A private signing key: `PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 ‖ 32-byte seed)>`.
public struct NoteSigner: Sendable {
    public let name: String
    /// The key ID that begins each signature: see `NoteFormat.keyHash`.
    public let keyHash: UInt32
    private let key: Curve25519.Signing.PrivateKey

    public init(privateKey: String) throws {
        // Chop at the first four '+': names have none, but base64 may.
        let parts = NoteFormat.chop(privateKey, maxSplits: 4)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY" else {
            throw NoteError("malformed signer key: want PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        }
        let name = parts[2]
        try NoteFormat.checkName(name, what: "signer key")
        guard let hash = NoteFormat.parseKeyHash(parts[3]) else {
            throw NoteError("malformed signer key for \(name): the key hash must be 8 hexadecimal digits")
        }
        guard let data = Base64.decodeCanonical(parts[4]), let algorithm = data.first else {
            throw NoteError("malformed signer key for \(name): the key is not base64")
        }
        guard algorithm == NoteFormat.ed25519 else {
            throw NoteError("signer key for \(name) has unknown algorithm \(algorithm); only 1 (Ed25519) is known")
        }
        guard data.count == 33, let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: data.dropFirst()) else {
            throw NoteError("malformed signer key for \(name): an Ed25519 seed is 32 bytes")
        }
        // The hash names the public key, so it is checked only once that key is derived.
        let expected = NoteFormat.keyHash(name: name, publicKey: [UInt8](key.publicKey.rawRepresentation))
        guard hash == expected else {
            throw NoteError("signer key for \(name) has key hash \(NoteFormat.hex8(hash)), but its key's hash is \(NoteFormat.hex8(expected))")
        }
        self.init(name: name, key: key)
    }

    private init(name: String, key: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.key = key
        keyHash = NoteFormat.keyHash(name: name, publicKey: [UInt8](key.publicKey.rawRepresentation))
    }

    /// A new random key named `name` (non-empty, without spaces or '+').
    public static func generate(name: String) throws -> NoteSigner {
        try NoteFormat.checkName(name, what: "signer key")
        return NoteSigner(name: name, key: Curve25519.Signing.PrivateKey())
    }

    /// The secret key string, to keep as a secret.
    public var privateKey: String {
        "PRIVATE+KEY+\(name)+\(NoteFormat.hex8(keyHash))+\(Base64.encode([NoteFormat.ed25519] + [UInt8](key.rawRepresentation)))"
    }

    /// The public key string verifiers are configured with.
    public var verifierKey: String { verifier.verifierKey }

    public var verifier: NoteVerifier { NoteVerifier(name: name, publicKey: key.publicKey) }

    /// The 64-byte Ed25519 signature of `message` (RFC 8032, deterministic).
    func sign(_ message: [UInt8]) throws -> [UInt8] {
        do {
            return [UInt8](try key.signature(for: message))
        } catch {
            throw NoteError("signing with key \(name)+\(NoteFormat.hex8(keyHash)) failed: \(error)")
        }
    }
}

/// A public key: `<name>+<8 hex key hash>+<base64(0x01 ‖ 32-byte public key)>`.
public struct NoteVerifier: Sendable {
    public let name: String
    public let keyHash: UInt32
    /// The canonical key string (the hash in lower-case hexadecimal).
    public let verifierKey: String
    private let key: Curve25519.Signing.PublicKey

    public init(verifierKey: String) throws {
        let (name, key) = try NoteFormat.parseVerifierKey(verifierKey, algorithm: NoteFormat.ed25519, algorithmName: "1 (Ed25519)")
        self.init(name: name, publicKey: key)
    }

    init(name: String, publicKey: Curve25519.Signing.PublicKey) {
        self.name = name
        key = publicKey
        let raw = [UInt8](publicKey.rawRepresentation)
        keyHash = NoteFormat.keyHash(name: name, publicKey: raw)
        verifierKey = "\(name)+\(NoteFormat.hex8(keyHash))+\(Base64.encode([NoteFormat.ed25519] + raw))"
    }

    /// Whether `signature` (the 64 Ed25519 bytes, without the key hash) signs exactly `text`.
    public func verify(text: String, signature: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        return key.isValidSignature(signature, for: Array(text.utf8))
    }
}

public enum SignedNote: Sendable {
    /// Go's limit: reading more signatures than any real note carries only costs time. The spec asks
    /// verifiers to accept at least 16.
    public static let maxSignatures = 100

    /// The whole note: `text`, a blank line, then one `— <name> <base64(key hash ‖ signature)>` line per signer.
    public static func sign(_ text: String, with signers: [NoteSigner]) throws -> String {
        let bytes = Array(text.utf8)
        guard bytes.last == NoteFormat.newline else {
            throw NoteError("malformed note text: it must end in a newline")
        }
        if let offset = NoteFormat.controlCharacterOffset(bytes) {
            throw NoteError("malformed note text: control character 0x\(String(bytes[offset], radix: 16)) at byte \(offset); only newline is allowed")
        }
        guard !signers.isEmpty else {
            throw NoteError("a note needs at least one signer")
        }
        var note = text + "\n"
        for signer in signers {
            var signature = NoteFormat.bigEndian(signer.keyHash)
            signature += try signer.sign(bytes)
            note += "\(NoteFormat.signaturePrefix)\(signer.name) \(Base64.encode(signature))\n"
        }
        return note
    }

    /// Verifies; throws unless at least one signature is by a known verifier and verifies. Unknown keys
    /// are ignored (as the spec says); a known key with a bad signature is an error.
    public static func open(_ note: String, verifiers: [NoteVerifier]) throws -> (text: String, verifiedBy: [String]) {
        let (text, signatures) = try split(note)

        // Known keys by (name, key hash). The same key listed twice is harmless; two different keys
        // sharing both make a signature by either ambiguous, which is refused when one is met (as Go).
        var known: [NameHash: NoteVerifier] = [:]
        var ambiguous: Set<NameHash> = []
        for verifier in verifiers {
            let id = NameHash(name: verifier.name, hash: verifier.keyHash)
            if let other = known[id], other.verifierKey != verifier.verifierKey {
                ambiguous.insert(id)
            }
            known[id] = verifier
        }

        let textBytes = Array(text.utf8)
        var seen: Set<NameHash> = []
        var verifiedBy: [String] = []
        var unknown: [String] = []
        for signature in signatures {
            let id = NameHash(name: signature.name, hash: signature.keyHash)
            if ambiguous.contains(id) {
                throw NoteError("ambiguous key \(signature.name)+\(NoteFormat.hex8(signature.keyHash)): two different verifier keys have that name and key hash")
            }
            guard let verifier = known[id] else {
                unknown.append("\(signature.name)+\(NoteFormat.hex8(signature.keyHash))")
                continue
            }
            // A repeated signature by one key adds nothing; Go drops it too.
            if !seen.insert(id).inserted { continue }
            guard signature.signature.count == 64,
                  verifier.key(verifies: signature.signature, for: textBytes) else {
                throw NoteError("invalid signature for key \(signature.name)+\(NoteFormat.hex8(signature.keyHash))")
            }
            verifiedBy.append(signature.name)
        }
        guard !verifiedBy.isEmpty else {
            throw NoteError("note has no verifiable signatures (signed only by unknown keys: \(unknown.joined(separator: ", ")))")
        }
        return (text, verifiedBy)
    }

    /// The note's text (with its final newline), without its signature lines and without verifying them.
    public static func text(of note: String) throws -> String {
        try split(note).text
    }

    struct Signature {
        var name: String
        var keyHash: UInt32
        var signature: [UInt8]
    }

    /// Splits a note into its text (with its final newline) and its parsed signature lines, without
    /// verifying anything; every malformation is refused here, each with its own message.
    static func split(_ note: String) throws -> (text: String, signatures: [Signature]) {
        let bytes = Array(note.utf8)
        if let offset = NoteFormat.controlCharacterOffset(bytes) {
            throw NoteError("malformed note: control character 0x\(String(bytes[offset], radix: 16)) at byte \(offset); only newline is allowed")
        }
        // The text ends at the last blank line; the text itself may hold blank lines.
        guard let split = NoteFormat.lastBlankLine(bytes) else {
            throw NoteError("malformed note: no blank line between the text and the signatures")
        }
        let text = String(decoding: bytes[..<(split + 1)], as: UTF8.self)
        let block = bytes[(split + 2)...]
        guard !block.isEmpty else {
            throw NoteError("malformed note: no signature lines after the blank line")
        }
        guard block.last == NoteFormat.newline else {
            throw NoteError("malformed note: the last signature line does not end in a newline")
        }
        let lines = block.dropLast().split(separator: NoteFormat.newline, omittingEmptySubsequences: false)
        guard lines.count <= maxSignatures else {
            throw NoteError("malformed note: \(lines.count) signatures, more than the \(maxSignatures) accepted")
        }
        let prefix = Array(NoteFormat.signaturePrefix.utf8)
        var signatures: [Signature] = []
        for (number, line) in lines.enumerated() {
            let label = "signature line \(number + 1)"
            guard line.starts(with: prefix) else {
                throw NoteError("malformed note: \(label) does not start with an em dash (U+2014) and a space")
            }
            let rest = line.dropFirst(prefix.count)
            guard let space = rest.firstIndex(of: UInt8(ascii: " ")) else {
                throw NoteError("malformed note: \(label) has no space between the key name and the signature")
            }
            let name = String(decoding: rest[..<space], as: UTF8.self)
            guard NoteFormat.isValidName(name) else {
                throw NoteError("malformed note: \(label) has an invalid key name (empty, or with a space or '+')")
            }
            let encoded = String(decoding: rest[(space + 1)...], as: UTF8.self)
            guard let raw = Base64.decodeCanonical(encoded), raw.count >= 5 else {
                throw NoteError("malformed note: \(label) (\(name)) is not base64 of a key hash and a signature")
            }
            let keyHash = raw.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            signatures.append(Signature(name: name, keyHash: keyHash, signature: Array(raw.dropFirst(4))))
        }
        return (text, signatures)
    }
}

private struct NameHash: Hashable {
    var name: String
    var hash: UInt32
}

extension NoteVerifier {
    fileprivate func key(verifies signature: [UInt8], for message: [UInt8]) -> Bool {
        key.isValidSignature(signature, for: message)
    }
}

/// The encodings shared by keys and notes.
enum NoteFormat {
    static let ed25519: UInt8 = 0x01
    static let newline = UInt8(ascii: "\n")
    static let signaturePrefix = "\u{2014} "

    /// Non-empty, no Unicode space (White_Space, as Go's unicode.IsSpace), no '+', and no control
    /// character (a note may not hold one, so such a name could never sign one).
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0.properties.isWhitespace || $0 == "+" || $0.value < 0x20 }
    }

    static func checkName(_ name: String, what: String) throws {
        guard isValidName(name) else {
            throw NoteError("\(what) name \"\(name)\" is invalid: it must be non-empty, without spaces, '+' or control characters")
        }
    }

    /// key ID = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte Ed25519 public key)[:4], big-endian.
    static func keyHash(name: String, publicKey: [UInt8]) -> UInt32 {
        keyHash(name: name, encodedKey: [ed25519] + publicKey)
    }

    /// The same over an encoded key (algorithm byte first), as a verifier key string carries it.
    static func keyHash(name: String, encodedKey: [UInt8]) -> UInt32 {
        var hasher = SHA256()
        hasher.update(data: Array(name.utf8))
        hasher.update(data: [newline])
        hasher.update(data: encodedKey)
        return hasher.finalize().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// Exactly eight hexadecimal digits, either case (as Go's strconv.ParseUint(s, 16, 32) with the
    /// length checked).
    static func parseKeyHash(_ text: String) -> UInt32? {
        guard text.utf8.count == 8,
              text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0 | 0x20) })
        else { return nil }
        return UInt32(text, radix: 16)
    }

    /// Splits at the first `maxSplits` '+' signs (Go's chop, repeated): the last part keeps the rest.
    static func chop(_ text: String, maxSplits: Int) -> [String] {
        Array(text.utf8).split(separator: UInt8(ascii: "+"), maxSplits: maxSplits, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// `<name>+<8 hex key hash>+<base64(algorithm ‖ 32-byte Ed25519 public key)>`, the hash checked.
    static func parseVerifierKey(_ text: String, algorithm wanted: UInt8, algorithmName: String) throws
        -> (name: String, key: Curve25519.Signing.PublicKey) {
        let parts = chop(text, maxSplits: 2)
        guard parts.count == 3 else {
            throw NoteError("malformed verifier key: want <name>+<8 hex digits>+<base64 key>")
        }
        let name = parts[0]
        try checkName(name, what: "verifier key")
        guard let hash = parseKeyHash(parts[1]) else {
            throw NoteError("malformed verifier key for \(name): the key hash must be 8 hexadecimal digits")
        }
        guard let data = Base64.decodeCanonical(parts[2]), let algorithm = data.first else {
            throw NoteError("malformed verifier key for \(name): the key is not base64")
        }
        // Go checks the hash before the algorithm; so do we, so the same bad key gets the same complaint.
        let expected = keyHash(name: name, encodedKey: data)
        guard hash == expected else {
            throw NoteError("verifier key for \(name) has key hash \(hex8(hash)), but its key's hash is \(hex8(expected))")
        }
        guard algorithm == wanted else {
            throw NoteError("verifier key for \(name) has unknown algorithm \(algorithm); only \(algorithmName) is known")
        }
        guard data.count == 33, let key = try? Curve25519.Signing.PublicKey(rawRepresentation: data.dropFirst()) else {
            throw NoteError("malformed verifier key for \(name): an Ed25519 public key is 32 bytes")
        }
        return (name, key)
    }

    /// The offset of the first ASCII control character other than newline, if any.
    static func controlCharacterOffset(_ bytes: [UInt8]) -> Int? {
        bytes.firstIndex { $0 < 0x20 && $0 != newline }
    }

    /// The offset of the first newline of the last "\n\n".
    static func lastBlankLine(_ bytes: [UInt8]) -> Int? {
        var i = bytes.count - 2
        while i >= 0 {
            if bytes[i] == newline && bytes[i + 1] == newline { return i }
            i -= 1
        }
        return nil
    }
}
