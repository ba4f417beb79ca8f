// /api/v1/incidents: raising, listing, reading (audited) and working incidents.
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterPlaybooks
import MusterRuntime

extension MusterServer {
    /// Incidents: report, list, read, and the actions on one (under /api/v1, behind a token).
    var incidentRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.post("incidents") { request, context in try await self.raise(request, context) }
        routes.get("incidents") { request, context in try await self.list(request, context) }
        routes.get("incidents/:id") { request, context in try await self.detail(request, context) }
        routes.post("incidents/:id/join") { request, context in try await self.join(request, context) }
        // A parent's request under FERPA: every disclosure concerning one student reference. Each incident
        // read for it records the access in its log first.
        routes.get("disclosures") { request, context in
            let account = try context.requireAccount()
            try account.require(.export)
            let query = try QueryReader(request, allowed: ["subject"])
            guard let subject = query["subject"] else {
                throw Problem.badRequest("name the student reference: ?subject=REF", errors: [.init(pointer: "subject", detail: "required")])
            }
            let found = try await self.reads.disclosures(concerningSubject: subject)
            for incident in Set(found.map(\.incident.id)) {
                _ = try await self.apply(.accessed(by: account.actor, from: context.remoteAddress), to: incident)
            }
            return try json(DisclosureList(subject: subject, disclosures: found.map(DisclosureView.init)))
        }
        // Auditors take an incident's record away: JSON with its proofs, or CSV; each export is in the log.
        routes.get("incidents/:id/export") { request, context in
            let account = try context.requireAccount()
            try account.require(.export)
            let query = try QueryReader(request, allowed: ["format"])
            let state = try await self.visibleIncident(context.parameters.get("id") ?? "", account: account)
            return try await self.exportResponse(state, format: query["format"] ?? "json", account: account, context: context)
        }

        action("acknowledge", .acknowledge, fields: []) { account, _ in .acknowledged(by: account.actor, path: .api, step: nil) }
        // A person resolving says how it ended (the playbook's outcomes); "false alarm" and the like say why in the note.
        action("resolve", .resolve, fields: ["outcome", "note"], bodyRequired: true) { account, body in
            let outcome = body.string("outcome", required: true, maxLength: 100)
            return .resolved(by: account.actor, note: body.string("note"), outcome: outcome ?? "")
        }
        action("reopen", .reopen, fields: ["reason"]) { account, body in .reopened(by: account.actor, reason: body.string("reason", maxLength: 2000)) }
        action("notes", .note, fields: ["text"], bodyRequired: true) { account, body in
            .noteAdded(by: account.actor, text: body.string("text", required: true) ?? "")
        }
        action("escalate", .escalate, fields: ["reason"]) { account, body in
            .escalatedByHand(by: account.actor, reason: body.string("reason", maxLength: 2000))
        }
        action("reassign", .reassign, fields: ["to"], bodyRequired: true) { account, body in
            .reassigned(to: PersonID(body.string("to", required: true, maxLength: 200) ?? ""), by: account.actor)
        }
        action("tasks/:task/complete", .completeTask, fields: []) { account, _, context in
            .taskCompleted(TaskID(context.parameters.get("task") ?? ""), by: account.actor)
        }
        // A flag a later report proposed (or the responder's own finding) takes effect only this way.
        action("flags/:flag/confirm", .confirmFlag, fields: []) { account, _, context in
            .flagConfirmed(IncidentFlag(context.parameters.get("flag") ?? ""), by: account.actor)
        }
        // A disclosure a person made outside Muster (records handed to the police, a call to child protective
        // services): recipient in the clear, what and the basis sealed (FERPA keeps a record of each, 34 CFR 99.32).
        action("disclosures", .note, fields: ["recipient", "what", "basis"], bodyRequired: true) { account, body, _ in
            .disclosureRecorded(by: account.actor, recipient: body.string("recipient", required: true, maxLength: 200) ?? "",
                                what: body.string("what", required: true, maxLength: 2_000) ?? "",
                                basis: body.string("basis", required: true, maxLength: 2_000) ?? "")
        }
        // A responder's decision on a flag, later ("telling the family could endanger the student", or no
        // longer): who and why go on the record, the why sealed; the tasks it rules out go or come back.
        for (verb, set) in [("set", true), ("clear", false)] {
            action("flags/:flag/\(verb)", .confirmFlag, fields: ["reason"], bodyRequired: true) { account, body, context in
                .flagDecided(IncidentFlag(context.parameters.get("flag") ?? ""), set: set, by: account.actor,
                             reason: body.string("reason", required: true, maxLength: 2_000) ?? "")
            }
        }

        func action(_ path: String, _ permission: Permission, fields: Set<String>, bodyRequired: Bool = false,
                    _ event: @escaping @Sendable (UserAccount, inout ObjectReader) -> IncidentEvent) {
            action(path, permission, fields: fields, bodyRequired: bodyRequired) { account, body, _ in event(account, &body) }
        }

        func action(_ path: String, _ permission: Permission, fields: Set<String>, bodyRequired: Bool = false,
                    _ event: @escaping @Sendable (UserAccount, inout ObjectReader, MusterRequestContext) -> IncidentEvent) {
            routes.post("incidents/:id/\(path)") { request, context in
                let account = try context.requireAccount()
                // A task the reporter owes is theirs to complete whatever their role: decided on the incident.
                if permission != .completeTask { try account.require(permission) }
                var body = try ObjectReader(try await JSONBody.read(request), allowed: fields, required: bodyRequired)
                let made = event(account, &body, context)
                try body.finish()
                let id = context.parameters.get("id") ?? ""
                let state: IncidentState
                if case .taskCompleted(let task, _) = made {
                    // Refused as the role's, unless it is the reporter's own task on an incident they may see.
                    do { state = try await self.visibleIncident(id, account: account) } catch {
                        try account.require(permission)
                        throw error
                    }
                    if !account.mayComplete(task, of: state, playbook: await self.runtime.playbook(for: state)) {
                        try account.require(permission)
                        throw Problem.forbidden(EngineRejection.taskOwedByReporter(task).description)
                    }
                } else {
                    state = try await self.visibleIncident(id, account: account)
                }
                if case .reopened = made, let joined = try await self.reads.timeline(state.incident.id).last(where: { $0.action == .joined }),
                   let target = joined.target, state.phase == .resolved, joined.detail?.hasPrefix("joined into") == true {
                    // Its reports live on in the incident it joined; reopening it would page for them twice.
                    throw Problem.conflict("incident #\(state.incident.number) was joined into \(target.replacingOccurrences(of: "incident:", with: "incident #")); "
                                           + "reopen that one instead")
                }
                if case .reassigned(let person, _) = made, await self.catalog.directory.people[person] == nil {
                    throw Problem.unprocessable("no person '\(person)' in the directory",
                                                errors: [.init(pointer: "/to", detail: "no such person")])
                }
                return try json(IncidentStatusView(try await self.apply(made, to: state.incident.id), forReporter: account.role == .reporter))
            }
        }
        return routes
    }

    /// Joins the incident into another open one (`{"into": 4821}`), a responder's explicit action: the
    /// only way a person's report and an integration's come to share an incident. Answers with the
    /// incident joined into.
    private func join(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        try account.require(.join)
        var body = try ObjectReader(try await JSONBody.read(request), allowed: ["into"], required: true)
        let into = body.integer("into", in: 1...Int(Int32.max))
        if into == nil, body.problems.isEmpty { body.fail("into", "the number of the incident to join this one into is required") }
        try body.finish()
        let source = try await visibleIncident(context.parameters.get("id") ?? "", account: account)
        let target = try await visibleIncident(String(into ?? 0), account: account)
        let reports = try await reads.reports(source.incident.id)
        switch try await runtime.join(source.incident.id, into: target.incident.id, reports: reports, by: account.actor) {
        case .failure(let error): throw Problem.from(error)
        case .success(let committed): return try json(IncidentStatusView(committed.state))
        }
    }

    private static let reportFields: Set<String> = ["type", "severity", "site", "summary", "subject", "flags", "drill"]

    private func raise(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        try account.require(.report)
        var body = try ObjectReader(try await JSONBody.read(request), allowed: Self.reportFields)
        let type = body.string("type", required: true, maxLength: 100)
        let severityText = body.string("severity", required: true, maxLength: 20)
        let site = body.string("site", required: true, maxLength: 100)
        let summary = body.string("summary", required: true)
        let subject = body.string("subject", maxLength: 200)
        let flags = body.strings("flags")
        let drill = body.bool("drill") ?? false
        var severity: Severity?
        if let severityText {
            switch IntakeCheck.severity(severityText) {
            case .success(let known): severity = known
            case .failure(let problem): body.fail("severity", problem.detail)
            }
        }
        guard let type, let severity, let site, let summary else { try body.refuse() }
        try body.finish()
        let catalog = await catalog
        let problems = IntakeCheck(catalog: catalog).problems(type: IncidentTypeID(type), severity: severity, site: SiteID(site),
                                                              flags: flags.map(IncidentFlag.init), subject: subject)
        if !problems.isEmpty {
            let errors = problems.map { Problem.FieldError(pointer: "/\($0.field.rawValue)" + ($0.index.map { "/\($0)" } ?? ""), detail: $0.detail) }
            throw Problem.unprocessable(errors.map { "\($0.pointer): \($0.detail)" }.joined(separator: "; "), errors: errors)
        }
        guard account.serves(SiteID(site)) else {
            throw Problem.forbidden("you may raise incidents only at your sites (\(account.sites.map(\.rawValue).joined(separator: ", ")))")
        }

        var key: String?
        if let header = request.headers[.idempotencyKey] {
            guard !header.isEmpty, header.count <= 255 else {
                throw Problem.badRequest("the Idempotency-Key header must have 1 to 255 characters",
                                         errors: [.init(pointer: "Idempotency-Key", detail: "1 to 255 characters")])
            }
            key = account.id + ":" + header  // keys are per account: one caller's key never finds another's incident
        }
        let report = Report(type: IncidentTypeID(type), severity: severity, site: SiteID(site), reporter: account.actor, summary: summary,
                            subject: subject, flags: Set(flags.map(IncidentFlag.init)), receivedAt: clock.now(), drill: drill)
        metrics.reportReceived(source: "api")
        return try await accept(intake(report, by: account, idempotencyKey: key, source: "api"), catalog: catalog, reporterOnly: account.role == .reporter)
    }

    /// Commits a report and answers with the incident it created or joined and who is being paged.
    /// `reporterOnly`: the caller may see only their own reports, so a report that joined someone
    /// else's incident is answered with "merged" and the number alone, not who is being paged for it.
    func accept(_ intake: ReportIntake, catalog: Catalog, reporterOnly: Bool = false) async throws -> Response {
        let committed: Committed
        switch try await runtime.report(intake) {
        case .failure(let error): throw Problem.from(error)
        case .success(let result): committed = result
        }
        let outcome = committed.outcome
        let paging: [PageView]
        switch outcome {
        case .created(_, let queued), .applied(_, let queued):
            paging = queued.map { page($0.id, catalog: catalog) }
        case .merged, .duplicate:
            paging = reporterOnly && committed.state.incident.reporter != intake.report.reporter ? []
                : committed.state.currentPages.filter { !$0.failed }.map { page($0.notificationID, catalog: catalog) }
        }
        let advice = intake.report.severity == .imminent
            ? "Life in danger now: call 911 first. The team is being paged at the same time." : nil
        let link = IncidentLink(outcome.incident)
        switch outcome {
        case .created, .applied:
            return try json(ReportAccepted(outcome: "created", incident: link, paging: paging, advice: advice),
                            status: .created, headers: [.location: link.url])
        case .merged:
            return try json(ReportAccepted(outcome: "merged", incident: link, paging: paging, advice: advice))
        case .duplicate:
            return try json(ReportAccepted(outcome: "duplicate", incident: link, paging: paging, advice: advice),
                            headers: [.idempotentReplayed: "true"])
        }
    }

    private func page(_ id: NotificationID, catalog: Catalog) -> PageView {
        let name: String? = switch id.recipient {
        case .person(let person): catalog.directory.people[person]?.name
        case .partner(let partner): catalog.directory.partners[partner]?.name
        }
        let step: Int? = if case .step(let step, _) = id.qualifier { step + 1 } else { nil }
        return PageView(recipient: id.recipient.description, name: name, channel: id.channel.rawValue, step: step, kind: id.kind.rawValue)
    }

    private static let listParameters: Set<String> = ["status", "site", "type", "from", "to", "before", "limit"]

    private func list(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        try account.require(.read)
        let query = try QueryReader(request, allowed: Self.listParameters)
        var filter = IncidentFilter()
        if let status = query["status"] {
            for name in status.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
                switch name {
                case "open": filter.phases.formUnion(IncidentFilter.openPhases)
                case "escalating", "acknowledged", "unowned", "resolved": filter.phases.insert(name)
                default:
                    throw Problem.badRequest("status: unknown status '\(name)'; expected open, escalating, acknowledged, unowned or resolved",
                                             errors: [.init(pointer: "status", detail: "unknown status '\(name)'")])
                }
            }
        }
        let directory = await catalog.directory
        filter.site = try query.known("site", "site", among: directory.sites.keys.map(\.rawValue)).map(SiteID.init)
        filter.type = try query.known("type", "incident type", among: directory.incidentTypes.map(\.id.rawValue)).map(IncidentTypeID.init)
        filter.reportedFrom = try query.instant("from")
        filter.reportedBefore = try query.instant("to")
        filter.before = try query.integer("before", in: 1...Int(Int32.max))
        filter.limit = try query.integer("limit", in: 1...500) ?? 50
        filter = filter.limited(to: account)
        let incidents = try await reads.incidents(filter)
        let next = incidents.count == filter.limit ? incidents.last?.ref.number : nil
        return try json(IncidentList(incidents: incidents.map(IncidentSummaryView.init), nextBefore: next))
    }

    private func detail(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        try account.require(.read)
        let state = try await visibleIncident(context.parameters.get("id") ?? "", account: account)
        // The read is recorded before anything is shown: no entry, no details.
        let current = try await apply(.accessed(by: account.actor, from: context.remoteAddress), to: state.incident.id)
        async let reports = reads.reports(state.incident.id)
        async let timeline = reads.timeline(state.incident.id)
        func view(_ report: Report) -> ReportView {
            ReportView(reporter: report.reporter.description, type: report.type.rawValue, severity: report.severity.rawValue,
                       summary: report.summary, subject: report.subject, flags: report.flags.map(\.rawValue).sorted(), receivedAt: report.receivedAt)
        }
        if account.role == .reporter {
            // A reporter sees the incident's status and their own reports, never anyone else's
            // reports, names or notes: what they said, and whether someone has it in hand.
            let own = try await reports.filter { $0.reporter == account.actor }
            let first = own.first
            let detail = IncidentDetailView(
                incident: IncidentStatusView(current, forReporter: true), summary: first?.summary ?? "", subject: first?.subject,
                flags: Set(own.flatMap(\.flags)).map(\.rawValue).sorted(), reports: own.map(view),
                timeline: try await timeline.filter { $0.actor == account.actor }.map(TimelineEntryView.init))
            return try json(detail, headers: [.cacheControl: "no-store"])
        }
        let detail = IncidentDetailView(
            incident: IncidentStatusView(current), summary: current.incident.summary, subject: current.incident.subject,
            flags: current.incident.flags.map(\.rawValue).sorted(), reports: try await reports.map(view),
            timeline: try await timeline.map(TimelineEntryView.init))
        return try json(detail, headers: [.cacheControl: "no-store"])
    }
}

/// Query parameters, strictly: unknown names are refused with a suggestion.
struct QueryReader {
    private let values: [String: String]

    init(_ request: Request, allowed: Set<String>) throws(Problem) {
        var values: [String: String] = [:]
        for (name, value) in request.uri.queryParameters {
            let name = String(name)
            guard !value.contains("\u{0}"), value.count <= 1000 else {
                throw Problem.badRequest("\(name): the value is longer than 1000 characters or holds NUL characters",
                                         errors: [.init(pointer: name, detail: "invalid value")])
            }
            guard allowed.contains(name) else {
                throw Problem.badRequest("unknown query parameter '\(name)'" + suggestion(for: name, among: allowed.sorted()),
                                         errors: [.init(pointer: name, detail: "unknown parameter")])
            }
            guard values[name] == nil else {
                throw Problem.badRequest("the query parameter '\(name)' is given more than once", errors: [.init(pointer: name, detail: "repeated")])
            }
            values[name] = String(value)
        }
        self.values = values
    }

    /// A text parameter; empty means absent.
    subscript(name: String) -> String? { values[name].flatMap { $0.isEmpty ? nil : $0 } }

    /// A parameter that must name one of `candidates` (a site, a role…); unknown is a 422 with a suggestion.
    func known(_ name: String, _ what: String, among candidates: [String]) throws(Problem) -> String? {
        guard let value = self[name] else { return nil }
        guard candidates.contains(value) else {
            throw Problem.unprocessable("\(name): unknown \(what) '\(value)'" + suggestion(for: value, among: candidates),
                                        errors: [.init(pointer: name, detail: "unknown \(what)")])
        }
        return value
    }

    /// Typed parameters given empty are refused: `?to=` is a mistake, not "no end".
    func integer(_ name: String, in range: ClosedRange<Int>) throws(Problem) -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw Problem.badRequest("\(name): expected a whole number from \(range.lowerBound) to \(range.upperBound), found '\(text)'",
                                     errors: [.init(pointer: name, detail: "expected a whole number from \(range.lowerBound) to \(range.upperBound)")])
        }
        return value
    }

    func instant(_ name: String) throws(Problem) -> Date? {
        guard let text = values[name] else { return nil }
        guard let date = InstantParser.parse(text) else {
            throw Problem.badRequest("\(name): expected an RFC 3339 date-time (years 0001 to 9999) such as 2026-12-06T02:00:00Z, found '\(text)'",
                                     errors: [.init(pointer: name, detail: "expected an RFC 3339 date-time")])
        }
        return date
    }
}


struct DisclosureList: Encodable {
    var subject: String
    var disclosures: [DisclosureView]
}

/// One disclosure: when, who made it (the system for a page), to whom, and what the record says.
struct DisclosureView: Encodable {
    var incident: Int
    var at: Date
    var by: String
    var recipient: String
    var channel: String?
    var detail: String?
    /// What was disclosed and the basis, for a disclosure a person recorded (sealed in the log).
    var statement: String?

    init(_ disclosure: Disclosure) {
        let record = disclosure.record
        incident = disclosure.incident.number
        at = record.at
        by = record.actor.description
        recipient = disclosure.recipient
        channel = record.channel?.rawValue
        detail = record.detail
        statement = record.sensitive
    }
}
