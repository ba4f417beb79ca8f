// The render stage: turns a queued notification into a Message with swift-mustache templates, one
// per channel form (subject, plain text, HTML, SMS, speech). Templates see only MessageFacts and
// links, so a template cannot print what a notification does not carry.
import Foundation
import MusterCore
import Mustache

/// Display names for the facts a message shows (from the loaded directory, which can be reloaded).
public struct DisplayNames: Sendable {
    public var types: [IncidentTypeID: String]
    public var sites: [SiteID: String]
    /// The district's call-back number, which partners' messages give.
    public var callBack: String?

    public init(types: [IncidentTypeID: String] = [:], sites: [SiteID: String] = [:], callBack: String? = nil) {
        self.types = types
        self.sites = sites
        self.callBack = callBack
    }

    public init(_ directory: Directory) {
        types = Dictionary(directory.incidentTypes.map { ($0.id, $0.title) }, uniquingKeysWith: { first, _ in first })
        sites = directory.sites.mapValues(\.name)
        callBack = directory.district.callBack
    }
}

public struct MessageRenderer: Sendable {
    /// The template names every template folder must provide.
    public static let templateNames = ["subject", "text", "html", "sms", "speech"]

    private let library: MustacheLibrary
    /// The service's public base URL, e.g. https://muster.riverbend.example (links are absolute).
    public let publicURL: String
    public let links: AckLinkSigner?
    private let names: @Sendable () -> DisplayNames

    /// Reads the templates from `folder` (default: the shipped ones). An unreadable or invalid template is an error.
    public init(folder: URL? = nil, publicURL: String, links: AckLinkSigner?, names: @escaping @Sendable () -> DisplayNames) throws {
        let folder = folder ?? Self.shippedTemplates
        var library = MustacheLibrary()
        for name in Self.templateNames {
            let file = folder.appendingPathComponent(name + ".mustache")
            guard let text = try? String(contentsOf: file, encoding: .utf8) else {
                throw TemplateError(file: file.path, reason: "cannot be read")
            }
            do {
                try library.register(text, named: name)
            } catch {
                throw TemplateError(file: file.path, reason: "is not a valid mustache template: \(error)")
            }
        }
        self.library = library
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        self.links = links
        self.names = names
    }

    public static var shippedTemplates: URL {
        Bundle.module.resourceURL?.appendingPathComponent("Templates") ?? URL(fileURLWithPath: "Templates")
    }

    /// Renders the forms asked for; the others are left empty.
    public func render(_ notification: QueuedNotification, now: Date, forms: Set<MessageForm> = MessageForm.all) -> Message {
        let names = self.names()
        let id = notification.id
        let step: Int? = if case .step(let step, _) = id.qualifier { step + 1 } else { nil }
        let task: String? = switch id.qualifier {
        case .task(let task), .reminder(let task, _): task.rawValue
        default: nil
        }
        let facts = MessageFacts(
            number: notification.incidentNumber, category: names.types[notification.type] ?? notification.type.rawValue,
            type: notification.type.rawValue, site: names.sites[notification.site] ?? notification.site.rawValue,
            siteID: notification.site.rawValue, severity: notification.severity.rawValue, kind: notification.kind.rawValue,
            step: step, task: task, drill: notification.drill)
        // Only what asks for an owner (an overdue task is owned already), and only over the recipient's own
        // channels: whoever reads a team's chat channel or a webhook receiver's log must not act as the
        // one paged, so those carry the incident's page (sign-in required) and no personal link. A
        // partner agency acknowledges as itself, and is given the district's number to call back.
        let isPartner: Bool = if case .partner = id.recipient { true } else { false }
        let acknowledgeable = [.page, .fallback, .assigned].contains(notification.kind) && notification.channel.isPersonal
        let ackURL = acknowledgeable ? links.map { "\(publicURL)/ack/\($0.token(for: id, now: now))" } : nil
        // The incident's web page (sign-in first), the same for everyone paged.
        let incidentURL = notification.kind == .test ? "\(publicURL)/" : "\(publicURL)/incidents/\(notification.incidentNumber)"
        var context: [String: Any] = [
            "number": facts.number, "category": facts.category, "site": facts.site, "severity": facts.severity,
            "step": step.map(String.init) ?? "", "task": task ?? "", "id": id.description,
            "incidentURL": incidentURL,
            "isPage": notification.kind == .page, "isFallback": notification.kind == .fallback,
            "isOverdue": notification.kind == .taskOverdue, "isReminder": notification.kind == .taskReminder, "isAssigned": notification.kind == .assigned, "isTest": notification.kind == .test,
            "drill": notification.drill,
        ]
        // Absent, not empty: a mustache section treats an empty string as present.
        if let ackURL { context["ackURL"] = ackURL }
        if isPartner, let callBack = names.callBack { context["callBack"] = callBack }
        func text(_ form: MessageForm, _ name: String, trimmed: Bool = true) -> String {
            guard forms.contains(form), let text = library.render(context, withTemplate: name) else { return "" }
            return trimmed ? text.trimmingCharacters(in: .whitespacesAndNewlines) : text
        }
        return Message(notification: notification, facts: facts, incidentURL: incidentURL, ackURL: ackURL,
                       subject: text(.subject, "subject"), text: text(.text, "text", trimmed: false), html: text(.html, "html", trimmed: false),
                       sms: text(.sms, "sms"), speech: text(.speech, "speech"))
    }
}

extension ChannelKind {
    /// Whether a message over this channel reaches one person alone (their phone, their mailbox, their
    /// device), so it may carry a link that acts as them. Chat channels and webhooks are shared.
    public var isPersonal: Bool {
        switch self {
        case .sms, .voice, .email, .push, .inbox: true
        case .chat, .webhook: false
        }
    }
}

public struct TemplateError: Error, CustomStringConvertible {
    public var file: String
    public var reason: String
    public var description: String { "the template \(file) \(reason)" }
}
