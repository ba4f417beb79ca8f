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

    @Test("a libpq host list and target_session_attrs are read as libpq reads them; mistakes say where")
    func hostLists() throws {
        let environment: [String: String] = [:]
        let listed = try PostgresSettings(url: "postgres://muster:s3cret@db1.internal:5432,db2.internal:5433,[fd00::3]/muster?sslmode=verify-full&target_session_attrs=read-write",
                                          environment: environment)
        #expect(listed.hosts.map(\.description) == ["db1.internal:5432", "db2.internal:5433", "[fd00::3]:5432"])
        #expect(listed.host == "db1.internal" && listed.port == 5432)
        #expect(listed.user == "muster" && listed.password == "s3cret" && listed.database == "muster" && listed.sslMode == .verifyFull)
        #expect(listed.targetSession == .readWrite)
        #expect(listed.hostDescription == "db1.internal:5432,db2.internal:5433,[fd00::3]:5432")
        let single = try PostgresSettings(url: "postgres://muster@db.internal/muster", environment: environment)
        #expect(single.hosts.count == 1 && single.targetSession == .any)
        #expect(try PostgresSettings(url: "postgres://muster@a,b/muster?target_session_attrs=primary", environment: environment).targetSession == .primary)
        for bad in ["postgres://muster@a:1,b:99999/muster", "postgres://muster@a:1,,b/muster", "postgres://muster@a,b/muster?target_session_attrs=standby"] {
            #expect(throws: PostgresSettings.Invalid.self, "\(bad)") { try PostgresSettings(url: bad, environment: environment) }
        }
    }
}
