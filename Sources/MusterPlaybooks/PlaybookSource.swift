// Where a loaded playbook's steps and targets are written, so that what is found later about a
// step (a coverage gap) can be reported at its file, line and column, as lint reports its errors.
import MusterCore

public struct StepSource: Hashable, Sendable {
    /// The step's entry in its list.
    public var location: SourceLocation
    /// Each entry of the step's `notify`, in order.
    public var targets: [SourceLocation]

    public init(location: SourceLocation, targets: [SourceLocation]) {
        self.location = location
        self.targets = targets
    }
}

public struct PlaybookSource: Hashable, Sendable {
    public var file: String
    /// The file's version ("sha256:…"): positions only hold for the playbook loaded from these bytes.
    public var version: String
    public var steps: [PlanVariant: [StepSource]] = [:]
    public var fallback: SourceLocation?

    public init(file: String, version: String) {
        self.file = file
        self.version = version
    }

    /// The position of a variant's step (0-based), or of one of its targets; the file's top when unknown.
    public func location(variant: PlanVariant, step: Int, target: Int? = nil) -> SourceLocation {
        guard let steps = steps[variant] ?? steps[.standard], step < steps.count else {
            return SourceLocation(file: file, line: 1, column: 1)
        }
        if let target, target < steps[step].targets.count { return steps[step].targets[target] }
        return steps[step].location
    }
}
