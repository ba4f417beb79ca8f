// muster.yaml is read as strictly as the playbooks: the channels section included.
@testable import MusterPlaybooks
import Testing

@Suite("Configuration file")
struct ConfigFileTests {
    @Test("a full channels section is read into its settings")
    func channels() throws {
        let text = """
            public_url: https://muster.riverbend.example
            channels:
              webhook: { secret: s3cret }
              email:
                host: smtp.riverbend.example
                port: 465
                tls: tls
                username: muster
                password: pw
                from: muster@riverbend.example
                ca_file: /etc/muster/ca.pem
              twilio: { base_url: "http://127.0.0.1:9000", account_sid: AC1, auth_token: tok, from: "+15555550100" }
              limits: { sms: 8, email: 2 }
            """
        let (config, diagnostics) = ServiceConfigFile.parse(text, file: "muster.yaml")
        #expect(diagnostics.isEmpty)
        let channels = try #require(config?.channels)
        #expect(config?.publicURL == "https://muster.riverbend.example")
        #expect(channels.webhookSecret == "s3cret")
        #expect(channels.email == ChannelsConfig.Email(host: "smtp.riverbend.example", port: 465, tls: "tls", username: "muster", password: "pw",
                                                       from: "muster@riverbend.example", caFile: "/etc/muster/ca.pem"))
        #expect(channels.twilio == ChannelsConfig.Twilio(baseURL: "http://127.0.0.1:9000", accountSID: "AC1", authToken: "tok", from: "+15555550100"))
        #expect(channels.limits == ["sms": 8, "email": 2])
    }

    @Test("mistakes in the channels section are errors at their line and column, with a suggestion", arguments: [
        ("channels:\n  email: { hots: a, from: b@c.d }\n", "muster.yaml:2:12: error: unknown key 'hots'"),
        ("channels:\n  email: { host: a, from: b@c.d, tls: startls }\n", "muster.yaml:2:39: error: unknown channels.email.tls 'startls'; did you mean 'starttls'?"),
        ("channels:\n  twilio: { account_sid: AC1, from: '+1555', base_url: api.twilio.com }\n", "muster.yaml:2:56: error: channels.twilio.base_url must be an http(s) URL"),
        ("channels:\n  limits: { fax: 3 }\n", "muster.yaml:2:13: error: unknown key 'fax'"),
        ("channels:\n  limits: { sms: 0 }\n", "muster.yaml:2:18: error:"),
        ("public_url: muster.example\n", "muster.yaml:1:13: error: public_url must be an http(s) URL"),
    ])
    func mistakes(text: String, expected: String) {
        let (config, diagnostics) = ServiceConfigFile.parse(text, file: "muster.yaml")
        #expect(config == nil)
        #expect(diagnostics.contains { $0.description.hasPrefix(expected) }, "\(diagnostics.map(\.description))")
    }
}
