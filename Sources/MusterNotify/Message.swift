// A notification rendered for sending: the facts a page may carry and the texts made from them.
// What leaves Muster over SMS, voice, email and chat is built only from these facts: the incident
// number, its category, site and severity, and links. A student's name, reference or the
// description never reach this type, so no channel can send them.
import Foundation
import MusterCore

/// The only facts about an incident that a message carries.
public struct MessageFacts: Sendable, Hashable, Codable {
    public var number: Int
    /// The incident type's title ("Student at risk of suicide or self-harm") and id.
    public var category: String
    public var type: String
    public var site: String
    public var siteID: String
    public var severity: String
    /// Why this message goes out: "page", "fallback", "task_overdue", "assigned".
    public var kind: String
    /// 1-based escalation step, for pages.
    public var step: Int?
    /// The task whose deadline passed, for overdue alerts.
    public var task: String?
    /// A drill: every text says DRILL first.
    public var drill: Bool = false

    public init(number: Int, category: String, type: String, site: String, siteID: String, severity: String,
                kind: String, step: Int?, task: String?, drill: Bool = false) {
        self.drill = drill
        self.number = number
        self.category = category
        self.type = type
        self.site = site
        self.siteID = siteID
        self.severity = severity
        self.kind = kind
        self.step = step
        self.task = task
    }
}

/// The texts a message is rendered into. Each costs a template render per send, so a channel
/// names those it sends (`Channel.forms(for:)`); the others stay empty.
public enum MessageForm: CaseIterable, Sendable, Hashable {
    case subject, text, html, sms, speech
    public static let all = Set(allCases)
}

/// One notification, rendered. Every channel sends `id` along (a header, a Message-ID, a reference)
/// so that a receiver recognises a re-send after a crash.
public struct Message: Sendable, Hashable {
    public var notification: QueuedNotification
    public var facts: MessageFacts
    /// Where the details are, behind a login.
    public var incidentURL: String
    /// A signed, expiring, single-use acknowledgement link (GET shows a page, POST acknowledges); nil for
    /// notifications nobody acknowledges (an overdue task).
    public var ackURL: String?
    /// The email subject and chat title.
    public var subject: String
    /// Plain text: the email's text part, the chat fallback text.
    public var text: String
    /// The email's HTML part.
    public var html: String
    /// The SMS body (short; says how to acknowledge by reply).
    public var sms: String
    /// What a voice call says before asking to press 1.
    public var speech: String

    public init(notification: QueuedNotification, facts: MessageFacts, incidentURL: String, ackURL: String?,
                subject: String, text: String, html: String, sms: String, speech: String) {
        self.notification = notification
        self.facts = facts
        self.incidentURL = incidentURL
        self.ackURL = ackURL
        self.subject = subject
        self.text = text
        self.html = html
        self.sms = sms
        self.speech = speech
    }

    /// The notification's stable id in text form.
    public var id: String { notification.id.description }
    /// The recipient's address on this channel (a phone number, an email address, a URL).
    public var address: String { notification.address }
}
