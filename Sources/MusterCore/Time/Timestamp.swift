// ISO-8601 timestamps with a zone's offset, as timelines show them ("2026-12-06T02:00:00-06:00"), and RFC 3339 date-times as requests give them.
import Foundation

extension ZoneRules {
    public func iso8601(_ instant: Date) -> String {
        let offset = offset(at: instant)
        let local = LocalDateTime(seconds: instant.epochSeconds + Int64(offset))
        let second = Int(local.secondOfDay % 60)
        let sign = offset < 0 ? "-" : "+", magnitude = abs(offset) / 60
        return "\(local.date)T\(local.time):" + (second < 10 ? "0" : "") + "\(second)"
            + (offset == 0 ? "Z" : sign + pad(magnitude / 60) + ":" + pad(magnitude % 60))
    }

    private func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}

/// "+7m", "+1h30m": an offset from the report, as the simulator prints it.
public func formatOffset(_ seconds: Int) -> String {
    seconds == 0 ? "+0s" : "+" + TimeSpan(seconds: seconds).description
}

/// RFC 3339 date-times as the API and the command line take them.
public enum InstantParser {
    /// The instants RFC 3339 can write: years 0001 to 9999 (two days of slack: Foundation reads dates before 1582 as Julian).
    public static let range = Date(timeIntervalSince1970: -62_135_769_600)...Date(timeIntervalSince1970: 253_402_300_799)

    /// An RFC 3339 date-time, with or without fractional seconds, within `range`.
    public static func parse(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = plain.date(from: text) ?? fractional.date(from: text), range.contains(date) else { return nil }
        return date
    }
}
