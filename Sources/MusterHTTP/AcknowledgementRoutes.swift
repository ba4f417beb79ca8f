// One-tap acknowledgement from outside the API: the signed link in a page (GET shows a
// confirmation page, only POST acknowledges, so mail scanners that fetch links change nothing),
// an SMS reply ("ACK 4821", or "1" for the newest page), and the key press of a voice call.
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
        guard case .person(let person) = id.recipient, let state = try await reads.incident(id.incident) else {
            return AckPages.render(.notFound, AckPages.Page(title: "No such incident", message: "The incident this link names does not exist."))
        }
        let catalog = await catalog
        let facts = AckPages.Facts(state, catalog.directory)
        let name = catalog.directory.people[person]?.name ?? person.rawValue
        if let refusal = linkRefusal(state, claim) {
            return AckPages.render(.conflict, AckPages.Page(title: refusal, message: "", facts: facts))
        }
        guard confirm else {
            return AckPages.render(.ok, AckPages.Page(title: "Take ownership of incident #\(state.incident.number)?",
                                                      message: "You are acknowledging as \(name). Details are behind a login.",
                                                      facts: facts, action: "/ack/\(token)"))
        }
        let step: Int? = if case .step(let step, _) = id.qualifier { step } else { nil }
        switch try await runtime.apply(.acknowledged(by: .person(person), path: .link, step: step), to: id.incident) {
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
    private func signedTwilioForm(_ request: Request) async throws -> [String: String] {
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
        let reply = try await acknowledgeBySMS(from: form["From"] ?? "", body: form["Body"] ?? "")
        return TwiML.response("<Message>\(TwiML.escape(reply))</Message>")
    }

    /// Understands "ACK 4821" (also "ack #4821", "4821 ack") and a bare "1", "ACK" or "YES" for the newest page.
    func acknowledgeBySMS(from phone: String, body: String) async throws -> String {
        let directory = await catalog.directory
        guard let person = directory.people.values.first(where: { person in
            person.contacts.contains { ($0.channel == .sms || $0.channel == .voice) && $0.address == phone }
        }) else { return "Muster does not know this number." }
        let words = body.uppercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber })
        let numbers = words.compactMap { Int($0) }
        let keywords = Set(words.filter { $0.allSatisfy(\.isLetter) }.map(String.init))
        let recipient = Recipient.person(person.id)
        let state: IncidentState
        if numbers == [1] && keywords.isEmpty || numbers.isEmpty && !keywords.isDisjoint(with: ["ACK", "YES", "OK"]) {
            guard let newest = try await newestOpenIncident(pagedTo: recipient) else { return "You have no open page to acknowledge." }
            state = newest
        } else if numbers.count == 1, let number = numbers.first, !keywords.isDisjoint(with: ["ACK", "A", "OK", "YES"]) {
            guard let id = try await reads.incidentID(number: number), let found = try await reads.incident(id),
                  try await wasPaged(id, recipient) else { return "You were not paged for incident #\(number)." }
            state = found
        } else {
            return "Reply ACK and the incident number (e.g. ACK 4821), or 1 for your newest page."
        }
        return try await acknowledge(state, by: person.id, path: .sms)
    }

    private func acknowledge(_ state: IncidentState, by person: PersonID, path: AckPath) async throws -> String {
        let number = state.incident.number
        switch try await runtime.apply(.acknowledged(by: .person(person), path: path, step: nil), to: state.incident.id) {
        case .success:
            return "Muster: incident #\(number) acknowledged. It is yours."
        case .failure(.rejected(.alreadyAcknowledged(let owner))):
            return "Muster: incident #\(number) is already acknowledged by \(await AckPages.name(of: owner, in: catalog.directory))."
        case .failure(.rejected(.resolved)):
            return "Muster: incident #\(number) is resolved."
        case .failure(let error):
            throw Problem.from(error)
        }
    }

    /// The newest open incident whose timeline pages this recipient.
    private func newestOpenIncident(pagedTo recipient: Recipient) async throws -> IncidentState? {
        let open = try await reads.incidents(IncidentFilter(phases: ["escalating", "unowned"], limit: 50))
        for summary in open {
            guard try await wasPaged(summary.ref.id, recipient), let state = try await reads.incident(summary.ref.id) else { continue }
            return state
        }
        return nil
    }

    /// Whether the incident's timeline pages this recipient (a step or the fallback).
    private func wasPaged(_ id: IncidentID, _ recipient: Recipient) async throws -> Bool {
        try await reads.timeline(id).contains { $0.recipient == recipient && ($0.action == .paged || $0.action == .fallbackPaged) }
    }

    /// The key press of a voice call (TwiML `<Gather>` posts here): 1 acknowledges the page the link token names.
    private func twilioVoice(_ request: Request, _ context: MusterRequestContext) async throws -> Response {
        let form = try await signedTwilioForm(request)
        guard let links = acknowledgement.links, let token = request.uri.queryParameters.get("t"),
              case .success(let claim) = links.verify(token, now: clock.now()),
              case .person(let person) = claim.notification.recipient,
              let state = try await reads.incident(claim.notification.incident) else {
            return TwiML.response("<Say>This call can no longer acknowledge. Use the app.</Say>")
        }
        guard form["Digits"] == "1" else {
            return TwiML.response("<Say>Nothing was acknowledged. Goodbye.</Say>")
        }
        if let refusal = linkRefusal(state, claim) { return TwiML.response("<Say>\(TwiML.escape(refusal)).</Say>") }
        return TwiML.response("<Say>\(TwiML.escape(try await acknowledge(state, by: person, path: .voice)))</Say>")
    }
}

/// application/x-www-form-urlencoded bodies (a repeated name keeps its last value, as Twilio sends none).
enum FormBody {
    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part)
            }
            guard let name = parts.first else { continue }
            fields[decode(name)] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
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
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }
}
