// Rendering the web pages: Mustache templates (Web/Templates) around one layout, the frame every
// page shares (who is signed in, what they may open, the demonstration notice), and the headers
// that keep the pages private: no caching, no framing, no third-party anything.
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import Mustache
import NIOCore

enum WebPage {
    /// Every template of Web/Templates, by file name without ".mustache".
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        guard let folder = Bundle.module.url(forResource: "Templates", withExtension: nil),
              let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return library }
        for name in names where name.hasSuffix(".mustache") {
            guard let text = try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8),
                  let template = try? MustacheTemplate(string: text) else { continue }
            library.register(template, named: String(name.dropLast(".mustache".count)))
        }
        return library
    }()

    static let securityHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .cacheControl: "no-store",
        .contentSecurityPolicy: "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    static func render(_ status: HTTPResponse.Status, _ template: String, _ context: Any) -> Response {
        let html = library.render(context, withTemplate: template) ?? "<!doctype html><title>Muster</title><p>This page could not be shown.</p>"
        return Response(status: status, headers: securityHeaders, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    /// A 303 to another page (after a form, so a reload does not post again).
    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// The frame of every page.
    struct Frame {
        var title: String
        var csrf: String
        var signedIn: Bool
        var name: String?
        var roleName: String?
        var canReport: Bool
        var canRespond: Bool
        var canCoordinate: Bool
        var canAudit: Bool
        var isAdmin: Bool
        var demonstration: Bool
        var demoSpeed: String?
        /// The page in the navigation that is this one (aria-current). Stored: templates see stored properties only.
        var isRaise: Bool
        var isMine: Bool
        var isBoard: Bool
        var isInbox: Bool
        var isAudit: Bool
        var isCoordination: Bool
        var isAdministration: Bool
    }

    static func frame(_ context: MusterRequestContext, title: String, current: String = "", settings: WebSettings? = nil) -> Frame {
        let account = context.account
        let role = account?.role
        return Frame(title: title, csrf: WebCookie.csrfToken(context.browserSecret), signedIn: account != nil, name: account?.name,
                     roleName: role.map(Self.roleName), canReport: role?.allows(.report) ?? false, canRespond: role?.allows(.acknowledge) ?? false,
                     canCoordinate: role == .coordinator || role == .admin, canAudit: role == .auditor || role == .admin, isAdmin: role == .admin,
                     demonstration: settings?.demonstrationInbox != nil,
                     demoSpeed: settings?.demoSpeed.flatMap { $0 > 1 ? "\(Int($0))" : nil },
                     isRaise: current == "raise", isMine: current == "mine", isBoard: current == "board", isInbox: current == "inbox",
                     isAudit: current == "auditor", isCoordination: current == "coordinator", isAdministration: current == "admin")
    }

    static func roleName(_ role: AccessRole) -> String {
        switch role {
        case .reporter: "Staff"
        case .responder: "Responder"
        case .coordinator: "Coordinator"
        case .auditor: "Auditor"
        case .admin: "Administrator"
        case .integration: "Integration"
        case .scrape: "Metrics scraper"
        }
    }

    /// One choice of a select, a radio group or a checkbox list.
    struct Option {
        var id: String
        var name: String
        var selected: Bool
    }

    /// The sites, by name, that `account` works at (all of them for the roles not scoped to sites, or with no account).
    static func sites(_ directory: Directory, servedBy account: UserAccount? = nil, selected: (SiteID) -> Bool) -> [Option] {
        directory.sites.values.filter { account?.serves($0.id) ?? true }.sorted { $0.name < $1.name }
            .map { Option(id: $0.id.rawValue, name: $0.name, selected: selected($0.id)) }
    }

    struct Message {
        var frame: Frame
        var heading: String
        var text: String
        var linkText: String?
        var linkURL: String?
    }

    static func message(_ context: MusterRequestContext, title: String, text: String, link: (text: String, url: String)? = nil) -> Message {
        Message(frame: frame(context, title: title), heading: title, text: text, linkText: link?.text, linkURL: link?.url)
    }
}

/// A person who opens a wrong address in a browser gets a page, not the API's problem document:
/// outside the API's paths, an error for a client that accepts HTML is rendered as a message page.
struct PeopleErrorPageMiddleware: RouterMiddleware {
    typealias Context = MusterRequestContext
    static let machinePaths = ["/api/", "/v2/", "/audit/", "/health/", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            let path = request.uri.path
            guard request.headers[.accept]?.contains("text/html") == true, !Self.machinePaths.contains(where: { path.hasPrefix($0) }) else { throw problem }
            let title = problem.status == .notFound ? "Page not found" : problem.title
            let text = problem.status == .notFound ? "There is no page at this address. Check it, or start again from the home page." : problem.detail
            var response = WebPage.render(problem.status, "message", WebPage.message(context, title: title, text: text, link: ("Home", "/")))
            for field in problem.headers { response.headers.append(field) }
            return response
        }
    }
}

extension Request {
    /// A query parameter of a page's URL; empty counts as absent. Pages read leniently, the API strictly (QueryReader).
    func query(_ name: String) -> String? {
        uri.queryParameters[Substring(name)].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
    }
}
