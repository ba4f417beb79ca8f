// The first ten minutes: on a first start with the demonstration inbox, every person of the example
// directory gets an account (their directory id, a role from their job), and one person per job
// gets a password, printed once, so a newcomer can sign in as a teacher, a social worker, a
// counselor, a principal, the district crisis lead and an auditor. Anyone else signs in with a
// link from the demonstration inbox.
import Foundation
import MusterCore
import MusterHTTP
import MusterStore

enum DemonstrationAccounts {
    /// The jobs a newcomer tries, in the order they are printed.
    static let shown: [(role: String, label: String)] = [
        ("teacher", "Teacher (raises incidents)"), ("social-worker", "Social worker (on call)"), ("counselor", "Counselor (on call)"),
        ("principal", "Principal"), ("district-crisis-lead", "District crisis lead (coordinator)"),
    ]

    static func access(for person: Person) -> AccessRole {
        if person.roles.contains(RoleID("district-crisis-lead")) { return .coordinator }
        if person.roles == [RoleID("teacher")] { return .reporter }
        return .responder
    }

    /// Creates the accounts and answers the lines to print.
    static func create(store: any Store, directory: Directory, now: Date) async throws -> String {
        let allSites = directory.sites.keys.sorted { $0.rawValue < $1.rawValue }
        var lines = ["Demonstration sign-ins (shown once; everyone else in the directory can ask for a sign-in link, which arrives in /inbox):"]
        for person in directory.people.values.sorted(by: { $0.id.rawValue < $1.id.rawValue }) {
            let sites = person.assignments.flatMap { assignment -> [SiteID] in
                if case .site(let site) = assignment { return [site] }
                return allSites
            }
            try await store.addUser(UserAccount(id: person.id.rawValue, name: person.name, role: access(for: person), sites: sites, createdAt: now))
        }
        var rows: [(label: String, user: String, password: String)] = []
        /// A password for the account, printed once on the row `label`.
        func givePassword(_ id: String, label: String, shown: String) async throws {
            let password = Passwords.generate()
            try await store.setPasswordHash(user: id, hash: Passwords.hash(password, cost: 10))  // a quicker first start for a demonstration
            rows.append((label, shown, password))
        }
        for (role, label) in shown {
            // The first person with the job at the first site (or in the district), by id: the same on every fresh start.
            let candidates = directory.people.values.filter { $0.roles.contains(RoleID(role)) }.sorted { $0.id.rawValue < $1.id.rawValue }
            let firstSite = allSites.first.map(Assignment.site)
            guard let person = candidates.first(where: { firstSite.map($0.assignments.contains) ?? false }) ?? candidates.first,
                  !rows.contains(where: { $0.user.hasPrefix(person.id.rawValue + " ") }) else { continue }
            try await givePassword(person.id.rawValue, label: label, shown: person.id.rawValue + " (" + person.name + ")")
        }
        try await store.addUser(UserAccount(id: "auditor", name: "District auditor", role: .auditor, sites: [], createdAt: now))
        try await givePassword("auditor", label: "Auditor", shown: "auditor")
        // The first admin (made with an API token by the bootstrap) signs in to the web pages too.
        if try await store.user("admin") != nil {
            try await givePassword("admin", label: "Administrator", shown: "admin")
        }
        let width = rows.map(\.0.count).max() ?? 0
        let userWidth = rows.map(\.1.count).max() ?? 0
        for (label, user, password) in rows {
            lines.append("  " + label.padding(toLength: width, withPad: " ", startingAt: 0) + "  user " + user.padding(toLength: userWidth, withPad: " ", startingAt: 0)
                         + "  password " + password)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
