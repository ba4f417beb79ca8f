// The people, places and incidents Muster works with (see shared/DOMAIN.md for the practice behind them).
import Foundation

/// How grave an incident is. `imminent` means life in danger now: the reporter is told to call 911 first.
public enum Severity: String, CaseIterable, Comparable, Sendable, Codable {
    case low, moderate, high, imminent

    var rank: Int {
        switch self {
        case .low: 0
        case .moderate: 1
        case .high: 2
        case .imminent: 3
        }
    }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

/// A way to reach a person. SMS, voice and email are not private: they never carry student details.
public enum ChannelKind: String, CaseIterable, Sendable, Codable {
    case sms, voice, email, push, chat, webhook, inbox
}

public struct ContactPoint: Hashable, Sendable, Codable {
    public var channel: ChannelKind
    public var address: String
    public init(channel: ChannelKind, address: String) {
        self.channel = channel
        self.address = address
    }
}

public struct Role: Hashable, Sendable, Codable {
    public var id: RoleID
    public var title: String
    public init(id: RoleID, title: String) {
        self.id = id
        self.title = title
    }
}

public struct IncidentType: Hashable, Sendable, Codable {
    public var id: IncidentTypeID
    public var title: String
    public init(id: IncidentTypeID, title: String) {
        self.id = id
        self.title = title
    }
}

/// Where a person works: particular sites, or the whole district.
public enum Assignment: Hashable, Sendable, Codable {
    case district
    case site(SiteID)
}

public struct Person: Hashable, Sendable, Codable {
    public var id: PersonID
    public var name: String
    public var roles: [RoleID]
    public var assignments: [Assignment]
    /// In order of preference: the first is tried first when a step's channels do not reach the person.
    public var contacts: [ContactPoint]

    public init(id: PersonID, name: String, roles: [RoleID], assignments: [Assignment], contacts: [ContactPoint]) {
        self.id = id
        self.name = name
        self.roles = roles
        self.assignments = assignments
        self.contacts = contacts
    }

    /// The sites the person is assigned to by name (not the district-wide assignment).
    public var assignedSites: [SiteID] {
        assignments.compactMap { if case .site(let site) = $0 { site } else { nil } }
    }

    public func serves(_ site: SiteID) -> Bool {
        assignments.contains(.district) || assignments.contains(.site(site))
    }
}

/// An outside agency (county mobile crisis team, child protective services) and how to reach it.
public struct Partner: Hashable, Sendable, Codable {
    public var id: PartnerID
    public var name: String
    public var contacts: [ContactPoint]
    public init(id: PartnerID, name: String, contacts: [ContactPoint]) {
        self.id = id
        self.name = name
        self.contacts = contacts
    }
}

/// Who receives a notification.
public enum Recipient: Hashable, Sendable, Codable, CustomStringConvertible {
    case person(PersonID)
    case partner(PartnerID)

    /// Reads the text form ("person:ann", "partner:mcrt").
    public init?(_ text: String) {
        switch Actor(text) {
        case .person(let id): self = .person(id)
        case .partner(let id): self = .partner(id)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .person(let id): "person:\(id)"
        case .partner(let id): "partner:\(id)"
        }
    }
}

extension Recipient {
    /// The recipient as the actor of what they do (an acknowledgement, a decline).
    public var actor: Actor {
        switch self {
        case .person(let id): .person(id)
        case .partner(let id): .partner(id)
        }
    }
}

/// Who did something recorded in the audit trail.
public enum Actor: Hashable, Sendable, Codable, CustomStringConvertible {
    case person(PersonID)
    case partner(PartnerID)
    case integration(String)
    case system

    /// Reads the text form ("person:ann", "partner:mcrt", "integration:alertmanager", "system").
    public init?(_ text: String) {
        if text == "system" {
            self = .system
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let value = String(text[text.index(after: colon)...])
        guard !value.isEmpty else { return nil }
        switch text[..<colon] {
        case "person": self = .person(PersonID(value))
        case "partner": self = .partner(PartnerID(value))
        case "integration": self = .integration(value)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .person(let id): "person:\(id)"
        case .partner(let id): "partner:\(id)"
        case .integration(let id): "integration:\(id)"
        case .system: "system"
        }
    }
}

/// One person's account of what happened. Several reports can merge into one incident.
public struct Report: Hashable, Sendable, Codable {
    public var type: IncidentTypeID
    public var severity: Severity
    public var site: SiteID
    public var reporter: Actor
    /// Free text describing the student: sealed at rest, never sent over SMS, voice or email.
    public var summary: String
    /// A pseudonymous student reference (never required); it is student data too.
    public var subject: String?
    public var flags: Set<IncidentFlag>
    public var receivedAt: Date
    /// A drill or an exercise: it runs the real escalation, every message says DRILL first, and it is
    /// kept in the log but left out of the compliance figures.
    public var drill: Bool

    public init(type: IncidentTypeID, severity: Severity, site: SiteID, reporter: Actor, summary: String,
                subject: String? = nil, flags: Set<IncidentFlag> = [], receivedAt: Date, drill: Bool = false) {
        self.drill = drill
        self.type = type
        self.severity = severity
        self.site = site
        self.reporter = reporter
        self.summary = summary
        self.subject = subject
        self.flags = flags
        self.receivedAt = receivedAt
    }
}

/// What was reported, as the escalation engine sees it.
public struct Incident: Hashable, Sendable, Codable {
    public var id: IncidentID
    /// The short number people say and type ("ACK 4821").
    public var number: Int
    public var type: IncidentTypeID
    public var severity: Severity
    public var site: SiteID
    public var reporter: Actor
    public var summary: String
    public var subject: String?
    public var flags: Set<IncidentFlag>
    public var reportedAt: Date
    /// Raised as a drill (`Report.drill`).
    public var drill: Bool

    public init(id: IncidentID, number: Int, report: Report) {
        self.drill = report.drill
        self.id = id
        self.number = number
        self.type = report.type
        self.severity = report.severity
        self.site = report.site
        self.reporter = report.reporter
        self.summary = report.summary
        self.subject = report.subject
        self.flags = report.flags
        self.reportedAt = report.receivedAt
    }
}
