// The web pages as a browser uses them, against the live service on both stores: cookies kept
// between requests, forms posted with the CSRF token the page carried. The browser-level checks
// (rendering, axe-core, the README walkthrough) are in Tests/python/test_web_pages.py.
import Foundation
import HTTPTypes
import HummingbirdBcrypt
import HummingbirdTesting
import MusterAudit
import MusterCore
import MusterHTTP
import MusterNotify
import MusterStore
import NIOCore
import MusterTestSupport
import Synchronization
import Testing

/// A cookie jar over the test client: what a browser keeps and sends.
final class Browser: Sendable {
    let client: any TestClientProtocol
    private let jar = Mutex<[String: String]>([:])

    init(_ client: any TestClientProtocol) {
        self.client = client
    }

    var cookies: [String: String] { jar.withLock { $0 } }

    func forget(_ name: String) { _ = jar.withLock { $0.removeValue(forKey: name) } }

    @discardableResult
    func get(_ path: String) async throws -> TestResponse {
        try await send(.get, path, body: nil)
    }

    /// Posts a form; the page's CSRF token is added unless `csrf` says otherwise ("" for none).
    @discardableResult
    func post(_ path: String, _ fields: [(String, String)], csrf: String? = nil) async throws -> TestResponse {
        var all = fields
        var token = csrf ?? ""
        if csrf == nil {
            // Any page carries this browser's token: the sign-in form, or (signed in) the sign-out button.
            token = Self.csrf(in: try await get("/sign-in").text)
            if token.isEmpty { token = Self.csrf(in: try await get("/").text) }
        }
        if !token.isEmpty { all.append(("csrf", token)) }
        let body = all.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        return try await send(.post, path, body: body)
    }

    private func send(_ method: HTTPRequest.Method, _ path: String, body: String?) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        let cookie = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        if !cookie.isEmpty { headers[.cookie] = cookie }
        if body != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
        let response = try await client.execute(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        for field in response.headers[values: .setCookie] {
            let pair = field.split(separator: ";")[0].split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            let expired = field.lowercased().contains("max-age=0")
            jar.withLock { $0[pair[0]] = expired ? nil : pair[1] }
        }
        return response
    }

    static func csrf(in html: String) -> String {
        guard let range = html.range(of: #"name="csrf" value=""#) else { return "" }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }
}

/// Keeps the sign-in links it is asked to send, as a mail relay would deliver them.
final class CapturedMail: SignInMailer {
    private let sent = Mutex<[(address: String, link: String)]>([])
    var links: [(address: String, link: String)] { sent.withLock { $0 } }

    func sendSignInLink(person: String, name: String, to address: String, link: String) async throws {
        sent.withLock { $0.append((address, link)) }
    }
}

@Suite("Web pages")
struct WebPageTests {
    static let password = "correct horse battery"

    /// Gives the test accounts a password (the harness makes them with tokens only).
    static func setPasswords(_ harness: Harness) async throws {
        let hash = Bcrypt.hash(password, cost: 4)
        for account in ["reporter-lincoln", "responder-lincoln", "coordinator-lincoln", "auditor", "admin"] {
            try await harness.store.setPasswordHash(user: account, hash: hash)
        }
    }

    static func signIn(_ browser: Browser, _ user: String, password: String = password, next: String = "/") async throws -> TestResponse {
        try await browser.post("/sign-in", [("user", user), ("password", password), ("next", next)])
    }

    /// A browser signed in as `user` (with the tests' password).
    static func browser(_ client: any TestClientProtocol, as user: String) async throws -> Browser {
        let browser = Browser(client)
        let answer = try await signIn(browser, user)
        #expect(answer.status == .seeOther, "\(user) did not sign in")
        return browser
    }

    /// The incident number a report form's answer sends the browser to.
    static func incidentNumber(_ answer: TestResponse) -> Int {
        Int(((answer.headers[.location] ?? "").split(separator: "/").last ?? "").prefix { $0.isNumber }) ?? 0
    }

    @Test("a person sends themselves a test page from 'My contact points' and is told what became of it")
    func contactTestPage() async throws {
        try await withService(.sqlite) { harness, client in
            try await harness.store.addUser(UserAccount(id: "dchen", name: "Daniel Chen", role: .responder, sites: ["lincoln-high"], createdAt: Date()))
            try await harness.store.setPasswordHash(user: "dchen", hash: Bcrypt.hash(Self.password, cost: 4))
            let browser = try await Self.browser(client, as: "dchen")
            #expect(try await browser.get("/").text.contains(#"href="/contacts""#))
            let page = try await browser.get("/contacts")
            #expect(page.status == .ok)
            #expect(page.text.contains(#"<form method="post" action="/contacts/2/test">"#))
            #expect(page.text.contains("2. sms: +15555550111"))
            let sent = try await browser.post("/contacts/2/test", [])
            #expect(sent.status == .ok)
            #expect(sent.text.contains("The test page was delivered to your sms contact point."))
            #expect(harness.deliveries().last?["kind"] == "test" && harness.deliveries().last?["address"] == "+15555550111")
            #expect(try await browser.post("/contacts/7/test", []).status == .notFound)
        }
    }

    @Test("sign in with a password: a Secure, HttpOnly, SameSite session; sign-out ends it on the server", arguments: Backend.allCases)
    func passwordSession(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let browser = Browser(client)
            let home = try await browser.get("/")
            #expect(home.status == .seeOther)
            #expect(home.headers[.location] == "/sign-in?next=%2F")

            let signedIn = try await Self.signIn(browser, "responder-lincoln")
            #expect(signedIn.status == .seeOther)
            let session = signedIn.headers[values: .setCookie].first { $0.hasPrefix("muster_session=") } ?? ""
            #expect(session.contains("Secure") && session.contains("HttpOnly") && session.contains("SameSite=Lax"))
            let page = try await browser.get("/")
            #expect(page.status == .ok)
            #expect(page.text.contains("Hello, responder-lincoln"))

            let token = browser.cookies["muster_session"] ?? ""
            #expect(try await browser.post("/sign-out", []).status == .seeOther)
            // The old cookie, replayed, no longer signs anyone in.
            let replay = Browser(client)
            _ = try await replay.get("/sign-in")
            let stolen = try await client.execute(uri: "/", method: .get, headers: [.cookie: "muster_session=\(token)"], body: nil)
            #expect(stolen.status == .seeOther)
        }
    }

    @Test("a wrong password is refused without saying which part was wrong, and guessing is slowed per account", arguments: [Backend.sqlite])
    func wrongPasswordAndLimits(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let browser = Browser(client)
            let wrong = try await Self.signIn(browser, "responder-lincoln", password: "nope")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.text.contains("do not match"))
            let unknown = try await Self.signIn(browser, "nobody", password: "nope")
            #expect(unknown.status == .unauthorized)
            var last = wrong
            for _ in 0..<6 { last = try await Self.signIn(browser, "responder-lincoln", password: "still wrong") }
            #expect(last.status == .tooManyRequests)
            #expect(Int(last.headers[.retryAfter] ?? "") ?? 0 > 0)
            // Even the right password waits now: the limit is on attempts, not on failures alone.
            #expect(try await Self.signIn(browser, "responder-lincoln").status == .tooManyRequests)
            // Another account from the same address is not locked out by it.
            #expect(try await Self.signIn(Browser(client), "coordinator-lincoln").status == .seeOther)
        }
    }

    @Test("a form without this browser's CSRF token changes nothing", arguments: Backend.allCases)
    func csrfRefused(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let browser = try await WebPageTests.browser(client, as: "reporter-lincoln")
            let fields = [("type", "suicide-risk"), ("severity", "high"), ("site", "lincoln-high"), ("summary", "Student wrote a goodbye note")]
            let none = try await browser.post("/raise", fields, csrf: "")
            #expect(none.status == .forbidden)
            let other = Browser(client)
            let foreign = Browser.csrf(in: try await other.get("/sign-in").text)
            #expect(try await browser.post("/raise", fields, csrf: foreign).status == .forbidden)
            // A sign-in form posted from another site (login CSRF) is refused the same way.
            #expect(try await Browser(client).post("/sign-in", [("user", "reporter-lincoln"), ("password", Self.password)], csrf: "").status == .forbidden)
            let incidents = try await harness.store.incidents(IncidentFilter())
            #expect(incidents.isEmpty)
            #expect(try await browser.post("/raise", fields).status == .seeOther)
            #expect(try await harness.store.incidents(IncidentFilter()).count == 1)
        }
    }

    @Test("raise from the form: 911 first for imminent, errors by field, the confirmation with who is alerted", arguments: Backend.allCases)
    func raise(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let browser = try await WebPageTests.browser(client, as: "reporter-lincoln")
            let form = try await browser.get("/raise")
            #expect(form.status == .ok)
            #expect(form.text.contains(#"<option value="lincoln-high" selected>"#))  // the person's site is the default
            #expect(form.text.contains("Could telling the parent or guardian put the student in danger?"))

            let missing = try await browser.post("/raise", [("type", "suicide-risk"), ("severity", "imminent"), ("site", "lincoln-high")])
            #expect(missing.status == .unprocessableContent)
            #expect(missing.text.contains(##"<a href="#summary">Say what happened"##))
            #expect(missing.text.contains("Call 911 now"))  // chosen imminent: the notice comes first, without scripts too
            #expect(!missing.text.contains(#"id="call-911" class="call911" role="alert" hidden"#))

            let fields = [("type", "suicide-risk"), ("severity", "imminent"), ("site", "lincoln-high"),
                          ("summary", "Student said they have a plan"), ("subject", "S-1001"),
                          ("flags", "guardian-contact-unsafe"), ("flags", "no-identified-target")]
            let sent = try await browser.post("/raise", fields)
            #expect(sent.status == .seeOther)
            let location = sent.headers[.location] ?? ""
            #expect(location.hasPrefix("/incidents/") && location.hasSuffix("?done=raised-imminent"))
            let incident = try #require(try await harness.store.incidents(IncidentFilter()).first)
            let state = try #require(try await harness.store.incident(incident.ref.id))
            #expect(state.incident.reporter == .person(PersonID("reporter-lincoln")))
            // The flag of another playbook (shown to browsers without scripts) was dropped, not refused.
            #expect(state.incident.flags == [IncidentFlag("guardian-contact-unsafe")])

            let confirmation = try await browser.get(location)
            #expect(confirmation.status == .ok)
            let text = confirmation.text
            #expect(text.contains("Incident #\(incident.ref.number)"))
            #expect(text.contains("Call 911 now"))
            #expect(text.contains("Being alerted"))
            #expect(text.range(of: "Call 911 now")?.lowerBound ?? text.endIndex < text.range(of: "Being alerted")?.lowerBound ?? text.startIndex)

            // A double tap is one report.
            _ = try await browser.post("/raise", fields)
            #expect(try await harness.store.reports(incident.ref.id).count == 1)
        }
    }

    @Test("a task the reporter owes personally: the API and the page let the reporter alone complete it", arguments: [Backend.sqlite])
    func reporterOwesTheMandatedReport(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let raised = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"),
                                               json: #"{"type": "abuse-disclosure", "severity": "high", "site": "lincoln-high", "summary": "Student disclosed at lunch"}"#)
            #expect(raised.status == .created)
            let number = try #require((raised.object["incident"] as? [String: Any])?["number"] as? Int)
            let id = try #require(try await harness.store.incidentID(number: number))
            let path = "/api/v1/incidents/\(number)/tasks"

            // A responder, whose role completes tasks, may not complete this one; the reporter may not complete anyone else's.
            let byResponder = try await client.call(.post, "\(path)/mandated-report/complete", headers: harness.auth("responder-lincoln"))
            #expect(byResponder.status == .forbidden)
            #expect(byResponder.text.contains("owed by the reporter personally"))
            let otherTask = try await client.call(.post, "\(path)/documented/complete", headers: harness.auth("reporter-lincoln"))
            #expect(otherTask.status == .forbidden)
            #expect(try await harness.store.incident(id)?.tasks.allSatisfy { $0.completedAt == nil } == true)

            // On the page: the reporter sees it is theirs and can mark it done; the responder has no button for it.
            let page = "/incidents/\(number)"
            let responder = try await WebPageTests.browser(client, as: "responder-lincoln")
            #expect(!(try await responder.get(page).text.contains("action=\"/incidents/\(number)/tasks/mandated-report/complete\"")))
            #expect(try await responder.post("\(page)/tasks/mandated-report/complete", []).status == .forbidden)
            let reporter = try await WebPageTests.browser(client, as: "reporter-lincoln")
            let mine = try await reporter.get(page).text
            #expect(mine.contains("(owed by the reporter personally)"))
            #expect(mine.contains("action=\"/incidents/\(number)/tasks/mandated-report/complete\""))
            #expect(!mine.contains("action=\"/incidents/\(number)/tasks/documented/complete\""))
            #expect(try await reporter.post("\(page)/tasks/mandated-report/complete", []).status == .seeOther)
            let task = try #require(try await harness.store.incident(id)?.tasks.first { $0.id == "mandated-report" })
            #expect(task.completedBy == .person(PersonID("reporter-lincoln")))
        }
    }

    @Test("a medical emergency shows 911 first at any severity: the playbook says so", arguments: [Backend.sqlite])
    func playbookCallsFirst(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let browser = try await WebPageTests.browser(client, as: "reporter-lincoln")
            let form = try await browser.get("/raise")
            #expect(form.text.contains(#"<option value="medical-emergency" data-call911="true""#))
            #expect(form.text.contains(#"<option value="suicide-risk" data-call911="false""#))
            let refused = try await browser.post("/raise", [("type", "medical-emergency"), ("severity", "low"), ("site", "lincoln-high")])
            #expect(refused.text.contains(#"<div id="call-911" class="call911" role="alert">"#))
        }
    }

    @Test("on call: the link in a message leads to the page after sign-in; acknowledge, complete a task, note, resolve", arguments: Backend.allCases)
    func responderWorksTheIncident(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let reporter = try await WebPageTests.browser(client, as: "reporter-lincoln")
            let sent = try await reporter.post("/raise", [("type", "suicide-risk"), ("severity", "high"), ("site", "lincoln-high"), ("summary", "Goodbye note")])
            let number = WebPageTests.incidentNumber(sent)
            #expect(number > 0)
            #expect(await eventually { !harness.deliveries().isEmpty })
            // Every message's incident link is the web page, on the public URL.
            let link = try #require(harness.deliveries().first?["incident_url"])
            #expect(link == "\(testPublicURL)/incidents/\(number)")

            let responder = Browser(client)
            let path = "/incidents/\(number)"
            let bounce = try await responder.get(path)
            #expect(bounce.status == .seeOther)
            #expect(bounce.headers[.location] == "/sign-in?next=%2Fincidents%2F\(number)")
            let signedIn = try await Self.signIn(responder, "responder-lincoln", next: path)
            #expect(signedIn.headers[.location] == path)
            let page = try await responder.get(path)
            #expect(page.status == .ok)
            #expect(page.text.contains("Goodbye note"))
            #expect(page.text.contains("Acknowledge: I take ownership"))

            #expect(try await responder.post("\(path)/acknowledge", []).headers[.location] == "\(path)?done=acknowledge")
            let id = try #require(try await harness.store.incidentID(number: number))
            #expect(try await harness.store.incident(id)?.owner == .person(PersonID("responder-lincoln")))
            let task = try #require(try await harness.store.incident(id)?.tasks.first)
            #expect(try await responder.post("\(path)/tasks/\(task.id.rawValue)/complete", []).status == .seeOther)
            #expect(try await harness.store.incident(id)?.tasks.first?.completedBy == .person(PersonID("responder-lincoln")))
            #expect(try await responder.post("\(path)/notes", [("text", "Met the student with the counselor")]).status == .seeOther)
            // The family decision, from the page: a reason is required, and the task it rules out goes.
            #expect(try await responder.get(path).text.contains("Decisions"))
            #expect(try await responder.post("\(path)/flags/guardian-contact-unsafe/set", [("reason", " ")]).headers[.location] == "\(path)?done=empty-reason")
            #expect(try await harness.store.incident(id)?.incident.flags.isEmpty == true)
            #expect(try await responder.post("\(path)/flags/guardian-contact-unsafe/set", [("reason", "Student says home is not safe")]).headers[.location]
                    == "\(path)?done=flags")
            #expect(try await harness.store.incident(id)?.incident.flags == ["guardian-contact-unsafe"])
            #expect(try await harness.store.timeline(id).contains { $0.action == .flagSet && $0.sensitive == "Student says home is not safe" })
            // The log holds the flag's neutral code; the timeline shows the playbook's question for it.
            let decided = try await responder.get(path).text
            #expect(decided.contains("set a flag (") && decided.contains("put the student in danger?"))
            // A disclosure made outside Muster, recorded from the page; all three answers are needed.
            #expect(try await responder.post("\(path)/disclosures", [("recipient", "Officer Diaz"), ("what", ""), ("basis", "x")]).headers[.location]
                    == "\(path)?done=empty-disclosure")
            #expect(try await responder.post("\(path)/disclosures", [("recipient", "Officer Diaz"), ("what", "The student's photo"),
                                                                    ("basis", "Missing, believed at risk")]).headers[.location] == "\(path)?done=disclosures")
            #expect(try await harness.store.timeline(id).contains { $0.action == .disclosed && $0.target == "Officer Diaz"
                && $0.sensitive == "What: The student's photo\nBasis: Missing, believed at risk" })
            // Resolving asks how it ended: without an answer nothing changes.
            let open = try await responder.get(path)
            #expect(open.text.contains(#"<option value="false-alarm">False alarm (say why in the note)</option>"#))
            #expect(try await responder.post("\(path)/resolve", [("note", "Safe at home")]).headers[.location] == "\(path)?done=no-outcome")
            #expect(try await harness.store.incident(id)?.isOpen == true)
            #expect(try await responder.post("\(path)/resolve", [("outcome", "handled-at-school"), ("note", "Safe at home; follow-up Monday")]).status == .seeOther)
            let after = try await responder.get(path)
            #expect(after.text.contains("Resolved"))
            #expect(after.text.contains("resolved it: Handled at school"))
            #expect(after.text.contains("Met the student with the counselor"))
            let timeline = try await harness.store.timeline(id)
            // Opening the page is on the record, as through the API.
            #expect(timeline.filter { $0.action == .accessed && $0.actor == .person(PersonID("responder-lincoln")) }.count >= 2)
            #expect(timeline.contains { $0.action == .resolved })

            // The reporter sees the status and their own report, not the responder's notes.
            let mine = try await reporter.get(path)
            #expect(mine.text.contains("Resolved"))
            #expect(!mine.text.contains("Met the student with the counselor"))
            // A reporter may not act.
            #expect(try await reporter.post("\(path)/reopen", []).status == .notFound)
            #expect(try await reporter.post("\(path)/escalate", []).status == .forbidden)
        }
    }

    @Test("nobody opens another site's incident, nor a reporter someone else's", arguments: Backend.allCases)
    func otherSitesAreInvisible(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let admin = try await WebPageTests.browser(client, as: "admin")
            let sent = try await admin.post("/raise", [("type", "suicide-risk"), ("severity", "high"), ("site", "washington-elementary"),
                                                       ("summary", "Elsewhere")])
            let path = String((sent.headers[.location] ?? "").prefix { $0 != "?" })
            #expect(path.hasPrefix("/incidents/"))
            for user in ["reporter-lincoln", "responder-lincoln", "coordinator-lincoln"] {
                let browser = Browser(client)
                _ = try await Self.signIn(browser, user)
                let page = try await browser.get(path)
                #expect(page.status == .notFound, "\(user)")
                #expect(!page.text.contains("Elsewhere"))
                // A reporter may not acknowledge anywhere (403); the others find no such incident (404).
                #expect(try await browser.post("\(path)/acknowledge", []).status == (user == "reporter-lincoln" ? .forbidden : .notFound), "\(user)")
                let board = try await browser.get("/board")
                #expect(!board.text.contains(path))
            }
            let auditor = try await WebPageTests.browser(client, as: "auditor")
            #expect(try await auditor.get(path).status == .ok)
        }
    }

    @Test("the board: open incidents of my sites, waiting ones first", arguments: [Backend.sqlite])
    func board(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await Self.setPasswords(harness)
            let browser = try await WebPageTests.browser(client, as: "responder-lincoln")
            var numbers: [Int] = []
            for subject in ["S-1", "S-2"] {
                let sent = try await browser.post("/raise", [("type", "suicide-risk"), ("severity", "high"), ("site", "lincoln-high"),
                                                             ("summary", "Worried"), ("subject", subject)])
                numbers.append(WebPageTests.incidentNumber(sent))
            }
            #expect(numbers[0] != numbers[1])
            _ = try await browser.post("/incidents/\(numbers[0])/acknowledge", [])
            let board = try await browser.get("/board").text
            let first = try #require(board.range(of: "/incidents/\(numbers[1])\""))
            let second = try #require(board.range(of: "/incidents/\(numbers[0])\""))
            #expect(first.lowerBound < second.lowerBound)  // the unacknowledged one comes first
        }
    }

    @Test("live updates: the incident's event stream says 'changed' when someone acknowledges", arguments: [Backend.sqlite])
    func liveUpdates(backend: Backend) async throws {
        try await withService(backend, web: WebSettings(eventStreamLifetime: 4)) { harness, client in
            try await Self.setPasswords(harness)
            let responder = try await WebPageTests.browser(client, as: "responder-lincoln")
            let sent = try await responder.post("/raise", [("type", "suicide-risk"), ("severity", "high"), ("site", "lincoln-high"), ("summary", "Note")])
            let path = String((sent.headers[.location] ?? "").prefix { $0 != "?" })
            let before = try await responder.get("\(path)/live")
            #expect(before.text.contains("Paging: nobody has acknowledged yet"))
            #expect(!before.text.contains("Note"))  // the live part carries no student text
            let id = try #require(try await harness.store.incidentID(number: Int(path.split(separator: "/").last ?? "") ?? 0))
            let accesses = try await harness.store.timeline(id).filter { $0.action == .accessed }.count
            async let stream = responder.get("\(path)/events")
            try await Task.sleep(for: .milliseconds(500))
            // Straight through the runtime: the test client holds one connection, busy with the stream.
            _ = try await harness.server.runtime.apply(.acknowledged(by: .person(PersonID("responder-lincoln")), path: .api, step: nil), to: id).get()
            let events = try await stream
            #expect(events.headers[.contentType] == "text/event-stream")
            #expect(events.text.contains("event: changed"))
            #expect(try await responder.get("\(path)/live").text.contains("Acknowledged: someone owns it"))
            // Neither the stream nor the live part is an access to record.
            #expect(try await harness.store.timeline(id).filter { $0.action == .accessed }.count == accesses)
        }
    }

    @Test("a one-time sign-in link: opening it changes nothing, its button signs in once", arguments: Backend.allCases)
    func signInLink(backend: Backend) async throws {
        let mail = CapturedMail()
        try await withService(backend, web: WebSettings(signInMail: mail)) { harness, client in
            // The link goes to the person's email address in the directory.
            try await harness.store.addUser(UserAccount(id: "aokafor", name: "Adaeze Okafor", role: .responder, sites: [SiteID("lincoln-high")], createdAt: Date()))
            let browser = Browser(client)
            let asked = try await browser.post("/sign-in/link", [("user", "aokafor"), ("next", "/board")])
            #expect(asked.status == .ok)
            #expect(asked.text.contains("a sign-in link is on its way"))
            // An unknown name gets the same answer and sends nothing.
            let unknown = try await browser.post("/sign-in/link", [("user", "nobody")])
            #expect(unknown.text.contains("a sign-in link is on its way"))
            #expect(mail.links.count == 1)
            let (address, link) = try #require(mail.links.first)
            #expect(address.contains("@"))
            #expect(link.hasPrefix(testPublicURL + "/sign-in/link/"))
            let path = String(link.dropFirst(testPublicURL.count))
            let tokenPath = String(path.prefix { $0 != "?" })

            // Something that is not a token Muster made is never put into a page.
            let forged = try await Browser(client).get("/sign-in/link/%22%3E%3Cscript%3E")
            #expect(forged.status == .gone)
            #expect(!forged.text.contains("<script>"))
            // A mail scanner fetching the link signs nobody in and spends nothing.
            #expect(try await Browser(client).get(path).status == .ok)
            let opened = try await browser.get(path)
            #expect(opened.text.contains("Sign in to Muster"))
            let taken = try await browser.post(tokenPath, [("next", "/board")])
            #expect(taken.status == .seeOther)
            #expect(taken.headers[.location] == "/board")
            #expect(try await browser.get("/board").status == .ok)
            // Once only.
            let again = Browser(client)
            _ = try await again.get(path)
            #expect(try await again.post(tokenPath, []).status == .gone)
        }
    }

    @Test("the demonstration inbox exists only when switched on, and shows each person's messages with their links", arguments: [Backend.sqlite])
    func inbox(backend: Backend) async throws {
        try await withService(backend) { _, client in
            let page = try await Browser(client).get("/inbox")
            #expect(page.status == .notFound)
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("inbox-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let channel = FileChannel(path: file, demonstration: true)
        try channel.appendSignInLink(person: "aokafor", address: "aokafor@riverbend.example", link: "\(testPublicURL)/sign-in/link/abc")
        try await withService(backend, web: WebSettings(demonstrationInbox: file)) { _, client in
            let page = try await Browser(client).get("/inbox")
            #expect(page.status == .ok)
            #expect(page.text.contains("Demonstration"))
            #expect(page.text.contains("Adaeze Okafor"))
            // Links point at this instance, whatever the public URL.
            #expect(page.text.contains(#"href="/sign-in/link/abc""#))
        }
    }
}

@Suite("Web pages: coordinator, auditor, administrator")
struct WebRolePageTests {
    static func raised(_ harness: Harness, _ client: any TestClientProtocol) async throws -> Int {
        let browser = try await WebPageTests.browser(client, as: "reporter-lincoln")
        let sent = try await browser.post("/raise", [("type", "suicide-risk"), ("severity", "high"), ("site", "lincoln-high"), ("summary", "Goodbye note")])
        return WebPageTests.incidentNumber(sent)
    }

    @Test("an auditor finds incidents, exports JSON that verifies offline and CSV, and each export is on the record", arguments: Backend.allCases)
    func auditorExports(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await WebPageTests.setPasswords(harness)
            let number = try await Self.raised(harness, client)
            let auditor = try await WebPageTests.browser(client, as: "auditor")
            let found = try await auditor.get("/auditor?site=lincoln-high&type=suicide-risk")
            #expect(found.status == .ok)
            #expect(found.text.contains("/incidents/\(number)\""))
            #expect(!(try await auditor.get("/auditor?site=washington-elementary").text.contains("/incidents/\(number)\"")))
            #expect(try await auditor.get("/auditor?from=yesterday").status == .badRequest)
            // The compliance report: the incident is a row; the tables download as CSV; a bad date is named.
            let now = harness.server.clock.now()
            let period = "from=\(now.addingTimeInterval(-86_400).formatted(.iso8601.year().month().day()))"
                + "&to=\(now.addingTimeInterval(86_400).formatted(.iso8601.year().month().day()))"
            let report = try await auditor.get("/auditor/compliance?\(period)&site=lincoln-high")
            #expect(report.status == .ok)
            #expect(report.text.contains("<td>#\(number)</td>"))
            let escaped = period.replacingOccurrences(of: "&", with: "&amp;")
            #expect(report.text.contains("/auditor/compliance/download?\(escaped)&amp;site=lincoln-high&amp;format=csv&amp;table=summary"))
            #expect(!report.text.contains("drills left out"), "none to leave out")
            let table = try await auditor.get("/auditor/compliance/download?\(period)&format=csv&table=incidents")
            #expect(table.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(table.text.contains("\r\n\(number),"))
            #expect(try await auditor.get("/auditor/compliance?from=2026-02-30&to=2026-03-01").text.contains("From: expected a date"))
            let outsider = try await WebPageTests.browser(client, as: "responder-lincoln")
            #expect(try await outsider.get("/auditor/compliance?\(period)").status == .forbidden)

            // A note a spreadsheet would run as a formula.
            let noted = try #require(try await harness.store.incidentID(number: number))
            _ = try await harness.server.runtime.apply(.noteAdded(by: .person(PersonID("responder-lincoln")), text: "=1+1"), to: noted).get()
            // The sequencer signs a checkpoint within a moment; the export waits for none.
            var json = try await auditor.get("/auditor/incidents/\(number)/export?format=json")
            for _ in 0..<100 where json.status != .ok {
                try await Task.sleep(for: .milliseconds(50))
                json = try await auditor.get("/auditor/incidents/\(number)/export?format=json")
            }
            #expect(json.status == .ok)
            #expect(json.headers[.contentDisposition] == "attachment; filename=\"muster-incident-\(number).json\"")
            let verified = try IncidentExport.verify(Array(json.body.readableBytesView))
            #expect(verified.entries > 0)
            let csv = try await auditor.get("/auditor/incidents/\(number)/export?format=csv")
            #expect(csv.text.hasPrefix("sequence,log_index,at,since_report,actor,action"))
            #expect(csv.text.contains(",'=1+1\r\n"))  // free text is inert in a spreadsheet
            #expect(!csv.text.contains(",=1+1"))
            let id = try #require(try await harness.store.incidentID(number: number))
            let exports = try await harness.store.timeline(id).filter { $0.action == .accessed && $0.detail?.hasPrefix("exported as") == true }
            // Only exports that left are recorded: one JSON, one CSV.
            #expect(exports.compactMap { $0.detail?.split(separator: " ").dropFirst(2).first.map(String.init) } == ["JSON", "CSV"])
            #expect(exports.allSatisfy { $0.actor == .person(PersonID("auditor")) })

            // The API's export for auditors, recorded the same way.
            let api = try await client.call(.get, "/api/v1/incidents/\(number)/export?format=csv", headers: harness.auth("auditor"))
            #expect(api.status == .ok)
            #expect(api.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(try await client.call(.get, "/api/v1/incidents/\(number)/export?format=pdf", headers: harness.auth("auditor")).status == .badRequest)
            #expect(try await client.call(.get, "/api/v1/incidents/\(number)/export", headers: harness.auth("responder-lincoln")).status == .forbidden)
            #expect(try await harness.store.timeline(id).filter { $0.detail?.hasPrefix("exported as CSV") == true }.count == 2)

            // Nobody else exports or opens the auditor's pages.
            let responder = try await WebPageTests.browser(client, as: "responder-lincoln")
            #expect(try await responder.get("/auditor").status == .forbidden)
            #expect(try await responder.get("/auditor/incidents/\(number)/export?format=csv").status == .forbidden)
        }
    }

    @Test("a coordinator sees who is on call, the playbooks and the simulator's timeline; a responder does not", arguments: [Backend.sqlite])
    func coordinator(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await WebPageTests.setPasswords(harness)
            let coordinator = try await WebPageTests.browser(client, as: "coordinator-lincoln")
            let page = try await coordinator.get("/coordinator")
            #expect(page.status == .ok)
            #expect(page.text.contains("School social worker"))
            #expect(page.text.contains("Student at risk of suicide or self-harm"))
            #expect(page.text.contains("passes the linter"))
            // 2 a.m. on a Sunday at Lincoln High (America/Chicago): the after-hours steps.
            let simulated = try await coordinator.get("/coordinator/simulate?type=suicide-risk&severity=high&site=lincoln-high&when=2026-12-06T02:00")
            #expect(simulated.status == .ok)
            #expect(simulated.text.contains("02:00 on 2026-12-06"))
            #expect(simulated.text.contains("page · step 1"))
            let responder = try await WebPageTests.browser(client, as: "responder-lincoln")
            #expect(try await responder.get("/coordinator").status == .forbidden)
        }
    }

    @Test("an administrator changes a role, which takes effect at once, and a reset ends every session", arguments: Backend.allCases)
    func administrator(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            try await WebPageTests.setPasswords(harness)
            let reporter = try await WebPageTests.browser(client, as: "reporter-lincoln")
            #expect(try await reporter.get("/board").text.contains("Open incidents at my sites"))
            #expect(!(try await reporter.get("/").text.contains("href=\"/board\"")))

            let admin = try await WebPageTests.browser(client, as: "admin")
            #expect(try await admin.get("/admin").text.contains("reporter-lincoln"))
            let saved = try await admin.post("/admin/people/reporter-lincoln", [("role", "responder"), ("sites", "lincoln-high")])
            #expect(saved.text.contains("Saved."))
            #expect(try await harness.store.user("reporter-lincoln")?.role == .responder)
            #expect(try await reporter.get("/").text.contains("href=\"/board\""))  // the same session, the new role

            let refused = try await admin.post("/admin/people/reporter-lincoln", [("role", "responder")])
            #expect(refused.text.contains("needs at least one site"))
            let reset = try await admin.post("/admin/people/reporter-lincoln/reset", [("new_password", "yes")])
            #expect(reset.text.contains("New password, shown once"))
            #expect(try await reporter.get("/").status == .seeOther)  // signed out
            #expect(try await WebPageTests.signIn(Browser(client), "reporter-lincoln").status == .unauthorized)  // the old password is gone

            let added = try await admin.post("/admin/people", [("id", "relief-worker"), ("name", "Relief Worker"), ("role", "responder"), ("sites", "lincoln-high")])
            #expect(added.status == .seeOther)
            #expect(try await harness.store.user("relief-worker")?.sites == [SiteID("lincoln-high")])
            #expect(try await reporter.post("/admin/people", [("id", "x"), ("role", "admin")]).status == .seeOther)  // signed out: to sign-in
            let responder = try await WebPageTests.browser(client, as: "responder-lincoln")
            #expect(try await responder.get("/admin").status == .forbidden)
        }
    }

    @Test("a wrong address in a browser is a page, in the API a problem document", arguments: [Backend.sqlite])
    func wrongAddress(backend: Backend) async throws {
        try await withService(backend) { _, client in
            let page = try await client.execute(uri: "/incidents-of-mine", method: .get, headers: [.accept: "text/html,*/*"], body: nil)
            #expect(page.status == .notFound)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.text.contains("<html lang=\"en\">") && page.text.contains("Page not found"))
            let api = try await client.execute(uri: "/api/v1/nothing", method: .get, headers: [.accept: "text/html,*/*"], body: nil)
            #expect(api.headers[.contentType] == "application/problem+json")
        }
    }
}
