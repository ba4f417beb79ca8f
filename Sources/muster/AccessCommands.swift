// `muster user …` and `muster token …`: accounts and their API tokens (and integration keys).
import ArgumentParser
import Foundation
import MusterCore
import MusterHTTP
import MusterPlaybooks
import MusterStore

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage accounts.", subcommands: [UserAdd.self, UserList.self, UserPassword.self])
}

extension AccessRole: ExpressibleByArgument {}

struct UserAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Add an account.",
        discussion: """
            Roles: reporter (raises incidents at their sites, sees what they reported), responder (works incidents at their sites),
            coordinator (also reopens and reassigns, at their sites), auditor (reads everything, changes nothing), admin (everything),
            integration (a monitoring tool: Alertmanager or a PagerDuty Events API sender).
            For staff, use their directory person id, so that what they do is recorded as them.
            """)

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The account id (a directory person id for staff, a name for an integration).")
    var id: String
    @Option(help: "The display name (default: the directory's name for the person, else the id).")
    var name: String?
    @Option(help: "reporter, responder, coordinator, auditor, admin or integration.")
    var role: AccessRole
    @Option(name: .customLong("site"), help: "A site the account works at (repeat for several); required for reporter, responder and coordinator.")
    var sites: [String] = []
    @Option(help: "The playbook folder whose directory.yaml the sites are checked against.")
    var playbooks: String = "playbooks"

    func run() async throws {
        let directory = try loadCatalog(playbooks).directory
        for site in sites where directory.sites[SiteID(site)] == nil {
            throw ValidationError("unknown site '\(site)'" + suggestion(for: site, among: directory.sites.keys.map(\.rawValue)))
        }
        if role.isSiteScoped, sites.isEmpty { throw ValidationError("a \(role.rawValue) works at sites: give at least one --site") }
        if !role.isSiteScoped, !sites.isEmpty { throw ValidationError("the \(role.rawValue) role is not limited to sites; leave out --site") }
        guard !id.isEmpty, id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ValidationError("the id '\(id)' may hold letters, digits, '-', '_' and '.' only")
        }
        let (store, _) = try storeOptions.open()
        try await store.migrate()
        let display = name ?? directory.people[PersonID(id)]?.name ?? id
        do {
            try await store.addUser(UserAccount(id: id, name: display, role: role, sites: sites.map(SiteID.init), createdAt: Date()))
        } catch let error as AccessError {
            throw ValidationError(error.description)
        }
        print("added \(role.rawValue) '\(id)' (\(display))" + (sites.isEmpty ? "" : " at " + sites.joined(separator: ", "))
              + "; create a token with `muster token create \(id)`")
    }
}

struct UserList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the accounts.")
    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        let (store, _) = try storeOptions.open()
        try await store.migrate()
        for user in try await store.users() {
            print("\(user.id)\t\(user.role.rawValue)\t\(user.sites.map(\.rawValue).joined(separator: ","))\t\(user.name)")
        }
    }
}

struct UserPassword: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password", abstract: "Give an account a new web password, printed once; its web sessions end.",
        discussion: "The password is made here (twelve letters and digits), never chosen. Without a mail relay this is how a first admin signs in to the web pages.")

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The account id.")
    var id: String

    func run() async throws {
        let (store, _) = try storeOptions.open()
        try await store.migrate()
        guard let user = try await store.user(id), user.role != .integration else {
            throw ValidationError("no person account '\(id)'" + (try await store.user(id) != nil ? " (an integration signs in with its key)" : ""))
        }
        let password = Passwords.generate()
        try await store.setPasswordHash(user: id, hash: Passwords.hash(password))
        try await store.endCredentials(hash: nil, user: id, at: Date())
        print("\(id) (\(user.name)): new web password \(password) (shown once); every web session of theirs has ended")
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage API tokens and integration keys.", subcommands: [TokenCreate.self, TokenRevoke.self, TokenList.self])
}

struct TokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create an API token for an account and print it (once).",
        discussion: "For an integration account the token is a 32-character integration key: Alertmanager sends it as a bearer token, PagerDuty senders as routing_key.")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The account.")
    var user: String
    @Option(help: "What the token is for (shown in `muster token list`).")
    var label: String = "api"

    func run() async throws {
        let (store, _) = try storeOptions.open()
        try await store.migrate()
        guard let account = try await store.user(user) else { throw ValidationError("no account '\(user)'; add it with `muster user add`") }
        let token = account.role == .integration ? APIToken.generateIntegrationKey() : APIToken.generate()
        let id = APIToken.generateID()
        try await store.addToken(id: id, user: user, label: label, hash: APIToken.hash(token), at: Date())
        print(token)
        printError("token \(id) for \(account.role.rawValue) '\(user)'; it is shown only now. Revoke it with `muster token revoke \(id)`.")
    }
}

struct TokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by its id (it stops working within 5 s).")
    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The token's id (tok_…), from `muster token list`.")
    var id: String

    func run() async throws {
        let (store, _) = try storeOptions.open()
        guard try await store.revokeToken(id: id, at: Date()) else { throw ValidationError("no active token '\(id)'") }
        print("revoked \(id)")
    }
}

struct TokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (never the tokens themselves).")
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Only this account's tokens.")
    var user: String?

    func run() async throws {
        let (store, _) = try storeOptions.open()
        try await store.migrate()
        for token in try await store.tokens(user: user) {
            print("\(token.id)\t\(token.user)\t\(token.label)\t\(token.revokedAt == nil ? "active" : "revoked")")
        }
    }
}
