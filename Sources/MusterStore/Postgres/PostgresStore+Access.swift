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
