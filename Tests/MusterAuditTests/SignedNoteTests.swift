// Signed notes against Go's sumdb/note vectors (the PeterNeumann and EnochRoot keys and notes from
// note.go's documentation and note_test.go), then round trips and every way a note can be refused.
import Foundation
import MusterAudit
import Testing

private let peterSigner = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
private let peterKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
private let enochKey = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
private let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
private let peterSig = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
private let enochSig = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

/// `s` with `insert` put at UTF-8 byte offset `at`, as Go slices strings by byte.
private func inserting(_ insert: String, into s: String, at: Int) -> String {
    let bytes = Array(s.utf8)
    return String(decoding: bytes[..<at] + Array(insert.utf8) + bytes[at...], as: UTF8.self)
}

private func noteError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as NoteError {
        return error.description
    } catch {
        return "unexpected \(type(of: error)): \(error)"
    }
}

/// Note texts that must be refused, each with a piece of the reason it must give.
private let malformedNoteCases: [(String, String)] = [
    (text, "no blank line"),
    (text + "\n", "no signature lines"),
    (text + "\n" + String(peterSig.dropLast()), "does not end in a newline"),
    ("\u{01}" + text + "\n" + peterSig, "control character 0x1"),
    (text.replacingOccurrences(of: "think", with: "th\tink") + "\n" + peterSig, "control character 0x9"),
    (text + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "is not base64"),
    (text + "\n" + peterSig + "Unexpected line.\n", "signature line 2 does not start with an em dash"),
    (text + "\n" + "- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "em dash"),
    (text + "\n" + "—PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "em dash"),
    (text + "\n" + "— PeterNeumann\n", "no space"),
    (text + "\n" + "—  x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "invalid key name"),
    (text + "\n" + "— Peter+Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n", "invalid key name"),
    (text + "\n" + "— PeterNeumann \n", "is not base64"),
    (text + "\n" + "— PeterNeumann x08go/ZJ\n", "invalid signature for key PeterNeumann+c74f20a3"),  // Peter's key hash, a 2-byte signature
    (text + "\n" + "— PeterNeumann x08g\n", "is not base64"),
    (text + "\n" + peterSig + "\n", "no signature lines"),
    (text + "\n" + String(repeating: peterSig, count: 101), "101 signatures"),
]

@Suite("Signed notes")
struct SignedNoteTests {
    // MARK: Go's vectors

    @Test("Go's PeterNeumann signer and verifier keys read back exactly")
    func goKeys() throws {
        let signer = try NoteSigner(privateKey: peterSigner)
        #expect(signer.name == "PeterNeumann")
        #expect(signer.keyHash == 0xc74f20a3)
        #expect(signer.privateKey == peterSigner)
        #expect(signer.verifierKey == peterKey)

        let verifier = try NoteVerifier(verifierKey: peterKey)
        #expect(verifier.name == "PeterNeumann")
        #expect(verifier.keyHash == 0xc74f20a3)
        #expect(verifier.verifierKey == peterKey)
        #expect(signer.verifier.verifierKey == peterKey)

        let enoch = try NoteVerifier(verifierKey: enochKey)
        #expect(enoch.keyHash == 0xaf0cfe78)
    }

    #if os(Linux)
    // Ed25519 (RFC 8032) is deterministic and swift-crypto's BoringSSL backend follows it; Apple's
    // CryptoKit randomizes signatures, so there only verification can be compared.
    @Test("signing Go's text with Go's key gives Go's note, byte for byte")
    func goSignature() throws {
        let note = try SignedNote.sign(text, with: [NoteSigner(privateKey: peterSigner)])
        #expect(note == text + "\n" + peterSig)
    }
    #endif

    @Test("Go's signed notes open: one known key, both known, and repeated signatures (note_test.go TestOpen)")
    func goOpen() throws {
        let peter = try NoteVerifier(verifierKey: peterKey)
        let enoch = try NoteVerifier(verifierKey: enochKey)

        let one = try SignedNote.open(text + "\n" + peterSig + enochSig, verifiers: [peter])
        #expect(one.text == text)
        #expect(one.verifiedBy == ["PeterNeumann"])

        let both = try SignedNote.open(text + "\n" + peterSig + enochSig, verifiers: [peter, enoch])
        #expect(both.verifiedBy == ["PeterNeumann", "EnochRoot"])

        // Repeated signatures by one key count once; unknown ones, mangled or not, are ignored.
        let enochMangled = inserting("ABCD", into: enochSig, at: 60)
        let repeated = try SignedNote.open(text + "\n" + peterSig + peterSig + enochSig + enochSig + enochMangled, verifiers: [peter])
        #expect(repeated.verifiedBy == ["PeterNeumann"])

        // The same key listed twice is harmless.
        #expect(try SignedNote.open(text + "\n" + peterSig, verifiers: [enoch, peter, enoch]).verifiedBy == ["PeterNeumann"])
    }

    @Test("a note signed only by unknown keys is refused")
    func unknownKeysOnly() throws {
        let error = noteError { _ = try SignedNote.open(text + "\n" + peterSig + enochSig, verifiers: []) }
        #expect(error?.hasPrefix("note has no verifiable signatures") == true)
        #expect(error?.contains("PeterNeumann+c74f20a3") == true)
        let other = try NoteSigner.generate(name: "PeterNeumann")
        #expect(noteError { _ = try SignedNote.open(text + "\n" + peterSig, verifiers: [other.verifier]) }?
            .hasPrefix("note has no verifiable signatures") == true, "same name, another key: unknown, not invalid")
    }

    @Test("a known key's bad signature rejects the whole note, even beside a good one")
    func invalidSignature() throws {
        let peter = try NoteVerifier(verifierKey: peterKey)
        let enoch = try NoteVerifier(verifierKey: enochKey)
        let mangled = inserting("ABCD", into: peterSig, at: 60)
        #expect(noteError { _ = try SignedNote.open(text + "\n" + mangled, verifiers: [peter]) } == "invalid signature for key PeterNeumann+c74f20a3")
        let enochMangled = inserting("ABCD", into: enochSig, at: 60)
        #expect(noteError { _ = try SignedNote.open(text + "\n" + peterSig + enochMangled, verifiers: [peter, enoch]) }
            == "invalid signature for key EnochRoot+af0cfe78")
    }

    @Test("malformed notes are refused, each with its own reason (note_test.go's bad messages and more)",
          arguments: malformedNoteCases)
    func malformedNotes(note: String, reason: String) throws {
        let peter = try NoteVerifier(verifierKey: peterKey)
        let error = noteError { _ = try SignedNote.open(note, verifiers: [peter]) }
        #expect(error?.contains(reason) == true, "\(error ?? "accepted")")
    }

    @Test("sixteen signatures are accepted, as the spec requires")
    func sixteenSignatures() throws {
        let signers = try (0..<16).map { try NoteSigner.generate(name: "witness\($0).example") }
        let note = try SignedNote.sign("example.com/log\n5\n\(MerkleTree.emptyRoot.base64)\n", with: signers)
        #expect(try SignedNote.open(note, verifiers: signers.map(\.verifier)).verifiedBy.count == 16)
        #expect(try SignedNote.open(note, verifiers: [signers[15].verifier]).verifiedBy == ["witness15.example"])
    }

    // MARK: Keys

    @Test("every truncation and every single-byte change of a verifier key is refused (Go's TestNewVerifier)")
    func mangledVerifierKeys() {
        let bytes = Array(peterKey.utf8)
        var accepted: [String] = []
        for i in 0...bytes.count {
            for j in (i + 1)..<(bytes.count + 1) where !(i == 0 && j == bytes.count) {
                let key = String(decoding: bytes[i..<j], as: UTF8.self)
                if (try? NoteVerifier(verifierKey: key)) != nil { accepted.append(key) }
            }
        }
        for i in bytes.indices {
            var changed = bytes
            changed[i] &+= 1
            let key = String(decoding: changed, as: UTF8.self)
            if (try? NoteVerifier(verifierKey: key)) != nil { accepted.append(key) }
        }
        #expect(accepted.isEmpty)
        // Wrong key length and unknown algorithm, each with its key hash adjusted to match.
        #expect(noteError { _ = try NoteVerifier(verifierKey: "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==") } != nil)
        #expect(noteError { _ = try NoteVerifier(verifierKey: "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW") }?.contains("unknown algorithm") == true)
        #expect(noteError { _ = try NoteVerifier(verifierKey: "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW") }?.contains("key hash") == true)
        // Go reads the hash with either case of hex; the canonical key writes it in lower case.
        #expect((try? NoteVerifier(verifierKey: "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"))?.verifierKey == peterKey)
    }

    @Test("every truncation and every single-byte change of a signer key is refused (Go's TestNewSigner)")
    func mangledSignerKeys() {
        let bytes = Array(peterSigner.utf8)
        var accepted: [String] = []
        for i in 0...bytes.count {
            for j in (i + 1)..<(bytes.count + 1) where !(i == 0 && j == bytes.count) {
                let key = String(decoding: bytes[i..<j], as: UTF8.self)
                if (try? NoteSigner(privateKey: key)) != nil { accepted.append(key) }
            }
        }
        for i in bytes.indices {
            var changed = bytes
            changed[i] &+= 1
            let key = String(decoding: changed, as: UTF8.self)
            if (try? NoteSigner(privateKey: key)) != nil { accepted.append(key) }
        }
        #expect(accepted.isEmpty)
        let error = noteError { _ = try NoteSigner(privateKey: "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz") }
        #expect(error?.contains("key hash c74f20a4") == true)
        #expect(error?.contains("AYEKFALV") == false, "the secret is never in a message")
    }

    @Test("key names: non-empty, no Unicode space, no '+', no control character",
          arguments: ["", "a b", "a+b", "a\tb", "a\nb", "a\u{00A0}b", "a\u{2003}b", "a\u{3000}b", "a\u{85}b", "a\u{01}b", " "])
    func invalidNames(name: String) {
        #expect(noteError { _ = try NoteSigner.generate(name: name) }?.contains("is invalid") == true)
    }

    @Test("a generated key round-trips through its strings and signs notes its verifier opens")
    func generatedKeys() throws {
        let signer = try NoteSigner.generate(name: "muster.example/audit")
        let again = try NoteSigner(privateKey: signer.privateKey)
        #expect(again.verifierKey == signer.verifierKey)
        #expect(again.keyHash == signer.keyHash)
        let verifier = try NoteVerifier(verifierKey: signer.verifierKey)
        #expect(verifier.name == "muster.example/audit")
        #expect(signer.privateKey.hasPrefix("PRIVATE+KEY+muster.example/audit+"))

        let body = "muster.example/audit\n12\n\(MerkleTree.emptyRoot.base64)\n"
        let note = try SignedNote.sign(body, with: [signer])
        #expect(note.hasPrefix(body + "\n— muster.example/audit "))
        let opened = try SignedNote.open(note, verifiers: [verifier])
        #expect(opened.text == body)
        #expect(opened.verifiedBy == ["muster.example/audit"])
        // A note opened with a verifier made from the signer directly, too.
        #expect(try SignedNote.open(note, verifiers: [again.verifier]).text == body)
    }

    @Test("a verifier checks a raw signature over exactly the text")
    func verifierVerify() throws {
        let peter = try NoteVerifier(verifierKey: peterKey)
        let raw = try #require(Data(base64Encoded: "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="))
        let signature = Array(raw.dropFirst(4))
        #expect(peter.verify(text: text, signature: signature))
        #expect(!peter.verify(text: text + " ", signature: signature))
        var bad = signature
        bad[0] ^= 1
        #expect(!peter.verify(text: text, signature: bad))
        #expect(!peter.verify(text: text, signature: Array(signature.dropLast())))
        #expect(!peter.verify(text: text, signature: []))
    }

    // MARK: Round trips and tampering

    @Test("several signers, texts with blank lines and non-ASCII, and tampering anywhere refused")
    func roundTripsAndTampering() throws {
        let log = try NoteSigner.generate(name: "log.example")
        let witness = try NoteSigner.generate(name: "witness.example")
        for body in ["one line\n", "para one\n\npara two\n", "\n", "école — café ✓\n", "trailing blank\n\n"] {
            let note = try SignedNote.sign(body, with: [log, witness])
            #expect(try SignedNote.open(note, verifiers: [log.verifier]).text == body)
            #expect(try SignedNote.open(note, verifiers: [witness.verifier]).text == body)
            #expect(try SignedNote.open(note, verifiers: [witness.verifier, log.verifier]).verifiedBy == ["log.example", "witness.example"])

            // Change the text: the known key's signature no longer verifies.
            let tampered = "X" + note
            #expect(noteError { _ = try SignedNote.open(tampered, verifiers: [log.verifier]) }?.hasPrefix("invalid signature for key log.example+") == true)
        }

        // Flip one bit of each byte of the signature in turn (past the key hash).
        let note = try SignedNote.sign("checkpoint\n", with: [log])
        let (body, line) = try #require(splitOnce(note))
        let encoded = String(line.dropFirst("— log.example ".count).dropLast())
        let raw = try #require(Data(base64Encoded: encoded))
        for i in 4..<raw.count {
            var bad = [UInt8](raw)
            bad[i] ^= 0x10
            let forged = body + "— log.example \(bad.base64)\n"
            #expect(noteError { _ = try SignedNote.open(forged, verifiers: [log.verifier]) }?.hasPrefix("invalid signature") == true)
        }
        // Change the key hash: it is then another (unknown) key, and nothing verifies.
        var badHash = [UInt8](raw)
        badHash[0] ^= 1
        #expect(noteError { _ = try SignedNote.open(body + "— log.example \(badHash.base64)\n", verifiers: [log.verifier]) }?
            .hasPrefix("note has no verifiable signatures") == true)
    }

    @Test("signing refuses text without a final newline, with control characters, or with no signer")
    func signRefuses() throws {
        let signer = try NoteSigner(privateKey: peterSigner)
        #expect(noteError { _ = try SignedNote.sign("abc", with: [signer]) }?.contains("newline") == true)
        #expect(noteError { _ = try SignedNote.sign("", with: [signer]) }?.contains("newline") == true)
        #expect(noteError { _ = try SignedNote.sign("a\rb\n", with: [signer]) }?.contains("control character") == true)
        #expect(noteError { _ = try SignedNote.sign(text, with: []) }?.contains("at least one signer") == true)
    }
}

private func splitOnce(_ note: String) -> (String, String)? {
    guard let range = note.range(of: "\n\n", options: .backwards) else { return nil }
    return (String(note[..<range.upperBound]), String(note[range.upperBound...]))
}

extension [UInt8] {
    fileprivate var base64: String { Data(self).base64EncodedString() }
}
