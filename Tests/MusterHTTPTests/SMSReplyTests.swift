// The SMS reply grammar on its own: exact forms acknowledge or decline, nothing else does.
@testable import MusterHTTP
import Testing

@Suite("SMS reply grammar")
struct SMSReplyTests {
    @Test("exact forms, case- and space-insensitive", arguments: [
        ("ACK 4821", SMSReply.acknowledge(incident: 4821)), ("ack #4821", .acknowledge(incident: 4821)),
        ("  Ack   4821 ", .acknowledge(incident: 4821)), ("ACK#4821", .acknowledge(incident: 4821)), ("ack # 4821", .acknowledge(incident: 4821)),
        ("1", .acknowledge(incident: nil)), (" 1 ", .acknowledge(incident: nil)), ("ack", .acknowledge(incident: nil)),
        ("NO 4821", .decline(incident: 4821)), ("no #4821", .decline(incident: 4821)), ("pass 4821", .decline(incident: 4821)),
        ("No", .decline(incident: nil)), ("PASS", .decline(incident: nil)),
    ])
    func accepted(body: String, expected: SMSReply) {
        #expect(SMSReply.parse(body) == expected)
    }

    @Test("anything else is not understood, however close", arguments: [
        "No, not ok", "Cannot take 4821 - in a meeting", "OK", "YES", "A", "A 4821", "ok 4821", "4821", "2", "ACK 4821 later",
        "ACK 4821?", "ACKNOWLEDGE 4821", "NOT 4821", "NOPE", "ACK -4821", "ACK 12345678901", "ACK ٤٨٢١", "", "ack 4821 4822", "ACK #", "ack 48 21",
    ])
    func refused(body: String) {
        #expect(SMSReply.parse(body) == .unrecognised)
    }
}
