// muster.yaml is read as strictly as the playbooks: the channels section included.
import Foundation
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

    @Test("the audit section names a witness directory and tlog-witnesses; the retention section a policy and a period")
    func auditAndRetention() throws {
        let text = """
            audit:
              witness_directory: /var/lib/muster/checkpoints
              witnesses:
                - url: https://witness.example/
                  key: witness.example/w1+5a1f2c3d+BAAA
                - { url: "http://127.0.0.1:9100" }
            retention:
              policy: district-records-7y
              keep_closed_for: 7y
            """
        let (config, diagnostics) = ServiceConfigFile.parse(text, file: "muster.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics.map(\.description))")
        #expect(config?.audit.witnessDirectory == "/var/lib/muster/checkpoints")
        #expect(config?.audit.witnesses == [AuditConfig.Witness(url: "https://witness.example/", key: "witness.example/w1+5a1f2c3d+BAAA"),
                                            AuditConfig.Witness(url: "http://127.0.0.1:9100", key: nil)])
        let retention = try #require(config?.retention)
        #expect(retention == RetentionPolicy(name: "district-records-7y", years: 7))
        // Calendar years: seven years before 2033-03-01 is 2026-03-01, leap days or not.
        let now = try #require(ISO8601DateFormatter().date(from: "2033-03-01T12:00:00Z"))
        #expect(ISO8601DateFormatter().string(from: retention.closedBefore(now: now)) == "2026-03-01T12:00:00Z")
        #expect(RetentionPolicy(name: "p", days: 90).closedBefore(now: now) == now.addingTimeInterval(-90 * 86_400))
        #expect(RetentionPolicy.parsePeriod("26w").map { $0.days } == 182)
    }

    @Test("trusted_proxies takes IP addresses; anything else is an error at its line and column")
    func trustedProxies() throws {
        let good = ServiceConfigFile.parse("trusted_proxies: [10.0.0.5, \"fd00::1\"]\n", file: "muster.yaml")
        #expect(good.diagnostics.isEmpty)
        #expect(good.config?.trustedProxies == ["10.0.0.5", "fd00::1"])
        let bad = ServiceConfigFile.parse("trusted_proxies: [10.0.0.5, proxy.internal]\n", file: "muster.yaml")
        #expect(bad.diagnostics.map(\.description) == [
            "muster.yaml:1:29: error: trusted_proxies: 'proxy.internal' is not an IP address (write each proxy's address, e.g. 10.0.0.5)",
        ])
    }

    @Test("mistakes in the channels section are errors at their line and column, with a suggestion", arguments: [
        ("channels:\n  email: { hots: a, from: b@c.d }\n", "muster.yaml:2:12: error: unknown key 'hots'"),
        ("channels:\n  email: { host: a, from: b@c.d, tls: startls }\n", "muster.yaml:2:39: error: unknown channels.email.tls 'startls'; did you mean 'starttls'?"),
        ("channels:\n  twilio: { account_sid: AC1, from: '+1555', base_url: api.twilio.com }\n", "muster.yaml:2:56: error: channels.twilio.base_url must be an http(s) URL"),
        ("channels:\n  limits: { fax: 3 }\n", "muster.yaml:2:13: error: unknown key 'fax'"),
        ("channels:\n  limits: { sms: 0 }\n", "muster.yaml:2:18: error:"),
        ("public_url: muster.example\n", "muster.yaml:1:13: error: public_url must be an http(s) URL"),
        ("audit:\n  witnesses:\n    - url: witness.example\n", "muster.yaml:3:12: error: audit.witnesses[0].url must be an http(s) URL"),
        ("audit:\n  witnesess: []\n", "muster.yaml:2:3: error: unknown key 'witnesess' in audit; did you mean 'witnesses'?"),
        ("retention:\n  policy: p\n  keep_closed_for: 7 years\n", "muster.yaml:3:20: error: retention.keep_closed_for '7 years' is not a period"),
        ("retention:\n  keep_closed_for: 7y\n", "muster.yaml:2:3: error: missing required key 'policy' in retention"),
    ])
    func mistakes(text: String, expected: String) {
        let (config, diagnostics) = ServiceConfigFile.parse(text, file: "muster.yaml")
        #expect(config == nil)
        #expect(diagnostics.contains { $0.description.hasPrefix(expected) }, "\(diagnostics.map(\.description))")
    }
}
