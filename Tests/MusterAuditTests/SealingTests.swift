// Sealing sensitive text with AES-256-GCM: it opens only with its key and its context, any damaged
// byte is caught, and the plaintext never shows in what is stored.
import Foundation
import MusterAudit
import Testing

private func sealingError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as SealingError {
        return error.description
    } catch {
        return "unexpected \(type(of: error)): \(error)"
    }
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
}

@Suite("Sealing")
struct SealingTests {
    let context = "muster/audit\ninc-1\n7"

    @Test("sealed text opens with its key and context, whatever the text", arguments: ["", "a", "student disclosed a plan to self-harm", "école — 😀\n\tline two", String(repeating: "x", count: 10_000)])
    func roundTrip(text: String) throws {
        let key = DataKey.generate()
        let sealed = Seal.seal(text, key: key, context: context)
        #expect(sealed.count == 1 + 12 + text.utf8.count + 16)
        #expect(sealed[0] == 0x01)
        #expect(try Seal.open(sealed, key: key, context: context) == text)
    }

    @Test("the wrong key, the wrong context, or any changed byte is refused")
    func refusals() throws {
        let key = DataKey.generate()
        let sealed = Seal.seal("the counsellor's note", key: key, context: context)
        #expect(sealingError { _ = try Seal.open(sealed, key: DataKey.generate(), context: context) }?.contains("cannot be opened") == true)
        #expect(sealingError { _ = try Seal.open(sealed, key: key, context: "muster/audit\ninc-1\n8") }?.contains("cannot be opened") == true)
        #expect(sealingError { _ = try Seal.open(sealed, key: key, context: "muster/audit\ninc-2\n7") }?.contains("cannot be opened") == true)
        #expect(sealingError { _ = try Seal.open(sealed, key: key, context: "") } != nil)
        for i in 1..<sealed.count {
            var damaged = sealed
            damaged[i] ^= 0x01
            #expect(sealingError { _ = try Seal.open(damaged, key: key, context: context) }?.contains("cannot be opened") == true, "byte \(i)")
        }
        var otherVersion = sealed
        otherVersion[0] = 0x02
        #expect(sealingError { _ = try Seal.open(otherVersion, key: key, context: context) }?.contains("format 2") == true)
        #expect(sealingError { _ = try Seal.open(Array(sealed.prefix(28)), key: key, context: context) }?.contains("shorter") == true)
        #expect(sealingError { _ = try Seal.open(Array(sealed.dropLast()), key: key, context: context) } != nil)
        #expect(sealingError { _ = try Seal.open([], key: key, context: context) }?.contains("shorter") == true)
    }

    @Test("the plaintext never appears in the sealed bytes, and sealing twice never repeats")
    func confidentiality() {
        let key = DataKey.generate()
        let text = "Student disclosed suicidal ideation with a plan; guardian not yet reached."
        let first = Seal.seal(text, key: key, context: context)
        let second = Seal.seal(text, key: key, context: context)
        #expect(!contains(first, Array(text.utf8)))
        // Not even a recognisable piece of it.
        for word in ["Student", "suicidal", "guardian", "plan;"] {
            #expect(!contains(first, Array(word.utf8)), "\(word)")
        }
        #expect(first != second, "a fresh random nonce every time")
        #expect(first[1..<13] != second[1..<13])
    }

    @Test("data keys are 32 bytes and never print")
    func dataKeys() {
        #expect(DataKey(bytes: Array(repeating: 7, count: 32))?.bytes == Array(repeating: 7, count: 32))
        #expect(DataKey(bytes: Array(repeating: 7, count: 31)) == nil)
        #expect(DataKey(bytes: Array(repeating: 7, count: 33)) == nil)
        #expect(DataKey(bytes: []) == nil)
        let key = DataKey.generate()
        #expect(key.bytes.count == 32)
        #expect(key != DataKey.generate())
        #expect("\(key)" == "DataKey(redacted)")
    }

    @Test("a master key wraps a data key for one incident only")
    func masterKeys() throws {
        let master = MasterKey.generate()
        let dataKey = DataKey.generate()
        let wrapped = master.wrap(dataKey, incident: "inc-1")
        #expect(wrapped.count == 1 + 12 + 32 + 16)
        #expect(wrapped[0] == 0x01)
        #expect(!contains(wrapped, dataKey.bytes))
        #expect(try master.unwrap(wrapped, incident: "inc-1") == dataKey)
        #expect(master.wrap(dataKey, incident: "inc-1") != wrapped, "a fresh nonce every time")

        #expect(sealingError { _ = try master.unwrap(wrapped, incident: "inc-2") }?.contains("cannot be opened") == true)
        #expect(sealingError { _ = try MasterKey.generate().unwrap(wrapped, incident: "inc-1") }?.contains("cannot be opened") == true)
        for i in 1..<wrapped.count {
            var damaged = wrapped
            damaged[i] ^= 0x80
            #expect(throws: SealingError.self) { try master.unwrap(damaged, incident: "inc-1") }
        }
        #expect(sealingError { _ = try master.unwrap(Array(wrapped.dropLast()), incident: "inc-1") }?.contains("61 bytes") == true)
        #expect(sealingError { _ = try master.unwrap(wrapped + [0], incident: "inc-1") }?.contains("61 bytes") == true)

        // A sealed audit text is not a wrapped key, even of the right length under the same key bytes:
        // the additional data differs.
        let masterBytes = try #require(Data(base64Encoded: master.base64))
        let sameBytes = try #require(DataKey(bytes: [UInt8](masterBytes)))
        let text = Seal.seal(String(repeating: "k", count: 32), key: sameBytes, context: "muster/audit\ninc-1\n1")
        #expect(text.count == wrapped.count)
        #expect(throws: SealingError.self) { try master.unwrap(text, incident: "inc-1") }
    }

    @Test("a master key reads from its base64 (white space around it ignored) and from 32 bytes only")
    func masterKeyEncodings() throws {
        let master = MasterKey.generate()
        let again = try MasterKey(base64: master.base64)
        #expect(again.base64 == master.base64)
        #expect(try MasterKey(base64: "  \(master.base64)\n").base64 == master.base64)
        let dataKey = DataKey.generate()
        #expect(try again.unwrap(master.wrap(dataKey, incident: "inc-9"), incident: "inc-9") == dataKey)
        #expect(try MasterKey(bytes: Array(repeating: 1, count: 32)).base64 == Data(Array(repeating: 1, count: 32)).base64EncodedString())

        #expect(sealingError { _ = try MasterKey(bytes: Array(repeating: 1, count: 16)) }?.contains("32 bytes, not 16") == true)
        #expect(sealingError { _ = try MasterKey(base64: "not base64!") }?.contains("not padded base64") == true)
        #expect(sealingError { _ = try MasterKey(base64: Data(Array(repeating: 1, count: 24)).base64EncodedString()) }?.contains("not 24") == true)
        #expect(sealingError { _ = try MasterKey(base64: "") } != nil)
        #expect("\(master)" == "MasterKey(redacted)")
        #expect(!"\(master)".contains(master.base64))
    }
}
