// The coordinator's pages: who is on call now and this week at a site, by role; the loaded
// playbooks with their version and what the linter says of the folder now; the coverage gaps of
// the next 24 hours; and the simulator (the engine `muster simulate` runs) as a form.
import Foundation
import Hummingbird
import MusterCore
import MusterPlaybooks
import MusterRuntime

extension MusterServer {
    var coordinatorPages: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("coordinator") { request, context in
            try await self.signedIn(request, context) { account in try await self.coordinatorHome(request, context, account) }
        }
        routes.get("coordinator/simulate") { request, context in
            try await self.signedIn(request, context) { account in try await self.simulate(request, context, account) }
        }
        return routes
    }

    static func coordinates(_ account: UserAccount) -> Bool { account.role == .coordinator || account.role == .admin }

    struct CoordinatorPage {
        struct Schedule { var role: String; var scope: String; var now: String; var shifts: [Shift] }
        struct Shift { var who: String; var from: String; var to: String; var gap: Bool }
        struct PlaybookItem { var title: String; var id: String; var version: String; var types: String; var steps: Int }
        struct Gap { var text: String }
        var frame: WebPage.Frame
        var sites: [WebPage.Option]
        var siteName: String
        var schedules: [Schedule]
        var playbooks: [PlaybookItem]
        var lintOK: Bool
        var lint: [String]
        var coverageChecked: Bool
        var gaps: [Gap]
        var moreGaps: Int
        var types: [WebPage.Option]
        var severities: [WebPage.Option]
        var people: [WebPage.Option]
    }

    private func coordinatorHome(_ request: Request, _ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard Self.coordinates(account) else { return Self.notAllowed(context, "open the coordinator's pages") }
        let catalog = await catalog
        let directory = catalog.directory
        let sites = directory.sites.values.filter { account.serves($0.id) }.sorted { $0.name < $1.name }
        let chosen = request.query("site").flatMap { id in sites.first { $0.id.rawValue == id } } ?? sites.first
        let now = clock.now()
        let zone = chosen?.zone ?? directory.district.zone
        let week = now.addingTimeInterval(7 * 86_400)
        let schedules = directory.schedules.filter { schedule in
            schedule.scope == .district || chosen.map { schedule.scope == .site($0.id) } ?? false
        }.sorted { ($0.scope == .district ? 1 : 0, $0.role.rawValue) < ($1.scope == .district ? 1 : 0, $1.role.rawValue) }
        let roleTitles = Dictionary(directory.roles.map { ($0.id, $0.title) }, uniquingKeysWith: { a, _ in a })
        let rows = schedules.map { schedule in
            let shifts = Self.shifts(schedule, from: now, to: week, directory: directory).map { shift in
                CoordinatorPage.Shift(who: shift.name ?? "Nobody", from: Self.clockText(shift.from, zone), to: shift.to.map { Self.clockText($0, zone) } ?? "",
                                      gap: shift.person == nil)
            }
            return CoordinatorPage.Schedule(role: roleTitles[schedule.role] ?? schedule.role.rawValue,
                                            scope: schedule.scope == .district ? "District" : chosen?.name ?? "",
                                            now: shifts.first.map { $0.gap ? "Nobody: a gap" : $0.who } ?? "Nobody", shifts: shifts)
        }
        // The folder as it is now: what a reload would say.
        var lint: [String] = []
        if let folder = playbookFolder {
            let loaded = PlaybookLoader.load(folder: URL(fileURLWithPath: folder), displayPath: folder)
            lint = loaded.diagnostics.map(\.description)
        }
        var gaps: [CoverageGap] = []
        if let providers = web.providers {
            gaps = CoverageCheck(catalog: catalog, providers: providers).gaps(from: now, days: 1)
                .filter { account.serves($0.site) }
        }
        let page = CoordinatorPage(
            frame: frame(context, "On call and playbooks", current: "coordinator"),
            sites: WebPage.sites(directory, servedBy: account) { $0 == chosen?.id }, siteName: chosen?.name ?? "",
            schedules: rows,
            playbooks: catalog.playbooks.playbooks.map { playbook in
                .init(title: playbook.title, id: playbook.id.rawValue, version: String(playbook.version.dropFirst(7).prefix(12)),
                      types: playbook.match.catchAll ? "every other type" : playbook.match.types.map(\.rawValue).sorted().joined(separator: ", "),
                      steps: playbook.steps.count)
            },
            lintOK: lint.isEmpty, lint: lint, coverageChecked: web.providers != nil,
            gaps: gaps.prefix(20).map { .init(text: $0.message(zone: directory.zone(of: $0.site))) }, moreGaps: max(0, gaps.count - 20),
            types: directory.incidentTypes.map { .init(id: $0.id.rawValue, name: $0.title, selected: false) },
            severities: Severity.allCases.reversed().map { .init(id: $0.rawValue, name: $0.rawValue, selected: $0 == .high) },
            people: directory.people.values.sorted { $0.name < $1.name }.map { .init(id: $0.id.rawValue, name: $0.name, selected: false) })
        return WebPage.render(.ok, "coordinator", page)
    }

    struct SimulationPage {
        struct Line { var offset: String; var at: String; var text: String }
        var frame: WebPage.Frame
        var heading: String
        var error: String?
        var lines: [Line]
        var outcome: String
    }

    /// The simulator as a form: the same engine as `muster simulate`, on the loaded playbooks.
    private func simulate(_ request: Request, _ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard Self.coordinates(account) else { return Self.notAllowed(context, "run the simulator") }
        let catalog = await catalog
        let directory = catalog.directory
        let type = IncidentTypeID(request.query("type") ?? "")
        let site = SiteID(request.query("site") ?? account.sites.first?.rawValue ?? directory.sites.keys.first?.rawValue ?? "")
        let severity = request.query("severity").flatMap(Severity.init(rawValue:)) ?? .high
        let zone = directory.zone(of: site)
        var error: String?
        // "When" is the site's local time (an HTML datetime-local field); empty means now.
        var reportedAt = clock.now()
        if let when = request.query("when") {
            if let local = LocalDateTime.parse(String(when.prefix(16))) {
                reportedAt = zone.instant(local)
            } else {
                error = "When: write a date and time such as 2026-12-06T02:00."
            }
        }
        if let problem = IntakeCheck(catalog: catalog).problems(type: type, severity: severity, site: site, flags: []).first { error = problem.detail }
        var script: [ScriptedEvent] = []
        if let who = request.query("ack") {
            guard directory.people[PersonID(who)] != nil else { throw Problem.notFound("no person '\(who)'") }
            let minutes = Int(request.query("after") ?? "") ?? 0
            guard (0...10_080).contains(minutes) else { throw Problem.badRequest("after: 0 to 10080 minutes") }
            script.append(ScriptedEvent(offset: minutes * 60, event: .acknowledged(by: .person(PersonID(who)), path: .api, step: nil)))
        }
        guard error == nil, let playbook = catalog.playbooks.playbook(type: type, severity: severity, site: site) else {
            let page = SimulationPage(frame: frame(context, "Simulation", current: "coordinator"), heading: "Simulation",
                                      error: error ?? "No playbook matches that incident.", lines: [], outcome: "")
            return WebPage.render(.unprocessableContent, "simulation", page)
        }
        let report = Report(type: type, severity: severity, site: site, reporter: .integration("simulator"), summary: "(simulated report)",
                            receivedAt: reportedAt)
        let simulation = Simulator(engine: EscalationEngine(playbook: playbook, directory: directory), horizon: 2 * 86_400)
            .run(Incident(id: IncidentID("SIM-1"), number: 1, report: report), script: script)
        let lines = simulation.lines.map { line in
            let who = line.person.map { directory.people[PersonID($0)]?.name ?? $0 } ?? line.partner.map { directory.partners[PartnerID($0)]?.name ?? $0 }
            let text = [line.kind.replacingOccurrences(of: "_", with: " "), line.step.map { "step \($0)" }, who, line.channel.map { "by " + $0 },
                        line.task, line.detail].compactMap { $0 }.joined(separator: " · ")
            return SimulationPage.Line(offset: Self.offset(TimeInterval(line.offsetSeconds)), at: Self.clockText(line.at, zone), text: text)
        }
        let page = SimulationPage(
            frame: frame(context, "Simulation", current: "coordinator"),
            heading: "\(directory.incidentTypes.first { $0.id == type }?.title ?? type.rawValue), \(severity.rawValue), at \(directory.sites[site]?.name ?? site.rawValue), "
                + Self.clockText(reportedAt, zone),
            error: nil, lines: lines, outcome: "Playbook \(playbook.title); ends \(simulation.state.phase.name)")
        return WebPage.render(.ok, "simulation", page)
    }
}
