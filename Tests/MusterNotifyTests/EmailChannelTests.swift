// The email channel against a real SMTP server (Debian's python3-aiosmtpd through Support/smtp_sink.py,
// one per test on a free port of 127.0.0.1), checking the bytes that arrived; and the MIME encoding alone.
// Without aiosmtpd these tests fail rather than skip: scripts/test installs it.
import Foundation
import MusterCore
@testable import MusterNotify
import NIOCore
import Testing

@Suite("EmailChannel over SMTP", .serialized)
struct EmailChannelTests {
    @Test func plainSendArrivesAsMultipartWithTheNotificationID() async throws {
        let sink = try await SMTPSink.start()
        defer { sink.stop() }
        let message = makeMessage(to: "ann@school.example",
                                  subject: "Incident 12: high severity at Lincoln High",
                                  text: "Incident 12 needs an owner.\nOpen: https://muster.example/i/12\n",
                                  html: "<p>Incident 12 needs an owner.</p>\n<p><a href=\"https://muster.example/i/12\">Open</a></p>")
        let receipt = try await EmailChannel(settings: settings(sink, security: .none)).deliver(message)

        let mail = try #require(try sink.messages().first)
        #expect(try sink.messages().count == 1)
        #expect(mail.mailFrom == "muster@district.example")
        #expect(mail.rcptTos == ["ann@school.example"])
        #expect(mail.tls == false)
        #expect(mail.extendedSmtp == true)
        let parsed = try #require(mail.parsed, "the server could not parse the message: \(mail.parseError ?? "")")
        #expect(parsed.defects.isEmpty)
        #expect(parsed.contentType == "multipart/alternative")
        #expect(parsed.header("Subject") == "Incident 12: high severity at Lincoln High")
        #expect(parsed.header("From") == "Muster <muster@district.example>")
        #expect(parsed.header("To") == "ann@school.example")
        #expect(parsed.header("X-Muster-Notification-Id") == message.id)
        let messageID = try #require(parsed.header("Message-ID"))
        #expect(messageID == receipt.reference)
        #expect(messageID.hasSuffix("@district.example>"))
        #expect(MIMEMessage.notificationID(fromMessageID: messageID) == message.id)

        #expect(parsed.parts.map(\.contentType) == ["text/plain", "text/html"])
        #expect(parsed.parts.allSatisfy { $0.charset == "utf-8" && $0.transferEncoding == "quoted-printable" })
        #expect(parsed.parts.first.map { lines($0.text) } == lines(message.text))
        #expect(parsed.parts.last.map { lines($0.text) } == lines(message.html))

        let raw = try mail.raw()
        #expect(!raw.enumerated().contains { $0.element == 10 && ($0.offset == 0 || raw[$0.offset - 1] != 13) },
                "every line ends in CRLF")
        #expect(raw.split(separator: 10).allSatisfy { $0.count <= 1000 }, "no line is longer than 998 octets")
    }

    @Test func nonASCIIContentArrivesDecoded() async throws {
        let sink = try await SMTPSink.start()
        defer { sink.stop() }
        let text = "Élève en détresse — vérifiez l’incident 7. 緊急の対応が必要です。\n"
            + String(repeating: "Une très longue ligne sans retour, ", count: 12) + "fin."
        let message = makeMessage(to: "zoe@school.example", subject: "Incident 7 : gravité élevée à l’école Curie ✅",
                                  text: text, html: "<p>\(text)</p>")
        var smtp = settings(sink, security: .none)
        smtp.fromName = "Équipe de crise du district"
        _ = try await EmailChannel(settings: smtp).deliver(message)

        let parsed = try #require(try sink.messages().first?.parsed)
        #expect(parsed.defects.isEmpty)
        #expect(parsed.header("From") == "Équipe de crise du district <muster@district.example>")
        #expect(parsed.header("Subject") == "Incident 7 : gravité élevée à l’école Curie ✅")
        #expect(parsed.parts.first.map { lines($0.text) } == lines(text))
        #expect(parsed.parts.last.map { lines($0.text) } == lines("<p>\(text)</p>"))
        let raw = String(decoding: try #require(try sink.messages().first).raw(), as: UTF8.self)
        #expect(raw.contains("Subject: =?utf-8?B?"))
        #expect(raw.unicodeScalars.allSatisfy { $0.isASCII }, "the message on the wire is 7-bit")
    }

    @Test func aLineOfDotsArrivesIntact() async throws {
        let sink = try await SMTPSink.start()
        defer { sink.stop() }
        // A lone "." would end DATA early without dot-stuffing; ".." would lose a dot.
        let text = "before\n.\n..\n.hidden line\nafter"
        let message = makeMessage(to: "ann@school.example", text: text, html: "<p>x</p>\n.\n<p>y</p>")
        _ = try await EmailChannel(settings: settings(sink, security: .none)).deliver(message)

        let mail = try #require(try sink.messages().first)
        let parsed = try #require(mail.parsed)
        #expect(parsed.parts.first.map { lines($0.text) } == lines(text))
        #expect(parsed.parts.last.map { lines($0.text) } == lines("<p>x</p>\n.\n<p>y</p>"))
        #expect(String(decoding: try mail.raw(), as: UTF8.self).contains("\r\nbefore\r\n.\r\n..\r\n.hidden line\r\nafter\r\n"))
    }

    @Test func startTLSWithAPrivateCADelivers() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--require-starttls"])
        defer { sink.stop() }
        let channel = EmailChannel(settings: settings(sink, security: .startTLSRequired, trust: [.pemFile(pki.caCert)]))
        _ = try await channel.deliver(makeMessage(to: "ann@school.example"))

        let mail = try #require(try sink.messages().first)
        #expect(mail.tls == true)
        #expect(mail.parsed?.parts.count == 2)
    }

    @Test func aHostNameIsSentAsSNIAndChecked() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--implicit-tls"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .implicitTLS, trust: [.pemFile(pki.caCert)])
        smtp.host = "localhost"  // the certificate names localhost and 127.0.0.1, nothing else
        _ = try await EmailChannel(settings: smtp).deliver(makeMessage(to: "ann@school.example"))
        #expect(try sink.messages().count == 1)
    }

    @Test func aBadHELONameIsAConfigurationProblem() {
        var smtp = SMTPSettings(host: "127.0.0.1", fromAddress: "m@d.example")
        smtp.heloName = "muster\r\nRSET"
        #expect(EmailChannel(settings: smtp).configurationProblem?.contains("HELO") == true)
        smtp.heloName = "muster.district.example"
        #expect(EmailChannel(settings: smtp).configurationProblem == nil)
    }

    @Test func startTLSIfOfferedUsesTLSWhenOffered() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey])
        defer { sink.stop() }
        let caPEM = try String(contentsOfFile: pki.caCert, encoding: .utf8)
        _ = try await EmailChannel(settings: settings(sink, security: .startTLSIfOffered, trust: [.pem(caPEM)]))
            .deliver(makeMessage(to: "ann@school.example"))
        #expect(try sink.messages().first?.tls == true)
    }

    @Test func implicitTLSDelivers() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--implicit-tls"])
        defer { sink.stop() }
        _ = try await EmailChannel(settings: settings(sink, security: .implicitTLS, trust: [.pemFile(pki.caCert)]))
            .deliver(makeMessage(to: "ann@school.example"))
        #expect(try sink.messages().first?.tls == true)
    }

    @Test func authPlainOverStartTLS() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--auth", "ann:s3cret pass"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .startTLSRequired, trust: [.pemFile(pki.caCert)])
        smtp.username = "ann"
        smtp.password = "s3cret pass"
        _ = try await EmailChannel(settings: smtp).deliver(makeMessage(to: "ann@school.example"))

        let mail = try #require(try sink.messages().first)
        #expect(mail.tls == true)
        #expect(mail.authenticated == true)
        #expect(mail.auth == "PLAIN:ann")
    }

    @Test func authLoginWhenPlainIsNotOffered() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--auth", "ann:s3cret",
                                 "--auth-exclude", "PLAIN"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .startTLSIfOffered, trust: [.pemFile(pki.caCert)])
        smtp.username = "ann"
        smtp.password = "s3cret"
        _ = try await EmailChannel(settings: smtp).deliver(makeMessage(to: "ann@school.example"))
        #expect(try sink.messages().first?.auth == "LOGIN:ann")
    }

    @Test func aWrongPasswordIsAFinalClientError() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--auth", "ann:s3cret"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .startTLSRequired, trust: [.pemFile(pki.caCert)])
        smtp.username = "ann"
        smtp.password = "wrong"
        let failure = await deliveryFailure(EmailChannel(settings: smtp), makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .clientError)
        #expect(failure?.retryable == false)
        #expect(failure?.detail.contains("AUTH") == true)
        #expect(failure?.detail.contains("535") == true)
        #expect(failure?.detail.contains("wrong") == false, "the password never appears in a failure")
        #expect(try sink.messages().isEmpty)
    }

    @Test func credentialsAreNeverSentInPlainText() async throws {
        // This server offers AUTH without TLS; the client must refuse rather than log in.
        let sink = try await SMTPSink.start(["--auth", "ann:s3cret"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .startTLSIfOffered)
        smtp.username = "ann"
        smtp.password = "s3cret"
        let failure = await deliveryFailure(EmailChannel(settings: smtp), makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .clientError)
        #expect(failure?.detail.contains("plain text") == true)
        #expect(try sink.messages().isEmpty)

        smtp.allowsCredentialsOverPlainText = true
        _ = try await EmailChannel(settings: smtp).deliver(makeMessage(to: "ann@school.example"))
        #expect(try sink.messages().first?.auth == "PLAIN:ann")
    }

    @Test func anUntrustedCertificateIsUnreachableOverTLS() async throws {
        let pki = try testPKI.get()
        let sink = try await SMTPSink.start(["--tls-cert", pki.strangerCert, "--tls-key", pki.strangerKey])
        defer { sink.stop() }
        // The client trusts the test CA, but this server's certificate comes from another one.
        let failure = await deliveryFailure(
            EmailChannel(settings: settings(sink, security: .startTLSIfOffered, trust: [.pemFile(pki.caCert)])),
            makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .unreachable)
        #expect(failure?.detail.contains("TLS") == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func startTLSRequiredButNotOfferedSendsNothing() async throws {
        let sink = try await SMTPSink.start()
        defer { sink.stop() }
        let failure = await deliveryFailure(EmailChannel(settings: settings(sink, security: .startTLSRequired)),
                                            makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .unreachable)
        #expect(failure?.detail.contains("STARTTLS") == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func aServerThatIsDownIsUnreachable() async throws {
        let sink = try await SMTPSink.start()
        sink.stop()  // its port is now closed
        let failure = await deliveryFailure(EmailChannel(settings: settings(sink, security: .none)),
                                            makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .unreachable)
        #expect(failure?.retryable == true)
        #expect(failure?.detail.contains("connect") == true)
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let sink = try await SMTPSink.start(["--silent"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .startTLSIfOffered)
        smtp.commandTimeout = .seconds(1)
        let started = ContinuousClock.now
        let failure = await deliveryFailure(EmailChannel(settings: smtp), makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .timeout)
        #expect(failure?.retryable == true)
        #expect(failure?.detail.contains("greeting") == true)
        #expect(ContinuousClock.now - started < .seconds(30), "the timeout fired instead of waiting on")
    }

    @Test func aServerThatStallsAfterTheMessageTimesOut() async throws {
        let sink = try await SMTPSink.start(["--stall-data"])
        defer { sink.stop() }
        var smtp = settings(sink, security: .none)
        smtp.commandTimeout = .seconds(1)
        let failure = await deliveryFailure(EmailChannel(settings: smtp), makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .timeout)
        #expect(failure?.detail.contains("end of DATA") == true)
    }

    @Test func a451OnRecipientIsARetryableServerError() async throws {
        let sink = try await SMTPSink.start(["--rcpt-reply", "451 4.3.0 Mailbox temporarily unavailable"])
        defer { sink.stop() }
        let failure = await deliveryFailure(EmailChannel(settings: settings(sink, security: .none)),
                                            makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .serverError)
        #expect(failure?.retryable == true)
        #expect(failure?.detail.contains("RCPT TO") == true)
        #expect(failure?.detail.contains("451 4.3.0 Mailbox temporarily unavailable") == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func a550OnRecipientIsABadAddress() async throws {
        let sink = try await SMTPSink.start(["--rcpt-reply", "550 5.1.1 No such user here"])
        defer { sink.stop() }
        let failure = await deliveryFailure(EmailChannel(settings: settings(sink, security: .none)),
                                            makeMessage(to: "nobody@school.example"))
        #expect(failure?.reason == .badAddress)
        #expect(failure?.retryable == false)
        #expect(failure?.detail.contains("550 5.1.1 No such user here") == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func aServerWithoutEHLOGetsHELO() async throws {
        let sink = try await SMTPSink.start(["--no-ehlo"])
        defer { sink.stop() }
        _ = try await EmailChannel(settings: settings(sink, security: .startTLSIfOffered))
            .deliver(makeMessage(to: "ann@school.example"))
        let mail = try #require(try sink.messages().first)
        #expect(mail.extendedSmtp == false)
        #expect(mail.helo == "muster.test")
    }

    @Test func anAddressThatCannotBeSentIsRefusedBeforeConnecting() async throws {
        let sink = try await SMTPSink.start()
        defer { sink.stop() }
        let channel = EmailChannel(settings: settings(sink, security: .none))
        for address in ["ann@school.example>\r\nRCPT TO:<eve@evil.example", "no-at-sign", "ann@", "a b@school.example"] {
            let failure = await deliveryFailure(channel, makeMessage(to: address))
            #expect(failure?.reason == .badAddress, "\(address)")
        }
        #expect(try sink.messages().isEmpty)
    }
}

@Suite("EmailChannel MIME and wire encoding")
struct EmailChannelMIMETests {
    private func mime(subject: String = "Incident 3", text: String = "text", html: String = "<p>html</p>",
                      id: String = "inc-1/c0/page/s2r1/person:ann/email") -> MIMEMessage {
        MIMEMessage(fromAddress: "muster@district.example", fromName: "Muster", to: "ann@school.example",
                    subject: subject, text: text, html: html, notificationID: id, messageIDDomain: "district.example",
                    date: Date(timeIntervalSince1970: 1_796_284_531), boundary: "=_muster_test")
    }

    @Test func renderingIsDeterministicAndWellFormed() {
        let message = mime()
        #expect(message.rendered == mime().rendered)
        let lines = message.rendered.components(separatedBy: "\r\n")
        #expect(lines.contains("Date: Thu, 03 Dec 2026 07:55:31 +0000"))
        #expect(lines.contains("Message-ID: <inc-1/c0/page/s2r1/person%3Aann/email@district.example>"))
        #expect(lines.contains("X-Muster-Notification-Id: inc-1/c0/page/s2r1/person:ann/email"))
        #expect(lines.contains("Content-Type: multipart/alternative; boundary=\"=_muster_test\""))
        #expect(lines.contains("MIME-Version: 1.0"))
        #expect(lines.filter { $0 == "--=_muster_test" }.count == 2)
        #expect(lines.last(where: { !$0.isEmpty }) == "--=_muster_test--")
        #expect(!message.rendered.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
    }

    @Test func theMessageIDCarriesAnyIDReversibly() {
        for id in ["inc-1/c0/page/s2r1/person:ann/email", "a.b..c@d <e> \"f\" %41", "élève/Ω", "x"] {
            let messageID = mime(id: id).messageID
            let local = messageID.dropFirst().prefix { $0 != "@" }
            let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
            #expect(local.allSatisfy { atext.contains($0) }, "\(messageID) is a dot-atom without dots")
            #expect(MIMEMessage.notificationID(fromMessageID: messageID) == id)
        }
        #expect(mime(id: "a").messageID != mime(id: "b").messageID)
    }

    @Test func quotedPrintableEncodesNonASCIIEqualsAndTrailingSpace() {
        #expect(MIMEMessage.quotedPrintable("café = 1 ") == "caf=C3=A9 =3D 1=20")
        #expect(MIMEMessage.quotedPrintable("a\tb\t") == "a\tb=09")
        #expect(MIMEMessage.quotedPrintable("one\ntwo\r\nthree\rfour") == "one\r\ntwo\r\nthree\r\nfour")
        #expect(MIMEMessage.quotedPrintable(".leading dot") == ".leading dot")
    }

    @Test func quotedPrintableSoftBreaksLongLinesWithoutSplittingCharacters() throws {
        let long = String(repeating: "é", count: 30) + String(repeating: "word ", count: 40) + "end"
        let encoded = MIMEMessage.quotedPrintable(long)
        let lines = encoded.components(separatedBy: "\r\n")
        #expect(lines.count > 3)
        #expect(lines.allSatisfy { $0.utf8.count <= 76 })
        #expect(lines.dropLast().allSatisfy { $0.hasSuffix("=") })
        // Each line decodes to whole UTF-8 characters: no character straddles a soft break.
        for line in lines {
            let bytes = try #require(decodeQuotedPrintable(line.hasSuffix("=") ? String(line.dropLast()) : line))
            #expect(String(validating: bytes, as: UTF8.self) != nil, "\(line)")
        }
        #expect(decodeQuotedPrintable(encoded).flatMap { String(validating: $0, as: UTF8.self) } == long)
    }

    @Test func aNonASCIISubjectBecomesEncodedWordsOfLegalLength() throws {
        let subject = "Incident 7 : gravité élevée à l’école Marie-Curie de Saint-Étienne-du-Rouvray ✅ 緊急"
        let field = MIMEMessage.field("Subject", subject)
        let lines = field.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 76 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" =?utf-8?B?") && $0.hasSuffix("?=") })
        let words = field.dropFirst("Subject: ".count).components(separatedBy: "\r\n ")
        var decoded: [UInt8] = []
        for word in words {
            #expect(word.hasPrefix("=?utf-8?B?") && word.hasSuffix("?=") && word.utf8.count <= 75)
            let base64 = String(word.dropFirst("=?utf-8?B?".count).dropLast(2))
            let bytes = try #require(Data(base64Encoded: base64))
            #expect(String(validating: Array(bytes), as: UTF8.self) != nil, "each word holds whole characters")
            decoded += bytes
        }
        #expect(String(validating: decoded, as: UTF8.self) == subject)
    }

    @Test func anASCIISubjectStaysReadableAndCannotInjectHeaders() {
        #expect(MIMEMessage.field("Subject", "Incident 3: moderate") == "Subject: Incident 3: moderate")
        let injected = mime(subject: "Hello\r\nBcc: eve@evil.example").rendered
        #expect(!injected.contains("\r\nBcc:"))
        #expect(injected.contains("Subject: Hello  Bcc: eve@evil.example"))
        let long = MIMEMessage.field("Subject", String(repeating: "incident ", count: 20))
        #expect(long.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 78 })
        #expect(long.replacingOccurrences(of: "\r\n", with: "") == "Subject: " + String(repeating: "incident ", count: 20))
        #expect(MIMEMessage.field("Subject", "looks =?utf-8?B?QQ==?= encoded").contains("=?utf-8?B?"),
                "text that looks like an encoded-word is encoded so it reads back as itself")
    }

    @Test func displayNamesAreQuotedOrEncodedAsNeeded() {
        #expect(MIMEMessage.mailbox(name: "Muster", address: "m@d.example") == "Muster <m@d.example>")
        #expect(MIMEMessage.mailbox(name: "Muster, District \"7\"", address: "m@d.example")
                == "\"Muster, District \\\"7\\\"\" <m@d.example>")
        #expect(MIMEMessage.mailbox(name: "Équipe de crise", address: "m@d.example").hasPrefix("=?utf-8?B?"))
        #expect(MIMEMessage.mailbox(name: nil, address: "m@d.example") == "m@d.example")
    }

    @Test func theDataPayloadStuffsDotsAndEndsWithTheTerminator() {
        let payload = SMTPClient.dataPayload(Array("a\n.\n..b\r\n.c\rd".utf8))
        #expect(String(buffer: payload) == "a\r\n..\r\n...b\r\n..c\r\nd\r\n.\r\n")
        #expect(String(buffer: SMTPClient.dataPayload(Array("x\r\n".utf8))) == "x\r\n.\r\n")
    }

    @Test func smtpOutcomesMapToDeliveryFailures() {
        func reason(_ kind: SMTPError.Kind, _ step: SMTPStep) -> DeliveryFailure.Reason {
            EmailChannel.failure(for: SMTPError(kind, step, "detail"), host: "relay").reason
        }
        func reply(_ code: Int) -> SMTPError.Kind { .rejected(SMTPReply(code: code, lines: ["text"])) }
        #expect(reason(reply(421), .greeting) == .serverError)
        #expect(reason(reply(452), .rcptTo) == .serverError)
        #expect(reason(reply(553), .rcptTo) == .badAddress)
        #expect(reason(reply(551), .rcptTo) == .badAddress)
        #expect(reason(reply(550), .mailFrom) == .clientError)
        #expect(reason(reply(552), .rcptTo) == .clientError)
        #expect(reason(reply(535), .auth) == .clientError)
        #expect(reason(reply(554), .message) == .clientError)
        #expect(reason(.tls, .tlsHandshake) == .unreachable)
        #expect(reason(.connectionLost, .data) == .serverError)
        #expect(EmailChannel.failure(for: SMTPError(reply(550), .rcptTo, "550 no"), host: "relay").detail == "SMTP relay, RCPT TO: 550 no")
    }

    @Test func badTrustRootsAreAConfigurationProblem() async {
        let channel = EmailChannel(settings: SMTPSettings(host: "127.0.0.1", port: 1, fromAddress: "m@d.example",
                                                          additionalTrustRoots: [.pem("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")]))
        #expect(channel.configurationProblem != nil)
        let failure = await deliveryFailure(channel, makeMessage(to: "ann@school.example"))
        #expect(failure?.reason == .notConfigured)
    }
}

// MARK: - Helpers

private func makeMessage(to address: String, subject: String = "Incident 12: high severity at Lincoln High",
                         text: String = "Incident 12 needs an owner.", html: String = "<p>Incident 12 needs an owner.</p>") -> Message {
    let id = NotificationID(incident: IncidentID("inc-1"), cycle: 0, kind: .page, qualifier: .step(1, round: 1),
                            recipient: .person(PersonID("ann")), channel: .email)
    let notification = QueuedNotification(id: id, incidentNumber: 12, type: IncidentTypeID("suicide-risk"), severity: .high,
                                          site: SiteID("lincoln-high"), address: address)
    let facts = MessageFacts(number: 12, category: "Student at risk of suicide or self-harm", type: "suicide-risk",
                             site: "Lincoln High", siteID: "lincoln-high", severity: "high", kind: "page", step: 2, task: nil)
    return Message(notification: notification, facts: facts, incidentURL: "https://muster.example/i/12", ackURL: nil,
                   subject: subject, text: text, html: html, sms: "", speech: "")
}

private func settings(_ sink: SMTPSink, security: SMTPSettings.Security,
                      trust: [SMTPSettings.TrustRoot] = []) -> SMTPSettings {
    SMTPSettings(host: "127.0.0.1", port: sink.port, security: security, fromAddress: "muster@district.example",
                 heloName: "muster.test", messageIDDomain: "district.example", connectTimeout: .seconds(5),
                 commandTimeout: .seconds(10), additionalTrustRoots: trust)
}

/// The failure a delivery ends in, or nil (and a recorded issue) when it succeeded.
private func deliveryFailure(_ channel: EmailChannel, _ message: Message) async -> DeliveryFailure? {
    do throws(DeliveryFailure) {
        let receipt = try await channel.deliver(message)
        Issue.record("expected a failure, got a receipt \(receipt)")
        return nil
    } catch {
        return error
    }
}

/// Text compared line by line: CRLF and LF are the same line break, and a final break is not a line.
private func lines(_ text: String) -> [String] {
    var result = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
    if result.last == "" { result.removeLast() }
    return result
}

/// An independent quoted-printable decoder (soft breaks and =XX), to check the encoder against.
private func decodeQuotedPrintable(_ text: String) -> [UInt8]? {
    var out: [UInt8] = []
    let bytes = Array(text.replacingOccurrences(of: "=\r\n", with: "").utf8)
    var index = 0
    while index < bytes.count {
        if bytes[index] == UInt8(ascii: "=") {
            guard index + 2 < bytes.count,
                  let value = UInt8(String(decoding: bytes[index + 1...index + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(value)
            index += 3
        } else {
            out.append(bytes[index])
            index += 1
        }
    }
    return out
}

/// A test CA with a server certificate for 127.0.0.1 and localhost, and a second, untrusted CA's
/// certificate for the same names. Made once per test run with the openssl command.
private struct TestPKI: Sendable {
    let directory: String
    var caCert: String { directory + "/ca.pem" }
    var serverCert: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }
    var strangerCert: String { directory + "/stranger.pem" }
    var strangerKey: String { directory + "/stranger.key" }

    static func make() throws -> TestPKI {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-smtp-pki-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        let extensions = directory + "/server.ext"
        try Data("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n".utf8)
            .write(to: URL(fileURLWithPath: extensions))
        for ca in ["ca", "stranger-ca"] {
            try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", "\(directory)/\(ca).key", "-out", "\(directory)/\(ca).pem", "-days", "2",
                         "-subj", "/CN=Muster test \(ca)", "-addext", "basicConstraints=critical,CA:TRUE",
                         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        }
        for (name, ca) in [("server", "ca"), ("stranger", "stranger-ca")] {
            try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                         "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr", "-subj", "/CN=localhost"])
            try openssl(["x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", "\(directory)/\(ca).pem",
                         "-CAkey", "\(directory)/\(ca).key", "-CAcreateserial", "-out", "\(directory)/\(name).pem",
                         "-days", "2", "-extfile", extensions])
        }
        return pki
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SinkError("openssl \(arguments.first ?? "") failed: \(String(decoding: output, as: UTF8.self))")
        }
    }
}

/// Made on first use, shared by every test (a global is initialised once, thread-safely).
private let testPKI = Result { try TestPKI.make() }

struct SinkError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One running Support/smtp_sink.py: its port, and the messages it has accepted so far.
final class SMTPSink: @unchecked Sendable {
    let port: Int
    let directory: URL
    private let process: Process
    private let stdin: Pipe
    private var stopped = false

    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Support/smtp_sink.py").path

    /// Starts a sink on a thread of its own: starting blocks until Python prints the port, which must
    /// not hold one of the few threads that run every test's async work.
    static func start(_ options: [String] = []) async throws -> SMTPSink {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try SMTPSink(options) })
            }
        }
    }

    private init(_ options: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("muster-smtp-sink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [Self.script, "--dir", directory.path] + options
        stdin = Pipe()
        let stdout = Pipe()
        let log = directory.appendingPathComponent("sink.log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else { throw SinkError("cannot create \(log.path)") }
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()

        // The first line is the port; end of file before it means the sink could not start.
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.waitUntilExit()
            let errors = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw SinkError("the SMTP test server did not start (Debian's python3-aiosmtpd is needed; scripts/test "
                            + "installs it): \(errors)")
        }
        self.port = port
    }

    func messages() throws -> [ReceivedMail] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasPrefix("message-") && $0.hasSuffix(".json") }.sorted()
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try names.map { try decoder.decode(ReceivedMail.self, from: Data(contentsOf: directory.appendingPathComponent($0))) }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        try? stdin.fileHandleForWriting.close()
        // SIGKILL, not SIGTERM: a child inherits the signals the test process blocks (ServiceLifecycle
        // blocks SIGTERM in the suites that run a service), so SIGTERM would stay pending and the wait never end.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// What the sink wrote for one message.
struct ReceivedMail: Decodable {
    var mailFrom: String
    var rcptTos: [String]
    var tls: Bool
    var authenticated: Bool
    var auth: String?
    var helo: String?
    var extendedSmtp: Bool
    var rawBase64: String
    var parsed: ParsedMail?
    var parseError: String?

    func raw() throws -> [UInt8] {
        guard let data = Data(base64Encoded: rawBase64) else { throw SinkError("the sink's raw bytes are not base64") }
        return Array(data)
    }
}

struct ParsedMail: Decodable {
    struct Part: Decodable {
        var contentType: String
        var charset: String?
        var transferEncoding: String
        var text: String
    }

    var headers: [[String]]
    var contentType: String
    var parts: [Part]
    var defects: [String]

    func header(_ name: String) -> String? {
        headers.first { $0.first?.lowercased() == name.lowercased() }?.last
    }
}
