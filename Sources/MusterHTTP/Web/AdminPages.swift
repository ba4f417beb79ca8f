// The administrator's pages: people's roles and sites, adding a person, and resetting someone's
// access (every session and unused sign-in link ended, the password cleared; a new password is
// shown once, or the person asks for a sign-in link). API tokens stay `muster token`'s.
import Foundation
import Hummingbird
import HummingbirdBcrypt
import MusterCore
import MusterRuntime
import NIOPosix

extension MusterServer {
    var adminPages: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("admin") { request, context in
            try await self.signedIn(request, context) { account in try await self.people(context, account, done: nil, error: nil) }
        }
        routes.post("admin/people") { request, context in
            try await self.signedIn(request, context) { account in try await self.addPerson(context, account) }
        }
        routes.get("admin/people/:id") { request, context in
            try await self.signedIn(request, context) { account in try await self.person(context, account, done: nil, password: nil) }
        }
        routes.post("admin/people/:id") { request, context in
            try await self.signedIn(request, context) { account in try await self.changePerson(context, account) }
        }
        routes.post("admin/people/:id/reset") { request, context in
            try await self.signedIn(request, context) { account in try await self.resetAccess(context, account) }
        }
        return routes
    }

    struct PeoplePage {
        struct Row { var id: String; var name: String; var role: String; var sites: String }
        var frame: WebPage.Frame
        var done: String?
        var error: String?
        var people: [Row]
        var roles: [WebPage.Option]
        var sites: [WebPage.Option]
        /// Accounts whose reports went over their budget in the last day (taken, and grouped).
        var overBudget: [String]
        var anyOverBudget: Bool
    }

    struct PersonPage {
        var frame: WebPage.Frame
        var id: String
        var name: String
        var done: String?
        var password: String?
        var roles: [WebPage.Option]
        var sites: [WebPage.Option]
    }

    static let assignableRoles: [AccessRole] = [.reporter, .responder, .coordinator, .auditor, .admin]

    private func people(_ context: MusterRequestContext, _ account: UserAccount, done: String?, error: String?,
                        status: HTTPResponse.Status = .ok) async throws -> Response {
        guard account.role == .admin else { return Self.notAllowed(context, "manage people") }
        let directory = await catalog.directory
        let users = try await runtime.accounts.users().filter { $0.role != .integration }
        let overBudget = rateLimiter.accountsOverBudget(now: clock.now()).map { entry in
            "\(entry.account): reports over the budget of \(Int(rateLimiter.settings.account.perMinute)) a minute, last at "
                + entry.last.formatted(.iso8601) + "; each site and type became one incident"
        }
        let page = PeoplePage(
            frame: frame(context, "People", current: "admin"), done: done, error: error,
            people: users.map { .init(id: $0.id, name: $0.name, role: WebPage.roleName($0.role),
                                      sites: $0.role.isSiteScoped ? $0.sites.map { directory.sites[$0]?.name ?? $0.rawValue }.joined(separator: ", ") : "everywhere") },
            roles: Self.assignableRoles.map { .init(id: $0.rawValue, name: WebPage.roleName($0), selected: $0 == .reporter) },
            sites: WebPage.sites(directory) { _ in false },
            overBudget: overBudget, anyOverBudget: !overBudget.isEmpty)
        return WebPage.render(status, "admin", page)
    }

    /// The role and sites a form names, checked against the directory.
    private func roleAndSites(_ form: FormBody) async -> Result<(AccessRole, [SiteID]), Problem> {
        let directory = await catalog.directory
        guard let role = form["role"].flatMap(AccessRole.init(rawValue:)), Self.assignableRoles.contains(role) else {
            return .failure(Problem.badRequest("Choose a role."))
        }
        let sites = form.all("sites").map(SiteID.init)
        if let unknown = sites.first(where: { directory.sites[$0] == nil }) { return .failure(Problem.badRequest("No site '\(unknown)'.")) }
        if role.isSiteScoped, sites.isEmpty { return .failure(Problem.badRequest("A \(WebPage.roleName(role).lowercased()) needs at least one site.")) }
        return .success((role, role.isSiteScoped ? sites : []))
    }

    private func addPerson(_ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard account.role == .admin else { return Self.notAllowed(context, "manage people") }
        let form = context.form ?? FormBody("")
        let id = (form["id"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        guard !id.isEmpty, id.count <= 100, id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            return try await people(context, account, done: nil, error: "The user name must be letters, digits, '-', '_' or '.', at most 100.",
                                    status: .unprocessableContent)
        }
        switch await roleAndSites(form) {
        case .failure(let problem):
            return try await people(context, account, done: nil, error: problem.detail, status: .unprocessableContent)
        case .success(let (role, sites)):
            let directory = await catalog.directory
            let name = form["name"] ?? directory.people[PersonID(id)]?.name ?? id
            do {
                try await runtime.accounts.addUser(UserAccount(id: id, name: name, role: role, sites: sites, createdAt: web.wallClock.now()))
            } catch {
                return try await people(context, account, done: nil, error: "There is already a user '\(id)'.", status: .conflict)
            }
            return WebPage.redirect("/admin/people/\(id)?done=added")
        }
    }

    private func person(_ context: MusterRequestContext, _ account: UserAccount, done: String?, password: String?) async throws -> Response {
        guard account.role == .admin else { return Self.notAllowed(context, "manage people") }
        guard let user = try await runtime.accounts.user(context.parameters.get("id") ?? ""), user.role != .integration else {
            throw Problem.notFound("no such person")
        }
        let directory = await catalog.directory
        let page = PersonPage(
            frame: frame(context, user.name, current: "admin"), id: user.id, name: user.name, done: done, password: password,
            roles: Self.assignableRoles.map { .init(id: $0.rawValue, name: WebPage.roleName($0), selected: $0 == user.role) },
            sites: WebPage.sites(directory) { user.sites.contains($0) })
        return WebPage.render(.ok, "person", page)
    }

    private func changePerson(_ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard account.role == .admin else { return Self.notAllowed(context, "manage people") }
        guard var user = try await runtime.accounts.user(context.parameters.get("id") ?? ""), user.role != .integration else {
            throw Problem.notFound("no such person")
        }
        switch await roleAndSites(context.form ?? FormBody("")) {
        case .failure(let problem):
            return try await person(context, account, done: problem.detail, password: nil)
        case .success(let (role, sites)):
            user.role = role
            user.sites = sites
            try await runtime.accounts.updateUser(user)
            // The next request of each of their sessions sees the new role.
            webSessions.forgetAll()
            return try await person(context, account, done: "Saved.", password: nil)
        }
    }

    private func resetAccess(_ context: MusterRequestContext, _ account: UserAccount) async throws -> Response {
        guard account.role == .admin else { return Self.notAllowed(context, "manage people") }
        guard let user = try await runtime.accounts.user(context.parameters.get("id") ?? ""), user.role != .integration else {
            throw Problem.notFound("no such person")
        }
        try await runtime.accounts.endEverySession(user: user.id, at: web.wallClock.now())
        webSessions.forgetAll()
        let password = context.form?["new_password"] == "yes" ? Passwords.generate() : nil
        var hash: String?
        if let password { hash = try await NIOThreadPool.singleton.runIfActive { Passwords.hash(password) } }
        try await runtime.accounts.setPasswordHash(user: user.id, hash: hash)
        logger.notice("web access reset", metadata: ["account": "\(user.id)", "by": "\(account.id)"])
        return try await person(context, account, done: "Every session of \(user.name) has ended" + (password == nil ? " and the password is cleared: they sign in with an emailed link." : "."),
                                password: password)
    }
}

/// Passwords people are given: generated, read aloud, kept only as bcrypt hashes.
public enum Passwords {
    /// bcrypt's cost: about a quarter of a second a check on this machine kind, slow enough against guessing.
    public static let cost: UInt8 = 12

    /// Twelve letters and digits people can read aloud (no 0/O, 1/l), in three groups: 59 bits.
    public static func generate() -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyz23456789")
        var generator = SystemRandomNumberGenerator()
        let letters = (0..<12).map { _ in alphabet[Int(generator.next(upperBound: UInt(alphabet.count)))] }
        return String(letters[0..<4]) + "-" + String(letters[4..<8]) + "-" + String(letters[8..<12])
    }

    public static func hash(_ password: String, cost: UInt8 = cost) -> String { Bcrypt.hash(password, cost: cost) }
}
