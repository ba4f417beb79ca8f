// What became of a test page ("does my phone get it?"), and why one could not be sent.
import MusterCore

public struct TestPageResult: Sendable, Hashable {
    public enum Outcome: String, Sendable {
        /// The provider confirmed it reached the device or mailbox (or the call was answered).
        case delivered
        /// The provider took it; only the person can tell whether it arrived (a carrier's delivery
        /// report is not followed for a test page).
        case accepted
        /// The channel has no provider: it was written to the demonstration inbox and reached nobody.
        case demonstrated
        case failed
    }

    public var channel: ChannelKind
    public var outcome: Outcome
    /// The kind of failure (timeout, refused, bad address, a provider code); never the provider's text.
    public var detail: String?
}

public enum TestPageError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownPerson(PersonID)
    case unknownContact(PersonID, Int, count: Int)

    public var description: String {
        switch self {
        case .unknownPerson(let id): "no person '\(id)' in the directory"
        case .unknownContact(let id, let index, let count): "\(id) has \(count) contact points; there is no contact point \(index)"
        }
    }
}
