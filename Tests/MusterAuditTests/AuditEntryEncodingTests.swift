// The canonical audit entry bytes: keys in canonical order, escaping as RFC 8785 says, and a
// faithful read-back.
import Foundation
@testable import MusterAudit
import MusterCore
import Testing

private func records() -> [AuditRecord] {
    let at = Date(timeIntervalSince1970: 1_796_227_200.125)
    return [
        AuditRecord(sequence: 1, at: at, actor: .person("ann"), action: .reported, detail: "suicide-risk high", sensitive: "text"),
        AuditRecord(sequence: 12, at: at, actor: .system, action: .paged, step: 2, round: 1, recipient: .partner("mcrt"), channel: .voice,
                    notification: NotificationID(incident: "inc-1", cycle: 0, kind: .page, qualifier: .step(2, round: 1), recipient: .partner("mcrt"), channel: .voice)),
        AuditRecord(sequence: 3, at: at, actor: .integration("alertmanager"), action: .taskOverdue, task: "guardian",
                    target: "role:principal@site", detail: "quote \" backslash \\ newline \n tab \t bell \u{7} é 😀"),
        AuditRecord(sequence: 4, at: Date(timeIntervalSince1970: 0), actor: .partner("cps"), action: .noteAdded),
    ]
}

@Suite("Audit entry encoding")
struct AuditEntryEncodingTests {
    @Test("the fixed key order is the canonical (sorted) order, for every shape of entry")
    func fixedOrderIsCanonical() {
        for record in records() {
            #expect(AuditEntryEncoding.encode(record, incident: "inc-1") == AuditEntryEncoding.encodeSorted(record, incident: "inc-1"))
        }
    }

    @Test("the bytes are the documented canonical JSON")
    func exactBytes() {
        let bytes = AuditEntryEncoding.encode(records()[0], incident: "inc-1")
        #expect(String(decoding: bytes, as: UTF8.self)
                == #"{"action":"reported","actor":"person:ann","at":"2026-12-02T16:00:00.125Z","detail":"suicide-risk high","incident":"inc-1","seq":1,"v":2}"#)
        let escaped = String(decoding: AuditEntryEncoding.encode(records()[2], incident: "inc-1"), as: UTF8.self)
        #expect(escaped.contains(#""detail":"quote \" backslash \\ newline \n tab \t bell \u0007 é 😀""#))
        #expect(!escaped.contains("text"), "the sensitive text is never in the bytes")
    }

    @Test("entries read back as they were written, with their chain and sealed fields; the clear text is never in them")
    func readBack() throws {
        let prev = Array(repeating: UInt8(0xAB), count: 32)
        for record in records() {
            let sealed: [UInt8]? = record.sensitive.map { _ in [1, 2, 3, 250] }
            let bytes = AuditEntryEncoding.encode(record, incident: "inc-1", prev: prev, sealed: sealed)
            #expect(bytes == AuditEntryEncoding.encodeSorted(record, incident: "inc-1", prev: prev, sealed: sealed))
            let decoded = try AuditEntryEncoding.decode(bytes)
            #expect(decoded.incident == "inc-1")
            #expect(decoded.prev == prev)
            #expect(decoded.sealed == sealed)
            #expect(decoded.version == 2)
            var expected = record
            expected.sensitive = nil
            #expect(decoded.record == expected)
            // The fast reader agrees and accepts the bytes as canonical.
            let fields = try EntryFields(bytes)
            #expect(fields.string("prev") == String(repeating: "ab", count: 32))
            #expect(fields.int("seq") == record.sequence)
        }
    }

    @Test("the fast reader refuses bytes that are not canonical")
    func nonCanonicalRefused() {
        for text in [#"{"b":1,"a":2}"#, #"{"a": 1}"#, #"{"a":01}"#, #"{"a":"\u0041"}"#, #"{"a":1,"a":1}"#, #"{"a":1}x"#, #"{"a":true}"#, #"{"a":"x\/"}"#,
                     #"{"a":-0}"#, #"{"a":-01}"#, #"{"a":+1}"#, #"{"a":-}"#, #"{"a":"\u001F"}"#, #"{"a":"\u0008"}"#, #"{"a":"\u000a"}"#,
                     #"{"a":"\x"}"#, #"{"a":"\u00"}"#, #"{"a":99999999999999999999}"#, #"{"a":"b"#, #"{"a":1"#, #"{"a":1,}"#, #"{,}"#, #"{"a":"b","a\n":1,"a":2}"#, ""] {
            #expect(throws: AuditDecodingError.self, "\(text)") { try EntryFields(Array(text.utf8)) }
        }
        #expect(throws: AuditDecodingError.self) { try EntryFields(Array(#"{"a":"\#u{01}"}"#.utf8)) }
        #expect(throws: AuditDecodingError.self) { try EntryFields([UInt8](#"{"a":""#.utf8) + [0xC3, 0x28] + [UInt8](#""}"#.utf8)) }
    }

    @Test("the fast reader reads back whatever the encoder writes, escapes and all, and compares without decoding")
    func fastReaderRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "Z", "0", "\"", "\\", "/", "\u{08}", "\t", "\n", "\u{0C}", "\r", "\u{01}", "\u{1F}", "é", "日", "😀", " "]
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0...12, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? "a" })
            let number = Int.random(in: Int.min...Int.max, using: &generator)
            var bytes: [UInt8] = [UInt8(ascii: "{")]
            AuditEntryEncoding.appendString("a", to: &bytes)
            bytes += Array(":\(number),".utf8)
            AuditEntryEncoding.appendString("b\n", to: &bytes)
            bytes += [UInt8(ascii: ":")]
            AuditEntryEncoding.appendString(text, to: &bytes)
            bytes += [UInt8(ascii: "}")]
            let fields = try EntryFields(bytes)
            #expect(fields.int("a") == number)
            #expect(fields.string("b\n") == text)
            #expect(fields.isString("b\n", text))
            #expect(!fields.isString("b\n", text + "x"))
            #expect(fields.fields == ["a": .int(number), "b\n": .string(text)])
        }
        let hash = MerkleTree.leafHash([1, 2, 3])
        let fields = try EntryFields(Array(#"{"prev":"\#(hash.hex)"}"#.utf8))
        #expect(fields.isHex("prev", of: hash))
        #expect(!fields.isHex("prev", of: MerkleTree.leafHash([1, 2, 4])))
    }
}
