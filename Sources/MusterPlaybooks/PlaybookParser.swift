// Reads one playbook file (docs/playbooks.md) and checks every reference against the directory:
// roles, sites, people, partners, incident types, flags; a target that can never name anyone is an error.
import Foundation
import MusterCore
import Yams

struct PlaybookParser {
    let reader: YAMLReader
    let directory: Directory?
    let version: String

    init(file: String, directory: Directory?, version: String) {
        reader = YAMLReader(file: file)
        self.directory = directory
        self.version = version
    }

    /// Where a parsed playbook's parts came from, for the checks across playbooks.
    struct Located {
        var playbook: Playbook
        var matchNode: Node?
        var idNode: Node?
        var source: PlaybookSource
    }

    func parse(_ text: String) -> Located? {
        guard let root = reader.document(text),
              let top = reader.fields(root, "the playbook", required: ["id", "title", "match", "steps", "fallback"],
                                      optional: ["description", "group", "flags", "outside_school_hours", "non_school_days",
                                                 "tasks", "overdue", "call_911_first", "outcomes"]) else { return nil }
        let id = reader.id(top["id"], "the playbook id")
        let title = reader.string(top["title"], "the playbook's title")
        if top.has("description") { _ = reader.string(top["description"], "description") }
        let match = top["match"].flatMap(parseMatch)
        let grouping = top["group"].flatMap(parseGrouping)
        let (flags, flagOrder) = top.has("flags") ? parseFlags(top["flags"]) : ([:], [])
        let call911 = top.has("call_911_first") ? reader.bool(top["call_911_first"], "call_911_first") ?? false : false
        let outcomes = top.has("outcomes") ? parseOutcomes(top["outcomes"]) : ResolutionOutcome.defaults
        let sites = matchableSites(match)
        var source = PlaybookSource(file: reader.file, version: version)
        let steps = parseSteps(top["steps"], "steps", sites: sites, source: &source.steps[.standard], mayWaitForSchool: false)
        var variants: [String: [EscalationStep]] = [:]
        for variant in [PlanVariant.outsideSchoolHours, .nonSchoolDays] where top.has(variant.rawValue) {
            let key = variant.rawValue
            guard let node = top[key], let fields = reader.fields(node, key, required: ["steps"]) else { continue }
            variants[key] = parseSteps(fields["steps"], "\(key) steps", sites: sites, source: &source.steps[variant], mayWaitForSchool: true)
        }
        let fallback = top["fallback"].flatMap { node -> Fallback? in
            guard let f = reader.fields(node, "fallback", required: ["notify", "via"], optional: ["repeat_every", "disclosure_basis"]),
                  let targets = parseTargets(f["notify"], sites: sites),
                  let channels = reader.choices(f["via"], "channel", ChannelKind.self) else { return nil }
            let basis = disclosureBasis(f, targets: targets, what: "the fallback", at: node)
            guard f.has("repeat_every") else { return Fallback(targets: targets, channels: channels, disclosureBasis: basis) }
            guard let every = reader.duration(f["repeat_every"], "the fallback's repeat_every") else { return nil }
            if every < .minutes(1) {
                reader.error("the fallback's repeat_every must be at least 1m: people paged more often cannot answer between pages",
                             at: f["repeat_every"])
                return nil
            }
            return Fallback(targets: targets, channels: channels, repeatEvery: every, disclosureBasis: basis)
        }
        let defaultOverdue = top.has("overdue") ? parseOverdue(top["overdue"], "overdue", sites: sites) : nil
        // A playbook `overdue` with errors of its own is reported there, not again on every task.
        let tasks = top.has("tasks")
            ? parseTasks(top["tasks"], flags: flags, defaultOverdue: defaultOverdue, hasDefaultOverdue: top.has("overdue"), sites: sites) : []
        if defaultOverdue != nil, !tasks.isEmpty, tasks.allSatisfy({ $0.hasOwnOverdue }) {
            reader.warning("every task has its own 'overdue', so the playbook's 'overdue' is never used", at: top.keyNode("overdue"))
        }
        guard let id, let title, let match, let steps, let fallback, !reader.diagnostics.hasErrors else { return nil }
        let playbook = Playbook(
            id: PlaybookID(id), title: title, version: version, match: match, grouping: grouping, steps: steps,
            outsideSchoolHours: variants["outside_school_hours"], nonSchoolDays: variants["non_school_days"],
            fallback: fallback, tasks: tasks.map(\.task), flags: flags, flagOrder: flagOrder, callEmergencyFirst: call911, outcomes: outcomes)
        source.fallback = reader.location(top["fallback"])
        return Located(playbook: playbook, matchNode: top["match"], idNode: top["id"], source: source)
    }

    /// The sites a playbook can run at, for checking `@site` targets; nil when the directory is unusable.
    private func matchableSites(_ match: PlaybookMatch?) -> [SiteID]? {
        guard let directory else { return nil }
        if let match, !match.sites.isEmpty { return match.sites.sorted() }
        return directory.sites.keys.sorted()
    }

    private func parseMatch(_ node: Node) -> PlaybookMatch? {
        guard let fields = reader.fields(node, "match", required: [], optional: ["types", "catch_all", "severities", "sites"]) else { return nil }
        let catchAll = fields.has("catch_all") ? reader.bool(fields["catch_all"], "catch_all") ?? false : false
        if catchAll, fields.has("types") {
            reader.error("a catch_all playbook matches every type: remove 'types'", at: fields.keyNode("types"))
        } else if !catchAll, !fields.has("types") {
            reader.error("match needs 'types' (or 'catch_all: true' for the generic playbook)", at: node)
        }
        var types: Set<IncidentTypeID> = []
        let knownTypes = directory?.incidentTypes.map(\.id.rawValue)
        for item in fields.has("types") ? reader.list(fields["types"], "types") ?? [] : [] {
            guard let type = reader.string(item, "incident type") else { continue }
            if let knownTypes, !knownTypes.contains(type) {
                reader.error("unknown incident type '\(type)'" + suggestion(for: type, among: knownTypes)
                             + " (incident types are declared in directory.yaml)", at: item)
            } else if !types.insert(IncidentTypeID(type)).inserted {
                reader.error("incident type '\(type)' is listed twice", at: item)
            }
        }
        let severities = fields.has("severities") ? reader.choices(fields["severities"], "severity", Severity.self) ?? [] : []
        var sites: Set<SiteID> = []
        for item in fields.has("sites") ? reader.list(fields["sites"], "sites") ?? [] : [] {
            guard let site = siteReference(item) else { continue }
            sites.insert(site)
        }
        return PlaybookMatch(types: types, catchAll: catchAll, severities: Set(severities), sites: sites)
    }

    private func siteReference(_ node: Node) -> SiteID? {
        guard let text = reader.string(node, "site") else { return nil }
        if let directory, directory.sites[SiteID(text)] == nil {
            reader.error("unknown site '\(text)'" + suggestion(for: text, among: directory.sites.keys.map(\.rawValue)), at: node)
            return nil
        }
        return SiteID(text)
    }

    private func parseGrouping(_ node: Node) -> Grouping? {
        guard let fields = reader.fields(node, "group", required: ["by", "within"]),
              let by = reader.choices(fields["by"], "grouping field", GroupField.self),
              let within = reader.duration(fields["within"], "group.within") else { return nil }
        return Grouping(by: by, within: within)
    }

    private func parseFlags(_ node: Node?) -> (questions: [IncidentFlag: String], order: [IncidentFlag]) {
        var flags: [IncidentFlag: String] = [:], order: [IncidentFlag] = []
        for item in reader.list(node, "flags") ?? [] {
            guard let fields = reader.fields(item, "a flag", required: ["id", "question"]),
                  let id = reader.id(fields["id"], "the flag id"),
                  let question = reader.string(fields["question"], "the flag's question") else { continue }
            if flags[IncidentFlag(id)] != nil {
                reader.error("duplicate flag id '\(id)'", at: fields["id"])
            } else {
                order.append(IncidentFlag(id))
            }
            flags[IncidentFlag(id)] = question
        }
        return (flags, order)
    }

    /// `outcomes:` items are a default outcome's id (`false-alarm`) or `{ id, title, reason: required }`.
    private func parseOutcomes(_ node: Node?) -> [ResolutionOutcome] {
        var outcomes: [ResolutionOutcome] = []
        for item in reader.list(node, "outcomes") ?? [] {
            var outcome: ResolutionOutcome?
            if item.scalar != nil {
                guard let id = reader.id(item, "an outcome") else { continue }
                outcome = ResolutionOutcome.defaults.first { $0.id == id }
                if outcome == nil {
                    reader.error("'\(id)' is not one of the default outcomes (\(ResolutionOutcome.defaults.map(\.id).joined(separator: ", "))): "
                                 + "write it as { id: \(id), title: ... }", at: item)
                }
            } else if let fields = reader.fields(item, "an outcome", required: ["id", "title"], optional: ["reason"]),
                      let id = reader.id(fields["id"], "the outcome id"), let title = reader.string(fields["title"], "the outcome's title") {
                var needsReason = false
                if fields.has("reason"), let reason = reader.string(fields["reason"], "the outcome's reason") {
                    switch reason {
                    case "required": needsReason = true
                    case "optional": needsReason = false
                    default: reader.error("the outcome's reason must be required or optional, not '\(reason)'", at: fields["reason"])
                    }
                }
                outcome = ResolutionOutcome(id: id, title: title, needsReason: needsReason)
            }
            guard let outcome else { continue }
            if outcomes.contains(where: { $0.id == outcome.id }) {
                reader.error("outcome '\(outcome.id)' is listed twice", at: item)
                continue
            }
            outcomes.append(outcome)
        }
        return outcomes
    }

    /// `source` receives each step's position and its targets' positions.
    /// `mayWaitForSchool`: whether a step may wait for school hours (`ack_within: school-opens`): not
    /// in the school-hours steps, which run while school is open.
    private func parseSteps(_ node: Node?, _ what: String, sites: [SiteID]?, source: inout [StepSource]?,
                            mayWaitForSchool: Bool) -> [EscalationStep]? {
        guard let items = reader.list(node, what) else { return nil }
        source = items.map { item in
            StepSource(location: reader.location(item),
                       targets: (item["notify"]?.sequence.map { Array($0) } ?? []).map { reader.location($0) })
        }
        var steps: [EscalationStep] = []
        var failed = false
        for (index, item) in items.enumerated() {
            guard let fields = reader.fields(item, "step \(index + 1)", required: ["notify", "via", "ack_within"],
                                             optional: ["repeat", "disclosure_basis"]) else {
                failed = true
                continue
            }
            let targets = parseTargets(fields["notify"], sites: sites)
            let channels = reader.choices(fields["via"], "channel", ChannelKind.self)
            let waits = fields["ack_within"]?.string == "school-opens"
            let ack = waits ? EscalationStep.overnightEstimate : reader.duration(fields["ack_within"], "ack_within")
            let repeats = fields.has("repeat") ? reader.integer(fields["repeat"], "repeat", in: 0...10) : 0
            if waits, !mayWaitForSchool {
                reader.error("step \(index + 1) waits for school to open, but these steps run during school hours: "
                             + "use school-opens under outside_school_hours or non_school_days", at: fields["ack_within"])
                failed = true
            }
            if waits, let repeats, repeats > 0 {
                reader.error("step \(index + 1) waits for school to open, so it pages once: remove 'repeat'", at: fields["repeat"])
                failed = true
            }
            guard let targets, let channels, let ack, let repeats else {
                failed = true
                continue
            }
            let basis = disclosureBasis(fields, targets: targets, what: "step \(index + 1)", at: item)
            steps.append(EscalationStep(targets: targets, channels: channels, ackWithin: ack, repeats: repeats, disclosureBasis: basis,
                                        untilSchoolOpens: waits))
        }
        return failed ? nil : steps
    }

    /// A page to a partner agency discloses a student's situation outside the school: FERPA (34 CFR 99.36,
    /// 99.32(a)(5)) asks that its basis be recorded, so a step or fallback that names a partner must say it.
    private func disclosureBasis(_ fields: Fields, targets: [Target], what: String, at node: Node) -> String? {
        let basis = reader.string(fields["disclosure_basis"], "\(what)'s disclosure_basis")?.trimmingCharacters(in: .whitespacesAndNewlines)
        let partners = targets.filter { if case .partner = $0 { true } else { false } }
        if !partners.isEmpty, basis?.isEmpty ?? true {
            reader.error("\(what) pages a partner agency (\(partners.map(\.description).joined(separator: ", "))): every such page is a disclosure "
                         + "outside the school, so say why it is lawful with disclosure_basis: (e.g. \"FERPA health or safety emergency, "
                         + "34 CFR 99.36: imminent risk to the student\")", at: fields.keyNode("notify") ?? node)
        }
        return basis?.isEmpty == false ? basis : nil
    }

    private func parseOverdue(_ node: Node?, _ what: String, sites: [SiteID]?) -> OverdueAlert? {
        guard let node, let fields = reader.fields(node, what, required: ["notify", "via"]),
              let targets = parseTargets(fields["notify"], sites: sites),
              let channels = reader.choices(fields["via"], "channel", ChannelKind.self) else { return nil }
        return OverdueAlert(targets: targets, channels: channels)
    }

    private struct ParsedTask {
        var task: ProtocolTask
        var hasOwnOverdue: Bool
    }

    private func parseTasks(_ node: Node?, flags: [IncidentFlag: String], defaultOverdue: OverdueAlert?,
                            hasDefaultOverdue: Bool, sites: [SiteID]?) -> [ParsedTask] {
        var tasks: [ParsedTask] = []
        var seen: Set<String> = []
        for item in reader.list(node, "tasks") ?? [] {
            guard let fields = reader.fields(item, "a task", required: ["id", "title", "due", "after"],
                                             optional: ["unless", "overdue", "owner", "remind_before", "then"]),
                  let id = reader.id(fields["id"], "the task id") else { continue }
            if !seen.insert(id).inserted {
                reader.error("duplicate task id '\(id)'", at: fields["id"])
                continue
            }
            let title = reader.string(fields["title"], "the task's title")
            let due = reader.duration(fields["due"], "due")
            let after = reader.choice(fields["after"], "deadline anchor", DeadlineAnchor.self)
            var unless: Set<IncidentFlag> = []
            for flagNode in fields.has("unless") ? reader.list(fields["unless"], "unless") ?? [] : [] {
                guard let flag = reader.string(flagNode, "flag") else { continue }
                if flags[IncidentFlag(flag)] == nil {
                    reader.error("unknown flag '\(flag)' in 'unless'" + suggestion(for: flag, among: flags.keys.map(\.rawValue))
                                 + (flags.isEmpty ? " (declare it under 'flags')" : ""), at: flagNode)
                } else {
                    unless.insert(IncidentFlag(flag))
                }
            }
            let own = fields.has("overdue") ? parseOverdue(fields["overdue"], "the task's overdue", sites: sites) : nil
            if !fields.has("overdue"), !hasDefaultOverdue {
                reader.error("task '\(id)' has no one to alert when it is overdue: add 'overdue' to the task or to the playbook", at: item)
            }
            // A bad owner is reported; the stages are still read, so every error shows at once.
            let owner = fields.has("owner") ? reader.choice(fields["owner"], "task owner", TaskOwner.self) ?? .responders : .responders
            let reminders = parseReminders(fields, due: due)
            guard let title, let due, let after, let overdue = own ?? defaultOverdue else { continue }
            tasks.append(ParsedTask(task: ProtocolTask(id: TaskID(id), title: title, due: due, after: after, unless: unless, overdue: overdue,
                                                       owner: owner, remindBefore: reminders),
                                    hasOwnOverdue: own != nil))
            // Later stages: tasks of their own that follow this one, with its anchor, flags, owner and alert.
            var previous = (id: TaskID(id), due: due)
            for (index, node) in (fields.has("then") ? reader.list(fields["then"], "then") ?? [] : []).enumerated() {
                guard let stage = reader.fields(node, "a later stage", required: ["title", "due"], optional: ["id", "remind_before"]) else { continue }
                let stageID = stage.has("id") ? reader.id(stage["id"], "the stage's id") : "\(id)-\(index + 2)"
                guard let stageID else { continue }
                if !seen.insert(stageID).inserted {
                    reader.error("duplicate task id '\(stageID)'" + (stage.has("id") ? "" : " (a stage without an id is named after its task and place)"),
                                 at: stage["id"] ?? node)
                    continue
                }
                let stageDue = reader.duration(stage["due"], "due")
                if let stageDue, stageDue < previous.due {
                    reader.error("a later stage is due \(stageDue) after the \(after.rawValue), before the stage it follows (\(previous.due))",
                                 at: stage["due"])
                }
                let stageReminders = stage.has("remind_before") ? parseReminders(stage, due: stageDue) : reminders
                guard let stageTitle = reader.string(stage["title"], "the stage's title"), let stageDue else { continue }
                tasks.append(ParsedTask(task: ProtocolTask(id: TaskID(stageID), title: stageTitle, due: stageDue, after: after, unless: unless,
                                                           overdue: overdue, owner: owner, remindBefore: stageReminders, follows: previous.id),
                                        hasOwnOverdue: own != nil))
                previous = (TaskID(stageID), stageDue)
            }
        }
        return tasks
    }

    /// `remind_before`: how long before the deadline each reminder goes, each less than the deadline
    /// itself (a reminder cannot come before the clock starts) and listed once.
    private func parseReminders(_ fields: Fields, due: TimeSpan?) -> [TimeSpan] {
        guard fields.has("remind_before") else { return [] }
        var spans: [TimeSpan] = []
        for node in reader.list(fields["remind_before"], "remind_before") ?? [] {
            guard let span = reader.duration(node, "a reminder") else { continue }
            if let due, span >= due {
                reader.error("a reminder \(span) before a deadline \(due) from its anchor would come before the clock starts: remind less than \(due) before",
                             at: node)
            } else if spans.contains(span) {
                reader.error("the reminder \(span) before the deadline is listed twice", at: node)
            } else {
                spans.append(span)
            }
        }
        return spans
    }

    // MARK: Targets

    private func parseTargets(_ node: Node?, sites: [SiteID]?) -> [Target]? {
        guard let items = reader.list(node, "notify") else { return nil }
        var targets: [Target] = []
        var failed = false
        for item in items {
            guard let target = parseTarget(item, sites: sites) else {
                failed = true
                continue
            }
            if targets.contains(target) {
                reader.error("target '\(target)' is listed twice", at: item)
            } else {
                targets.append(target)
            }
        }
        return failed ? nil : targets
    }

    private static let targetForms = "on-call:ROLE@SCOPE, role:ROLE@SCOPE, person:ID, partner:ID or reporter"

    private func parseTarget(_ node: Node, sites: [SiteID]?) -> Target? {
        guard let text = reader.string(node, "target") else { return nil }
        if text == "reporter" { return .reporter }
        guard let colon = text.firstIndex(of: ":") else {
            reader.error("bad target '\(text)'" + suggestion(for: text, among: ["reporter"], listUpTo: 0) + ": a target is \(Self.targetForms)", at: node)
            return nil
        }
        let kind = String(text[..<colon]), rest = String(text[text.index(after: colon)...])
        switch kind {
        case "on-call", "role":
            let parts = rest.split(separator: "@", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                reader.error("bad target '\(text)': write \(kind):ROLE@SCOPE, where SCOPE is site, district or a site id", at: node)
                return nil
            }
            let role = RoleID(String(parts[0]))
            guard let scope = targetScope(String(parts[1]), node) else { return nil }
            guard roleExists(role, node) else { return nil }
            let target: Target = kind == "on-call" ? .onCall(role, scope) : .role(role, scope)
            checkResolvable(target, role: role, scope: scope, node: node, sites: sites)
            return target
        case "person":
            if let directory, directory.people[PersonID(rest)] == nil {
                reader.error("unknown person '\(rest)'" + suggestion(for: rest, among: directory.people.keys.map(\.rawValue), listUpTo: 0), at: node)
                return nil
            }
            return .person(PersonID(rest))
        case "partner":
            if let directory, directory.partners[PartnerID(rest)] == nil {
                reader.error("unknown partner '\(rest)'" + suggestion(for: rest, among: directory.partners.keys.map(\.rawValue)), at: node)
                return nil
            }
            return .partner(PartnerID(rest))
        default:
            reader.error("unknown kind of target '\(kind)'" + suggestion(for: kind, among: ["on-call", "role", "person", "partner"])
                         + ": a target is \(Self.targetForms)", at: node)
            return nil
        }
    }

    private func targetScope(_ text: String, _ node: Node) -> TargetScope? {
        switch text {
        case "site": return .incidentSite
        case "district": return .district
        default:
            if let directory, directory.sites[SiteID(text)] == nil {
                reader.error("unknown scope '\(text)': use site, district or a site id"
                             + suggestion(for: text, among: directory.sites.keys.map(\.rawValue) + ["site", "district"], listUpTo: 0), at: node)
                return nil
            }
            return .site(SiteID(text))
        }
    }

    private func roleExists(_ role: RoleID, _ node: Node) -> Bool {
        guard let directory else { return true }
        let known = directory.roles.map(\.id.rawValue)
        if known.contains(role.rawValue) { return true }
        reader.error("unknown role '\(role)'" + suggestion(for: role.rawValue, among: known), at: node)
        return false
    }

    /// A target that names no one at any site the playbook can run at is an error; at some sites, a warning.
    private func checkResolvable(_ target: Target, role: RoleID, scope: TargetScope, node: Node, sites: [SiteID]?) {
        guard let directory, let sites else { return }
        let scopes: [ScheduleScope] = switch scope {
        case .incidentSite: sites.map { .site($0) }
        case .district: [.district]
        case .site(let id): [.site(id)]
        }
        let missing = scopes.filter { scope in
            switch target {
            case .onCall: directory.schedule(role: role, scope: scope) == nil
            default: directory.holders(of: role, scope: scope).isEmpty
            }
        }
        guard !missing.isEmpty else { return }
        let what = if case .onCall = target { "no on-call schedule for \(role)" } else { "nobody holds the role \(role)" }
        let places = missing.map(\.description).joined(separator: ", ")
        if missing.count == scopes.count {
            reader.error("target '\(target)' names no one: \(what) at \(places)", at: node)
        } else {
            reader.warning("target '\(target)' names no one at \(places) (\(what)); incidents there skip it", at: node)
        }
    }
}
