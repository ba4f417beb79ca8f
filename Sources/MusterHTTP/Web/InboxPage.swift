// The demonstration inbox (/inbox): what each SMS, call, email, chat and push message would have
// carried, one tab per person, with its links. It exists only when the configuration turns the
// demonstration inbox on; it reads the same file the demonstration channel appends to.
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterNotify

extension MusterServer {
    var inboxRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        routes.get("inbox") { request, context in
            // No sign-in: the inbox is where a newcomer finds the sign-in links and pages. It is a
            // demonstration only; a configuration with real providers does not have it.
            guard let file = self.web.demonstrationInbox else { throw Problem.notFound("there is no demonstration inbox here") }
            return try await self.inbox(request, context, file: file)
        }
        return routes
    }

    struct InboxPage {
        struct Tab { var id: String; var name: String; var user: String?; var count: Int; var selected: Bool }
        struct Item { var channel: String; var name: String; var address: String; var number: String?; var text: String
                      var incidentURL: String?; var ackURL: String?; var signInURL: String? }
        var frame: WebPage.Frame
        var people: [Tab]
        var messages: [Item]
        var personName: String?
        /// The user name the person signs in with (their directory id); none for a partner agency.
        var personUser: String?
    }

    static func userName(_ recipient: String) -> String {
        recipient.hasPrefix("person:") ? String(recipient.dropFirst("person:".count)) : recipient
    }

    private func inbox(_ request: Request, _ context: MusterRequestContext, file: String) async throws -> Response {
        let directory = await catalog.directory
        let lines = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        var items: [(recipient: String, item: InboxPage.Item)] = []
        for line in lines.split(separator: "\n").suffix(2000) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String],
                  let recipient = object["recipient"] else { continue }
            let name = Recipient(recipient).map { directory.name(of: $0) } ?? recipient
            // Links point at this instance, whatever the public URL says, so the demonstration works where it is opened.
            func local(_ url: String?) -> String? {
                guard let url, !url.isEmpty, let path = URLComponents(string: url).map({ $0.path + ($0.query.map { "?" + $0 } ?? "") }) else { return nil }
                return path
            }
            items.append((recipient, InboxPage.Item(channel: object["channel"] ?? "", name: name, address: object["address"] ?? "",
                                                    number: object["number"], text: object["text"] ?? "",
                                                    incidentURL: local(object["incident_url"]),
                                                    ackURL: local(object["ack_url"]), signInURL: local(object["sign_in_url"]))))
        }
        let chosen = request.query("to") ?? items.last?.recipient
        var counts: [String: Int] = [:]
        for (recipient, _) in items { counts[recipient, default: 0] += 1 }
        let tabs = counts.keys.sorted().map { recipient in
            InboxPage.Tab(id: recipient, name: Recipient(recipient).map { directory.name(of: $0) } ?? recipient,
                          user: recipient.hasPrefix("person:") ? Self.userName(recipient) : nil, count: counts[recipient] ?? 0, selected: recipient == chosen)
        }
        let page = InboxPage(frame: frame(context, "Demonstration inbox", current: "inbox"), people: tabs,
                             messages: items.filter { $0.recipient == chosen }.map(\.item).reversed(),
                             personName: chosen.flatMap(Recipient.init).map { directory.name(of: $0) },
                             personUser: chosen.flatMap { $0.hasPrefix("person:") ? Self.userName($0) : nil })
        return WebPage.render(.ok, "inbox", page)
    }

    var assetRoutes: RouteCollection<MusterRequestContext> {
        let routes = RouteCollection(context: MusterRequestContext.self)
        for (name, type) in [("muster.css", "text/css; charset=utf-8"), ("muster.js", "text/javascript; charset=utf-8")] {
            let bytes = Bundle.module.url(forResource: "Assets", withExtension: nil)
                .flatMap { try? Data(contentsOf: $0.appendingPathComponent(name)) } ?? Data()
            routes.get("assets/\(name)") { _, _ in
                Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=3600", HTTPField.Name("X-Content-Type-Options")!: "nosniff"],
                         body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
        return routes
    }
}

extension FileChannel: SignInMailer {
    public func sendSignInLink(person: String, name: String, to address: String, link: String) async throws {
        try appendSignInLink(person: person, address: address, link: link)
    }
}

extension EmailChannel: SignInMailer {
    public func sendSignInLink(person: String, name: String, to address: String, link: String) async throws {
        try await sendSignInLink(to: address, name: name, link: link)
    }
}
