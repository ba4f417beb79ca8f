// A time zone's UTC offsets as a table of transitions, read once from the system's tz database.
// Lookups are a binary search (no locks, no allocation), which keeps the engine fast, and every
// wall-clock-to-instant conversion resolves gaps and overlaps by the same documented rule.
import Foundation

public struct ZoneRules: Sendable, Hashable {
    public let identifier: String
    /// `offsets[i]` (seconds east of UTC) applies from `starts[i]` (epoch seconds) on; `starts[0]` is the distant past.
    private let starts: [Int64]
    private let offsets: [Int]
    /// For each 2^22-second bucket (about 48 days) from 1970, the index of the offset in force at its
    /// start: a lookup then needs at most a step or two instead of a binary search.
    private let buckets: [Int32]
    private static let bucketShift: Int64 = 22

    /// nil when the identifier names no time zone the system knows.
    public init?(identifier: String) {
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        self.identifier = identifier
        var starts: [Int64] = [Int64.min]
        var offsets: [Int] = [zone.secondsFromGMT(for: Date(epochSeconds: 0))]
        var cursor = Date(epochSeconds: 0)
        let end = Date(epochSeconds: 4_102_444_800)  // 2100-01-01: the table covers 1970 to 2100
        while let next = zone.nextDaylightSavingTimeTransition(after: cursor), next < end, next > cursor {
            let offset = zone.secondsFromGMT(for: next)
            if offset != offsets[offsets.count - 1] {
                starts.append(next.epochSeconds)
                offsets.append(offset)
            }
            cursor = next
        }
        self.starts = starts
        self.offsets = offsets
        buckets = ZoneRules.buckets(starts)
    }

    private static func buckets(_ starts: [Int64]) -> [Int32] {
        let count = Int(4_102_444_800 >> bucketShift) + 1
        var buckets = [Int32](repeating: 0, count: count)
        var index = 0
        for b in 0..<count {
            let bucketStart = Int64(b) << bucketShift
            while index + 1 < starts.count, starts[index + 1] <= bucketStart { index += 1 }
            buckets[b] = Int32(index)
        }
        return buckets
    }

    public static let utc = ZoneRules(fixedOffset: 0, identifier: "UTC")

    private init(fixedOffset: Int, identifier: String) {
        self.identifier = identifier
        starts = [Int64.min]
        offsets = [fixedOffset]
        buckets = [0]
    }

    /// Seconds east of UTC at an instant.
    public func offset(atEpoch t: Int64) -> Int {
        let bucket = t >> ZoneRules.bucketShift
        if bucket >= 0, bucket < Int64(buckets.count) {
            var index = Int(buckets[Int(bucket)])
            while index + 1 < starts.count, starts[index + 1] <= t { index += 1 }
            return offsets[index]
        }
        var low = 0, high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= t { low = mid } else { high = mid - 1 }
        }
        return offsets[low]
    }

    public func offset(at instant: Date) -> Int { offset(atEpoch: instant.epochSeconds) }

    /// The instants in `range` at which the offset changes.
    public func transitions(in range: Range<Date>) -> [Date] {
        starts.dropFirst().lazy.map { Date(epochSeconds: $0) }.filter(range.contains)
    }

    /// Every instant that reads `local` on the wall clock: two in a fall-back overlap, else one.
    public func instants(_ local: LocalDateTime) -> [Date] {
        let before = offset(atEpoch: local.seconds - 86_400), after = offset(atEpoch: local.seconds + 86_400)
        let readings = Set([before, after].map { local.seconds - Int64($0) }.filter { offset(atEpoch: $0) == Int(local.seconds - $0) })
        return readings.isEmpty ? [instant(local)] : readings.sorted().map { Date(epochSeconds: $0) }
    }

    /// The wall-clock reading at an instant.
    public func local(_ instant: Date) -> LocalDateTime {
        let t = instant.epochSeconds
        return LocalDateTime(seconds: t + Int64(offset(atEpoch: t)))
    }

    /// The instant a wall-clock reading names. In a fall-back overlap the earlier of the two instants
    /// is chosen; a reading that does not exist (inside a spring-forward gap) maps to the first instant
    /// after the gap, the moment of the change: 02:30 on a spring-forward night is 03:00 daylight time.
    public func instant(_ local: LocalDateTime) -> Date {
        let before = offset(atEpoch: local.seconds - 86_400), after = offset(atEpoch: local.seconds + 86_400)
        if before == after { return Date(epochSeconds: local.seconds - Int64(before)) }  // no change within a day
        var best: Int64?
        for o in [before, after] {
            let t = local.seconds - Int64(o)
            if offset(atEpoch: t) == o, best.map({ t < $0 }) ?? true { best = t }
        }
        if let best { return Date(epochSeconds: best) }
        // In a gap: the transition lies between the two readings' candidate instants.
        let earliest = local.seconds - Int64(max(before, after))
        let index = starts.firstIndex { $0 > earliest } ?? (starts.count - 1)
        return Date(epochSeconds: starts[index])
    }
}
