// Who may use the API: user accounts with one role, scoped to sites, and their API tokens. Tokens
// are random and long, so they are stored as SHA-256 hashes (a slow hash such as bcrypt would cost
// every request milliseconds and protects nothing more for 256 random bits); the token itself is
// shown once, when it is created.
import Crypto
import Foundation
import MusterCore

public struct APITokenInfo: Sendable, Hashable {
    public var id: String
    public var user: String
    public var label: String
    public var createdAt: Date
    public var revokedAt: Date?
}

public enum AccessError: Error, Sendable, Hashable, CustomStringConvertible {
    case userExists(String)
    case unknownUser(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .userExists(let id): "a user '\(id)' already exists"
        case .unknownUser(let id): "no user '\(id)'"
        case .invalid(let problem): problem
        }
    }
}

/// The accounts and tokens; both stores keep them.
public protocol AccessStore: Sendable {
    func addUser(_ user: UserAccount) async throws
    func user(_ id: String) async throws -> UserAccount?
    func users() async throws -> [UserAccount]
    /// Stores a token's hash for a user; the token itself is never stored.
    func addToken(id: String, user: String, label: String, hash: String, at: Date) async throws
    /// Marks a token revoked; false if no such active token.
    func revokeToken(id: String, at: Date) async throws -> Bool
    func tokens(user: String?) async throws -> [APITokenInfo]
    /// The account an active token belongs to, by the token's hash.
    func account(tokenHash: String) async throws -> UserAccount?

    // Web sign-in (MusterHTTP/Web): a bcrypt password per account, and credentials kept by hash only.
    /// Changes a user's name, role and sites.
    func updateUser(_ user: UserAccount) async throws
    /// Sets (or, with nil, clears) a user's password hash.
    func setPasswordHash(user: String, hash: String?) async throws
    func passwordHash(user: String) async throws -> String?
    func addCredential(_ kind: WebCredentialKind, hash: String, user: String, at: Date, expires: Date) async throws
    /// The account behind a live session: not ended, not expired.
    func sessionAccount(hash: String, now: Date) async throws -> UserAccount?
    /// Takes a one-time sign-in link: the user it was issued to, the first time only, before it expires.
    func takeSignInLink(hash: String, now: Date) async throws -> String?
    /// Ends one credential (sign-out), or every credential of a user (access reset).
    func endCredentials(hash: String?, user: String?, at: Date) async throws
}

/// What a web credential is: a session behind a cookie, or a one-time sign-in link sent by email.
public enum WebCredentialKind: String, Sendable {
    case session
    case signInLink = "link"
}

/// Making and checking API tokens and integration keys.
public enum APIToken {
    /// A new token for a person: "mst_" and 43 characters of base64url (256 random bits).
    public static func generate() -> String {
        "mst_" + Base64URL.encode(randomBytes(32))
    }

    /// A new integration key: 32 lowercase hex characters, the shape of a PagerDuty routing key, so
    /// tools that check that shape accept it.
    public static func generateIntegrationKey() -> String {
        randomBytes(16).hex
    }

    /// A short public id to list and revoke a token by.
    public static func generateID() -> String {
        "tok_" + randomBytes(6).hex
    }

    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).hex
    }

    private static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
