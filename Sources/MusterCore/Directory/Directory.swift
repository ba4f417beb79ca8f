// The district's directory: roles, sites, people, partners and on-call schedules, indexed for
// the lookups the engine makes on every page ("who is on call for ROLE at SITE now?").
import Foundation

public struct Directory: Sendable {
    public let district: District
    public let incidentTypes: [IncidentType]
    public let roles: [Role]
    public let sites: [SiteID: Site]
    public let people: [PersonID: Person]
    public let partners: [PartnerID: Partner]
    public let schedules: [OnCallSchedule]

    private let scheduleIndex: [ScheduleKey: Int]
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
        guard let site = sites[site] else { return .outsideSchoolHours }
        let local = site.zone.local(instant)
        let date = local.date
        let closed = site.closed.contains { $0.contains(date) } || district.closed.contains { $0.contains(date) }
        if closed || !site.schoolHours.days.contains(local.weekday) { return .nonSchoolDay }
        return site.schoolHours.contains(local) ? .schoolHours : .outsideSchoolHours
    }

    public func zone(of site: SiteID) -> ZoneRules { sites[site]?.zone ?? district.zone }

    /// Whom a target names for an incident at an instant, or why it names nobody.
    public func resolve(_ target: Target, site: SiteID, reporter: Actor, at instant: Date) -> TargetResolution {
        switch target {
        case .onCall(let role, let targetScope):
            let scope = scheduleScope(targetScope, incidentSite: site)
            guard let schedule = schedule(role: role, scope: scope) else {
                return .nobody(reason: "no on-call schedule for \(role) at \(scope)")
            }
            switch schedule.onCall(at: instant) {
            case .person(let id, _, _): return .recipients([.person(id)])
            case .gap(let id): return .nobody(reason: "nobody on call for \(role) at \(scope) (gap in schedule \(id))")
            }
        case .role(let role, let targetScope):
            let scope = scheduleScope(targetScope, incidentSite: site)
            let ids = holders(of: role, scope: scope)
            return ids.isEmpty ? .nobody(reason: "nobody holds the role \(role) at \(scope)")
                : .recipients(ids.map { .person($0) })
        case .person(let id):
            return people[id] == nil ? .nobody(reason: "no person \(id) in the directory") : .recipients([.person(id)])
        case .partner(let id):
            return partners[id] == nil ? .nobody(reason: "no partner \(id) in the directory") : .recipients([.partner(id)])
        case .reporter:
            switch reporter {
            case .person(let id) where people[id] != nil: return .recipients([.person(id)])
            case .partner(let id) where partners[id] != nil: return .recipients([.partner(id)])
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
    case recipients([Recipient])
    case nobody(reason: String)
}
