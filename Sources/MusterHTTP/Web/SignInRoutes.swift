// Signing in and out of the web pages: a password (bcrypt), or a one-time link sent to the person's
// email. Attempts are limited per account and per address; the answer never says whether an
// account exists. A new session gets a new browser secret, so a form token seen before sign-in
// is worth nothing after it.
import Foundation
import Hummingbird
import HummingbirdBcrypt
import MusterCore
import MusterRuntime
import NIOPosix

extension MusterServer {
    var signInRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("sign-in") { request, context in
            if context.account != nil { return WebPage.redirect(Self.safeNext(request.query("next"))) }
            return self.signInPage(context, next: request.query("next"))
        }
        routes.post("sign-in") { _, context in try await self.signIn(context) }
        routes.post("sign-in/link") { _, context in try await self.sendSignInLink(context) }
        routes.get("sign-in/link/:token") { request, context in
            // A mail scanner that follows the link changes nothing: only the button signs in.
            let token = context.parameters.get("token") ?? ""
            guard Self.looksLikeToken(token) else { return self.linkGone(context) }
            return WebPage.render(.ok, "sign-in-link", SignInLinkPage(frame: self.frame(context, "Sign in"), token: token,
                                                                      next: Self.safeNext(request.query("next"))))
        }
        routes.post("sign-in/link/:token") { _, context in try await self.takeSignInLink(context) }
        routes.post("sign-out") { _, context in
            if let token = context.sessionToken {
                try await self.runtime.accounts.endSession(token: token, at: self.web.wallClock.now())
                self.webSessions.forget(token: token)
            }
            var response = WebPage.redirect("/sign-in")
            response.setCookie(WebCookie.clear(WebCookie.session))
            response.setCookie(WebCookie.make(WebCookie.browser, AccountRecords.newToken(), maxAge: nil))
            return response
        }
        return routes
    }

    struct SignInPage {
        var frame: WebPage.Frame
        var next: String
        var user: String?
        var error: String?
        var sent: String?
        var linksOn: Bool
    }

    struct SignInLinkPage {
        var frame: WebPage.Frame
        var token: String
        var next: String
    }

    func signInPage(_ context: MusterRequestContext, next: String?, user: String? = nil, error: String? = nil, sent: String? = nil,
                    status: HTTPResponse.Status = .ok) -> Response {
        WebPage.render(status, "sign-in", SignInPage(frame: frame(context, "Sign in"), next: Self.safeNext(next),
                                                     user: user, error: error, sent: sent, linksOn: web.signInMail != nil))
    }

    /// Only a path on this site: never a redirect elsewhere.
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.hasPrefix("/\\"), !next.contains("\r"), !next.contains("\n"),
              next.count <= 500 else { return "/" }
        return next
    }

    private func signIn(_ context: MusterRequestContext) async throws -> Response {
        let form = context.form ?? FormBody("")
        let user = (form["user"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        let password = form["password"] ?? ""
        let next = form["next"]
        if let refused = tooManyAttempts(context, user: user, next: next, keepUser: true) { return refused }
        guard !user.isEmpty, !password.isEmpty, password.utf8.count <= 72,
              let hash = try await runtime.accounts.passwordHash(user: user),
              try await NIOThreadPool.singleton.runIfActive({ Bcrypt.verify(password, hash: hash) }),
              let account = try await runtime.accounts.user(user), account.role != .integration else {
            logger.notice("web sign-in refused", metadata: ["from": "\(context.remoteAddress ?? "?")"])
            return signInPage(context, next: next, user: user, error: "That user name and password do not match. Check both and try again.",
                              status: .unauthorized)
        }
        return try await startSession(for: account, next: next)
    }

    /// Takes one attempt for the account and the address; past either limit, the sign-in page says how long to wait (429).
    private func tooManyAttempts(_ context: MusterRequestContext, user: String, next: String?, keepUser: Bool) -> Response? {
        guard let wait = signInLimiter.attempt(account: user, address: context.remoteAddress, now: web.wallClock.now()) else { return nil }
        var response = signInPage(context, next: next, user: keepUser ? user : nil,
                                  error: "Too many attempts. Wait \(Self.minutes(wait)) and try again" + (keepUser ? ", or ask your administrator." : "."),
                                  status: .tooManyRequests)
        response.headers[.retryAfter] = "\(Int(wait))"
        return response
    }

    private func sendSignInLink(_ context: MusterRequestContext) async throws -> Response {
        let form = context.form ?? FormBody("")
        let user = (form["user"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        let next = form["next"]
        let answer = "If that user name has an email address, a sign-in link is on its way. It works once, for \(Self.minutes(web.linkLifetime))."
        guard let mailer = web.signInMail, !user.isEmpty else {
            return signInPage(context, next: next, error: "Sign-in links are not available here. Use your password.", status: .unprocessableContent)
        }
        if let refused = tooManyAttempts(context, user: user, next: next, keepUser: false) { return refused }
        // The same answer whether or not the account exists or has an address: nothing to learn here.
        if let account = try await runtime.accounts.user(user), account.role != .integration,
           let email = await catalog.directory.people[PersonID(account.id)]?.contacts.first(where: { $0.channel == .email })?.address {
            let token = AccountRecords.newToken()
            let now = web.wallClock.now()
            try await runtime.accounts.addSignInLink(token: token, user: account.id, at: now, expires: now.addingTimeInterval(web.linkLifetime))
            let link = acknowledgement.publicURL + "/sign-in/link/" + token + "?next=" + (Self.safeNext(next).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "%2F")
            do {
                try await mailer.sendSignInLink(person: account.id, name: account.name, to: email, link: link)
            } catch {
                logger.error("the sign-in link could not be sent", metadata: ["error": "\(error)"])
                return signInPage(context, next: next, error: "The email could not be sent just now. Try again in a minute, or use your password.",
                                  status: .serviceUnavailable)
            }
        }
        return signInPage(context, next: next, sent: answer)
    }

    private func takeSignInLink(_ context: MusterRequestContext) async throws -> Response {
        let token = context.parameters.get("token") ?? ""
        guard Self.looksLikeToken(token), let user = try await runtime.accounts.takeSignInLink(token: token, now: web.wallClock.now()),
              let account = try await runtime.accounts.user(user) else {
            return linkGone(context)
        }
        return try await startSession(for: account, next: context.form?["next"])
    }

    private func linkGone(_ context: MusterRequestContext) -> Response {
        WebPage.render(.gone, "message", WebPage.message(context, title: "This sign-in link no longer works",
                                                         text: "Links work once, for a few minutes. Ask for a new one.", link: ("Sign in", "/sign-in")))
    }

    /// What a token Muster made looks like ("mst_" and base64url): anything else is not one, and is never put in a page.
    static func looksLikeToken(_ text: String) -> Bool {
        text.count <= 100 && text.hasPrefix("mst_") && text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
        }
    }

    private func startSession(for account: UserAccount, next: String?) async throws -> Response {
        let token = AccountRecords.newToken()
        let now = web.wallClock.now()
        try await runtime.accounts.startSession(token: token, user: account.id, at: now, expires: now.addingTimeInterval(web.sessionLifetime))
        logger.info("web sign-in", metadata: ["account": "\(account.id)"])
        var response = WebPage.redirect(Self.safeNext(next))
        response.setCookie(WebCookie.make(WebCookie.session, token, maxAge: Int(web.sessionLifetime)))
        response.setCookie(WebCookie.make(WebCookie.browser, AccountRecords.newToken(), maxAge: nil))
        return response
    }

    static func minutes(_ seconds: TimeInterval) -> String {
        let minutes = max(1, Int((seconds / 60).rounded(.up)))
        return minutes == 1 ? "1 minute" : "\(minutes) minutes"
    }
}
