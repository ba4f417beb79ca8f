// Sends a notification as an SMS through the Messages resource of a Twilio-compatible API. The text
// is `message.sms` only: the incident number, category, site, severity and a link.
import Foundation
import MusterCore

/// `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json` with `To`, `From`, `Body` and, when
/// given, `StatusCallback`; Twilio answers 201 with the message's `sid`, which becomes the receipt's
/// reference. An SMS has no free-form header, so the notification id reaches Muster back through
/// the status callback's URL (the lead's callback builder puts it in the query).
public struct TwilioSMSChannel: Channel {
    private let request: TwilioRequest
    private let statusCallback: TwilioCallbackURL?

    public init(http: HTTPDelivery, settings: TwilioSettings, statusCallback: TwilioCallbackURL? = nil) {
        self.request = TwilioRequest(http: http, settings: settings)
        self.statusCallback = statusCallback
    }

    public func forms(for notification: QueuedNotification) -> Set<MessageForm> { [.sms] }

    public func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        guard !message.address.isEmpty else { throw DeliveryFailure(.badAddress, "no phone number") }
        let from = request.settings.from
        var parameters: [(String, String)] = [
            ("To", message.address),
            (from.hasPrefix("MG") ? "MessagingServiceSid" : "From", from),
            ("Body", message.sms),
        ]
        if let statusCallback { parameters.append(("StatusCallback", statusCallback(message))) }
        let sid = try await request.create("Messages", parameters: parameters)
        // With a status callback the carrier's delivery report decides; until it comes, only sent.
        return DeliveryReceipt(reference: sid, awaitsStatus: statusCallback != nil)
    }
}
