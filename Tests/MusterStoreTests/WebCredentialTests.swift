// Passwords, web sessions and one-time sign-in links, the same on both stores: kept by hash only,
// sessions end at their expiry or at sign-out, a link signs in once.
import Foundation
import MusterCore
import MusterStore
import MusterTestSupport
import Testing

@Suite("Web credentials")
struct WebCredentialTests {
    @Test("sessions expire and end; links work once before they expire; an access reset ends everything", arguments: Backend.allCases)
    func credentials(backend: Backend) async throws {
        try await withStore(backend) { t in
            let store = t.store
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            try await store.addUser(UserAccount(id: "ann", name: "Ann", role: .responder, sites: [SiteID("lincoln-high")], createdAt: start))
            #expect(try await store.passwordHash(user: "ann") == nil)
            try await store.setPasswordHash(user: "ann", hash: "$2b$04$example")
            #expect(try await store.passwordHash(user: "ann") == "$2b$04$example")
            await #expect(throws: AccessError.unknownUser("bob")) { try await store.setPasswordHash(user: "bob", hash: "x") }

            try await store.addCredential(.session, hash: "s1", user: "ann", at: start, expires: start.addingTimeInterval(3600))
            #expect(try await store.sessionAccount(hash: "s1", now: start.addingTimeInterval(10))?.id == "ann")
            #expect(try await store.sessionAccount(hash: "s1", now: start.addingTimeInterval(3600)) == nil)  // expired
            // A link is not a session, and a session is not a link.
            try await store.addCredential(.signInLink, hash: "l1", user: "ann", at: start, expires: start.addingTimeInterval(900))
            #expect(try await store.sessionAccount(hash: "l1", now: start) == nil)
            #expect(try await store.takeSignInLink(hash: "s1", now: start) == nil)
            #expect(try await store.takeSignInLink(hash: "l1", now: start.addingTimeInterval(60)) == "ann")
            #expect(try await store.takeSignInLink(hash: "l1", now: start.addingTimeInterval(61)) == nil)  // once
            try await store.addCredential(.signInLink, hash: "l2", user: "ann", at: start, expires: start.addingTimeInterval(900))
            #expect(try await store.takeSignInLink(hash: "l2", now: start.addingTimeInterval(900)) == nil)  // expired

            try await store.addCredential(.session, hash: "s2", user: "ann", at: start, expires: start.addingTimeInterval(3600))
            try await store.addCredential(.session, hash: "s3", user: "ann", at: start, expires: start.addingTimeInterval(3600))
            try await store.endCredentials(hash: "s2", user: nil, at: start.addingTimeInterval(5))  // sign-out
            #expect(try await store.sessionAccount(hash: "s2", now: start.addingTimeInterval(6)) == nil)
            #expect(try await store.sessionAccount(hash: "s3", now: start.addingTimeInterval(6))?.id == "ann")
            try await store.addCredential(.signInLink, hash: "l3", user: "ann", at: start, expires: start.addingTimeInterval(900))
            try await store.endCredentials(hash: nil, user: "ann", at: start.addingTimeInterval(7))  // access reset
            #expect(try await store.sessionAccount(hash: "s3", now: start.addingTimeInterval(8)) == nil)
            #expect(try await store.takeSignInLink(hash: "l3", now: start.addingTimeInterval(8)) == nil)

            var ann = try #require(try await store.user("ann"))
            ann.role = .coordinator
            ann.sites = [SiteID("lincoln-high"), SiteID("washington-elementary")]
            try await store.updateUser(ann)
            #expect(try await store.user("ann")?.role == .coordinator)
            #expect(try await store.user("ann")?.sites.count == 2)
        }
    }
}
