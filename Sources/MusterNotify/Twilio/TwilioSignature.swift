// Twilio's request signature (the X-Twilio-Signature header on its webhooks), computed and checked
// exactly as Twilio documents it, for the inbound SMS reply and voice Gather endpoints.
import Crypto
import Foundation

/// `base64(HMAC-SHA1(authToken, url + name1 + value1 + name2 + value2 …))` with the POST parameters
/// sorted by name, the URL exactly as Twilio requested it (scheme, host, path and query), and names
/// and values not URL-encoded. See https://www.twilio.com/docs/usage/webhooks/webhooks-security.
public enum TwilioSignature {
    public static let header = "X-Twilio-Signature"

    public static func signature(url: String, parameters: [String: String], authToken: String) -> String {
        signature(url: url, parameters: parameters.map { ($0.key, $0.value) }, authToken: authToken)
    }

    /// Parameters as a list, for a form with repeated names.
    public static func signature(url: String, parameters: [(String, String)], authToken: String) -> String {
        Data(mac(url: url, parameters: parameters, authToken: authToken)).base64EncodedString()
    }

    public static func isValid(signature: String, url: String, parameters: [String: String], authToken: String) -> Bool {
        isValid(signature: signature, url: url, parameters: parameters.map { ($0.key, $0.value) }, authToken: authToken)
    }

    /// Constant-time comparison of the decoded header with the expected MAC.
    public static func isValid(signature: String, url: String, parameters: [(String, String)], authToken: String) -> Bool {
        guard !authToken.isEmpty, let given = Data(base64Encoded: signature), given.count == Insecure.SHA1.byteCount else {
            return false
        }
        return HMAC<Insecure.SHA1>.isValidAuthenticationCode(given, authenticating: signedBytes(url: url, parameters: parameters),
                                                           using: SymmetricKey(data: Array(authToken.utf8)))
    }

    private static func mac(url: String, parameters: [(String, String)], authToken: String) -> HMAC<Insecure.SHA1>.MAC {
        HMAC<Insecure.SHA1>.authenticationCode(for: signedBytes(url: url, parameters: parameters),
                                               using: SymmetricKey(data: Array(authToken.utf8)))
    }

    /// The URL, then each parameter's name and value with no separators, sorted by name (bytewise, as
    /// Twilio's libraries sort) and, for a repeated name, by value.
    static func signedBytes(url: String, parameters: [(String, String)]) -> [UInt8] {
        let sorted = parameters.map { (Array($0.0.utf8), Array($0.1.utf8)) }.sorted { left, right in
            left.0 != right.0 ? left.0.lexicographicallyPrecedes(right.0) : left.1.lexicographicallyPrecedes(right.1)
        }
        var bytes = Array(url.utf8)
        for (name, value) in sorted {
            bytes += name
            bytes += value
        }
        return bytes
    }
}
