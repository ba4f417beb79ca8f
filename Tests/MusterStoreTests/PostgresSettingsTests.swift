// Reading the database URL as libpq does, and saying when the connection could be read on the way.
import MusterStore
import Testing

@Suite("PostgreSQL connection settings")
struct PostgresSettingsTests {
    @Test("anything short of verify-full to another machine is warned about; this machine and verify-full are not")
    func transportWarnings() throws {
        let environment: [String: String] = [:]
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            let remote = try PostgresSettings(url: "postgres://muster@db.internal/muster?sslmode=\(mode)", environment: environment)
            #expect(remote.transportWarning?.contains("sslmode=\(mode)") == true, "\(mode)")
        }
        // No sslmode: libpq's default, prefer, which falls back to clear text.
        #expect(try PostgresSettings(url: "postgres://muster@db.internal/muster", environment: environment).transportWarning?.contains("prefer") == true)
        #expect(try PostgresSettings(url: "postgres://muster@db.internal/muster?sslmode=verify-full", environment: environment).transportWarning == nil)
        #expect(try PostgresSettings(url: "postgres://muster@127.0.0.1:5433/muster?sslmode=disable", environment: environment).transportWarning == nil)
        #expect(try PostgresSettings(url: "postgres://muster@localhost/muster", environment: environment).transportWarning == nil)
    }
}
