// The SMS replies Muster understands: exact forms, never a keyword found in a sentence. "No, not ok"
// or "Cannot take 4821 - in a meeting" acknowledge nothing; they are kept on the incident's timeline
// and the sender is sent the accepted forms.
import Foundation

enum SMSReply: Equatable {
    /// "ACK 4821", "ack #4821"; a bare "1" or "ACK" (nil) is for the sender's newest page still open to an answer.
    case acknowledge(incident: Int?)
    /// "NO 4821", "PASS #4821"; a bare "NO" or "PASS" (nil) is for the newest page, as above.
    case decline(incident: Int?)
    case unrecognised

    /// The accepted forms, as the help text quotes them.
    static let help = "Muster: to take an incident reply ACK and its number (ACK 4821), or 1 for your newest page. "
        + "If you cannot take it, reply NO 4821 or PASS 4821."

    /// Case- and space-insensitive: "  ack  # 4821 " reads as "ACK # 4821"; digits stay one number.
    static func parse(_ body: String) -> SMSReply {
        let normalized = body.uppercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
        if normalized == "1" { return .acknowledge(incident: nil) }
        guard let match = normalized.wholeMatch(of: /(ACK|NO|PASS)(?: ?# ?| )?([0-9]{1,9})?/) else { return .unrecognised }
        let number = match.output.2.flatMap { Int($0) }
        if match.output.2 == nil, normalized.count > match.output.1.count { return .unrecognised }  // "ACK #" names nothing
        return match.output.1 == "ACK" ? .acknowledge(incident: number) : .decline(incident: number)
    }
}
