// Who may use Muster: user accounts with one role, scoped to sites.
import Foundation

public enum AccessRole: String, CaseIterable, Sendable, Codable {
    /// Raises incidents at their sites and sees only what they reported.
    case reporter
    /// Takes ownership and works incidents at their sites.
    case responder
    /// Everything a responder does, plus reopening and reassigning, at their sites.
    case coordinator
    /// Reads everything, changes nothing.
    case auditor
    /// Everything, everywhere, including reloading playbooks.
    case admin
    /// A monitoring tool that raises incidents through an integration endpoint (Alertmanager, PagerDuty events).
    case integration
    /// Prometheus: reads /metrics and nothing else.
    case scrape

    /// Roles that are limited to the sites of the account.
    public var isSiteScoped: Bool {
        switch self {
        case .reporter, .responder, .coordinator: true
        case .auditor, .admin, .integration, .scrape: false
        }
    }
}

public struct UserAccount: Sendable, Hashable {
    /// The account's id; for staff, their directory person id, so what they do is recorded as them.
    public var id: String
    public var name: String
    public var role: AccessRole
    /// The sites a site-scoped role works at.
    public var sites: [SiteID]
    public var createdAt: Date

    public init(id: String, name: String, role: AccessRole, sites: [SiteID], createdAt: Date) {
        self.id = id
        self.name = name
        self.role = role
        self.sites = sites
        self.createdAt = createdAt
    }

    /// How the account appears in the audit trail.
    public var actor: Actor {
        role == .integration ? .integration(id) : .person(PersonID(id))
    }
}
