// Typed identifiers, so a person id can never be passed where a site id is expected.

public protocol Identifier: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByStringLiteral, CustomStringConvertible where RawValue == String {
    init(_ rawValue: String)
}

extension Identifier {
    public init(rawValue: String) { self.init(rawValue) }
    public init(stringLiteral value: String) { self.init(value) }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

public struct PersonID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct SiteID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct RoleID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct PartnerID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct IncidentTypeID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct PlaybookID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct TaskID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct ScheduleID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
public struct IncidentID: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
/// A condition a reporter can state about an incident ("a family member may be the source of harm")
/// that a playbook uses to leave out tasks.
public struct IncidentFlag: Identifier { public let rawValue: String; public init(_ rawValue: String) { self.rawValue = rawValue } }
