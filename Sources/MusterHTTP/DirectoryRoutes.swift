// /api/v1/oncall and /api/v1/playbooks: who is on call (now, at an instant, or over a period), the
// loaded playbooks with their version hashes, and reloading them.
import Foundation
import Hummingbird
import MusterCore
import MusterPlaybooks

extension MusterServer {
    /// Who is on call, the loaded playbooks, and reloading them (under /api/v1, behind a token).
    var directoryRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("oncall") { request, context in try await self.onCall(request, context) }
        // "Does my phone get it?": a test page to one contact point, for the person, their site's coordinator or an admin.
        routes.post("people/:person/contacts/:index/test") { _, context in
            let account = try context.requireAccount()
            let person = PersonID(context.parameters.get("person") ?? "")
            guard let index = context.parameters.get("index").flatMap(Int.init) else {
                throw Problem.badRequest("index: the contact point's number, from 1 in the directory's order",
                                         errors: [.init(pointer: "index", detail: "a whole number from 1")])
            }
            let directory = await self.catalog.directory
            try self.requireTestPage(by: account, for: person, directory)
            switch await self.runtime.sendTestPage(to: person, contact: index) {
            case .failure(let error): throw Problem.notFound(error.description)
            case .success(let result):
                return try json(TestPageView(person: person.rawValue, contact: index, channel: result.channel.rawValue,
                                             outcome: result.outcome.rawValue, detail: result.detail))
            }
        }
        routes.get("playbooks") { _, context in
            let account = try context.requireAccount()
            try account.require(.readPlaybooks)
            return try json(PlaybookList(await self.catalog))
        }
        routes.post("playbooks/reload") { _, context in
            let account = try context.requireAccount()
            try account.require(.reload)
            switch await self.reloadPlaybooks() {
            case .success(let catalog):
                return try json(PlaybookList(catalog))
            case .failure(let failure):
                let errors = failure.diagnostics.map {
                    Problem.FieldError(pointer: $0.location.description, detail: $0.message)
                }
                throw Problem(.unprocessableContent, "invalid-playbooks", "The playbooks were not reloaded",
                              detail: failure.reason + (errors.isEmpty ? "" : ": " + errors.map { "\($0.pointer): \($0.detail)" }.joined(separator: "; ")),
                              errors: errors)
            }
        }
        return routes
    }

    private static let onCallParameters: Set<String> = ["site", "role", "at", "from", "to"]
    /// The longest period one request may ask about.
    private static let longestPeriod: TimeInterval = 31 * 86_400

    private func onCall(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        try account.require(.readOnCall)
        let query = try QueryReader(request, allowed: Self.onCallParameters)
        let directory = await catalog.directory
        let site = try query.known("site", "site", among: directory.sites.keys.map(\.rawValue)).map(SiteID.init)
        let role = try query.known("role", "role", among: directory.roles.map(\.id.rawValue)).map(RoleID.init)
        // A period given by one end only lasts a day.
        var from = try query.instant("from"), to = try query.instant("to")
        let at = try query.instant("at") ?? clock.now()
        if let start = from, to == nil { to = start.addingTimeInterval(86_400) }
        if let end = to, from == nil { from = end.addingTimeInterval(-86_400) }
        if let from, let to, to < from || to.timeIntervalSince(from) > Self.longestPeriod {
            throw Problem.badRequest("'to' must not be before 'from', and at most 31 days after it", errors: [.init(pointer: "to", detail: "out of range")])
        }
        if let site, !account.serves(site) {
            throw Problem.forbidden("this account does not serve the site '\(site.rawValue)'")
        }
        // Each caller sees the district's schedules and those of the sites they serve.
        let schedules = directory.schedules.filter { schedule in
            let visible = if case .site(let own) = schedule.scope { account.serves(own) } else { true }
            return visible && (role == nil || schedule.role == role) && (site == nil || schedule.scope == .district || schedule.scope == .site(site ?? SiteID("")))
        }
        let views = schedules.map { schedule -> OnCallView in
            var view = OnCallView(schedule: schedule.id.rawValue, role: schedule.role.rawValue, scope: schedule.scope.description,
                                  timeZone: schedule.zone.identifier, shifts: [])
            if let from, let to {
                view.shifts = Self.shifts(schedule, from: from, to: to, directory: directory)
            } else {
                view.shifts = [Self.shift(schedule.onCall(at: at), from: at, to: nil, directory: directory)]
            }
            return view
        }
        return try json(OnCallList(at: from == nil ? at : nil, from: from, to: to, schedules: views))
    }

    /// Who is on call over a period, as consecutive shifts: the answer at the start and at each
    /// instant it may change (OnCallSchedule.changes), with equal neighbours joined.
    static func shifts(_ schedule: OnCallSchedule, from: Date, to: Date, directory: Directory) -> [ShiftView] {
        var result: [ShiftView] = []
        var current = schedule.onCall(at: from), start = from
        for instant in schedule.changes(from: from, to: to) {
            let answer = schedule.onCall(at: instant)
            if !sameShift(answer, current) {
                result.append(shift(current, from: start, to: instant, directory: directory))
                current = answer
                start = instant
            }
        }
        result.append(shift(current, from: start, to: to, directory: directory))
        return result
    }

    private static func sameShift(_ a: OnCallAnswer, _ b: OnCallAnswer) -> Bool {
        switch (a, b) {
        case (.person(let p, let s, _), .person(let q, let t, _)): p == q && s == t
        case (.gap, .gap): true
        default: false
        }
    }

    static func shift(_ answer: OnCallAnswer, from: Date, to: Date?, directory: Directory) -> ShiftView {
        switch answer {
        case .person(let person, let source, let until):
            let sourceText: String = switch source {
            case .layer(let layer): "layer:" + layer
            case .override(let reason): "override" + (reason.map { ": " + $0 } ?? "")
            }
            return ShiftView(person: person.rawValue, name: directory.people[person]?.name, from: from, to: to ?? until, source: sourceText)
        case .gap:
            return ShiftView(person: nil, name: nil, from: from, to: to, source: "gap")
        }
    }
}

struct ShiftView: Encodable {
    /// Nobody (a gap in the schedule) when absent.
    var person: String?
    var name: String?
    var from: Date
    var to: Date?
    var source: String
}

struct OnCallView: Encodable {
    var schedule: String
    var role: String
    var scope: String
    var timeZone: String
    var shifts: [ShiftView]
}

struct OnCallList: Encodable {
    var at: Date?
    var from: Date?
    var to: Date?
    var schedules: [OnCallView]
}

struct PlaybookList: Encodable {
    struct Item: Encodable {
        var id: String
        var title: String
        var version: String
        var types: [String]
        var catchAll: Bool
        var severities: [String]
        var sites: [String]
        var steps: Int
        var tasks: [String]
        var flags: [String]
    }

    var district: String
    var playbooks: [Item]

    init(_ catalog: Catalog) {
        district = catalog.directory.district.name
        playbooks = catalog.playbooks.playbooks.map { playbook in
            Item(id: playbook.id.rawValue, title: playbook.title, version: playbook.version, types: playbook.match.types.map(\.rawValue).sorted(),
                 catchAll: playbook.match.catchAll, severities: playbook.match.severities.map(\.rawValue).sorted(),
                 sites: playbook.match.sites.map(\.rawValue).sorted(), steps: playbook.steps.count, tasks: playbook.tasks.map(\.id.rawValue),
                 flags: playbook.flags.keys.map(\.rawValue).sorted())
        }
    }
}

extension MusterServer {
    /// A person tests their own contact points; an admin anyone's; a coordinator those of people at their sites.
    func requireTestPage(by account: UserAccount, for person: PersonID, _ directory: Directory) throws(Problem) {
        guard account.role != .integration, account.role != .scrape else { throw Problem.forbidden("an integration or scrape key sends no test pages") }
        if account.id == person.rawValue || account.role == .admin { return }
        let sites = directory.people[person]?.assignedSites ?? []
        guard account.role == .coordinator, sites.contains(where: { account.serves($0) }) else {
            throw Problem.forbidden("you may send test pages to your own contact points" + (account.role == .coordinator ? " and those of people at your sites" : ""))
        }
    }
}

struct TestPageView: Encodable {
    var person: String
    var contact: Int
    var channel: String
    /// delivered, accepted (the provider took it; look at the device), demonstrated (no provider) or failed.
    var outcome: String
    var detail: String?
}

