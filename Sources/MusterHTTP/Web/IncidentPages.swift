// The pages people use during an incident: home, the report form and its confirmation, the
// incident page (details, timeline, checklist, and the actions), the board of open incidents at
// one's sites, and "my incidents". Every change goes through the same runtime commands as the API;
// opening an incident's details is recorded in the audit log, as through the API.
import Foundation
import Hummingbird
import MusterCore
import MusterRuntime

extension MusterServer {
    var incidentPages: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("") { request, context in try await self.signedIn(request, context) { account in try await self.home(context, account) } }
        routes.get("raise") { request, context in
            try await self.signedIn(request, context) { account in try await self.raisePage(context, account, form: nil, errors: []) }
        }
        routes.post("raise") { request, context in try await self.signedIn(request, context) { account in try await self.raise(context, account) } }
        routes.get("incidents/:number") { request, context in
            try await self.signedIn(request, context) { account in
                try await self.incidentPage(context, account, done: request.query("done"))
            }
        }
        routes.get("board") { request, context in try await self.signedIn(request, context) { account in try await self.board(request, context, account) } }
        routes.get("mine") { request, context in try await self.signedIn(request, context) { account in try await self.mine(context, account) } }
        // "Does my phone get it?": the signed-in person's contact points, each with a test page.
        routes.get("contacts") { request, context in
            try await self.signedIn(request, context) { account in try await self.contactsPage(context, account, result: nil) }
        }
        routes.post("contacts/:index/test") { request, context in
            try await self.signedIn(request, context) { account in
                let index = context.parameters.get("index").flatMap(Int.init) ?? 0
                let result = await self.runtime.sendTestPage(to: PersonID(account.id), contact: index)
                return try await self.contactsPage(context, account, result: result)
            }
        }

        // Each answers with the incident page and a word on what was done (`doneMessages`, by the path's first part).
        action("acknowledge", .acknowledge) { account, _, _ in .acknowledged(by: account.actor, path: .api, step: nil) }
        action("decline", .acknowledge) { account, _, _ in .declined(by: account.actor, path: .api) }
        action("escalate", .escalate) { account, form, _ in .escalatedByHand(by: account.actor, reason: form["reason"].map { String($0.prefix(2000)) }) }
        action("reassign", .reassign) { account, form, _ in .reassigned(to: PersonID(form["to"] ?? ""), by: account.actor) }
        action("resolve", .resolve, incomplete: "no-outcome") { account, form, _ in
            form.text("outcome", maxLength: 100).map { .resolved(by: account.actor, note: form["note"], outcome: $0) }
        }
        action("notes", .note, incomplete: "empty-note") { account, form, _ in
            form.text("text", maxLength: .max) == nil ? nil : .noteAdded(by: account.actor, text: form["text"] ?? "")
        }
        action("tasks/:task/complete", .completeTask) { account, _, context in
            .taskCompleted(TaskID(context.parameters.get("task") ?? ""), by: account.actor)
        }
        // A disclosure made outside Muster (records handed to the police): what and why sealed.
        action("disclosures", .note, incomplete: "empty-disclosure") { account, form, _ in
            guard let recipient = form.text("recipient", maxLength: 200), let what = form.text("what"), let basis = form.text("basis") else { return nil }
            return .disclosureRecorded(by: account.actor, recipient: recipient, what: what, basis: basis)
        }
        // The family decision (and any other flag), later, with why: the why is sealed.
        for (verb, set) in [("set", true), ("clear", false)] {
            action("flags/:flag/\(verb)", .confirmFlag, incomplete: "empty-reason") { account, form, context in
                form.text("reason").map { .flagDecided(IncidentFlag(context.parameters.get("flag") ?? ""), set: set, by: account.actor, reason: $0) }
            }
        }

        /// `event` answers nil when the form lacks an answer it needs: the page then says `incomplete` and nothing changes.
        func action(_ path: String, _ permission: Permission, incomplete: String? = nil,
                    _ event: @escaping @Sendable (UserAccount, FormBody, MusterRequestContext) -> IncidentEvent?) {
            routes.post("incidents/:number/\(path)") { request, context in
                try await self.signedIn(request, context) { account in
                    let form = context.form ?? FormBody("")
                    let number = context.parameters.get("number") ?? ""
                    func refused(_ why: String) -> Response {
                        WebPage.render(.forbidden, "message", WebPage.message(context, title: "Not allowed", text: why,
                                                                              link: ("Back to the incident", "/incidents/\(number)")))
                    }
                    let forbidden = "Your role may not \(permission.phrase)."
                    // A task the reporter owes is theirs to complete whatever their role: decided on the incident.
                    guard account.role.allows(permission) || permission == .completeTask else { return refused(forbidden) }
                    guard let made = event(account, form, context) else {
                        return WebPage.redirect("/incidents/\(number)?done=" + (incomplete ?? "incomplete"))
                    }
                    let state: IncidentState
                    if case .taskCompleted(let task, _) = made {
                        // Refused as the role's, unless it is the reporter's own task on an incident they may see.
                        do { state = try await self.visibleIncident(number, account: account) } catch {
                            guard account.role.allows(permission) else { return refused(forbidden) }
                            throw error
                        }
                        guard account.mayComplete(task, of: state, playbook: await self.runtime.playbook(for: state)) else {
                            return refused(account.role.allows(permission) ? EngineRejection.taskOwedByReporter(task).description + "." : forbidden)
                        }
                    } else {
                        state = try await self.visibleIncident(number, account: account)
                    }
                    do {
                        _ = try await self.apply(made, to: state.incident.id)
                    } catch let problem as Problem {
                        return WebPage.render(problem.status, "message", WebPage.message(context, title: "That did not work", text: problem.detail,
                                                                                         link: ("Back to the incident", "/incidents/\(state.incident.number)")))
                    }
                    return WebPage.redirect("/incidents/\(state.incident.number)?done=" + path.prefix { $0 != "/" })
                }
            }
        }
        return routes
    }

    /// Runs a page for a signed-in person; anyone else is sent to sign in and brought back.
    func signedIn(_ request: Request, _ context: MusterRequestContext, _ page: (UserAccount) async throws -> Response) async throws -> Response {
        guard let account = context.account else {
            let next = request.method == .get ? request.uri.path + (request.uri.query.map { "?" + $0 } ?? "") : "/"
            return WebPage.redirect("/sign-in?next=" + (next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "%2F"))
        }
        do {
            return try await page(account)
        } catch let problem as Problem where problem.status == .notFound {
            return WebPage.render(.notFound, "message", WebPage.message(context, title: "No such incident",
                                                                        text: "It does not exist, or it is not one you may open.", link: ("Home", "/")))
        }
    }

    // MARK: Home

    struct ContactsPage {
        struct Contact { var index: Int; var channel: String; var address: String }
        var frame: WebPage.Frame
        var contacts: [Contact]
        var notice: String?
        var error: String?
    }

    private func contactsPage(_ context: MusterRequestContext, _ account: UserAccount,
                              result: Result<TestPageResult, TestPageError>?) async throws -> Response {
        let person = await catalog.directory.people[PersonID(account.id)]
        var notice: String?, error: String?
        switch result {
        case .success(let sent)?:
            let channel = sent.channel.rawValue
            switch sent.outcome {
            case .delivered: notice = "The test page was delivered to your \(channel) contact point."
            case .accepted: notice = "The provider took the test page for your \(channel) contact point: check that it arrived."
            case .demonstrated: notice = "No \(channel) provider is configured: the test page is in the demonstration inbox and reached nobody."
            case .failed: error = "The test page to your \(channel) contact point failed: \(sent.detail ?? "no reason given"). Tell your district's administrator."
            }
        case .failure(let problem)?: error = problem.description
        case nil: break
        }
        let page = ContactsPage(frame: frame(context, "My contact points", current: "home"),
                                contacts: (person?.contacts ?? []).enumerated().map { .init(index: $0.offset + 1, channel: $0.element.channel.rawValue,
                                                                                             address: $0.element.address) },
                                notice: notice, error: error)
        let status: HTTPResponse.Status = if case .failure? = result { .notFound } else { .ok }
        return WebPage.render(status, "contacts", page)
    }

    struct HomePage {
        var frame: WebPage.Frame
        var waiting: Int?
    }

    private func home(_ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        var waiting: Int?
        if account.role.allows(.acknowledge) {
            let filter = IncidentFilter(phases: ["escalating", "unowned"], limit: 500).limited(to: account)
            let count = try await reads.incidents(filter).count
            waiting = count > 0 ? count : nil
        }
        return WebPage.render(.ok, "home", HomePage(frame: frame(context, "Muster", current: "home"), waiting: waiting))
    }

    func frame(_ context: MusterRequestContext, _ title: String, current: String = "") -> WebPage.Frame {
        WebPage.frame(context, title: title, current: current, settings: web)
    }

    // MARK: Raise

    struct RaisePage {
        struct TypeOption { var id: String; var title: String; var selected: Bool; var call911: Bool; var flagIDs: String }
        struct SeverityOption { var id: String; var title: String; var hint: String; var selected: Bool }
        struct FlagOption { var id: String; var question: String; var checked: Bool }
        struct FieldError { var field: String; var text: String }
        var frame: WebPage.Frame
        var types: [TypeOption]
        var severities: [SeverityOption]
        var sites: [WebPage.Option]
        var flags: [FlagOption]
        var summary: String
        var subject: String
        var call911: Bool
        var drill: Bool
        var errors: [FieldError]
        var plural: Bool
    }

    static let severityWords: [(Severity, String, String)] = [
        (.imminent, "Life in danger now", "Call 911 first."),
        (.high, "Urgent", "Serious risk today."),
        (.moderate, "Concerning", "Needs attention soon."),
        (.low, "Worth knowing", "No immediate risk."),
    ]

    private func raisePage(_ context: MusterRequestContext, _ account: UserAccount, form: FormBody?, errors: [RaisePage.FieldError],
                           status: HTTPResponse.Status = .ok) async throws -> Response {
        guard account.role.allows(.report) else {
            return WebPage.render(.forbidden, "message", WebPage.message(context, title: "Not allowed", text: "Your role may not raise incidents."))
        }
        let catalog = await catalog
        let directory = catalog.directory
        let site = form?["site"] ?? account.sites.first?.rawValue
        let chosenType = form?["type"]
        let severity = form?["severity"]
        let sites = WebPage.sites(directory, servedBy: account) { $0.rawValue == site }
        // Each type's questions are those of the playbook its reports go to (at the person's site, high severity).
        func playbook(_ type: IncidentTypeID) -> Playbook? {
            let at = SiteID(site ?? sites.first?.id ?? "")
            return catalog.playbooks.playbook(type: type, severity: .high, site: at)
                ?? catalog.playbooks.playbooks.first { $0.match.types.contains(type) }
        }
        var flagQuestions: [String: String] = [:]
        let types = directory.incidentTypes.map { type in
            let book = playbook(type.id)
            for (flag, question) in book?.flags ?? [:] { flagQuestions[flag.rawValue] = question }
            return RaisePage.TypeOption(id: type.id.rawValue, title: type.title, selected: chosenType == type.id.rawValue,
                                        call911: book?.callEmergencyFirst ?? false,
                                        flagIDs: (book?.flags.keys.map(\.rawValue).sorted() ?? []).joined(separator: " "))
        }
        let checked = Set(form?.all("flags") ?? [])
        let call911 = severity == Severity.imminent.rawValue || types.first { $0.selected }?.call911 == true
        let page = RaisePage(
            frame: frame(context, "Raise an incident", current: "raise"), types: types,
            severities: Self.severityWords.map { RaisePage.SeverityOption(id: $0.0.rawValue, title: $0.1, hint: $0.2, selected: severity == $0.0.rawValue) },
            sites: sites,
            flags: flagQuestions.sorted { $0.key < $1.key }.map { RaisePage.FlagOption(id: $0.key, question: $0.value, checked: checked.contains($0.key)) },
            summary: form?["summary"] ?? "", subject: form?["subject"] ?? "", call911: call911, drill: form?["drill"] == "yes",
            errors: errors, plural: errors.count > 1)
        return WebPage.render(status, "raise", page)
    }

    private func raise(_ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        let form = context.form ?? FormBody("")
        guard account.role.allows(.report) else {
            return WebPage.render(.forbidden, "message", WebPage.message(context, title: "Not allowed", text: "Your role may not raise incidents."))
        }
        let catalog = await catalog
        var errors: [RaisePage.FieldError] = []
        let type = form["type"].map(IncidentTypeID.init)
        let severity = form["severity"].flatMap(Severity.init(rawValue:))
        let site = form["site"].map(SiteID.init)
        let summary = form["summary"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        let subject = form["subject"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        if type == nil { errors.append(.init(field: "type", text: "Choose what is happening.")) }
        if severity == nil { errors.append(.init(field: "severity-imminent", text: "Choose how urgent it is.")) }
        if site == nil { errors.append(.init(field: "site", text: "Choose where.")) }
        if summary?.isEmpty ?? true { errors.append(.init(field: "summary", text: "Say what happened, in a few words.")) }
        if let type, let severity, let site, let summary, !summary.isEmpty, errors.isEmpty {
            // Only the questions of the playbook this report goes to count; others (shown without scripts) are dropped.
            let asked = catalog.playbooks.playbook(type: type, severity: severity, site: site)?.flags.keys.map(\.rawValue) ?? []
            let flags = form.all("flags").filter(asked.contains).map(IncidentFlag.init)
            let problems = IntakeCheck(catalog: catalog).problems(type: type, severity: severity, site: site, flags: flags, subject: subject)
            errors += problems.map { RaisePage.FieldError(field: $0.field.rawValue, text: $0.detail) }
            if !account.serves(site) { errors.append(.init(field: "site", text: "You may raise incidents only at your own sites.")) }
            if errors.isEmpty {
                let report = Report(type: type, severity: severity, site: site, reporter: account.actor, summary: summary,
                                    subject: subject?.isEmpty == false ? subject : nil, flags: Set(flags), receivedAt: clock.now(),
                                    drill: form["drill"] == "yes")
                metrics.reportReceived(source: "web")
                // The form's token makes a double tap one report: the same browser secret and text give the same key.
                let fields = [context.browserSecret, type.rawValue, severity.rawValue, site.rawValue, summary, subject ?? "", report.drill ? "drill" : ""]
                    + flags.map(\.rawValue).sorted()
                let key = account.id + ":web:" + WebCookie.csrfToken(fields.joined(separator: "\u{1F}"))
                switch try await runtime.report(intake(report, by: account, idempotencyKey: key, source: "web")) {
                case .failure(let error):
                    let problem = Problem.from(error)
                    return WebPage.render(problem.status, "message", WebPage.message(context, title: "The report was not sent",
                                                                                     text: problem.detail + " Call 911 if a life is in danger, then try again.",
                                                                                     link: ("Try again", "/raise")))
                case .success(let committed):
                    let number = committed.outcome.incident.number
                    return WebPage.redirect("/incidents/\(number)?done=" + (severity == .imminent ? "raised-imminent" : "raised"))
                }
            }
        }
        return try await raisePage(context, account, form: form, errors: errors, status: .unprocessableContent)
    }

    // MARK: The incident page

    struct IncidentPage {
        struct Paging { var name: String; var channel: String; var state: String; var stateText: String }
        struct ReportItem { var reporter: String; var at: String; var summary: String; var subject: String?; var flags: String? }
        struct TaskItem { var id: String; var title: String; var owedByReporter: Bool; var done: Bool; var doneText: String?; var overdue: Bool; var dueText: String?; var canComplete: Bool }
        struct TimelineItem { var offset: String; var text: String }
        struct PersonOption { var id: String; var name: String }
        struct Decision { var id: String; var question: String; var isSet: Bool; var verb: String; var button: String }
        struct Outcome { var id: String; var title: String; var needsReason: Bool }
        var frame: WebPage.Frame
        var done: String?
        var call911: Bool
        var drill: Bool
        var number: Int
        var category: String
        var status: String
        var statusText: String
        var site: String
        var severity: String
        var reportedAt: String
        var since: String
        var owner: String?
        var acknowledgedText: String?
        var playbook: String
        var paging: [Paging]
        var reports: [ReportItem]
        var canAct: Bool
        var canAcknowledge: Bool
        var canReassign: Bool
        var open: Bool
        var people: [PersonOption]
        var tasks: [TaskItem]
        var canNote: Bool
        /// A disclosure can be recorded also after the incident is resolved.
        var canDisclose: Bool
        var canExport: Bool
        /// The playbook's questions (the family decision among them), as they stand, for who may change them.
        var decisions: [Decision]
        /// What resolving asks to choose from (the playbook's outcomes).
        var outcomes: [Outcome]
        var timeline: [TimelineItem]
    }

    static let doneMessages: [String: String] = [
        "raised": "Sent. The team is being alerted now.",
        "raised-imminent": "Sent. The team is being alerted now.",
        "acknowledge": "You own this incident. Escalation has stopped.",
        "decline": "Declined. The others paged are still asked; if nobody can take it, it escalates.",
        "escalate": "Escalated to the next step.",
        "reassign": "Handed over.",
        "resolve": "Resolved.",
        "notes": "Note added.",
        "tasks": "Task marked done.",
        "empty-note": "The note was empty, so nothing was added.",
        "no-outcome": "Choose how the incident ended: it is still open.",
        "flags": "Decision recorded.",
        "disclosures": "Disclosure recorded.",
        "empty-disclosure": "Say who received what, and why it was lawful: nothing was recorded.",
        "empty-reason": "Say why: a decision needs a reason, so nothing was changed.",
    ]

    private func incidentPage(_ context: MusterRequestContext, _ account: UserAccount, done: String?) async throws -> Response {
        try account.require(.read)
        let found = try await visibleIncident(context.parameters.get("number") ?? "", account: account)
        // The read is recorded before anything is shown: no entry, no details.
        let state = try await apply(.accessed(by: account.actor, from: context.remoteAddress), to: found.incident.id)
        return try await incidentPage(context, account, state: state, done: done, live: false)
    }

    /// The incident page, or (`live`) only its part that changes: status and paging, no student text.
    func incidentPage(_ context: MusterRequestContext, _ account: UserAccount, state: IncidentState, done: String?, live: Bool) async throws -> Response {
        let catalog = await catalog
        let directory = catalog.directory
        let now = clock.now()
        let reporterView = account.role == .reporter
        let facts = AckPages.Facts(state, directory)
        async let reportsRead = reads.reports(state.incident.id)
        async let timelineRead = reads.timeline(state.incident.id)
        let allReports = try await reportsRead
        let records = try await timelineRead
        let reports = live ? [] : reporterView ? allReports.filter { $0.reporter == account.actor } : allReports
        let firstReporter = allReports.first?.reporter == account.actor
        let name = { (actor: Actor) in AckPages.name(of: actor, in: directory) }
        let zone = directory.sites[state.incident.site]?.zone ?? .utc
        // The version the incident runs under: its tasks, flag codes and outcomes are that version's.
        let playbook = await runtime.playbook(for: state)

        // Who is being paged now, and how each page stands: staff see it; a reporter sees it for the incident they raised.
        var paging: [IncidentPage.Paging] = []
        if !reporterView || firstReporter {
            let outcomes = Dictionary(records.compactMap { record in record.notification.map { ($0, record.action) } }, uniquingKeysWith: { _, last in last })
            for page in state.currentPages {
                let id = page.notificationID
                let outcome = outcomes[id]
                let (stateName, text): (String, String) = switch outcome {
                case .delivered: ("delivered", "delivered")
                case .sent: ("sent", "sent, not yet confirmed")
                case .demonstrated: ("demonstrated", "in the demonstration inbox")
                case .deliveryFailed: ("failed", page.failed ? "failed" : "retrying")
                default: ("waiting", "queued")
                }
                paging.append(.init(name: directory.name(of: id.recipient), channel: id.channel.rawValue, state: stateName, stateText: text))
            }
        }
        let tasks = state.tasks.map { task in
            let spec = playbook?.tasks.first { $0.id == task.id }
            return IncidentPage.TaskItem(id: task.id.rawValue, title: spec?.title ?? task.id.rawValue,
                                  owedByReporter: spec?.owner == .reporter,
                                  done: task.completedAt != nil,
                                  doneText: task.completedAt.map { Self.clockText($0, zone) + (reporterView ? "" : task.completedBy.map { " by " + name($0) } ?? "") },
                                  overdue: task.completedAt == nil && (task.overdue || (task.dueAt.map { $0 < now } ?? false)),
                                  dueText: task.dueAt.map { "by " + Self.clockText($0, zone) + " (" + Self.relative($0, now) + ")" } ?? "when the incident is acknowledged",
                                  // A task the reporter owes stays theirs to complete after the incident is closed.
                                  canComplete: task.completedAt == nil && (state.isOpen || spec?.owner == .reporter)
                                      && account.mayComplete(task.id, of: state, playbook: playbook))
        }
        let timeline = records.filter { !live && (!reporterView || $0.actor == account.actor) }.map { record in
            IncidentPage.TimelineItem(offset: Self.offset(record.at.timeIntervalSince(state.incident.reportedAt)),
                                      text: Self.phrase(record, name: name, directory: directory, playbook: playbook, withText: true))
        }
        let page = IncidentPage(
            frame: frame(context, "Incident #\(state.incident.number)"), done: done.flatMap { Self.doneMessages[$0] },
            call911: done == "raised-imminent", drill: state.incident.drill, number: state.incident.number,
            category: facts.category, status: state.phase.name, statusText: Self.statusText(state.phase.name),
            site: facts.site, severity: facts.severity, reportedAt: Self.clockText(state.incident.reportedAt, zone),
            since: Self.relative(state.incident.reportedAt, now, suffix: false),
            owner: reporterView ? nil : state.owner.map(name),
            acknowledgedText: state.acknowledgedAt.map { reporterView ? "Yes, at " + Self.clockText($0, zone) : Self.clockText($0, zone) },
            playbook: (playbook?.title ?? state.playbook.rawValue) + " (version " + String(state.playbookVersion.dropFirst(7).prefix(12)) + ")",
            paging: paging,
            reports: reports.map { report in
                IncidentPage.ReportItem(reporter: name(report.reporter), at: Self.clockText(report.receivedAt, zone), summary: report.summary, subject: report.subject,
                                        flags: report.flags.isEmpty ? nil : report.flags.map { playbook?.flags[$0] ?? $0.rawValue }.sorted().joined(separator: "; "))
            },
            canAct: !reporterView && account.role.allows(.acknowledge),
            canAcknowledge: state.isOpen && state.owner != account.actor && account.role.allows(.acknowledge),
            canReassign: state.isOpen && account.role.allows(.reassign),
            open: state.isOpen,
            people: account.role.allows(.reassign)
                ? directory.people.values.filter { $0.assignments.contains(.site(state.incident.site)) || $0.assignments.contains(.district) }
                    .sorted { $0.name < $1.name }.map { .init(id: $0.id.rawValue, name: $0.name) } : [],
            tasks: tasks, canNote: state.isOpen && account.role.allows(.note), canDisclose: account.role.allows(.note), canExport: Self.audits(account),
            decisions: state.isOpen && account.role.allows(.confirmFlag)
                ? (playbook?.flags ?? [:]).sorted { $0.key.rawValue < $1.key.rawValue }.map { flag, question in
                    let isSet = state.incident.flags.contains(flag)
                    return .init(id: flag.rawValue, question: question, isSet: isSet, verb: isSet ? "clear" : "set",
                                 button: isSet ? "Change to no" : "Change to yes")
                } : [],
            outcomes: (playbook?.outcomes ?? ResolutionOutcome.defaults).map { .init(id: $0.id, title: $0.title, needsReason: $0.needsReason) },
            timeline: timeline)
        return WebPage.render(.ok, live ? "incident-live" : "incident", page)
    }

    static func statusText(_ phase: String) -> String {
        switch phase {
        case "escalating": "Paging: nobody has acknowledged yet"
        case "acknowledged": "Acknowledged: someone owns it"
        case "unowned": "Nobody has taken it: still paging"
        case "resolved": "Resolved"
        default: phase
        }
    }

    // MARK: Lists

    struct ListPage {
        struct Item { var number: Int; var category: String; var site: String; var status: String; var statusText: String; var severity: String; var since: String }
        var frame: WebPage.Frame
        var heading: String
        var intro: String?
        var filters: Bool
        /// Where the live part is fetched again when the event stream says something changed.
        var liveURL: String
        var previous: String? = nil
        var next: String? = nil
        var sites: [WebPage.Option]
        var statuses: [WebPage.Option]
        var incidents: [Item]
        var emptyText: String
    }

    static let boardPageSize = 100

    private func board(_ request: Request, _ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        try account.require(.read)
        let directory = await catalog.directory
        let site = request.query("site").flatMap { directory.sites[SiteID($0)] != nil ? $0 : nil }
        let status = request.query("status") ?? "open"
        var filter = IncidentFilter(limit: 500).limited(to: account)
        switch status {
        case "resolved": filter.phases = ["resolved"]
        case "all": break
        default: filter.phases = IncidentFilter.openPhases
        }
        filter.site = site.map(SiteID.init)
        let rank = ["unowned": 0, "escalating": 1, "acknowledged": 2, "resolved": 3]
        let incidents = try await reads.incidents(filter).sorted {
            (rank[$0.phase] ?? 4, $0.reportedAt) < (rank[$1.phase] ?? 4, $1.reportedAt)
        }
        // A page at a time, so that even a district-wide storm stays light on a phone.
        let pages = max(1, (incidents.count + Self.boardPageSize - 1) / Self.boardPageSize)
        let number = min(pages, max(1, request.query("page").flatMap(Int.init) ?? 1))
        let shown = incidents.dropFirst((number - 1) * Self.boardPageSize).prefix(Self.boardPageSize)
        func link(_ page: Int) -> String {
            "/board?" + [site.map { "site=" + $0 }, "status=" + status, "page=\(page)"].compactMap { $0 }.joined(separator: "&")
        }
        let page = ListPage(
            frame: frame(context, "Board", current: "board"), heading: account.role.isSiteScoped ? "Open incidents at my sites" : "Incidents",
            intro: "Waiting for someone first, longest waiting at the top." + (pages > 1 ? " Page \(number) of \(pages) (\(incidents.count) incidents)." : ""),
            filters: true, liveURL: link(number), previous: number > 1 ? link(number - 1) : nil, next: number < pages ? link(number + 1) : nil,
            sites: WebPage.sites(directory, servedBy: account) { $0.rawValue == site },
            statuses: [("open", "Open"), ("resolved", "Resolved"), ("all", "All")].map { .init(id: $0.0, name: $0.1, selected: $0.0 == status) },
            incidents: shown.map { item($0, directory) }, emptyText: "Nothing open. When an incident is raised at your sites it appears here.")
        return WebPage.render(.ok, "list", page)
    }

    private func mine(_ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        let directory = await catalog.directory
        var filter = IncidentFilter(limit: 100)
        filter.reporter = account.actor
        var incidents = try await reads.incidents(filter)
        if account.role.allows(.acknowledge) {
            // Also those I own: open incidents at my sites whose owner is me.
            let open = IncidentFilter(phases: ["acknowledged"], limit: 500).limited(to: account)
            for summary in try await reads.incidents(open) where !incidents.contains(where: { $0.ref == summary.ref }) {
                if try await reads.incident(summary.ref.id)?.owner == account.actor { incidents.append(summary) }
            }
        }
        incidents.sort { $0.ref.number > $1.ref.number }
        let page = ListPage(frame: frame(context, "My incidents", current: "mine"), heading: "My incidents",
                            intro: "Incidents you raised or own.", filters: false, liveURL: "", sites: [], statuses: [],
                            incidents: incidents.map { item($0, directory) }, emptyText: "None yet.")
        return WebPage.render(.ok, "list", page)
    }

    func item(_ summary: IncidentSummary, _ directory: Directory) -> ListPage.Item {
        ListPage.Item(number: summary.ref.number, category: directory.incidentTypes.first { $0.id == summary.type }?.title ?? summary.type.rawValue,
                      site: directory.sites[summary.site]?.name ?? summary.site.rawValue, status: summary.phase,
                      statusText: Self.statusText(summary.phase).components(separatedBy: ":").first ?? summary.phase,
                      severity: summary.severity.rawValue, since: Self.relative(summary.reportedAt, clock.now(), suffix: false))
    }

    // MARK: Words for times and entries

    /// "14:05" in the site's time zone, with the date when it is not today.
    static func clockText(_ date: Date, _ zone: ZoneRules) -> String {
        let text = zone.iso8601(date)  // 2026-12-06T14:05:00-06:00
        let day = text.prefix(10)
        let time = text.dropFirst(11).prefix(5)
        return "\(time) on \(day)"
    }

    /// "3 min", "2 h 5 min", "1 day": how long from `date` to `now`, or "in …" for the future.
    static func relative(_ date: Date, _ now: Date, suffix: Bool = true) -> String {
        let seconds = now.timeIntervalSince(date)
        let words = duration(abs(seconds))
        if seconds < 0 { return "in " + words }
        return suffix ? words + " ago" : words
    }

    static func duration(_ seconds: TimeInterval) -> String {
        let total = Int(seconds)
        if total < 60 { return "\(total) s" }
        if total < 3600 { return "\(total / 60) min" }
        if total < 86400 { return "\(total / 3600) h \(total % 3600 / 60) min" }
        return "\(total / 86400) d \(total % 86400 / 3600) h"
    }

    /// "+0:03:12": time since the report, as auditors read a timeline.
    static func offset(_ seconds: TimeInterval) -> String {
        let total = max(0, Int(seconds))
        let text = String(format: "+%d:%02d:%02d", total / 3600, total % 3600 / 60, total % 60)
        return text
    }

    static func phrase(_ record: AuditRecord, name: (Actor) -> String, directory: Directory, playbook: Playbook?, withText: Bool) -> String {
        let who = name(record.actor)
        let task = record.task.map { id in playbook?.tasks.first { $0.id == id }?.title ?? id.rawValue } ?? "a task"
        let recipient = record.recipient.map { directory.name(of: $0) } ?? ""
        let channel = record.channel.map { " by " + $0.rawValue } ?? ""
        let step = record.step.map { " (step \($0 + 1))" } ?? ""
        // The log holds a flag's neutral code; the page that may show the text shows its question.
        let question = withText ? record.target.flatMap { playbook?.flag(code: $0) }.flatMap { playbook?.flags[$0] } : nil
        let flag = question.map { " (\"\($0)\")" } ?? ""
        var text: String = switch record.action {
        case .reported: "\(who) reported it"
        case .reportMerged: "\(who) reported the same; joined to this incident"
        case .joined: "Joined: \(record.detail ?? "")"
        case .severityRaised: "Urgency raised"
        case .taskScheduled: "Task due: \(task)"
        case .stepStarted: "Step started\(step)"
        case .stepRepeated: "Step repeated\(step)"
        case .paged: "Paged \(recipient)\(channel)\(step)"
        case .targetUnresolved: "Nobody found for a target\(step)"
        case .channelSubstituted: "\(recipient) reached on another channel\(channel)"
        case .stepSkipped: "Step skipped\(step)"
        case .stepUnreachable: "Nobody reachable\(step)"
        case .escalated: "Escalated\(step)"
        case .fallbackPaged: "Fallback paged: \(recipient)\(channel)"
        case .unowned: "Nobody has taken it: the fallback keeps being paged"
        case .acknowledged: "\(who) acknowledged"
        case .declined: "\(who) declined"
        case .replyReceived: "Reply from \(who)"
        case .escalatedByHand: "\(who) escalated by hand"
        case .reassigned: "\(who) handed it over to \(record.target.map { directory.name(of: .person(PersonID($0.replacingOccurrences(of: "person:", with: "")))) } ?? "")"
        case .taskCompleted: "\(who) completed \(task)"
        case .taskWithdrawn: "Task withdrawn: \(task)"
        case .flagProposed: "\(who) proposed a flag\(flag)"
        case .flagConfirmed: "\(who) confirmed a flag\(flag)"
        case .flagSet: "\(who) set a flag\(flag)"
        case .flagCleared: "\(who) cleared a flag\(flag)"
        case .taskRestored: "Task restored: \(task)"
        case .disclosed: record.recipient != nil ? "Disclosed to \(recipient)\(channel)" : "\(who) recorded a disclosure to \(record.target ?? "")"
        case .taskOverdue: "Overdue: \(task)"
        case .taskReminded: "Reminder sent: \(task)"
        case .noteAdded: "\(who) added a note"
        case .resolved: "\(who) resolved it" + (record.target.map { id in ": " + (playbook?.outcomes.first { $0.id == id }?.title ?? id) } ?? "")
        case .reopened: "\(who) reopened it"
        case .sent: "Handed to the provider: \(recipient)\(channel)"
        case .delivered: "Delivered to \(recipient)\(channel)"
        case .demonstrated: "Shown in the demonstration inbox: \(recipient)\(channel)"
        case .deliveryFailed: "Delivery failed: \(recipient)\(channel)" + (record.detail.map { " (\($0))" } ?? "")
        case .accessed: "\(who) " + (record.detail.flatMap { $0.hasPrefix("exported as ") ? $0 : nil } ?? "opened the details")
        case .refused: "Refused: \(record.detail ?? "")"
        case .purged: "Student text purged under the retention policy"
        }
        if withText, let sensitive = record.sensitive, !sensitive.isEmpty, record.action != .reported, record.action != .reportMerged {
            text += ": " + sensitive
        }
        return text
    }
}
