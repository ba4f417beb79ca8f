// Accounts and API tokens in SQLite.
import Foundation
import GRDB
import MusterCore

extension SQLiteStore {
    public func addUser(_ user: UserAccount) async throws {
        do {
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO users (id, name, role, sites, created_at) VALUES (?, ?, ?, ?, ?)",
                               arguments: [user.id, user.name, user.role.rawValue, user.sites.map(\.rawValue).joined(separator: ","),
                                           user.createdAt.milliseconds])
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw AccessError.userExists(user.id)
        }
    }

    public func user(_ id: String) async throws -> UserAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name, role, sites, created_at FROM users WHERE id = ?", arguments: [id]).map(Self.account)
        }
    }

    public func users() async throws -> [UserAccount] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name, role, sites, created_at FROM users ORDER BY id").map(Self.account)
        }
    }

    public func addToken(id: String, user: String, label: String, hash: String, at: Date) async throws {
        try await pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE id = ?", arguments: [user]) != nil else { throw AccessError.unknownUser(user) }
            try db.execute(sql: "INSERT INTO api_tokens (id, user_id, label, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, user, label, hash, at.milliseconds])
        }
    }

    public func revokeToken(id: String, at: Date) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [at.milliseconds, id])
            return db.changesCount > 0
        }
    }

    public func tokens(user: String?) async throws -> [APITokenInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, user_id, label, created_at, revoked_at FROM api_tokens WHERE ? IS NULL OR user_id = ? ORDER BY created_at, id
                """, arguments: [user, user]).map { row in
                APITokenInfo(id: row[0], user: row[1], label: row[2], createdAt: Date(milliseconds: row[3]),
                             revokedAt: (row[4] as Int64?).map(Date.init(milliseconds:)))
            }
        }
    }

    public func account(tokenHash: String) async throws -> UserAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.id, u.name, u.role, u.sites, u.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = ? AND t.revoked_at IS NULL
                """, arguments: [tokenHash]).map(Self.account)
        }
    }

    public func updateUser(_ user: UserAccount) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE users SET name = ?, role = ?, sites = ? WHERE id = ?",
                           arguments: [user.name, user.role.rawValue, user.sites.map(\.rawValue).joined(separator: ","), user.id])
            guard db.changesCount > 0 else { throw AccessError.unknownUser(user.id) }
        }
    }

    public func setPasswordHash(user: String, hash: String?) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE users SET password_hash = ? WHERE id = ?", arguments: [hash, user])
            guard db.changesCount > 0 else { throw AccessError.unknownUser(user) }
        }
    }

    public func passwordHash(user: String) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT password_hash FROM users WHERE id = ?", arguments: [user]) }
    }

    public func addCredential(_ kind: WebCredentialKind, hash: String, user: String, at: Date, expires: Date) async throws {
        try await pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE id = ?", arguments: [user]) != nil else { throw AccessError.unknownUser(user) }
            try db.execute(sql: "INSERT INTO web_credentials (hash, kind, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [hash, kind.rawValue, user, at.milliseconds, expires.milliseconds])
        }
    }

    public func sessionAccount(hash: String, now: Date) async throws -> UserAccount? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.id, u.name, u.role, u.sites, u.created_at FROM web_credentials c JOIN users u ON u.id = c.user_id
                WHERE c.hash = ? AND c.kind = 'session' AND c.ended_at IS NULL AND c.expires_at > ?
                """, arguments: [hash, now.milliseconds]).map(Self.account)
        }
    }

    public func takeSignInLink(hash: String, now: Date) async throws -> String? {
        try await pool.write { db in
            try String.fetchOne(db, sql: """
                UPDATE web_credentials SET ended_at = ? WHERE hash = ? AND kind = 'link' AND ended_at IS NULL AND expires_at > ?
                RETURNING user_id
                """, arguments: [now.milliseconds, hash, now.milliseconds])
        }
    }

    public func endCredentials(hash: String?, user: String?, at: Date) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE web_credentials SET ended_at = ? WHERE ended_at IS NULL AND (hash = ? OR user_id = ?)
                """, arguments: [at.milliseconds, hash, user])
        }
    }

    private static func account(_ row: Row) -> UserAccount {
        let sites: String = row[3]
        return UserAccount(id: row[0], name: row[1], role: AccessRole(rawValue: row[2]) ?? .reporter,
                           sites: sites.split(separator: ",").map { SiteID(String($0)) }, createdAt: Date(milliseconds: row[4]))
    }
}
