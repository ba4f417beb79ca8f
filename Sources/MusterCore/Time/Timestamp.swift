// ISO-8601 timestamps with a zone's offset, as timelines show them ("2026-12-06T02:00:00-06:00").
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
