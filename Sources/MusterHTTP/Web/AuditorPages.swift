// The auditor's pages: incidents searched by period, site, type and outcome; the audit log's
// verification status and latest signed checkpoint; an incident's export as JSON with its proofs
// (checked offline by `muster audit verify --file` or scripts/verify-export.py) or as CSV. Each
// export is itself an access entry in the incident's log. The incident's timeline, access entries
// and delivery outcomes included, is the incident page.
import Foundation
import Hummingbird
import MusterAudit
import MusterCore
import MusterRuntime
import NIOCore

extension MusterServer {
    var auditorPages: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("auditor") { request, context in
            try await self.signedIn(request, context) { account in try await self.auditorHome(request, context, account, verification: nil) }
        }
        routes.post("auditor/verify") { request, context in
            try await self.signedIn(request, context) { account in
                guard Self.audits(account) else { return Self.notAllowed(context, "check the audit log") }
                let result: String
                if let key = self.auditVerifierKey, let verifier = try? NoteVerifier(verifierKey: key) {
                    do {
                        result = "Verified: " + (try await self.runtime.auditVerifier(verifier).verify()).description
                    } catch {
                        result = "VERIFICATION FAILED: \(error)"
                    }
                } else {
                    result = "This instance has no audit signing key configured, so the log cannot be checked here."
                }
                return try await self.auditorHome(request, context, account, verification: result)
            }
        }
        // The compliance report: the period's figures as tables, and the same as CSV or JSON to take away.
        routes.get("auditor/compliance") { request, context in
            try await self.signedIn(request, context) { account in try await self.compliancePage(request, context, account) }
        }
        routes.get("auditor/compliance/download") { request, context in
            try await self.signedIn(request, context) { account in
                guard Self.audits(account) else { return Self.notAllowed(context, "read the compliance report") }
                do {
                    return try await self.complianceResponse(from: request.query("from"), to: request.query("to"), site: request.query("site"),
                                                             type: request.query("type"), format: request.query("format") ?? "csv",
                                                             table: request.query("table") ?? "incidents")
                } catch let problem as Problem {
                    return WebPage.render(problem.status, "message", WebPage.message(context, title: "No report", text: problem.detail,
                                                                                     link: ("Back to the report", "/auditor/compliance")))
                }
            }
        }
        routes.get("auditor/incidents/:number/export") { request, context in
            try await self.signedIn(request, context) { account in try await self.export(request, context, account) }
        }
        return routes
    }

    static let auditorPageSize = 200

    static func audits(_ account: UserAccount) -> Bool { account.role == .auditor || account.role == .admin }

    static func notAllowed(_ context: MusterRequestContext, _ what: String) -> Response {
        WebPage.render(.forbidden, "message", WebPage.message(context, title: "Not allowed", text: "Your role may not \(what).", link: ("Home", "/")))
    }

    struct AuditorPage {
        var frame: WebPage.Frame
        var from: String
        var to: String
        var sites: [WebPage.Option]
        var types: [WebPage.Option]
        var outcomes: [WebPage.Option]
        var searched: Bool
        var incidents: [ListPage.Item]
        /// Set when the search found more than a page.
        var limited: Int?
        var checkpointSize: String?
        var checkpointAt: String?
        var checkpointNote: String?
        var verification: String?
        var verificationFailed: Bool
        var error: String?
    }

    struct CompliancePage {
        struct Line { var cells: [String] }
        var frame: WebPage.Frame
        var from: String
        var to: String
        var sites: [WebPage.Option]
        var types: [WebPage.Option]
        var error: String?
        var shown: Bool
        var query: String
        /// "2 drills left out"; nil when there were none.
        var drills: String?
        var summary: [Line]
        var incidents: [Line]
    }

    private func compliancePage(_ request: Request, _ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard Self.audits(account) else { return Self.notAllowed(context, "read the compliance report") }
        let directory = await catalog.directory
        let from = request.query("from") ?? "", to = request.query("to") ?? ""
        let site = request.query("site").flatMap { directory.sites[SiteID($0)] != nil ? SiteID($0) : nil }
        let type = request.query("type").flatMap { id in directory.incidentTypes.contains { $0.id.rawValue == id } ? IncidentTypeID(id) : nil }
        var error: String?, report: ComplianceReport?
        if !from.isEmpty || !to.isEmpty {
            switch ComplianceReport.period(from: from, to: to, zone: directory.district.zone) {
            case .success(let period):
                report = try await reads.complianceReport(from: period.from, to: period.to, site: site, type: type, asOf: clock.now())
            case .failure(let problem):
                error = (problem.field == "from" ? "From: " : "To: ") + problem.detail
            }
        }
        func time(_ seconds: Double?) -> String { seconds.map { Self.duration($0) } ?? "–" }
        func name(_ site: String) -> String { site == "all" ? "All" : directory.sites[SiteID(site)]?.name ?? site }
        let outcomes = Dictionary((ResolutionOutcome.defaults + (await catalog.playbooks.playbooks.flatMap(\.outcomes))).map { ($0.id, $0.title) },
                                  uniquingKeysWith: { _, playbooks in playbooks })
        func title(_ type: String) -> String { type == "all" ? "All" : directory.incidentTypes.first { $0.id.rawValue == type }?.title ?? type }
        var query: [String] = ["from=\(from)", "to=\(to)"]
        if let site { query.append("site=\(site)") }
        if let type { query.append("type=\(type)") }
        let page = CompliancePage(
            frame: frame(context, "Compliance report", current: "auditor"), from: from, to: to,
            sites: WebPage.sites(directory) { $0 == site },
            types: directory.incidentTypes.map { .init(id: $0.id.rawValue, name: $0.title, selected: $0.id == type) },
            error: error, shown: report != nil, query: query.joined(separator: "&"), drills: (report?.drillsLeftOut ?? 0) == 0 ? nil : "\(report?.drillsLeftOut ?? 0) drills left out",
            summary: (report?.summary ?? []).map { row in
                .init(cells: [name(row.site), title(row.type), "\(row.incidents)", "\(row.acknowledged)", time(row.medianAcknowledgedSeconds),
                              time(row.maxAcknowledgedSeconds), "\(row.resolved)", time(row.medianResolvedSeconds), "\(row.escalations)",
                              "\(row.deadlinesMissed)", "\(row.tasksLate)", "\(row.tasksNeverDone)", time(row.unownedSeconds)])
            },
            incidents: (report?.incidents ?? []).map { row in
                .init(cells: ["#\(row.number)", name(row.site), title(row.type), Self.statusText(row.status), row.outcome.map { outcomes[$0] ?? $0 } ?? "–",
                              time(row.firstPageSeconds), time(row.acknowledgedSeconds), time(row.resolvedSeconds), "\(row.escalations)",
                              "\(row.deadlinesMissed)", row.tasksLate.isEmpty ? "–" : row.tasksLate.joined(separator: ", "),
                              row.tasksNeverDone.isEmpty ? "–" : row.tasksNeverDone.joined(separator: ", "), time(row.unownedSeconds)])
            })
        return WebPage.render(error == nil ? .ok : .badRequest, "compliance", page)
    }

    private func auditorHome(_ request: Request, _ context: MusterRequestContext, _ account: UserAccount, verification: String?) async throws -> Response {
        guard Self.audits(account) else { return Self.notAllowed(context, "open the auditor's pages") }
        let directory = await catalog.directory
        var filter = IncidentFilter(limit: Self.auditorPageSize)
        var error: String?
        // Dates are whole days in UTC: from the start of `from` to the end of `to`.
        func day(_ name: String, end: Bool) -> Date? {
            guard let text = request.query(name) else { return nil }
            guard let date = InstantParser.parse(text + "T00:00:00Z") else {
                error = "\(name == "from" ? "From" : "To"): write a date as YYYY-MM-DD, such as 2026-09-01."
                return nil
            }
            return end ? date.addingTimeInterval(86_400) : date
        }
        filter.reportedFrom = day("from", end: false)
        filter.reportedBefore = day("to", end: true)
        filter.site = request.query("site").flatMap { directory.sites[SiteID($0)] != nil ? SiteID($0) : nil }
        filter.type = request.query("type").flatMap { id in directory.incidentTypes.contains { $0.id.rawValue == id } ? IncidentTypeID(id) : nil }
        if let outcome = request.query("outcome"), IncidentFilter.openPhases.union(["resolved"]).contains(outcome) { filter.phases = [outcome] }
        let searched = !request.uri.queryParameters.isEmpty
        let incidents = searched && error == nil ? try await reads.incidents(filter) : []
        let checkpoint = try await reads.latestCheckpoint()
        let page = AuditorPage(
            frame: frame(context, "Audit", current: "auditor"), from: request.query("from") ?? "", to: request.query("to") ?? "",
            sites: WebPage.sites(directory) { $0 == filter.site },
            types: directory.incidentTypes.map { .init(id: $0.id.rawValue, name: $0.title, selected: $0.id == filter.type) },
            outcomes: [("acknowledged", "Owned, open"), ("escalating", "Paging, nobody yet"), ("unowned", "Unowned"), ("resolved", "Resolved")]
                .map { .init(id: $0.0, name: $0.1, selected: filter.phases.contains($0.0)) },
            searched: searched, incidents: incidents.map { item($0, directory) },
            limited: incidents.count == Self.auditorPageSize ? Self.auditorPageSize : nil,
            checkpointSize: checkpoint.map { "\($0.size)" }, checkpointAt: checkpoint.map { APIJSON.instant($0.signedAt) },
            checkpointNote: checkpoint?.note, verification: verification,
            verificationFailed: verification?.hasPrefix("VERIFICATION FAILED") ?? false, error: error)
        return WebPage.render(error == nil ? .ok : .badRequest, "auditor", page)
    }

    private func export(_ request: Request, _ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard Self.audits(account) else { return Self.notAllowed(context, "export incidents") }
        let state = try await visibleIncident(context.parameters.get("number") ?? "", account: account)
        do {
            return try await exportResponse(state, format: request.query("format") ?? "json", account: account, context: context)
        } catch let problem as Problem {
            return WebPage.render(problem.status, "message", WebPage.message(context, title: problem.title, text: problem.detail,
                                                                             link: ("Back", "/incidents/\(state.incident.number)")))
        }
    }

    /// An incident's export as a download, JSON with its proofs or CSV, recorded in the incident's log
    /// (who, which form, from where) once it is ready and before it leaves: no entry, no export.
    /// The API's and the auditor page's exports both come here.
    func exportResponse(_ state: IncidentState, format: String, account: UserAccount, context: MusterRequestContext) async throws -> Response {
        guard format == "json" || format == "csv" else {
            throw Problem.badRequest("format: expected json or csv, found '\(format)'", errors: [.init(pointer: "format", detail: "json or csv")])
        }
        guard let key = auditVerifierKey else {
            throw Problem.unavailable("this instance has no audit signing key, so it cannot export with proofs")
        }
        let exporter = runtime.auditExporter(verifierKey: key)
        let number = state.incident.number
        let bytes: [UInt8]
        do {
            bytes = format == "json" ? try await exporter.export(state.incident.id).export.encoded() : Array(try await exporter.csv(state.incident.id).utf8)
        } catch {
            var problem = Problem.unavailable("the export is not ready: \(error); retry in a few seconds")
            problem.headers[.retryAfter] = "2"
            throw problem
        }
        _ = try await apply(.exported(by: account.actor, format: format.uppercased(), from: context.remoteAddress), to: state.incident.id)
        return Response(status: .ok, headers: [
            .contentType: format == "json" ? "application/json" : "text/csv; charset=utf-8",
            .contentDisposition: "attachment; filename=\"muster-incident-\(number).\(format)\"",
            .cacheControl: "no-store",
        ], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
