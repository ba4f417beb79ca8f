// Coverage, checked before it is needed: for every site, the playbook each incident type and
// severity runs under, and every hour of the coming days, whether the first step would reach
// anybody. It asks what the engine would do at that instant (variant, targets, channels), so a gap
// found here is a page that would go nowhere. Pure: the start instant and the providers are given.
import Foundation

/// An incident type and a severity: what a reporter chooses, and so what picks a playbook.
public struct IncidentKind: Hashable, Sendable {
    public var type: IncidentTypeID
    public var severity: Severity

    public init(type: IncidentTypeID, severity: Severity) {
        self.type = type
        self.severity = severity
    }
}

/// What happens after a first step that reaches nobody, at the same report instant.
public enum LaterReach: Hashable, Sendable {
    /// The step (0-based) that is the first to reach someone, and how long after the report it is paged.
    case step(Int, after: TimeSpan)
    /// No step reaches anyone, but the fallback does, this long after the report.
    case fallback(after: TimeSpan)
    /// Nobody at all: no step and not the fallback.
    case nobody

    public var description: String {
        switch self {
        case .step(let index, let after) where after.seconds == 0:
            "step \(index + 1) would reach someone at once (the engine skips a step that pages nobody)"
        case .step(let index, let after):
            "step \(index + 1) would reach someone \(after) after the report, once the unanswerable pages time out"
        case .fallback(let after) where after.seconds == 0:
            "no later step reaches anyone; the fallback would, at once"
        case .fallback(let after):
            "no later step reaches anyone; the fallback would, \(after) after the report"
        case .nobody:
            "no later step and not the fallback reaches anyone: nobody at all would be paged"
        }
    }
}

/// A run of consecutive hours at a site in which a playbook's first step would reach nobody, for one cause.
public struct CoverageGap: Hashable, Sendable {
    public var site: SiteID
    public var playbook: PlaybookID
    /// The incident types and severities that this site sends to the playbook, in directory order.
    public var incidents: [IncidentKind]
    /// Which list of steps was chosen (school hours, after hours, non-school day).
    public var variant: PlanVariant
    /// The first step's target to point at: set when the step has a single target.
    public var target: Int?
    /// The gap is [from, until): whole hours of the site's wall clock.
    public var from: Date
    public var until: Date
    /// Why the first step reaches nobody, target by target.
    public var reason: String
    public var later: LaterReach

    public init(site: SiteID, playbook: PlaybookID, incidents: [IncidentKind], variant: PlanVariant, target: Int?,
                from: Date, until: Date, reason: String, later: LaterReach) {
        self.site = site
        self.playbook = playbook
        self.incidents = incidents
        self.variant = variant
        self.target = target
        self.from = from
        self.until = until
        self.reason = reason
        self.later = later
    }

    /// Hours covered (a range over a daylight-saving change counts its real hours).
    public var hours: Int { Int((until.timeIntervalSince(from) / 3600).rounded(.up)) }

    /// One line, with the range in the site's zone: "lincoln-high, suicide-risk and self-harm (any
    /// severity), outside_school_hours steps: step 1 reaches nobody from … to … (America/Chicago): …".
    public func message(zone: ZoneRules) -> String {
        "\(site), \(IncidentKind.describe(incidents)), \(variant.rawValue) steps of playbook \(playbook): step 1 reaches nobody from "
            + "\(zone.iso8601(from)) to \(zone.iso8601(until)) (\(zone.identifier), \(hours) hour\(hours == 1 ? "" : "s")): "
            + "\(reason); \(later.description)"
    }
}

extension IncidentKind {
    /// "suicide-risk and self-harm (any severity)", "threat-of-violence (high, imminent)".
    public static func describe(_ kinds: [IncidentKind]) -> String {
        var order: [IncidentTypeID] = []
        var severities: [IncidentTypeID: Set<Severity>] = [:]
        for kind in kinds {
            if severities[kind.type] == nil { order.append(kind.type) }
            severities[kind.type, default: []].insert(kind.severity)
        }
        // Types that share their severities are written together.
        var groups: [(types: [IncidentTypeID], severities: Set<Severity>)] = []
        for type in order {
            let set = severities[type] ?? []
            if let index = groups.firstIndex(where: { $0.severities == set }) {
                groups[index].types.append(type)
            } else {
                groups.append(([type], set))
            }
        }
        return groups.map { group in
            let names = group.types.map(\.rawValue)
            let list = names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + (names.last ?? "")
            let which = group.severities.count == Severity.allCases.count ? "any severity"
                : group.severities.sorted().map(\.rawValue).joined(separator: ", ")
            return "\(list) (\(which))"
        }.joined(separator: "; ")
    }
}

public struct CoverageCheck: Sendable {
    public let directory: Directory
    public let playbooks: PlaybookSet
    /// The channels that have a provider; a page on any other goes nowhere a person would see it.
    public let providers: Set<ChannelKind>

    public init(directory: Directory, playbooks: PlaybookSet, providers: Set<ChannelKind>) {
        self.directory = directory
        self.playbooks = playbooks
        self.providers = providers
    }

    public init(catalog: Catalog, providers: Set<ChannelKind>) {
        self.init(directory: catalog.directory, playbooks: catalog.playbooks, providers: providers)
    }

    /// Every gap in the `days` local days from the start of the hour holding `from`, site by site.
    public func gaps(from: Date, days: Int) -> [CoverageGap] {
        var gaps: [CoverageGap] = []
        for site in directory.sites.keys.sorted() {
            let hours = Self.hours(from: from, days: days, zone: directory.zone(of: site))
            guard let last = hours.last else { continue }
            let end = Self.nextHour(after: last, zone: directory.zone(of: site))
            for (playbook, incidents) in routing(at: site) {
                gaps += walk(site: site, playbook: playbook, incidents: incidents, hours: hours, end: end)
            }
        }
        return gaps
    }

    /// The start of each local hour walked: from the start of the hour holding `from` to the same
    /// wall-clock reading `days` days later. A spring-forward day has 23, a fall-back day 25: the
    /// walk steps from one wall-clock hour boundary to the next instant that is one, so it never
    /// skips the repeated hour nor invents the missing one (and a zone whose change is not a whole
    /// hour gets a shorter slot instead of drifting off the hour).
    public static func hours(from: Date, days: Int, zone: ZoneRules) -> [Date] {
        let local = zone.local(from)
        let start = Date(epochSeconds: from.epochSeconds - local.secondOfDay % 3600)
        let end = zone.instant(LocalDateTime(seconds: local.seconds - local.secondOfDay % 3600 + Int64(max(0, days)) * 86_400))
        var hours: [Date] = []
        hours.reserveCapacity(max(0, days) * 24 + 1)
        var hour = start
        while hour < end {
            hours.append(hour)
            hour = nextHour(after: hour, zone: zone)
        }
        return hours
    }

    /// The next instant after `hour` at which the site's wall clock reads a whole hour.
    static func nextHour(after hour: Date, zone: ZoneRules) -> Date {
        let ahead = hour.epochSeconds + 3600
        return Date(epochSeconds: ahead - zone.local(Date(epochSeconds: ahead)).secondOfDay % 3600)
    }

    /// Which playbook each incident type and severity runs under at a site (as intake picks it: the
    /// choice does not depend on the time), grouped by playbook in set order.
    func routing(at site: SiteID) -> [(Playbook, [IncidentKind])] {
        var byPlaybook: [PlaybookID: [IncidentKind]] = [:]
        for type in directory.incidentTypes.map(\.id) {
            for severity in Severity.allCases {
                guard let playbook = playbooks.playbook(type: type, severity: severity, site: site) else { continue }
                byPlaybook[playbook.id, default: []].append(IncidentKind(type: type, severity: severity))
            }
        }
        return playbooks.playbooks.compactMap { playbook in byPlaybook[playbook.id].map { (playbook, $0) } }
    }

    /// Hour by hour, merging consecutive hours with the same cause into one gap.
    private func walk(site: SiteID, playbook: Playbook, incidents: [IncidentKind], hours: [Date], end: Date) -> [CoverageGap] {
        var gaps: [CoverageGap] = []
        var open: CoverageGap?
        for (index, hour) in hours.enumerated() {
            let until = index + 1 < hours.count ? hours[index + 1] : end
            guard let found = firstStepGap(site: site, playbook: playbook, at: hour) else {
                if let gap = open { gaps.append(gap) }
                open = nil
                continue
            }
            if var gap = open, gap.variant == found.variant, gap.target == found.target, gap.reason == found.reason, gap.later == found.later {
                gap.until = until
                open = gap
            } else {
                if let gap = open { gaps.append(gap) }
                open = CoverageGap(site: site, playbook: playbook.id, incidents: incidents, variant: found.variant, target: found.target,
                                   from: hour, until: until, reason: found.reason, later: found.later)
            }
        }
        if let gap = open { gaps.append(gap) }
        return gaps
    }

    /// Why an incident reported at `instant` would page nobody reachable in its first step, or nil when it would.
    func firstStepGap(site: SiteID, playbook: Playbook, at instant: Date) -> (variant: PlanVariant, target: Int?, reason: String, later: LaterReach)? {
        // As EscalationEngine.start chooses.
        let variant = playbook.variant(for: directory.schoolTime(at: site, instant: instant))
        let steps = playbook.steps(of: variant)
        guard let first = steps.first else { return nil }
        let outcome = reach(first.targets, channels: first.channels, site: site, at: instant)
        guard !outcome.reaches else { return nil }
        // The engine goes on at once past a step that queued no page; one whose pages cannot be
        // answered waits out every round of its acknowledgement window first.
        var elapsed = outcome.queuedAny ? first.ackWithin.seconds * (first.repeats + 1) : 0
        var later = LaterReach.nobody
        for index in steps.indices.dropFirst() {
            let step = steps[index]
            let next = reach(step.targets, channels: step.channels, site: site, at: instant.addingTimeInterval(TimeInterval(elapsed)))
            if next.reaches {
                later = .step(index, after: TimeSpan(seconds: elapsed))
                break
            }
            elapsed += next.queuedAny ? step.ackWithin.seconds * (step.repeats + 1) : 0
        }
        if later == .nobody {
            let fallback = reach(playbook.fallback.targets, channels: playbook.fallback.channels, site: site,
                                 at: instant.addingTimeInterval(TimeInterval(elapsed)))
            if fallback.reaches { later = .fallback(after: TimeSpan(seconds: elapsed)) }
        }
        return (variant, first.targets.count == 1 ? 0 : nil, outcome.reasons.joined(separator: "; "), later)
    }

    /// Whom a list of targets would page at an instant, by the engine's rules.
    struct Reach {
        /// Someone would be paged on a channel that has a provider.
        var reaches = false
        /// Some page would be queued at all (on any channel): the engine then waits for an answer.
        var queuedAny = false
        /// Target by target, why nobody is reached.
        var reasons: [String] = []
    }

    func reach(_ targets: [Target], channels: [ChannelKind], site: SiteID, at instant: Date) -> Reach {
        var result = Reach()
        var seen: [Recipient] = []
        for target in targets {
            let recipients: [Recipient]
            switch target {
            case .reporter:
                // Who reports is not known ahead; a step that counts on the reporter is not counted as covered.
                result.reasons.append("reporter: whoever reports is not known ahead, so not counted")
                continue
            default:
                // The engine resolves with the incident's reporter, which only `reporter` targets read.
                switch directory.resolve(target, site: site, reporter: .system, at: instant) {
                case .one(let recipient): recipients = [recipient]
                case .recipients(let found): recipients = found
                case .nobody(let reason):
                    result.reasons.append("\(target): \(reason)")
                    continue
                }
            }
            var clauses: [String] = []
            for recipient in recipients where !seen.contains(recipient) {
                seen.append(recipient)
                let used = pagedChannels(recipient, channels: channels)
                if !used.isEmpty { result.queuedAny = true }
                if used.contains(where: providers.contains) {
                    result.reaches = true
                } else {
                    clauses.append(unreachable(recipient, used: used, channels: channels))
                }
            }
            switch target {
            case .person, .partner: result.reasons += clauses
            default: if !clauses.isEmpty { result.reasons.append("\(target) names " + clauses.joined(separator: ", and ")) }
            }
        }
        return result
    }

    /// The channels the engine pages a recipient on: each of the step's channels the recipient has a
    /// contact point for; with none of them, their first contact point's (EscalationEngine's `send`).
    func pagedChannels(_ recipient: Recipient, channels: [ChannelKind]) -> [ChannelKind] {
        let contacts = directory.contacts(of: recipient)
        let matching = channels.filter { channel in contacts.contains { $0.channel == channel } }
        if !matching.isEmpty { return matching }
        return contacts.first.map { [$0.channel] } ?? []
    }

    /// "person:jdoe, who has only push contact points, and push has no provider".
    private func unreachable(_ recipient: Recipient, used: [ChannelKind], channels: [ChannelKind]) -> String {
        let contacts = directory.contacts(of: recipient)
        guard !contacts.isEmpty else { return "\(recipient), who has no contact points" }
        var kinds: [ChannelKind] = []
        for contact in contacts where !kinds.contains(contact.channel) { kinds.append(contact.channel) }
        if !kinds.contains(where: providers.contains) {
            return "\(recipient), who has only \(Self.list(kinds)) contact points, and \(Self.noProvider(kinds))"
        }
        if !channels.contains(where: { used.contains($0) }) {
            return "\(recipient), who has no \(Self.list(channels, or: true)) contact point and so is paged on their first, "
                + "\(Self.list(used)), and \(Self.noProvider(used))"
        }
        return "\(recipient), who is paged only by \(Self.list(used)) (the step's via), and \(Self.noProvider(used))"
    }

    private static func list(_ kinds: [ChannelKind], or: Bool = false) -> String {
        let names = kinds.map(\.rawValue)
        guard names.count > 1 else { return names.first ?? "" }
        return names.dropLast().joined(separator: ", ") + (or ? " or " : " and ") + (names.last ?? "")
    }

    private static func noProvider(_ kinds: [ChannelKind]) -> String {
        kinds.count == 1 ? "\(kinds[0].rawValue) has no provider" : "\(list(kinds)) have no provider"
    }
}
