// The district's directory: roles, sites, people, partners and on-call schedules, indexed for
// the lookups the engine makes on every page ("who is on call for ROLE at SITE now?").
import Foundation

/// Immutable once built, and shared by reference: the engine reads it on every page.
public final class Directory: Sendable {
    public let district: District
    public let incidentTypes: [IncidentType]
    public let roles: [Role]
    public let sites: [SiteID: Site]
    public let people: [PersonID: Person]
    public let partners: [PartnerID: Partner]
    public let schedules: [OnCallSchedule]

    private let scheduleIndex: [ScheduleKey: Int]
    /// Each site's closed days (its own and the district's) as sorted, merged day-number ranges.
    private let closedDays: [SiteID: [ClosedRange<Int64>]]
    /// People holding each role at each site (district-wide staff under `.district`), in directory order.
    private let holders: [ScheduleKey: [PersonID]]

    private struct ScheduleKey: Hashable, Sendable {
        var role: RoleID
        var scope: ScheduleScope
    }

    public init(district: District, incidentTypes: [IncidentType], roles: [Role], sites: [Site], people: [Person],
                partners: [Partner], schedules: [OnCallSchedule]) {
        self.district = district
        self.incidentTypes = incidentTypes
        self.roles = roles
        self.sites = Dictionary(sites.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.people = Dictionary(people.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.partners = Dictionary(partners.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.schedules = schedules
        var index: [ScheduleKey: Int] = [:]
        for (i, schedule) in schedules.enumerated() where index[ScheduleKey(role: schedule.role, scope: schedule.scope)] == nil {
            index[ScheduleKey(role: schedule.role, scope: schedule.scope)] = i
        }
        scheduleIndex = index
        var closedDays: [SiteID: [ClosedRange<Int64>]] = [:]
        for site in sites {
            let ranges = (site.closed + district.closed).map { $0.from.dayNumber...$0.to.dayNumber }.sorted { $0.lowerBound < $1.lowerBound }
            var merged: [ClosedRange<Int64>] = []
            for range in ranges {
                if let last = merged.last, range.lowerBound <= last.upperBound + 1 {
                    merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
                } else {
                    merged.append(range)
                }
            }
            closedDays[site.id] = merged
        }
        self.closedDays = closedDays
        var holders: [ScheduleKey: [PersonID]] = [:]
        for person in people {
            for role in person.roles {
                for assignment in person.assignments {
                    let scope: ScheduleScope = switch assignment {
                    case .district: .district
                    case .site(let site): .site(site)
                    }
                    holders[ScheduleKey(role: role, scope: scope), default: []].append(person.id)
                }
            }
        }
        self.holders = holders
    }

    public func schedule(role: RoleID, scope: ScheduleScope) -> OnCallSchedule? {
        scheduleIndex[ScheduleKey(role: role, scope: scope)].map { schedules[$0] }
    }

    /// Everyone assigned to exactly this scope in the role (a site's own staff, or district-wide staff).
    public func holders(of role: RoleID, scope: ScheduleScope) -> [PersonID] {
        holders[ScheduleKey(role: role, scope: scope)] ?? []
    }

    /// Whether an instant falls in school hours, outside them, or on a non-school day at a site.
    public func schoolTime(at site: SiteID, instant: Date) -> SchoolTime {
        guard let id = Optional(site), let site = sites[id] else { return .outsideSchoolHours }
        let local = site.zone.local(instant)
        if !site.schoolHours.includes(local.weekday) || isClosed(id, day: local.dayNumber) { return .nonSchoolDay }
        return site.schoolHours.contains(local) ? .schoolHours : .outsideSchoolHours
    }

    /// When school hours next begin at a site after an instant: the first school day (not a closed
    /// day) whose opening is later. A closure counts for the next three days only: from the fourth day
    /// on, a weekday of the school week is taken closed or not, so a long break (winter, summer) holds
    /// nothing back for more than a long weekend. Nil for an unknown site or one with no school day.
    public func nextSchoolOpening(at site: SiteID, after instant: Date) -> Date? {
        guard let found = sites[site] else { return nil }
        let today = found.zone.local(instant).dayNumber
        for day in today...(today + 14) where found.schoolHours.includes(Weekday(dayNumber: day)) && (day >= today + 4 || !isClosed(site, day: day)) {
            let opening = found.zone.instant(LocalDateTime(date: LocalDate(dayNumber: day), time: found.schoolHours.from))
            if opening > instant { return opening }
        }
        return nil
    }

    private func isClosed(_ site: SiteID, day: Int64) -> Bool {
        guard let ranges = closedDays[site] else { return false }
        var low = 0, high = ranges.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if ranges[mid].upperBound < day { low = mid + 1 } else if ranges[mid].lowerBound > day { high = mid - 1 } else { return true }
        }
        return false
    }

    public func zone(of site: SiteID) -> ZoneRules { sites[site]?.zone ?? district.zone }

    /// Whom a target names for an incident at an instant, or why it names nobody.
    public func resolve(_ target: Target, site: SiteID, reporter: Actor, at instant: Date) -> TargetResolution {
        switch target {
        case .onCall(let role, let targetScope):
            let scope = scheduleScope(targetScope, incidentSite: site)
            guard let index = scheduleIndex[ScheduleKey(role: role, scope: scope)] else {
                return .nobody(reason: "no on-call schedule for \(role) at \(scope)")
            }
            switch schedules[index].onCall(at: instant) {
            case .person(let id, _, _): return .one(.person(id))
            case .gap(let id): return .nobody(reason: "nobody on call for \(role) at \(scope) (gap in schedule \(id))")
            }
        case .role(let role, let targetScope):
            let scope = scheduleScope(targetScope, incidentSite: site)
            let ids = holders(of: role, scope: scope)
            return ids.isEmpty ? .nobody(reason: "nobody holds the role \(role) at \(scope)")
                : .recipients(ids.map { .person($0) })
        case .person(let id):
            return people[id] == nil ? .nobody(reason: "no person \(id) in the directory") : .one(.person(id))
        case .partner(let id):
            return partners[id] == nil ? .nobody(reason: "no partner \(id) in the directory") : .one(.partner(id))
        case .reporter:
            switch reporter {
            case .person(let id) where people[id] != nil: return .one(.person(id))
            case .partner(let id) where partners[id] != nil: return .one(.partner(id))
            default: return .nobody(reason: "the reporter (\(reporter)) has no contact points in the directory")
            }
        }
    }

    public func scheduleScope(_ scope: TargetScope, incidentSite: SiteID) -> ScheduleScope {
        switch scope {
        case .incidentSite: .site(incidentSite)
        case .district: .district
        case .site(let id): .site(id)
        }
    }

    public func contacts(of recipient: Recipient) -> [ContactPoint] {
        switch recipient {
        case .person(let id): people[id]?.contacts ?? []
        case .partner(let id): partners[id]?.contacts ?? []
        }
    }

    public func name(of recipient: Recipient) -> String {
        switch recipient {
        case .person(let id): people[id]?.name ?? id.rawValue
        case .partner(let id): partners[id]?.name ?? id.rawValue
        }
    }
}

public enum TargetResolution: Hashable, Sendable {
    /// The common case, without allocating an array.
    case one(Recipient)
    case recipients([Recipient])
    case nobody(reason: String)
}
