// One-tap acknowledgement from outside the API: the signed link in a page (GET shows a
// confirmation page, only POST acknowledges, so mail scanners that fetch links change nothing),
// an SMS reply (SMSReply.swift: "ACK 4821", "1" for the newest page, "NO 4821"), and the key press of
// a voice call.
// The SMS and voice webhooks are Twilio's and must carry its request signature.
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterNotify
import Mustache
import NIOCore

/// What the acknowledgement paths need: the link key and, for SMS and voice, the provider's auth token.
public struct AcknowledgementSettings: Sendable {
    public var links: AckLinkSigner?
    /// The service's public base URL (Twilio signs the full URL it called).
    public var publicURL: String
    public var twilioAuthToken: String?

    public init(links: AckLinkSigner?, publicURL: String, twilioAuthToken: String? = nil) {
        self.links = links
        self.publicURL = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
        self.twilioAuthToken = twilioAuthToken
    }
}

extension MusterServer {
    /// Acknowledgement by link, SMS reply and key press (public: each request carries its own proof).
    var acknowledgementRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("ack/:token") { request, context in try await self.ackPage(request, context, confirm: false) }
        routes.post("ack/:token") { request, context in try await self.ackPage(request, context, confirm: true) }
        routes.post("api/v1/integrations/twilio/sms") { request, context in try await self.twilioSMS(request, context) }
        routes.post("api/v1/integrations/twilio/voice") { request, context in try await self.twilioVoice(request, context) }
        routes.post("api/v1/integrations/twilio/status") { request, context in try await self.twilioStatus(request, context) }
        return routes
    }

    // MARK: Links

    private func ackPage(_ request: Request, _ context: MusterRequestContext, confirm: Bool) async throws -> Response {
        let token = context.parameters.get("token") ?? ""
        guard let links = acknowledgement.links else {
            return AckPages.render(.notFound, AckPages.Page(title: "Links are off", message: "This Muster instance does not issue acknowledgement links."))
        }
        let claim: AckLinkClaim
        switch links.verify(token, now: clock.now()) {
        case .success(let found): claim = found
        case .failure(.expired):
            return AckPages.render(.gone, AckPages.Page(title: "This link has expired",
                                                        message: "Acknowledge in the app or reply to the SMS instead."))
        case .failure:
            return AckPages.render(.forbidden, AckPages.Page(title: "This link is not valid", message: "It was changed or was never issued by Muster."))
        }
        let id = claim.notification
        guard let state = try await reads.incident(id.incident) else {
            return AckPages.render(.notFound, AckPages.Page(title: "No such incident", message: "The incident this link names does not exist."))
        }
        let catalog = await catalog
        let facts = AckPages.Facts(state, catalog.directory)
        let actor = id.recipient.actor  // a person, or a partner agency acknowledging as itself
        let name = AckPages.name(of: actor, in: catalog.directory)
        if let refusal = linkRefusal(state, claim) {
            return AckPages.render(.conflict, AckPages.Page(title: refusal, message: "", facts: facts))
        }
        guard confirm else {
            return AckPages.render(.ok, AckPages.Page(title: "Take ownership of incident #\(state.incident.number)?",
                                                      message: "You are acknowledging as \(name). Details are behind a login.",
                                                      facts: facts, action: "/ack/\(token)"))
        }
        let step: Int? = if case .step(let step, _) = id.qualifier { step } else { nil }
        switch try await runtime.apply(.acknowledged(by: actor, path: .link, step: step), to: id.incident) {
        case .success:
            return AckPages.render(.ok, AckPages.Page(title: "Incident #\(state.incident.number) is yours",
                                                      message: "Acknowledged as \(name). Escalation has stopped.", facts: facts))
        case .failure(.rejected(.alreadyAcknowledged(let owner))):
            return AckPages.render(.conflict, AckPages.Page(title: "Already acknowledged",
                                                            message: "Incident #\(state.incident.number) is owned by \(AckPages.name(of: owner, in: catalog.directory)).", facts: facts))
        case .failure(let error):
            throw Problem.from(error)
        }
    }

    /// Why a valid link can no longer acknowledge: it belongs to an earlier cycle, or the incident is owned or closed.
    private func linkRefusal(_ state: IncidentState, _ claim: AckLinkClaim) -> String? {
        if state.phase == .resolved { return "Incident #\(state.incident.number) is resolved" }
        if claim.notification.cycle != state.cycle { return "This link belongs to an earlier round of this incident" }
        if state.phase == .acknowledged { return "Already acknowledged" }
        return nil
    }

    // MARK: SMS and voice (Twilio)

    /// The form fields of a Twilio webhook, once its X-Twilio-Signature has been checked.
    func signedTwilioForm(_ request: Request) async throws -> [String: String] {
        guard let authToken = acknowledgement.twilioAuthToken else { throw Problem.notFound("no SMS provider is configured") }
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        let form = FormBody.parse(String(buffer: buffer))
        let url = acknowledgement.publicURL + request.uri.description
        guard let signature = request.headers[HTTPField.Name("X-Twilio-Signature")!],
              TwilioSignature.isValid(signature: signature, url: url, parameters: form, authToken: authToken) else {
            throw Problem(.forbidden, "bad-signature", "Forbidden", detail: "the X-Twilio-Signature header is missing or does not match this request")
        }
        return form
    }

    private func twilioSMS(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let form = try await signedTwilioForm(request)
        guard let messageID = form["MessageSid"], !messageID.isEmpty else {
            throw Problem.badRequest("the MessageSid field is missing: Twilio sends one with every message")
        }
        let reply = try await answerSMS(from: form["From"] ?? "", body: form["Body"] ?? "", messageID: messageID)
        return TwiML.response("<Message>\(TwiML.escape(reply))</Message>")
    }

    /// Answers an SMS reply (`SMSReply`'s grammar) from a paged person or partner agency; each message
    /// id is taken once.
    func answerSMS(from phone: String, body: String, messageID: String) async throws -> String {
        // A signed request never expires: whatever it did or did not do, it is answered once.
        if try await reads.inboundMessageTaken(messageID) { return "Muster: this message was already received." }
        // An answer that acts on nothing still takes the message, so a replay later cannot act either.
        func nothingDone(_ answer: String) async throws -> String {
            _ = try await runtime.takeInboundMessage(messageID, at: clock.now())
            return answer
        }
        let senders = Self.senders(phone, in: await catalog.directory)
        guard let recipient = senders.first else { return try await nothingDone("Muster does not know this number.") }
        guard senders.count == 1 else {
            return try await nothingDone("Muster: this number belongs to more than one person or agency in the directory, so a reply "
                                         + "cannot say who is answering. Use the link in the message.")
        }
        let actor = recipient.actor
        let reply = SMSReply.parse(body)
        let named: Int?
        switch reply {
        case .acknowledge(let number), .decline(let number):
            named = number
        case .unrecognised:
            // Kept on the timeline of the incident the sender was last paged for, sealed like a note.
            guard let newest = try await newestSMSPage(to: recipient, answerable: false) else { return try await nothingDone(SMSReply.help) }
            let kept = try await runtime.apply(.replyReceived(from: actor, path: .sms, text: body), to: newest.incident.id, inboundMessage: messageID)
            // Not kept (the database did not answer): answered as a failure (503), never as if it were kept.
            if case .failure(.unavailable(let reason)) = kept { throw Problem.from(.unavailable(reason)) }
            return SMSReply.help
        }
        let state: IncidentState
        if let number = named {
            guard let id = try await reads.incidentID(number: number), let found = try await reads.incident(id),
                  try await smsPage(in: found, to: recipient, acknowledgeable: true) != nil else {
                return try await nothingDone("Muster: you were not paged by SMS for incident #\(number). " + SMSReply.help)
            }
            state = found
        } else {
            guard let newest = try await newestSMSPage(to: recipient, answerable: true) else {
                return try await nothingDone("Muster: you have no page waiting for an answer. " + SMSReply.help)
            }
            state = newest
        }
        let event: IncidentEvent = if case .decline = reply { .declined(by: actor, path: .sms) } else { .acknowledged(by: actor, path: .sms, step: nil) }
        return try await answer(event, to: state, inboundMessage: messageID)
    }

    /// Whose phone a reply came from: the people and partner agencies (which acknowledge as themselves)
    /// with this number. More than one cannot be told apart, so such a reply acts as nobody.
    static func senders(_ phone: String, in directory: Directory) -> [Recipient] {
        func owns(_ contacts: [ContactPoint]) -> Bool { contacts.contains { ($0.channel == .sms || $0.channel == .voice) && $0.address == phone } }
        return directory.people.values.filter { owns($0.contacts) }.map { Recipient.person($0.id) }
            + directory.partners.values.filter { owns($0.contacts) }.map { Recipient.partner($0.id) }
    }

    /// Applies an acknowledgement or a decline from SMS or voice and says what became of it, in the
    /// words the sender will read or hear.
    private func answer(_ event: IncidentEvent, to state: IncidentState, inboundMessage messageID: String?) async throws -> String {
        let number = state.incident.number
        let result = if let messageID {
            try await runtime.apply(event, to: state.incident.id, inboundMessage: messageID)
        } else {
            try await runtime.apply(event, to: state.incident.id)
        }
        switch result {
        case .success(let committed):
            if case .duplicate = committed.outcome {
                return "Muster: this message was already received; incident #\(number) is \(committed.state.phase.name)."
            }
            if case .declined = event { return "Muster: noted, you cannot take incident #\(number). Escalation goes on." }
            return "Muster: incident #\(number) acknowledged. It is yours."
        case .failure(.rejected(.alreadyAcknowledged(let owner))):
            return "Muster: incident #\(number) is already acknowledged by \(await AckPages.name(of: owner, in: catalog.directory))."
        case .failure(.rejected(.resolved)):
            return "Muster: incident #\(number) is resolved."
        case .failure(let error):
            throw Problem.from(error)
        }
    }

    /// The incident (acknowledged or not, never resolved) whose newest SMS page of its current cycle
    /// went to this recipient most recently; with `answerable`, only a page still open to an answer
    /// (its round is the one running, or it is the fallback's and nobody has taken the incident).
    private func newestSMSPage(to recipient: Recipient, answerable: Bool) async throws -> IncidentState? {
        let phases: Set<String> = answerable ? ["escalating", "unowned"] : ["escalating", "unowned", "acknowledged"]
        var newest: (at: Date, state: IncidentState)?
        for summary in try await reads.incidents(IncidentFilter(phases: phases, limit: 50)) {
            guard let state = try await reads.incident(summary.ref.id),
                  let page = try await smsPage(in: state, to: recipient, acknowledgeable: answerable) else { continue }
            if answerable {
                let open = switch (page.notification?.qualifier, state.phase) {
                case (.step(let step, let round)?, .escalating(let current, let currentRound)): step == current && round == currentRound
                case (_, .unowned): page.action == .fallbackPaged
                default: false
                }
                guard open else { continue }
            }
            if newest.map({ page.at > $0.at }) ?? true { newest = (page.at, state) }
        }
        return newest?.state
    }

    /// The newest SMS page of the incident's current cycle to this recipient (a step's or the fallback's).
    /// With `acknowledgeable`, only a message that asks for an owner: an overdue alert or a task's
    /// reminder (to a reporter who owes a report, say) gives nobody the incident.
    private func smsPage(in state: IncidentState, to recipient: Recipient, acknowledgeable: Bool) async throws -> AuditRecord? {
        try await reads.timeline(state.incident.id).last { entry in
            guard (entry.action == .paged || entry.action == .fallbackPaged) && entry.recipient == recipient,
                  let notification = entry.notification, notification.channel == .sms, notification.cycle == state.cycle else { return false }
            return !acknowledgeable || [.page, .fallback, .assigned].contains(notification.kind)
        }
    }

    /// The key press of a voice call (TwiML `<Gather>` posts here): 1 acknowledges the page the link token names.
    private func twilioVoice(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let form = try await signedTwilioForm(request)
        guard let links = acknowledgement.links, let token = request.uri.queryParameters.get("t"),
              case .success(let claim) = links.verify(token, now: clock.now()),
              let state = try await reads.incident(claim.notification.incident) else {
            return TwiML.response("<Say>This call can no longer acknowledge. Use the app.</Say>")
        }
        guard form["Digits"] == "1" else {
            return TwiML.response("<Say>Nothing was acknowledged. Goodbye.</Say>")
        }
        if let refusal = linkRefusal(state, claim) { return TwiML.response("<Say>\(TwiML.escape(refusal)).</Say>") }
        let said = try await answer(.acknowledged(by: claim.notification.recipient.actor, path: .voice, step: nil), to: state, inboundMessage: nil)
        return TwiML.response("<Say>\(TwiML.escape(said))</Say>")
    }
}

extension MusterServer {
    /// Twilio's status callback for an SMS or a call (`?n=` names the notification): only a carrier's
    /// `delivered`, or a call a person answered, counts as delivered. An SMS `undelivered` or `failed`,
    /// and a call that ended `busy`, `no-answer`, `failed`, `canceled` or was answered by a machine,
    /// is a failure for good: the person's next contact point is tried, as for any other failure.
    /// Each status of each message is taken once.
    func twilioStatus(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let form = try await signedTwilioForm(request)
        guard let text = request.uri.queryParameters.get("n"), let id = NotificationID(text) else {
            throw Problem.badRequest("the query parameter n must name the notification the status is for",
                                     errors: [.init(pointer: "n", detail: "not a notification id")])
        }
        guard let report = TwilioStatus(form) else {
            throw Problem.badRequest("neither MessageStatus nor CallStatus is given: not a Twilio status callback")
        }
        guard !report.sid.isEmpty else {
            throw Problem.badRequest("the MessageSid or CallSid is missing: Twilio sends one with every status callback")
        }
        // Only a notification Muster handed to Twilio has a status: its `sent` entry names the sid
        // Twilio gave it. Anything else is not acted on (a forged failure would page someone).
        guard try await reads.timeline(id.incident).contains(where: { $0.action == .sent && $0.notification == id && $0.detail?.contains(report.sid) == true }) else {
            throw Problem.notFound("no notification \(id) was sent to Twilio as \(report.sid)")
        }
        let event: IncidentEvent
        switch report.verdict {
        case .pending:
            return Response(status: .noContent)
        case .delivered:
            event = .delivered(notificationID: id, reference: report.sid)
        case .failed(let reason):
            event = .deliveryFailed(notificationID: id, recipient: id.recipient, channel: id.channel, reason: reason, permanent: true)
        }
        switch try await runtime.apply(event, to: id.incident, inboundMessage: "\(id)|\(report.sid)|\(report.status)") {
        case .success, .failure(.rejected):
            return Response(status: .noContent)
        case .failure(let error):
            throw Problem.from(error)
        }
    }
}

/// What a Twilio status callback says about one SMS or call.
struct TwilioStatus: Equatable {
    enum Verdict: Equatable {
        /// Not the end yet (queued, sending, sent, ringing…).
        case pending
        case delivered
        case failed(String)
    }

    var sid: String
    var status: String
    var verdict: Verdict

    init?(_ form: [String: String]) {
        if let status = form["MessageStatus"] ?? form["SmsStatus"] {
            sid = form["MessageSid"] ?? form["SmsSid"] ?? ""
            self.status = status
            switch status {
            case "delivered", "read":
                verdict = .delivered
            case "undelivered", "failed":
                verdict = .failed("the carrier reported the SMS \(status)" + (form["ErrorCode"].map { " (error \($0))" } ?? ""))
            default:
                verdict = .pending
            }
        } else if let status = form["CallStatus"] {
            sid = form["CallSid"] ?? ""
            let answeredBy = form["AnsweredBy"]
            self.status = status + (answeredBy.map { "/" + $0 } ?? "")
            switch status {
            case "completed" where answeredBy == nil || answeredBy == "human":
                verdict = .delivered
            case "completed":
                // A voicemail heard nothing: the page did not reach a person.
                verdict = .failed("the call was answered by \(answeredBy ?? "unknown"), not by a person")
            case "busy", "no-answer", "failed", "canceled":
                verdict = .failed("the call ended \(status)")
            default:
                verdict = .pending
            }
        } else {
            return nil
        }
    }
}

enum TwiML {
    static func response(_ inner: String) -> Response {
        let xml = #"<?xml version="1.0" encoding="UTF-8"?><Response>"# + inner + "</Response>"
        return Response(status: .ok, headers: [.contentType: "text/xml; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: xml)))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// The acknowledgement pages: small, mobile-first, no JavaScript; they show only what an SMS may.
enum AckPages {
    struct Facts {
        var number: Int
        var category: String
        var site: String
        var severity: String

        init(_ state: IncidentState, _ directory: Directory) {
            number = state.incident.number
            category = directory.incidentTypes.first { $0.id == state.incident.type }?.title ?? state.incident.type.rawValue
            site = directory.sites[state.incident.site]?.name ?? state.incident.site.rawValue
            severity = state.incident.severity.rawValue
        }
    }

    static func name(of actor: Actor, in directory: Directory) -> String {
        switch actor {
        case .person(let id): directory.name(of: .person(id))
        case .partner(let id): directory.name(of: .partner(id))
        default: actor.description
        }
    }

    struct Page {
        var title: String
        var message: String
        var facts: Facts?
        /// Where the confirmation form posts; nil when there is nothing to confirm.
        var action: String?
    }

    static let template: MustacheTemplate? = try? MustacheTemplate(string: """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer"><title>{{title}} · Muster</title>
        <style>body{font-family:system-ui,sans-serif;margin:0 auto;max-width:32em;padding:1em;line-height:1.4}
        dl{display:grid;grid-template-columns:auto 1fr;gap:.3em 1em}dt{font-weight:bold}
        button{font-size:1.2em;padding:.8em 1.6em;background:#b00020;color:#fff;border:0;border-radius:6px;width:100%}</style></head>
        <body><main>
        <h1>{{title}}</h1>
        {{#message}}<p>{{message}}</p>{{/message}}
        {{#facts}}<dl><dt>Incident</dt><dd>#{{number}}</dd><dt>Category</dt><dd>{{category}}</dd><dt>Site</dt><dd>{{site}}</dd><dt>Severity</dt><dd>{{severity}}</dd></dl>{{/facts}}
        {{#action}}<form method="post" action="{{action}}"><button type="submit">Acknowledge: I take ownership</button></form>{{/action}}
        </main></body></html>
        """)

    static func render(_ status: HTTPResponse.Status, _ page: Page) -> Response {
        var context: [String: Any] = ["title": page.title, "message": page.message]
        if let facts = page.facts {
            context["facts"] = ["number": facts.number, "category": facts.category, "site": facts.site, "severity": facts.severity] as [String: Any]
        }
        if let action = page.action { context["action"] = action }
        let html = template?.render(context) ?? page.title
        // No framing (a one-tap button must not sit under another site's page), nothing from elsewhere.
        var headers = WebPage.securityHeaders
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }
}
