// Live updates by server-sent events: the board, the incident page and the confirmation hold an
// EventSource; the stream says "changed" when what the page shows has changed, and the page's
// script fetches the live part again. The stream reads the database every two seconds (so it sees
// what any instance committed) and ends after ten minutes; EventSource reconnects by itself.
// Pages work without it.
import Foundation
import Hummingbird
import MusterCore
import NIOCore

extension MusterServer {
    static let eventPollInterval: Duration = .seconds(2)

    var liveRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("incidents/:number/events") { request, context in
            try await self.signedIn(request, context) { account in
                let state = try await self.visibleIncident(context.parameters.get("number") ?? "", account: account)
                let id = state.incident.id
                return self.eventStream { try await self.reads.incident(id)?.nextAuditSequence ?? 0 }
            }
        }
        // The part of the incident page that changes: status, owner, who is being paged. No student
        // text, so reading it is not an access to record (the page itself is).
        routes.get("incidents/:number/live") { request, context in
            try await self.signedIn(request, context) { account in
                let state = try await self.visibleIncident(context.parameters.get("number") ?? "", account: account)
                return try await self.incidentPage(context, account, state: state, done: nil, live: true)
            }
        }
        routes.get("board/events") { request, context in
            try await self.signedIn(request, context) { account in
                let filter = IncidentFilter(phases: IncidentFilter.openPhases, limit: 500).limited(to: account)
                return self.eventStream {
                    // Any change of an open incident's phase, or one opening or closing, changes this.
                    var hasher = Hasher()
                    for summary in try await self.reads.incidents(filter) {
                        hasher.combine(summary.ref.number)
                        hasher.combine(summary.phase)
                    }
                    return hasher.finalize()
                }
            }
        }
        return routes
    }

    /// An event stream that sends `changed` each time `version` reads a new value.
    private func eventStream(_ version: @escaping @Sendable () async throws -> Int) -> Response {
        let clock = web.wallClock, lifetime = web.eventStreamLifetime
        let body = ResponseBody { writer in
            let end = clock.now().addingTimeInterval(lifetime)
            var last = try await version()
            try await writer.write(ByteBuffer(string: "retry: 3000\n: connected\n\n"))
            while clock.now() < end {
                try await Task.sleep(for: Self.eventPollInterval)
                let current = try await version()
                if current != last {
                    last = current
                    try await writer.write(ByteBuffer(string: "event: changed\ndata: \(current)\n\n"))
                } else {
                    try await writer.write(ByteBuffer(string: ": waiting\n\n"))  // keeps proxies from closing an idle stream
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }
}
