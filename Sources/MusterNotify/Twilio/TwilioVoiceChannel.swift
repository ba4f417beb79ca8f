// Places a voice call through the Calls resource of a Twilio-compatible API: the call reads
// `message.speech` and asks the person to press 1, which Twilio posts to Muster's Gather action.
import Foundation
import MusterCore

/// `POST {base}/2010-04-01/Accounts/{AccountSid}/Calls.json` with `To`, `From` and inline `Twiml`
/// (no TwiML fetch round trip); Twilio answers 201 with the call's `sid`, the receipt's reference.
public struct TwilioVoiceChannel: Channel {
    private let request: TwilioRequest
    private let gatherAction: TwilioCallbackURL
    private let statusCallback: TwilioCallbackURL?

    /// `gatherAction` builds, per message, the URL Twilio posts the pressed digit to (see
    /// `callbackURL(publicBase:notificationID:token:)`); `statusCallback`, if given, the URL for the
    /// call's progress events.
    public init(http: HTTPDelivery, settings: TwilioSettings, gatherAction: @escaping TwilioCallbackURL,
                statusCallback: TwilioCallbackURL? = nil) {
        self.request = TwilioRequest(http: http, settings: settings)
        self.gatherAction = gatherAction
        self.statusCallback = statusCallback
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [.speech] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        guard !message.address.isEmpty else { throw DeliveryFailure(.badAddress, "no phone number") }
        var parameters: [(String, String)] = [
            ("To", message.address),
            ("From", request.settings.from),
            ("Twiml", Self.twiml(speech: message.speech, action: gatherAction(message))),
        ]
        if let statusCallback {
            // The call's end decides: answered by a person, or not (no answer, busy, failed, a
            // voicemail, which answering-machine detection tells apart and reports as AnsweredBy).
            parameters.append(("StatusCallback", statusCallback(message)))
            parameters.append(("StatusCallbackEvent", "completed"))
            parameters.append(("MachineDetection", "Enable"))
        }
        let sid = try await request.create("Calls", parameters: parameters)
        return DeliveryReceipt(reference: sid, awaitsStatus: statusCallback != nil)
    }

    /// Twilio refuses inline TwiML longer than 4,000 characters.
    static let twimlLimit = 4000
    static let prompt = "Press 1 to acknowledge."
    static let goodbye = "No key was pressed. Muster will keep escalating. Goodbye."

    /// `<Response><Gather numDigits="1" timeout="10" action="…" method="POST"><Say>speech Press 1 to
    /// acknowledge.</Say></Gather><Say>…</Say></Response>`, everything XML-escaped; the speech is
    /// shortened if the whole would pass Twilio's limit.
    public static func twiml(speech: String, action: String) -> String {
        func document(_ speech: String) -> String {
            "<Response><Gather numDigits=\"1\" timeout=\"10\" action=\"\(xmlEscaped(action))\" method=\"POST\">"
                + "<Say>\(xmlEscaped(speech)) \(prompt)</Say></Gather><Say>\(goodbye)</Say></Response>"
        }
        var spoken = speech
        var result = document(spoken)
        while result.count > twimlLimit, !spoken.isEmpty {
            spoken = String(spoken.dropLast(max(1, result.count - twimlLimit)))
            result = document(spoken)
        }
        return result
    }

    /// `{publicBase}/api/v1/integrations/twilio/status?n={notification id}`: where Twilio reports an
    /// SMS's delivery or a call's end (both channels), percent-encoded.
    public static func statusCallbackURL(publicBase: String, notificationID: String) -> String {
        var base = publicBase
        while base.hasSuffix("/") { base.removeLast() }
        return "\(base)/api/v1/integrations/twilio/status?n=\(TwilioForm.percentEncoded(notificationID))"
    }

    /// `{publicBase}/api/v1/integrations/twilio/voice?n={notification id}&t={token}`, percent-encoded;
    /// a ready-made builder for `gatherAction` (the token is the lead's, e.g. an HMAC of the id).
    public static func callbackURL(publicBase: String, notificationID: String, token: String) -> String {
        var base = publicBase
        while base.hasSuffix("/") { base.removeLast() }
        return "\(base)/api/v1/integrations/twilio/voice?n=\(TwilioForm.percentEncoded(notificationID))&t=\(TwilioForm.percentEncoded(token))"
    }

    static func xmlEscaped(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
