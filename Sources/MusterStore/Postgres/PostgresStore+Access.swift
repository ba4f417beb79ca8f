// Accounts and API tokens in PostgreSQL.
import Foundation
import MusterCore
import PostgresNIO

extension PostgresStore {
    public func addUser(_ user: UserAccount) async throws {
        try await database { [self] in
            let rows = try await client.query("""
                INSERT INTO users (id, name, role, sites, created_at)
                VALUES (\(user.id), \(user.name), \(user.role.rawValue), \(user.sites.map(\.rawValue).joined(separator: ",")), \(user.createdAt))
                ON CONFLICT (id) DO NOTHING RETURNING 1
                """, logger: logger)
            for try await _ in rows.decode(Int.self) { return }
            throw AccessError.userExists(user.id)
        }
    }

    public func user(_ id: String) async throws -> UserAccount? {
        try await accounts("SELECT id, name, role, sites, created_at FROM users WHERE id = \(id)").first
    }

    public func users() async throws -> [UserAccount] {
        try await accounts("SELECT id, name, role, sites, created_at FROM users ORDER BY id")
    }

    public func addToken(id: String, user: String, label: String, hash: String, at: Date) async throws {
        try await database { [self] in
            let rows = try await client.query("""
                INSERT INTO api_tokens (id, user_id, label, token_hash, created_at)
                SELECT \(id), id, \(label), \(hash), \(at) FROM users WHERE id = \(user) RETURNING 1
                """, logger: logger)
            for try await _ in rows.decode(Int.self) { return }
            throw AccessError.unknownUser(user)
        }
    }

    public func revokeToken(id: String, at: Date) async throws -> Bool {
        try await database { [self] in
            let rows = try await client.query("UPDATE api_tokens SET revoked_at = \(at) WHERE id = \(id) AND revoked_at IS NULL RETURNING 1",
                                              logger: logger)
            for try await _ in rows.decode(Int.self) { return true }
            return false
        }
    }

    public func tokens(user: String?) async throws -> [APITokenInfo] {
        try await database { [self] in
            let rows = try await client.query("""
                SELECT id, user_id, label, created_at, revoked_at FROM api_tokens
                WHERE \(user ?? "")::text = '' OR user_id = \(user ?? "") ORDER BY created_at, id
                """, logger: logger)
            var result: [APITokenInfo] = []
            for try await (id, owner, label, createdAt, revokedAt) in rows.decode((String, String, String, Date, Date?).self) {
                result.append(APITokenInfo(id: id, user: owner, label: label, createdAt: createdAt, revokedAt: revokedAt))
            }
            return result
        }
    }

    public func account(tokenHash: String) async throws -> UserAccount? {
        try await accounts("""
            SELECT u.id, u.name, u.role, u.sites, u.created_at FROM api_tokens t JOIN users u ON u.id = t.user_id
            WHERE t.token_hash = \(tokenHash) AND t.revoked_at IS NULL
            """).first
    }

    public func updateUser(_ user: UserAccount) async throws {
        guard try await changed("""
            UPDATE users SET name = \(user.name), role = \(user.role.rawValue), sites = \(user.sites.map(\.rawValue).joined(separator: ","))
            WHERE id = \(user.id) RETURNING 1
            """) else { throw AccessError.unknownUser(user.id) }
    }

    public func setPasswordHash(user: String, hash: String?) async throws {
        guard try await changed("UPDATE users SET password_hash = \(hash) WHERE id = \(user) RETURNING 1") else { throw AccessError.unknownUser(user) }
    }

    public func passwordHash(user: String) async throws -> String? {
        try await database { [self] in
            for try await hash in try await client.query("SELECT password_hash FROM users WHERE id = \(user)", logger: logger).decode(String?.self) {
                return hash
            }
            return nil
        }
    }

    public func addCredential(_ kind: WebCredentialKind, hash: String, user: String, at: Date, expires: Date) async throws {
        guard try await changed("""
            INSERT INTO web_credentials (hash, kind, user_id, created_at, expires_at)
            SELECT \(hash), \(kind.rawValue), id, \(at), \(expires) FROM users WHERE id = \(user) RETURNING 1
            """) else { throw AccessError.unknownUser(user) }
    }

    public func sessionAccount(hash: String, now: Date) async throws -> UserAccount? {
        try await accounts("""
            SELECT u.id, u.name, u.role, u.sites, u.created_at FROM web_credentials c JOIN users u ON u.id = c.user_id
            WHERE c.hash = \(hash) AND c.kind = 'session' AND c.ended_at IS NULL AND c.expires_at > \(now)
            """).first
    }

    public func takeSignInLink(hash: String, now: Date) async throws -> String? {
        try await database { [self] in
            let rows = try await client.query("""
                UPDATE web_credentials SET ended_at = \(now) WHERE hash = \(hash) AND kind = 'link' AND ended_at IS NULL AND expires_at > \(now)
                RETURNING user_id
                """, logger: logger)
            for try await user in rows.decode(String.self) { return user }
            return nil
        }
    }

    public func endCredentials(hash: String?, user: String?, at: Date) async throws {
        try await database { [self] in
            _ = try await client.query("""
                UPDATE web_credentials SET ended_at = \(at) WHERE ended_at IS NULL AND (hash = \(hash) OR user_id = \(user))
                """, logger: logger).collect()
        }
    }

    /// Runs a statement ending in `RETURNING 1`: whether it touched a row.
    private func changed(_ query: PostgresQuery) async throws -> Bool {
        try await database { [self] in
            for try await _ in try await client.query(query, logger: logger).decode(Int.self) { return true }
            return false
        }
    }

    private func accounts(_ query: PostgresQuery) async throws -> [UserAccount] {
        try await database { [self] in
            var result: [UserAccount] = []
            for try await (id, name, role, sites, createdAt) in try await client.query(query, logger: logger)
                .decode((String, String, String, String, Date).self) {
                result.append(UserAccount(id: id, name: name, role: AccessRole(rawValue: role) ?? .reporter,
                                          sites: sites.split(separator: ",").map { SiteID(String($0)) }, createdAt: createdAt))
            }
            return result
        }
    }
}
