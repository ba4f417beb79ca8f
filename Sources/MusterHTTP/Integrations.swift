// Integrations: Prometheus Alertmanager's webhook and PagerDuty's Events API v2, so that any tool
// that can notify either can raise a Muster incident. Both are authenticated by an integration
// key (an account with the integration role): Alertmanager sends it as a bearer token, PagerDuty
// senders as the event's `routing_key`. Labels and fields map to type, site and severity by the
// settings below (the `integrations` section of the configuration file).
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterPlaybooks
import MusterRuntime

public struct IntegrationSettings: Sendable, Hashable {
    public var alertmanager = FieldMapping(type: ["muster_type", "type"], site: ["site"], severity: ["severity"],
                                           severities: ["critical": .high, "page": .high, "error": .moderate, "warning": .moderate, "info": .low])
    /// Looked up in `payload.custom_details` first, then in `payload.class` (type), `payload.group` (site) and `payload.severity`.
    public var pagerduty = FieldMapping(type: ["muster_type", "type"], site: ["site"], severity: ["muster_severity"],
                                        severities: ["critical": .high, "error": .high, "warning": .moderate, "info": .low])

    public init() {}
}

/// Where an integration's event says its incident type, site and severity.
public struct FieldMapping: Sendable, Hashable {
    /// Label (or field) names tried in order.
    public var type: [String]
    public var site: [String]
    public var severity: [String]
    /// The sender's severities in Muster's terms (Muster's own names are accepted as they are).
    public var severities: [String: Severity]
    /// Used when the event names none; without a default such an event is refused.
    public var defaultType: String?
    public var defaultSite: String?
    public var defaultSeverity: Severity = .moderate

    public init(type: [String], site: [String], severity: [String], severities: [String: Severity],
                defaultType: String? = "other-concern", defaultSite: String? = nil) {
        self.type = type
        self.site = site
        self.severity = severity
        self.severities = severities
        self.defaultType = defaultType
        self.defaultSite = defaultSite
    }

    func severity(_ text: String?) -> Severity? {
        guard let text else { return defaultSeverity }
        return Severity(rawValue: text.lowercased()) ?? severities[text.lowercased()]
    }
}

extension MusterServer {
    /// Alertmanager's webhook (under /api/v1, behind the integration's token).
    var integrationRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.post("integrations/alertmanager") { request, context in try await self.alertmanager(request, context) }
        return routes
    }

    /// PagerDuty's Events API v2 at its own path (the routing key in the body is the credential).
    var eventsAPIRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.post("v2/enqueue") { request, context in try await self.pagerDuty(request, context) }
        return routes
    }

    // MARK: Alertmanager

    /// Alertmanager's webhook (version 4 payload). Every firing alert becomes a report whose
    /// idempotency key is the alert's fingerprint and start, so Alertmanager's repeats and retries
    /// open nothing twice; resolved alerts add a note to their incident (a person closes it).
    /// All alerts are checked before any is committed.
    private func alertmanager(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let account = try context.requireAccount()
        try account.require(.integrate)
        try rateLimiter.admitIntegration(account, now: clock.now())
        var body = try ObjectReader(try await JSONBody.read(request, limit: 1024 * 1024), allowed: nil)
        // Alertmanager never sends null: in its payload a null is a mistake, not an absent field.
        body.failNulls()
        if let version = body.string("version"), version != "4" {
            body.fail("version", "payload version '\(version)' is not supported; Alertmanager sends version 4")
        }
        // The rest of Alertmanager's envelope is not used, but it must have Alertmanager's shape.
        _ = body.choice("status", ["firing", "resolved"])
        for key in ["receiver", "groupKey", "externalURL"] { _ = body.string(key) }
        _ = body.integer("truncatedAlerts", in: 0...Int.max)
        for key in ["groupLabels", "commonLabels", "commonAnnotations"] { _ = body.stringMap(key) }
        guard case .array(let alerts)? = body.fields["alerts"] else {
            body.fail("alerts", "expected the array of alerts of an Alertmanager webhook payload")
            try body.refuse()
        }
        try body.finish()
        let catalog = await catalog
        let mapping = integrations.alertmanager
        var reports: [ReportIntake] = []
        var resolved: [(key: String, endsAt: String?)] = []
        var problems: [Problem.FieldError] = []
        for (index, value) in alerts.enumerated() {
            var alert = try ObjectReader(value, pointer: "/alerts/\(index)", allowed: nil)
            alert.failNulls()
            let status = alert.string("status", required: true)
            let fingerprint = alert.string("fingerprint", maxLength: 200)
            let startsAt = alert.string("startsAt", maxLength: 64)
            let endsAt = alert.string("endsAt", maxLength: 64)
            _ = alert.string("generatorURL")
            let labels = alert.stringMap("labels", required: true) ?? [:]
            let annotations = alert.stringMap("annotations") ?? [:]
            problems += alert.problems
            // The alert's identity: its fingerprint, or its sorted labels when a sender leaves it out.
            let identity = fingerprint ?? labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let key = "am:\(account.id):\(identity):\(startsAt ?? "")"
            switch status {
            case "firing":
                switch mapReport(labels, mapping: mapping, catalog: catalog, pointer: "/alerts/\(index)/labels", account: account) {
                case .failure(let problem): problems.append(problem)
                case .success(var report):
                    report.summary = annotations["summary"] ?? annotations["description"] ?? labels["alertname"] ?? "alert from Alertmanager"
                    reports.append(ReportIntake(report: report, idempotencyKey: key))
                }
            case "resolved":
                resolved.append((key, endsAt))
            case nil:
                break
            case let other?:
                problems.append(.init(pointer: "/alerts/\(index)/status", detail: "unknown status '\(other)'; expected firing or resolved"))
            }
        }
        if !problems.isEmpty {
            throw Problem.unprocessable(problems.map { "\($0.pointer): \($0.detail)" }.joined(separator: "; "), errors: problems)
        }
        for _ in reports { metrics.reportReceived(source: "alertmanager") }
        var incidents: [IncidentLink] = []
        for result in try await runtime.report(reports) {
            switch result {
            case .success(let committed): incidents.append(IncidentLink(committed.outcome.incident))
            case .failure(let error): throw Problem.from(error)
            }
        }
        for alert in resolved {
            guard let id = try await reads.incidentID(idempotencyKey: alert.key) else { continue }
            let note = "the source alert was resolved" + (alert.endsAt.map { " at \($0)" } ?? "")
            if case .failure(let error) = try await runtime.apply(.noteAdded(by: account.actor, text: note), to: id), error != .rejected(.resolved) {
                throw Problem.from(error)
            }
        }
        return try json(IntegrationAccepted(status: "success", incidents: incidents), status: .accepted)
    }

    /// Type, site and severity from an event's fields by the mapping, checked as every report is (IntakeCheck).
    private func mapReport(_ fields: [String: String], mapping: FieldMapping, catalog: Catalog, pointer: String,
                           account: UserAccount) -> Result<Report, Problem.FieldError> {
        let type = mapping.type.lazy.compactMap { fields[$0] }.first ?? mapping.defaultType
        let site = mapping.site.lazy.compactMap { fields[$0] }.first ?? mapping.defaultSite
        let severityText = mapping.severity.lazy.compactMap { fields[$0] }.first
        guard let type else {
            return .failure(Problem.FieldError(pointer: pointer + "/" + (mapping.type.first ?? "type"),
                                               detail: "no incident type (labels \(mapping.type.joined(separator: ", ")); found none)"))
        }
        guard let site else {
            return .failure(Problem.FieldError(pointer: pointer + "/" + (mapping.site.first ?? "site"),
                                               detail: "no site (labels \(mapping.site.joined(separator: ", ")); found none)"))
        }
        guard let severity = mapping.severity(severityText) else {
            let allowed: [String] = Severity.allCases.map(\.rawValue) + mapping.severities.keys.sorted()
            let detail = "unknown severity '\(severityText ?? "")'; expected one of " + allowed.joined(separator: ", ")
            return .failure(Problem.FieldError(pointer: pointer + "/" + (mapping.severity.first ?? "severity"), detail: detail))
        }
        if let problem = IntakeCheck(catalog: catalog).problems(type: IncidentTypeID(type), severity: severity, site: SiteID(site)).first {
            let labels = problem.field == .site ? mapping.site : mapping.type
            return .failure(Problem.FieldError(pointer: pointer + "/" + (labels.first ?? problem.field.rawValue),
                                               detail: problem.detail + " (labels \(labels.joined(separator: ", ")))"))
        }
        // A drill (an exercise of the alarm itself) says so in the label or field `muster_drill`.
        var drill = false
        switch fields[Self.drillLabel] {
        case nil, "false": drill = false
        case "true": drill = true
        case let other?:
            return .failure(Problem.FieldError(pointer: pointer + "/" + Self.drillLabel, detail: "must be true or false, not '\(other)'"))
        }
        return .success(Report(type: IncidentTypeID(type), severity: severity, site: SiteID(site), reporter: account.actor, summary: "",
                               receivedAt: clock.now(), drill: drill))
    }

    static let drillLabel = "muster_drill"

    // MARK: PagerDuty Events API v2

    /// POST /v2/enqueue, answered as PagerDuty answers: 202 with status, message and dedup_key, or
    /// 400 "invalid event" with a list of errors.
    private func pagerDuty(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let value: JSONValue?
        var admitted: String?
        do {
            // PagerDuty takes events of up to 512 KB. The routing key is checked before the body is decoded:
            // a flood with a wrong or throttled key costs one pass over its bytes.
            let bytes = try await JSONBody.bytes(request, limit: 512 * 1024)
            try bytes.withUnsafeReadableBytes { bytes throws(Problem) in try JSONShape.check(bytes) }
            if let key = bytes.withUnsafeReadableBytes({ JSONShape.topLevelString("routing_key", in: $0) }) {
                guard let account = try await authenticator.account(token: key, now: clock.now()), account.role == .integration else {
                    return try pagerDutyInvalid(["'routing_key' is not a valid integration key"])
                }
                if let throttled = try pagerDutyThrottle(account) { return throttled }
                admitted = account.id
            }
            value = try JSONBody.decode(bytes, contentType: request.headers[.contentType], shapeChecked: true)
        } catch let problem as Problem {
            return try pagerDutyInvalid([problem.detail], status: problem.status == .contentTooLarge ? .contentTooLarge : .badRequest)
        }
        guard case .object(let event)? = value else { return try pagerDutyInvalid(["the body must be a JSON object"]) }
        func text(_ object: [String: JSONValue], _ key: String) -> String? {
            if case .string(let text)? = object[key] { text } else { nil }
        }
        var errors: [String] = []
        let routingKey = text(event, "routing_key")
        let action = text(event, "event_action")
        var dedupKey = text(event, "dedup_key")
        if routingKey == nil { errors.append("'routing_key' is missing or not a string") }
        if !["trigger", "acknowledge", "resolve"].contains(action ?? "") {
            errors.append("'event_action' must be one of trigger, acknowledge, resolve")
        }
        if let key = dedupKey, key.count > 255 { errors.append("'dedup_key' is longer than 255 characters") }
        if let key = dedupKey, key.contains("\u{0}") { errors.append("'dedup_key' must not contain NUL characters") }
        if action != "trigger", action != nil, dedupKey == nil { errors.append("'dedup_key' is required for \(action ?? "") events") }
        var payload: [String: JSONValue] = [:]
        if action == "trigger" {
            if case .object(let object)? = event["payload"] { payload = object } else { errors.append("'payload' is missing or not an object") }
            if let summary = text(payload, "summary") {
                if summary.count > 1024 { errors.append("'payload.summary' is longer than 1024 characters") }
            } else if !payload.isEmpty || event["payload"] != nil {
                errors.append("'payload.summary' is missing or not a string")
            }
            if text(payload, "source") == nil, event["payload"] != nil { errors.append("'payload.source' is missing or not a string") }
            if !["critical", "error", "warning", "info"].contains(text(payload, "severity") ?? "") {
                errors.append("'payload.severity' must be one of critical, error, warning, info")
            }
        }
        guard errors.isEmpty, let routingKey, let action else { return try pagerDutyInvalid(errors) }
        guard let account = try await authenticator.account(token: routingKey, now: clock.now()), account.role == .integration else {
            return try pagerDutyInvalid(["'routing_key' is not a valid integration key"])
        }
        if admitted != account.id, let throttled = try pagerDutyThrottle(account) { return throttled }
        if action == "trigger", dedupKey == nil { dedupKey = UUID().uuidString.lowercased() }
        let dedup = dedupKey ?? ""
        // The open incident for this dedup key: a resolved one is followed by the next trigger's.
        let found = try await currentIncident(forDedupKey: "pd:\(account.id):\(dedup)")
        switch action {
        case "trigger":
            if let found, found.state?.isOpen == true {
                return try pagerDutyAccepted(dedup)  // PagerDuty adds a log entry to the open alert; the incident already pages
            }
            var fields: [String: String] = [:]
            if case .object(let details)? = payload["custom_details"] {
                fields = details.compactMapValues { value in
                    switch value {
                    case .string(let text): text
                    case .bool(let flag): flag ? "true" : "false"
                    default: nil
                    }
                }
            }
            let mapping = integrations.pagerduty
            if let type = text(payload, "class"), mapping.type.allSatisfy({ fields[$0] == nil }) { fields[mapping.type.first ?? "type"] = type }
            if let group = text(payload, "group"), mapping.site.allSatisfy({ fields[$0] == nil }) { fields[mapping.site.first ?? "site"] = group }
            if let severity = text(payload, "severity"), mapping.severity.allSatisfy({ fields[$0] == nil }) {
                fields[mapping.severity.first ?? "severity"] = severity
            }
            switch mapReport(fields, mapping: mapping, catalog: await catalog, pointer: "/payload/custom_details", account: account) {
            case .failure(let problem):
                return try pagerDutyInvalid(["\(problem.pointer): \(problem.detail)"])
            case .success(var report):
                report.summary = text(payload, "summary") ?? ""
                metrics.reportReceived(source: "pagerduty")
                let key = found.map { "pd:\(account.id):\(dedup)#\($0.number)" } ?? "pd:\(account.id):\(dedup)"
                if case .failure(let error) = try await runtime.report(ReportIntake(report: report, idempotencyKey: key)) {
                    if case .unavailable = error { throw Problem.from(error) }
                    return try pagerDutyInvalid([error.description])
                }
            }
        default:
            // Dropped, as PagerDuty drops them, when no open incident has this dedup key.
            if let found, let state = found.state, state.isOpen {
                if let refusal = try await integrationAction(action, on: state, by: account) { return refusal }
            }
        }
        return try pagerDutyAccepted(dedup)
    }

    /// An integration's acknowledge or resolve. It owns only what it alone raised: a person's report in
    /// the incident (joined by a responder) puts it beyond the integration, which is refused in
    /// PagerDuty's shape and audited. The reports are read first, and the commit is refused if one
    /// joined since; then they are read again.
    private func integrationAction(_ action: String, on state: IncidentState, by account: UserAccount) async throws -> Response? {
        for _ in 0..<3 {
            let reports = try await reads.reports(state.incident.id)
            guard Set(reports.map(\.reporter)) == [account.actor] else {
                let reason = "incident #\(state.incident.number) has reports from others than this integration; only a person may \(action) it"
                if case .failure(let error) = try await runtime.apply(.refused(by: account.actor, action: action, reason: reason),
                                                                      to: state.incident.id), case .unavailable = error {
                    throw Problem.from(error)
                }
                return try pagerDutyInvalid(["'event_action' \(action) refused: " + reason])
            }
            let event: IncidentEvent = action == "acknowledge"
                ? .acknowledged(by: account.actor, path: .integration, step: nil) : .resolved(by: account.actor, note: nil)
            switch try await runtime.apply(event, to: state.incident.id, ifReports: reports.count) {
            case .failure(.changed): continue
            case .failure(.unavailable(let reason)): throw Problem.from(.unavailable(reason))
            case .success, .failure: return nil  // refused by the engine (already resolved…): dropped, as PagerDuty drops it
            }
        }
        throw Problem.from(.unavailable("the incident kept changing while the event was applied"))
    }

    /// Follows a dedup key's chain: each trigger after a resolution is keyed by the previous incident's number.
    private func currentIncident(forDedupKey base: String) async throws -> (number: Int, state: IncidentState?)? {
        var key = base
        var last: (number: Int, state: IncidentState?)?
        for _ in 0..<1000 {
            guard let id = try await reads.incidentID(idempotencyKey: key) else { return last }
            let state = try await reads.incident(id)
            let number = state?.incident.number ?? 0
            last = (number, state)
            if state?.isOpen ?? false { return last }
            key = base + "#\(number)"
        }
        return last
    }

    /// PagerDuty's throttle when the key is over its budget: 429 with Retry-After, and the event is not
    /// taken (PagerDuty's clients retry with back-off).
    private func pagerDutyThrottle(_ account: UserAccount) throws -> Response? {
        do {
            try rateLimiter.admitIntegration(account, now: clock.now())
            return nil
        } catch {
            return try json(PagerDutyResponse(status: "throttle event", message: "Requests for this routing key are arriving too quickly",
                                              dedupKey: nil, errors: [error.detail]), status: .tooManyRequests, headers: error.headers)
        }
    }

    private func pagerDutyAccepted(_ dedupKey: String) throws -> Response {
        try json(PagerDutyResponse(status: "success", message: "Event processed", dedupKey: dedupKey, errors: nil), status: .accepted)
    }

    private func pagerDutyInvalid(_ errors: [String], status: HTTPResponse.Status = .badRequest) throws -> Response {
        try json(PagerDutyResponse(status: "invalid event", message: "Event object is invalid", dedupKey: nil, errors: errors), status: status)
    }
}

struct IntegrationAccepted: Encodable {
    var status: String
    var incidents: [IncidentLink]
}

struct PagerDutyResponse: Encodable {
    var status: String
    var message: String
    var dedupKey: String?
    var errors: [String]?
}

extension Problem.FieldError: Error {}
