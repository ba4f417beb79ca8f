// Errors as RFC 9457 problem details (application/problem+json): a type, a title, the status, a
// detail that says exactly what is wrong, and for bad bodies the offending fields as JSON pointers.
import Foundation
import Hummingbird
import MusterCore
import NIOCore

public struct Problem: Error, HTTPResponseError, Sendable {
    public struct FieldError: Sendable, Hashable, Codable {
        /// A JSON pointer (RFC 6901) into the request body, or a query parameter's name.
        public var pointer: String
        public var detail: String
    }

    public var status: HTTPResponse.Status
    /// A short slug; the problem's `type` URI is `urn:muster:problem:` + slug.
    public var slug: String
    public var title: String
    public var detail: String
    public var errors: [FieldError] = []
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ slug: String, _ title: String, detail: String, errors: [FieldError] = [],
                headers: HTTPFields = [:]) {
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
    }

    public static func badRequest(_ detail: String, errors: [FieldError] = []) -> Problem {
        Problem(.badRequest, "invalid-request", "The request is invalid", detail: detail, errors: errors)
    }

    public static func unprocessable(_ detail: String, errors: [FieldError] = []) -> Problem {
        Problem(.unprocessableContent, "unprocessable", "The request names something that does not exist", detail: detail, errors: errors)
    }

    public static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, "not-found", "Not found", detail: detail)
    }

    public static func forbidden(_ detail: String) -> Problem {
        Problem(.forbidden, "forbidden", "Not allowed", detail: detail)
    }

    public static func conflict(_ detail: String) -> Problem {
        Problem(.conflict, "conflict", "The incident is not in a state that allows this", detail: detail)
    }

    public static let unauthenticated = Problem(
        .unauthorized, "unauthenticated", "Authentication required",
        detail: "send an API token as 'Authorization: Bearer TOKEN' (create one with `muster token create`)",
        headers: [.wwwAuthenticate: "Bearer realm=\"muster\""])

    public static func unavailable(_ detail: String) -> Problem {
        Problem(.serviceUnavailable, "unavailable", "Temporarily unavailable, retry",
                detail: detail, headers: [.retryAfter: "1"])
    }

    /// A store refusal as the API reports it.
    public static func from(_ error: StoreError) -> Problem {
        switch error {
        case .rejected(.unknownOutcome(_, let allowed)):
            .unprocessable(error.description, errors: [.init(pointer: "/outcome", detail: "one of " + allowed.joined(separator: ", "))])
        case .rejected(.outcomeNeedsReason): .unprocessable(error.description, errors: [.init(pointer: "/note", detail: "required for this outcome")])
        case .rejected(.taskOwedByReporter): .forbidden(error.description)
        case .rejected(let rejection): .conflict(rejection.description)
        case .unknownIncident(let id): .notFound("no incident \(id)")
        case .invalidReport(let problem): .unprocessable(problem)
        case .noPlaybook, .unknownPlaybook: .unprocessable(error.description)
        case .purged, .notHeld, .changed: .conflict(error.description)
        case .unavailable:
            // The reason may carry database internals; the client needs to know only to retry.
            .unavailable("the database did not answer; the request may not have been applied: retry it (reports with the same Idempotency-Key are recognised)")
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var object: [String: Any] = [
            "type": "urn:muster:problem:" + slug,
            "title": title,
            "status": Int(status.code),
            "detail": detail,
            "instance": request.uri.path,
        ]
        if !errors.isEmpty { object["errors"] = errors.map { ["pointer": $0.pointer, "detail": $0.detail] } }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
