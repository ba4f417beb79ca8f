// The account and endpoint for SMS and voice through a Twilio-compatible REST API, and the request
// both channels share: form-encoded POST with HTTP Basic auth, Twilio's error JSON read into reasons.
import Foundation
import MusterCore
import NIOHTTP1

/// Where and as whom to call the provider. `baseURL` is configurable so that a Twilio-compatible
/// provider (or a local test server) can stand in for `https://api.twilio.com`.
public struct TwilioSettings: Sendable, Hashable {
    public var baseURL: String
    public var accountSID: String
    public var authToken: String
    /// The sending number (E.164) or, for SMS, a Messaging Service SID starting with "MG".
    public var from: String

    public init(baseURL: String = "https://api.twilio.com", accountSID: String, authToken: String, from: String) {
        self.baseURL = baseURL
        self.accountSID = accountSID
        self.authToken = authToken
        self.from = from
    }

    /// `{base}/2010-04-01/Accounts/{AccountSid}/{resource}.json`
    func resourceURL(_ resource: String) -> String {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        return "\(base)/2010-04-01/Accounts/\(TwilioForm.percentEncoded(accountSID))/\(resource).json"
    }
}

/// Builds the per-message URL Twilio calls back (a status callback, the voice `Gather` action).
/// The lead's HTTP layer serves it; the notification id travels in its query.
public typealias TwilioCallbackURL = @Sendable (Message) -> String

/// The request both Twilio channels make.
struct TwilioRequest: Sendable {
    let http: HTTPDelivery
    let settings: TwilioSettings

    /// Twilio error codes that mean the recipient's number cannot be used, so retrying is pointless and
    /// the next contact point should be tried: 21211 invalid 'To' number, 21614 'To' is not a mobile
    /// number (SMS), 21610 the recipient has replied STOP (unsubscribed).
    static let badAddressCodes: Set<Int> = [21211, 21614, 21610]

    /// POSTs `parameters` to the resource and returns the created resource's `sid`.
    func create(_ resource: String, parameters: [(String, String)]) async throws(DeliveryFailure) -> String? {
        guard !settings.accountSID.isEmpty, !settings.authToken.isEmpty, !settings.from.isEmpty else {
            throw DeliveryFailure(.notConfigured, "the Twilio account SID, auth token and sending number must be set")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        headers.add(name: "Accept", value: "application/json")
        headers.add(name: "User-Agent", value: "Muster")
        let credentials = Data("\(settings.accountSID):\(settings.authToken)".utf8).base64EncodedString()
        headers.add(name: "Authorization", value: "Basic \(credentials)")
        let body = Array(TwilioForm.encode(parameters).utf8)
        let response = try await http.post(settings.resourceURL(resource), headers: headers, body: body)
        if (200..<300).contains(response.status.code) {
            return (try? JSONDecoder().decode(Created.self, from: Data(response.body)))?.sid
        }
        // Twilio explains refusals in JSON: {"code": 21211, "message": "...", "more_info": "...", "status": 400}.
        if let error = try? JSONDecoder().decode(APIError.self, from: Data(response.body)), let code = error.code {
            let detail = "Twilio \(code) (HTTP \(response.status.code)): \(error.message ?? "")"
            if Self.badAddressCodes.contains(code) { throw DeliveryFailure(.badAddress, detail) }
            if var failure = DeliveryFailure(httpStatus: response.status, headers: response.headers) {
                failure.detail = detail + (failure.reason == .rateLimited ? retryAfterNote(response.headers) : "")
                throw failure
            }
        }
        try response.check()
        return nil
    }

    private func retryAfterNote(_ headers: HTTPHeaders) -> String {
        headers.first(name: "Retry-After").map { " (Retry-After: \($0))" } ?? ""
    }

    private struct Created: Decodable { var sid: String? }
    private struct APIError: Decodable {
        var code: Int?
        var message: String?
    }
}

/// `application/x-www-form-urlencoded`, percent-encoding everything but RFC 3986's unreserved
/// characters: a `+` in an E.164 number must arrive as `+`, not as a space.
enum TwilioForm {
    static func encode(_ parameters: [(String, String)]) -> String {
        parameters.map { "\(percentEncoded($0.0))=\(percentEncoded($0.1))" }.joined(separator: "&")
    }

    static let unreserved: CharacterSet = {
        var set = CharacterSet()
        set.insert(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return set
    }()

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }
}
