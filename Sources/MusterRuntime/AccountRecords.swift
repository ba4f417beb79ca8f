// Accounts as the web pages and the command line keep them: people's roles and sites, bcrypt
// password hashes, and web sessions and one-time sign-in links. Sessions and links are random
// tokens kept only as their SHA-256, like API tokens: whoever reads the database cannot sign in.
import Foundation
import MusterCore
import MusterStore

public struct AccountRecords: Sendable {
    private let store: any Store

    public init(store: any Store) {
        self.store = store
    }

    public func user(_ id: String) async throws -> UserAccount? { try await store.user(id) }
    public func users() async throws -> [UserAccount] { try await store.users() }
    public func addUser(_ user: UserAccount) async throws { try await store.addUser(user) }
    public func updateUser(_ user: UserAccount) async throws { try await store.updateUser(user) }

    public func setPasswordHash(user: String, hash: String?) async throws { try await store.setPasswordHash(user: user, hash: hash) }
    public func passwordHash(user: String) async throws -> String? { try await store.passwordHash(user: user) }

    public func startSession(token: String, user: String, at: Date, expires: Date) async throws {
        try await store.addCredential(.session, hash: APIToken.hash(token), user: user, at: at, expires: expires)
    }

    public func sessionAccount(token: String, now: Date) async throws -> UserAccount? {
        try await store.sessionAccount(hash: APIToken.hash(token), now: now)
    }

    public func endSession(token: String, at: Date) async throws {
        try await store.endCredentials(hash: APIToken.hash(token), user: nil, at: at)
    }

    /// Signs a person out everywhere and voids their unused sign-in links (an access reset).
    public func endEverySession(user: String, at: Date) async throws {
        try await store.endCredentials(hash: nil, user: user, at: at)
    }

    public func addSignInLink(token: String, user: String, at: Date, expires: Date) async throws {
        try await store.addCredential(.signInLink, hash: APIToken.hash(token), user: user, at: at, expires: expires)
    }

    /// The user a sign-in link was issued to: once, before it expires.
    public func takeSignInLink(token: String, now: Date) async throws -> String? {
        try await store.takeSignInLink(hash: APIToken.hash(token), now: now)
    }

    /// A new random session or link token (256 bits, base64url).
    public static func newToken() -> String { APIToken.generate() }
}
