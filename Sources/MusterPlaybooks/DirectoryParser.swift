// Reads `directory.yaml`: the district, its sites and calendars, people, partners and on-call
// schedules (docs/directory.md). Every reference is checked; a bad entry is reported and left out.
import Foundation
import MusterCore
import Yams

struct DirectoryParser {
    let reader: YAMLReader
    /// Where each contact point is written, so a check made later (a channel with no provider) can
    /// point at it.
    let contactSources = ContactSources()

    init(file: String) { reader = YAMLReader(file: file) }

    func parse(_ text: String) -> Directory? {
        guard let root = reader.document(text),
              let top = reader.fields(root, "the directory",
                                      required: ["district", "incident_types", "roles", "sites", "people"],
                                      optional: ["partners", "schedules"]),
              let district = parseDistrict(top["district"]) else { return nil }

        let incidentTypes = entries(top["incident_types"], "incident type") { fields, id in
            reader.string(fields["title"], "the incident type's title").map { IncidentType(id: IncidentTypeID(id), title: $0) }
        }
        let roles = entries(top["roles"], "role") { fields, id in
            reader.string(fields["title"], "the role's title").map { Role(id: RoleID(id), title: $0) }
        }
        let sites = entries(top["sites"], "site", required: ["name", "time_zone", "school_hours"], optional: ["closed"]) { fields, id in
            parseSite(fields, id: id)
        }
        let roleIDs = roles.map(\.id.rawValue), siteIDs = sites.map(\.id.rawValue)
        let people = entries(top["people"], "person", required: ["name", "roles", "sites", "contacts"]) { fields, id in
            parsePerson(fields, id: id, roleIDs: roleIDs, siteIDs: siteIDs)
        }
        let partners = top.has("partners")
            ? entries(top["partners"], "partner", required: ["name", "contacts"]) { fields, id -> Partner? in
                guard let name = reader.string(fields["name"], "the partner's name"),
                      let contacts = parseContacts(fields["contacts"], of: .partner(PartnerID(id))) else { return nil }
                return Partner(id: PartnerID(id), name: name, contacts: contacts)
            } : []
        refuseSharedNumbers()
        let peopleByID = Dictionary(people.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let schedules = top.has("schedules")
            ? entries(top["schedules"], "schedule", required: ["role", "scope", "layers"], optional: ["overrides"]) { fields, id in
                parseSchedule(fields, id: id, roleIDs: roleIDs, sites: sites, district: district, people: peopleByID)
            } : []
        var seenSchedules: [String: Int] = [:]
        for schedule in schedules {
            let key = "\(schedule.role)@\(schedule.scope)"
            seenSchedules[key, default: 0] += 1
            if seenSchedules[key] == 2 {
                reader.error("more than one on-call schedule for \(schedule.role) at \(schedule.scope); merge them into one schedule with layers", at: top["schedules"])
            }
        }
        return Directory(district: district, incidentTypes: incidentTypes, roles: roles, sites: sites, people: people,
                         partners: partners, schedules: schedules)
    }

    /// Parses a list of mappings that each have a unique `id`, reporting duplicates at the second one.
    private func entries<T>(_ node: Node?, _ what: String, required: [String] = ["title"], optional: [String] = [],
                            _ build: (Fields, String) -> T?) -> [T] {
        guard let items = reader.list(node, "the list of \(what)s") else { return [] }
        var results: [T] = [], seen: [String: Node] = [:]
        for item in items {
            guard let fields = reader.fields(item, "a \(what)", required: ["id"] + required, optional: optional),
                  let id = reader.id(fields["id"], "the \(what) id") else { continue }
            if let first = seen[id] {
                reader.error("duplicate \(what) id '\(id)' (first defined at line \(first.mark?.line ?? 0))", at: fields["id"])
                continue
            }
            seen[id] = item
            if let value = build(fields, id) { results.append(value) }
        }
        return results
    }

    private func zone(_ node: Node?) -> ZoneRules? {
        guard let name = reader.string(node, "time_zone") else { return nil }
        if let rules = ZoneRules(identifier: name), name.contains("/") || name == "UTC" { return rules }
        reader.error("unknown time zone '\(name)'" + suggestion(for: name, among: TimeZone.knownTimeZoneIdentifiers, listUpTo: 0)
                     + " (use an IANA name such as America/Chicago)", at: node)
        return nil
    }

    private func parseDistrict(_ node: Node?) -> District? {
        guard let node, let fields = reader.fields(node, "district", required: ["id", "name", "time_zone"], optional: ["closed", "call_back"]),
              let id = reader.id(fields["id"], "the district id"),
              let name = reader.string(fields["name"], "the district's name"),
              let zone = zone(fields["time_zone"]) else { return nil }
        var callBack: String?
        if let node = fields["call_back"], let number = reader.string(node, "the district's call-back number") {
            if let problem = addressProblem(.voice, number) {
                reader.error(problem.replacingOccurrences(of: "for voice", with: "for call_back"), at: node)
            } else {
                callBack = number
            }
        }
        return District(id: id, name: name, zone: zone, closed: closures(fields["closed"]), callBack: callBack)
    }

    private func parseSite(_ fields: Fields, id: String) -> Site? {
        let name = reader.string(fields["name"], "the site's name")
        let zone = zone(fields["time_zone"])
        let hours = fields["school_hours"].flatMap { window($0, "school_hours") }
        let closed = closures(fields["closed"])
        guard let name, let zone, let hours else { return nil }
        return Site(id: SiteID(id), name: name, zone: zone, schoolHours: hours, closed: closed)
    }

    private func window(_ node: Node, _ what: String) -> WeeklyWindow? {
        guard let fields = reader.fields(node, what, required: ["days", "from", "to"]) else { return nil }
        let days = reader.choices(fields["days"], "weekday", Weekday.self)
        let from = reader.localTime(fields["from"], "\(what).from")
        let to = reader.localTime(fields["to"], "\(what).to")
        guard let days, let from, let to else { return nil }
        if from == to {
            reader.error("\(what) starts and ends at \(from): the window would be empty", at: fields["to"])
            return nil
        }
        return WeeklyWindow(days: Set(days), from: from, to: to)
    }

    private func closures(_ node: Node?) -> [ClosedPeriod] {
        guard let node, let items = reader.list(node, "closed", nonEmpty: false) else { return [] }
        return items.compactMap { item -> ClosedPeriod? in
            guard let fields = reader.fields(item, "a closed day or period", required: [], optional: ["date", "from", "to", "reason"]) else { return nil }
            let reason = fields.has("reason") ? reader.string(fields["reason"], "reason") : nil
            if fields.has("date") {
                if fields.has("from") || fields.has("to") {
                    reader.error("give either 'date' or 'from' and 'to', not both", at: item)
                    return nil
                }
                return reader.localDate(fields["date"], "date").map { ClosedPeriod(from: $0, to: $0, reason: reason ?? "") }
            }
            guard fields.has("from"), fields.has("to") else {
                reader.error("a closed entry needs 'date', or 'from' and 'to'", at: item)
                return nil
            }
            guard let from = reader.localDate(fields["from"], "from"), let to = reader.localDate(fields["to"], "to") else { return nil }
            if to < from {
                reader.error("closed period ends (\(to)) before it starts (\(from))", at: fields["to"])
                return nil
            }
            return ClosedPeriod(from: from, to: to, reason: reason ?? "")
        }
    }

    private func parsePerson(_ fields: Fields, id: String, roleIDs: [String], siteIDs: [String]) -> Person? {
        let name = reader.string(fields["name"], "the person's name")
        var roles: [RoleID] = []
        for item in reader.list(fields["roles"], "roles") ?? [] {
            guard let role = reader.string(item, "role") else { continue }
            if roleIDs.contains(role) { roles.append(RoleID(role)) } else {
                reader.error("unknown role '\(role)'" + suggestion(for: role, among: roleIDs), at: item)
            }
        }
        var assignments: [Assignment] = []
        for item in reader.list(fields["sites"], "sites") ?? [] {
            guard let site = reader.string(item, "site") else { continue }
            if site == "district" { assignments.append(.district) } else if siteIDs.contains(site) {
                assignments.append(.site(SiteID(site)))
            } else {
                reader.error("unknown site '\(site)'" + suggestion(for: site, among: siteIDs + ["district"]), at: item)
            }
        }
        guard let name, let contacts = parseContacts(fields["contacts"], of: .person(PersonID(id))) else { return nil }
        return Person(id: PersonID(id), name: name, roles: roles, assignments: assignments, contacts: contacts)
    }

    /// A phone number belongs to one person or agency: an SMS reply or a call from it must say who
    /// answered, and a number two entries share would act as whichever a list gives first.
    private func refuseSharedNumbers() {
        var owners: [String: ContactSource] = [:]
        for source in contactSources.entries where [.sms, .voice].contains(source.contact.channel) {
            let number = source.contact.address
            guard let first = owners[number] else {
                owners[number] = source
                continue
            }
            guard first.owner != source.owner else { continue }
            reader.error("\(number) is already \(first.owner)'s (line \(first.location.line)): SMS replies and calls from it could not be "
                         + "told apart; give \(source.owner) a number of their own", at: source.location)
        }
    }

    private func parseContacts(_ node: Node?, of owner: Recipient) -> [ContactPoint]? {
        guard let items = reader.list(node, "contacts") else { return nil }
        var contacts: [ContactPoint] = []
        for item in items {
            guard let mapping = item.mapping, mapping.count == 1, let (keyNode, value) = mapping.first else {
                reader.error("a contact point is one channel and its address, e.g. { sms: \"+15555550101\" }", at: item)
                continue
            }
            guard let channel = reader.choice(keyNode, "channel", ChannelKind.self),
                  let address = reader.string(value, "the \(channel) address") else { continue }
            if let problem = addressProblem(channel, address) {
                reader.error(problem, at: value)
                continue
            }
            contacts.append(ContactPoint(channel: channel, address: address))
            contactSources.entries.append(ContactSource(owner: owner, contact: contacts[contacts.count - 1], location: reader.location(keyNode)))
        }
        return contacts
    }

    private func addressProblem(_ channel: ChannelKind, _ address: String) -> String? {
        switch channel {
        case .sms, .voice:
            let digits = address.dropFirst()
            let valid = address.hasPrefix("+") && (7...15).contains(digits.count) && digits.allSatisfy { $0.isASCII && $0.isNumber }
                && digits.first != "0"
            return valid ? nil : "bad phone number '\(address)' for \(channel): use E.164, e.g. +15555550101"
        case .email:
            let parts = address.split(separator: "@", omittingEmptySubsequences: false)
            return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") ? nil : "bad email address '\(address)'"
        case .webhook:
            return address.hasPrefix("https://") || address.hasPrefix("http://") ? nil : "the webhook address must be an http(s) URL, not '\(address)'"
        case .chat:
            // An incoming-webhook URL, optionally naming its service first: slack+https://…, teams+https://…
            let url = address.hasPrefix("slack+") ? address.dropFirst(6) : address.hasPrefix("teams+") ? address.dropFirst(6) : Substring(address)
            return url.hasPrefix("https://") || url.hasPrefix("http://") ? nil
                : "the chat address must be an incoming-webhook URL (http(s)://…, or slack+https://… or teams+https://…), not '\(address)'"
        case .push, .inbox:
            return nil
        }
    }

    private func parseSchedule(_ fields: Fields, id: String, roleIDs: [String], sites: [Site], district: District,
                               people: [PersonID: Person]) -> OnCallSchedule? {
        var role: RoleID?
        if let text = reader.string(fields["role"], "the schedule's role") {
            if roleIDs.contains(text) { role = RoleID(text) } else {
                reader.error("unknown role '\(text)'" + suggestion(for: text, among: roleIDs), at: fields["role"])
            }
        }
        var scope: ScheduleScope?, zone = district.zone
        if let text = reader.string(fields["scope"], "the schedule's scope") {
            if text == "district" { scope = .district } else if let site = sites.first(where: { $0.id.rawValue == text }) {
                scope = .site(site.id)
                zone = site.zone
            } else {
                reader.error("unknown scope '\(text)': use a site id or 'district'" + suggestion(for: text, among: sites.map(\.id.rawValue) + ["district"]), at: fields["scope"])
            }
        }
        var layers: [ScheduleLayer] = [], layerIDs: Set<String> = []
        for item in reader.list(fields["layers"], "layers") ?? [] {
            guard let layerFields = reader.fields(item, "a schedule layer", required: ["id", "rotation"], optional: ["active"]),
                  let layerID = reader.id(layerFields["id"], "the layer id") else { continue }
            if !layerIDs.insert(layerID).inserted {
                reader.error("duplicate layer id '\(layerID)' in schedule '\(id)'", at: layerFields["id"])
            }
            let rotation = layerFields["rotation"].flatMap { parseRotation($0, role: role, people: people) }
            var active: [WeeklyWindow] = []
            if layerFields.has("active") {
                active = (reader.list(layerFields["active"], "active") ?? []).compactMap { window($0, "an active window") }
            }
            if let rotation { layers.append(ScheduleLayer(id: layerID, rotation: rotation, active: active)) }
        }
        var overrides: [ScheduleOverride] = []
        if fields.has("overrides") {
            for item in reader.list(fields["overrides"], "overrides", nonEmpty: false) ?? [] {
                guard let o = reader.fields(item, "an override", required: ["person", "from", "to"], optional: ["reason"]) else { continue }
                let person = personReference(o["person"], role: role, people: people)
                let from = reader.localDateTime(o["from"], "override from"), to = reader.localDateTime(o["to"], "override to")
                let reason = o.has("reason") ? reader.string(o["reason"], "reason") : nil
                guard let person, let from, let to else { continue }
                if to <= from {
                    reader.error("override ends (\(to)) before it starts (\(from))", at: o["to"])
                    continue
                }
                overrides.append(ScheduleOverride(person: person, from: from, to: to, reason: reason))
            }
        }
        guard let role, let scope, !layers.isEmpty else { return nil }
        return OnCallSchedule(id: ScheduleID(id), role: role, scope: scope, zone: zone, layers: layers, overrides: overrides)
    }

    private func parseRotation(_ node: Node, role: RoleID?, people: [PersonID: Person]) -> Rotation? {
        guard let fields = reader.fields(node, "a rotation", required: ["start", "shift", "members"]) else { return nil }
        let start = reader.localDateTime(fields["start"], "rotation start")
        var shift = reader.duration(fields["shift"], "shift")
        if let span = shift, span.seconds % 3600 != 0 {
            reader.error("shift must be whole hours (e.g. 12h, 1d, 1w), not \(span)", at: fields["shift"])
            shift = nil
        }
        var members: [PersonID] = []
        for item in reader.list(fields["members"], "members") ?? [] {
            guard let person = personReference(item, role: role, people: people) else { continue }
            if members.contains(person) {
                reader.error("'\(person)' is listed twice in the rotation", at: item)
            } else {
                members.append(person)
            }
        }
        guard let start, let shift, !members.isEmpty else { return nil }
        return Rotation(start: start, shiftLength: shift, members: members)
    }

    /// A person named in a schedule must exist and hold the schedule's role.
    private func personReference(_ node: Node?, role: RoleID?, people: [PersonID: Person]) -> PersonID? {
        guard let text = reader.string(node, "person") else { return nil }
        guard let person = people[PersonID(text)] else {
            reader.error("unknown person '\(text)'" + suggestion(for: text, among: people.keys.map(\.rawValue), listUpTo: 0), at: node)
            return nil
        }
        if let role, !person.roles.contains(role) {
            reader.error("'\(text)' is on call for \(role) but does not hold that role; add it to their roles", at: node)
            return nil
        }
        return person.id
    }
}

/// One contact point of a person or partner, and where the directory writes it.
public struct ContactSource: Hashable, Sendable {
    public var owner: Recipient
    public var contact: ContactPoint
    public var location: SourceLocation
}

/// The contact points as they are parsed (the parser is a value; this collects across its closures).
final class ContactSources {
    var entries: [ContactSource] = []
}
