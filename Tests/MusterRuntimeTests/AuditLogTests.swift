// The audit log as a transparency log, on both stores: the sequencer's tree and checkpoints,
// `verify` naming tampering (triggers bypassed, tails truncated, logs rewritten and re-signed),
// exports checked offline by the Swift and the Python verifiers, sealed text that never reaches the
// database files in clear, and retention purges that leave every proof verifying.
import AsyncHTTPClient
import Crypto
import Foundation
import GRDB
import MusterAudit
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

/// A migrated store on a database of its own, with raw SQL and the files its data lives in.
struct AuditDatabase {
    let backend: Backend
    let store: any Store
    let sqlitePath: String?
    let postgresURL: String?

    static func make(_ backend: Backend, masterKey: MasterKey = MasterKey.generate()) async throws -> AuditDatabase {
        switch backend {
        case .sqlite:
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-audit-\(UUID().uuidString).sqlite").path
            let store = try SQLiteStore(path: path, masterKey: masterKey)
            try await store.migrate()
            return AuditDatabase(backend: backend, store: store, sqlitePath: path, postgresURL: nil)
        case .postgres:
            let settings = try await freshPostgresDatabase(prefix: "muster_audit_")
            let store = PostgresStore(settings: settings, masterKey: masterKey, timeout: testDatabaseTimeout)
            try await store.migrate()
            let url = "postgres://\(settings.user)@\(settings.host):\(settings.port)/\(settings.database)?sslmode=disable"
            return AuditDatabase(backend: backend, store: store, sqlitePath: nil, postgresURL: url)
        }
    }

    /// Another store on the same database (another instance).
    func another(masterKey: MasterKey) throws -> any Store {
        if let sqlitePath { return try SQLiteStore(path: sqlitePath, masterKey: masterKey) }
        guard let postgresURL else { throw MissingPostgres() }
        return PostgresStore(settings: try PostgresSettings(url: postgresURL), masterKey: masterKey, timeout: testDatabaseTimeout)
    }

    /// Runs SQL as the database's owner would, behind Muster's back.
    @discardableResult
    func sql(_ statement: String) throws -> String {
        if let sqlitePath {
            let queue = try DatabaseQueue(path: sqlitePath)
            defer { try? queue.close() }
            return try queue.write { db in
                let rows = try Row.fetchAll(db, sql: statement)
                return rows.map { row -> String in
                    switch (row[0] as DatabaseValue).storage {
                    case .null: ""
                    case .int64(let value): String(value)
                    case .double(let value): String(value)
                    case .string(let value): value
                    case .blob(let data): data.map { String(format: "%02x", $0) }.joined()
                    }
                }.joined(separator: "\n")
            }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = [postgresURL ?? "", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", statement]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw SQLFailed(statement: statement) }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every file the database's data lives in (SQLite: the file and its WAL; PostgreSQL: after a
    /// checkpoint, every file under the cluster's data directory: every database's files, the WAL, the rest).
    func files() throws -> [URL] {
        if let sqlitePath {
            return ["", "-wal"].map { URL(fileURLWithPath: sqlitePath + $0) }.filter { FileManager.default.fileExists(atPath: $0.path) }
        }
        try sql("CHECKPOINT")
        let directory = URL(fileURLWithPath: try sql("SHOW data_directory"))
        var result: [URL] = []
        guard let walk = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        for case let file as URL in walk where (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            result.append(file)
        }
        return result
    }

    /// The files that contain `bytes`.
    func files(containing bytes: [UInt8]) throws -> [String] {
        try files().filter { file in
            guard let data = FileManager.default.contents(atPath: file.path) else { return false }
            return data.range(of: Data(bytes)) != nil
        }.map(\.lastPathComponent)
    }

    /// Lets the owner change the append-only tables (as an attacker with the database's keys would).
    func bypassAppendOnly() throws {
        for table in ["audit_entries", "audit_log", "audit_tree", "audit_checkpoints"] {
            if backend == .sqlite {
                try sql("DROP TRIGGER IF EXISTS \(table)_append_only_update")
                try sql("DROP TRIGGER IF EXISTS \(table)_append_only_delete")
            } else {
                try sql("ALTER TABLE \(table) DISABLE TRIGGER USER")
            }
        }
    }

    func close() {
        (store as? PostgresStore)?.shutdown()
        if let sqlitePath { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: sqlitePath + suffix) } }
    }
}

struct SQLFailed: Error, CustomStringConvertible {
    var statement: String
    var description: String { "SQL failed: \(statement)" }
}

private func testSigner(_ name: String = "muster.test/audit-log") throws -> CheckpointSigner {
    CheckpointSigner(try NoteSigner.generate(name: name))
}

/// Reports of every type at every site, so none merge; one gets a note, an acknowledgement and a resolution.
@discardableResult
private func populate(_ store: any Store, phrase: String = "Student wrote a goodbye note", count: Int = 4) async throws -> [IncidentRef] {
    let types = shippedCatalog.directory.incidentTypes.map(\.id)
    let sites = shippedCatalog.directory.sites.keys.sorted()
    var refs: [IncidentRef] = []
    for index in 0..<count {
        let report = Report(type: types[index % types.count], severity: .high, site: sites[index % sites.count], reporter: .person("aokafor"),
                            summary: "\(phrase) \(index)", subject: "S-\(UUID().uuidString.prefix(8))", receivedAt: schoolMorning)
        let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report))], to: store, now: schoolMorning)
        refs.append(try #require(try results.first?.get()).incident)
    }
    let first = refs[0].id
    for event in [IncidentEvent.noteAdded(by: .person("dchen"), text: "\(phrase): called the family"),
                  .acknowledged(by: .person("dchen"), path: .api, step: nil), .resolved(by: .person("dchen"), note: "\(phrase): safe at home")] {
        let result = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(first, event)], to: store, now: schoolMorning.addingTimeInterval(120))
        if case .failure(let error) = result.first { Issue.record("\(event) refused: \(error)") }
    }
    return refs
}

/// Integrates everything committed, as the sequencer does, publishing to the witnesses.
private func sequence(_ store: any Store, _ signer: CheckpointSigner, witnesses: [any CheckpointWitness] = []) async throws {
    let runtime = try Runtime(store: store, catalog: shippedCatalog, channel: FileChannel(path: "/dev/null"),
                          auditLog: AuditLogSettings(signer: signer, witnesses: witnesses, batch: 7))
    try await runtime.sequenceAuditLog()
    #expect(try await store.pendingAuditEntries() == 0)
}

private func expectFailure(_ verifier: AuditLogVerifier, witnesses: [DirectoryWitness] = [], mentioning words: [String]) async {
    do {
        let summary = try await verifier.verify(witnesses: witnesses)
        Issue.record("verify passed: \(summary)")
    } catch {
        #expect(error is AuditVerificationFailure, "a named failure (what `audit verify` prints as FAILED), not \(type(of: error))")
        let message = "\(error)"
        for word in words { #expect(message.contains(word), "'\(word)' not in: \(message)") }
    }
}

@Suite("Audit log", .serialized)
struct AuditLogTests {
    @Test("the sequencer's tree verifies; an entry changed behind the triggers is named by log index, incident and action",
          arguments: Backend.allCases)
    func changedEntryNamed(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let refs = try await populate(database.store)
        let signer = try testSigner()
        try await sequence(database.store, signer)
        let verifier = AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier], page: 5)
        let summary = try await verifier.verify()
        let total = Int(try database.sql("SELECT COUNT(*) FROM audit_entries")) ?? -1
        #expect(summary.entries == total)
        #expect(summary.treeSize == Int64(total))
        #expect(summary.incidents == refs.count)
        #expect(summary.checkpoints >= 2, "batches of 7 make several checkpoints")
        #expect(summary.consistencyProofs == summary.checkpoints - 1, "each checkpoint is proved consistent with the next")
        #expect(summary.description.contains("each consistent with the next"))

        // The owner rewrites the second incident's report entry, triggers off.
        let victim = refs[1].id.rawValue
        let index = try database.sql("SELECT log_index FROM audit_log WHERE incident_id = '\(victim)' AND sequence = 1")
        try database.bypassAppendOnly()
        try database.sql(backend == .postgres
            ? "UPDATE audit_entries SET body = convert_to(replace(convert_from(body, 'UTF8'), 'high', 'HIGH'), 'UTF8') WHERE incident_id = '\(victim)' AND sequence = 1"
            : "UPDATE audit_entries SET body = CAST(replace(CAST(body AS TEXT), 'high', 'HIGH') AS BLOB) WHERE incident_id = '\(victim)' AND sequence = 1")
        await expectFailure(verifier, mentioning: ["log index \(index)", victim, "(reported)"])
    }

    @Test("verify passes while the log grows: reports and sequencing go on between its passes' reads", arguments: Backend.allCases)
    func verifyWhileGrowing(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let signer = try testSigner()
        _ = try await populate(database.store, count: 20)
        try await sequence(database.store, signer)
        let runtime = try Runtime(store: database.store, catalog: shippedCatalog, channel: FileChannel(path: "/dev/null"),
                                  auditLog: AuditLogSettings(signer: signer, batch: 7))
        let store = database.store
        // A bounded stream of reports, each sequenced at once: the log grows while verify reads it.
        let writer = Task {
            for _ in 0..<60 where !Task.isCancelled {
                _ = try? await populate(store, count: 1)
                _ = try? await runtime.sequenceAuditLog()
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        defer { writer.cancel() }
        // Small pages make each pass many reads, so the sequencer adds leaves between them.
        let verifier = AuditLogVerifier(store: store, verifiers: [signer.signer.verifier], page: 5)
        for _ in 0..<5 {
            let summary = try await verifier.verify()
            #expect(summary.treeSize > 0)
        }
        writer.cancel()
        _ = await writer.value
    }

    @Test("verify fails when entries have waited for the sequencer longer than the bound", arguments: [Backend.sqlite])
    func stalledSequencerFails(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let signer = try testSigner()
        _ = try await populate(database.store)
        try await sequence(database.store, signer)
        _ = try await populate(database.store, count: 1)  // written at schoolMorning, and no sequencer runs after it
        let verifier = AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier])
        let fresh = try await verifier.verify(maxPending: 600, now: schoolMorning.addingTimeInterval(60))
        #expect(fresh.pending > 0)
        #expect(fresh.oldestPending == schoolMorning)
        do {
            _ = try await verifier.verify(maxPending: 600, now: schoolMorning.addingTimeInterval(3600))
            Issue.record("a log nothing integrates verified")
        } catch let failure as AuditVerificationFailure {
            #expect(failure.description.contains("entries are not in the tree"))
            #expect(failure.description.contains("3600 s ago (the bound is 600 s)"))
        }
    }

    @Test("a row deleted behind the triggers is named: an incident's entry, or a leaf of the log", arguments: Backend.allCases)
    func deletedRowsNamed(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let refs = try await populate(database.store)
        let signer = try testSigner()
        try await sequence(database.store, signer)
        let verifier = AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier], page: 5)
        _ = try await verifier.verify()
        try database.bypassAppendOnly()

        let victim = refs[0].id.rawValue
        try database.sql("DELETE FROM audit_log WHERE incident_id = '\(victim)' AND sequence = 3")
        await expectFailure(verifier, mentioning: ["log entry", "is missing", "deleted"])
        try database.sql("DELETE FROM audit_entries WHERE incident_id = '\(victim)' AND sequence = 2")
        await expectFailure(verifier, mentioning: [victim, "entries 2…2 of the incident are missing"])
    }

    @Test("checkpoints reach a C2SP tlog-witness over HTTP with consistency proofs and come back cosigned; a fresh client learns the witness's size; a forked tree is refused",
          arguments: Backend.allCases)
    func tlogWitness(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let signer = try testSigner()
        let server = try await WitnessServer.start(logKey: signer.verifierKey)
        defer { server.stop() }
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let delivery = HTTPDelivery(client: http)
        do {
            let first = try TlogWitness(submissionPrefix: "http://127.0.0.1:\(server.port)/", key: server.key, http: delivery)
            _ = try await populate(database.store)
            try await sequence(database.store, signer, witnesses: [first])
            let latest = try #require(try await database.store.latestCheckpoint())
            // Submissions go off the sequencer's path: wait for the newest to arrive.
            var requests = try await server.requests(until: latest.size)
            #expect(requests.count >= 2, "batches of 7 make several checkpoints")
            #expect(requests.allSatisfy { $0.status == 200 }, "\(requests)")
            // Each submission proves consistency from the size the witness cosigned before.
            for (previous, next) in zip(requests, requests.dropFirst()) { #expect(next.old == previous.size) }
            #expect(requests.last?.size == latest.size)

            // A second instance's client knows nothing: the witness's 409 names its size, and the client goes on from there.
            let second = try TlogWitness(submissionPrefix: "http://127.0.0.1:\(server.port)", key: server.key, http: delivery)
            _ = try await populate(database.store, count: 2)
            try await sequence(database.store, signer, witnesses: [second])
            let newest = try #require(try await database.store.latestCheckpoint())
            requests = Array(try await server.requests(until: newest.size).dropFirst(requests.count))
            #expect(requests.first?.status == 409)
            #expect(requests.dropFirst().allSatisfy { $0.status == 200 }, "\(requests)")
            #expect(requests.dropFirst().first?.old == latest.size)
            let cosigned = try await second.submit(newest, log: database.store)
            #expect(cosigned.map { abs($0.timeIntervalSinceNow) < 60 } == true, "a verified cosignature with the witness's time")

            // The same size with another root (a forked log): refused, and said so.
            let forked = StoredCheckpoint(size: newest.size, note: try signer.sign(size: newest.size, root: MerkleTree.leafHash([1, 2, 3])),
                                          signedAt: Date())
            await #expect(throws: WitnessRefusal.self) { try await second.submit(forked, log: database.store) }
            // Configured with another key of the same name: the witness's answer is not its cosignature, and is refused.
            let other = [UInt8(4)] + Curve25519.Signing.PrivateKey().publicKey.rawRepresentation
            let hash = SHA256.hash(data: Array("witness.test/w1\n".utf8) + other).prefix(4).map { String(format: "%02x", $0) }.joined()
            let impostor = try TlogWitness(submissionPrefix: "http://127.0.0.1:\(server.port)",
                                           key: "witness.test/w1+\(hash)+\(Data(other).base64EncodedString())", http: delivery)
            await #expect(throws: (any Error).self) { try await impostor.submit(newest, log: database.store) }
        } catch {
            try await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    @Test("a witness that never answers does not hold up the sequencer: checkpoints are signed and stored while its request hangs")
    func silentWitnessHoldsNothingUp() async throws {
        let database = try await AuditDatabase.make(.sqlite)
        defer { database.close() }
        // A socket that listens and never accepts: the connection opens, the request is never answered.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        #expect(bound && listen(listener, 16) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        // A request deadline far beyond this test: if the pass waited for the witness, the test would hang.
        let settings = HTTPDeliverySettings(connectTimeout: 600, totalTimeout: 600)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings.clientConfiguration())
        let silent = try TlogWitness(submissionPrefix: "http://127.0.0.1:\(port)", key: nil, http: HTTPDelivery(client: http, settings: settings))
        let signer = try testSigner()
        _ = try await populate(database.store)
        try await sequence(database.store, signer, witnesses: [silent])
        _ = try await populate(database.store, count: 2)
        try await sequence(database.store, signer, witnesses: [silent])
        let summary = try await AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier]).verify()
        #expect(summary.checkpoints >= 2)
        #expect(summary.pending == 0)
        try? await http.shutdown()
    }

    @Test("a truncated tail, and a log rewritten and re-signed with a new key, are caught against a witness directory",
          arguments: Backend.allCases)
    func witnessCatchesTruncationAndRewrite(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let refs = try await populate(database.store)
        let signer = try testSigner()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-witness-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let witness = DirectoryWitness(directory: folder)
        try await sequence(database.store, signer, witnesses: [witness])
        #expect(try witness.checkpoints().count >= 2)
        let verifier = AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier])
        _ = try await verifier.verify(witnesses: [witness])

        // Truncation: the last incident's entries go, with the log's tail, its hashes and later checkpoints.
        let last = refs[refs.count - 1].id.rawValue
        let cut = Int64(try database.sql("SELECT MIN(log_index) FROM audit_log WHERE incident_id = '\(last)'")) ?? 0
        try database.bypassAppendOnly()
        try database.sql("DELETE FROM audit_entries WHERE incident_id = '\(last)'")
        try database.sql("DELETE FROM audit_log WHERE log_index >= \(cut)")
        try database.sql("DELETE FROM audit_tree WHERE stored_index >= \(MerkleTree.storedHashCount(size: cut))")
        try database.sql("DELETE FROM audit_checkpoints WHERE size > \(cut)")
        if try database.sql("SELECT COUNT(*) FROM audit_checkpoints WHERE size = \(cut)") == "0" {
            let root = try MerkleTree.treeHash(size: cut, hashes: try await database.store.treeHashes(MerkleTree.treeHashIndices(size: cut)))
            let note = try signer.sign(size: cut, root: root).replacingOccurrences(of: "'", with: "''")
            try database.sql(backend == .postgres
                ? "INSERT INTO audit_checkpoints (size, note, signed_at) VALUES (\(cut), '\(note)', now())"
                : "INSERT INTO audit_checkpoints (size, note, signed_at) VALUES (\(cut), '\(note)', 0)")
        }
        // On its own the shortened log is consistent; the witness remembers the longer one.
        _ = try await verifier.verify()
        await expectFailure(verifier, witnesses: [witness], mentioning: ["witness checkpoint", "truncated"])

        // Rewrite: an incident's entries vanish and the log is rebuilt from the rest and re-signed under a new
        // key. The result is consistent on its own; only the witness's copies show it is not the log it was.
        try database.sql("DELETE FROM audit_log")
        try database.sql("DELETE FROM audit_tree")
        try database.sql("DELETE FROM audit_checkpoints")
        try database.sql("DELETE FROM audit_entries WHERE incident_id = '\(refs[1].id.rawValue)'")
        for entry in try await database.store.auditEntries(after: nil, limit: 10_000) {
            let leaf = MerkleTree.leafHash(entry.body).hex
            try database.sql(backend == .postgres
                ? "INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at) VALUES ('\(entry.incident)', \(entry.sequence), '\\x\(leaf)', now())"
                : "INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at) VALUES ('\(entry.incident)', \(entry.sequence), X'\(leaf)', 0)")
        }
        let forger = try testSigner()
        try await sequence(database.store, forger)
        let forged = try await AuditLogVerifier(store: database.store, verifiers: [forger.signer.verifier]).verify()
        #expect(forged.incidents == refs.count - 2, "the rewritten log checks out against its own key")
        await expectFailure(AuditLogVerifier(store: database.store, verifiers: [forger.signer.verifier]),
                            witnesses: [witness], mentioning: ["witness checkpoint"])
        await expectFailure(AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier, forger.signer.verifier]),
                            witnesses: [witness], mentioning: ["witness checkpoint", "the log was changed"])
    }

    @Test("an export verifies offline in Swift and in Python; a changed byte anywhere is refused by both", arguments: Backend.allCases)
    func exportVerifiesOffline(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let refs = try await populate(database.store, count: 6)
        let signer = try testSigner()
        try await sequence(database.store, signer)
        let (export, waiting) = try await AuditExporter(store: database.store, verifierKey: signer.verifierKey).export(refs[0].id)
        #expect(waiting == 0)
        let bytes = try export.encoded()
        let verified = try IncidentExport.verify(bytes, pinnedKey: signer.verifierKey)
        #expect(verified.entries == export.entries.count)
        #expect(export.entries.contains { $0.text == "Student wrote a goodbye note: called the family" })
        // Nothing of another incident: no other incident's id appears in the file.
        let text = String(decoding: bytes, as: UTF8.self)
        for other in refs.dropFirst() { #expect(!text.contains(other.id.rawValue)) }

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-export-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(bytes).write(to: file)
        #expect(try python(file.path, key: signer.verifierKey) == 0)

        var swiftRefused = 0, checked = 0
        for position in stride(from: 0, to: bytes.count, by: 5) {
            var changed = bytes
            changed[position] ^= 0x01
            checked += 1
            if (try? IncidentExport.verify(changed, pinnedKey: signer.verifierKey)) == nil { swiftRefused += 1 }
        }
        #expect(swiftRefused == checked, "the Swift verifier accepted \(checked - swiftRefused) changed exports")
        for position in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 24)) {
            var changed = bytes
            changed[position] ^= 0x01
            try Data(changed).write(to: file)
            #expect(try python(file.path, key: signer.verifierKey) == 1, "Python accepted a change at byte \(position)")
        }
    }

    @Test("after a retention purge every proof still verifies, the text is gone for good and the data key is scrubbed",
          arguments: Backend.allCases)
    func purgeKeepsProofs(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let refs = try await populate(database.store)
        let signer = try testSigner()
        try await sequence(database.store, signer)
        let exporter = AuditExporter(store: database.store, verifierKey: signer.verifierKey)
        let before = try await exporter.export(refs[0].id).export.encoded()
        let id = refs[0].id.rawValue
        let wrapped = try database.sql(backend == .postgres
            ? "SELECT encode(wrapped, 'hex') FROM incident_keys WHERE incident_id = '\(id)'"
            : "SELECT hex(wrapped) FROM incident_keys WHERE incident_id = '\(id)'")
        let wrappedBytes = try #require(LogHashHex.bytes(wrapped))
        // PostgreSQL: the secret of the key generation that wrapped it, and the files of the tables commits read.
        let secret = backend == .postgres ? try #require(LogHashHex.bytes(try database.sql("""
            SELECT encode(s.secret, 'hex') FROM key_generation_secrets s JOIN incident_keys k ON k.generation = s.generation
            WHERE k.incident_id = '\(id)'
            """))) : []
        let commitTables = "SELECT pg_relation_filenode('incident_keys') || ' ' || pg_relation_filenode('incidents')"
        let filesBefore = backend == .postgres ? try database.sql(commitTables) : ""

        let (purged, refused) = try await RetentionPurge(store: database.store, catalog: shippedCatalog)
            .run(closedBefore: schoolMorning.addingTimeInterval(86_400), policy: "test-7y")
        #expect(purged == [refs[0].id], "only the resolved incident is purged")
        #expect(refused.isEmpty)
        try await sequence(database.store, signer)

        #expect(try await database.store.dataKey(of: refs[0].id) == nil)
        let timeline = try await database.store.timeline(refs[0].id)
        #expect(timeline.last?.action == .purged)
        #expect(timeline.last?.detail?.contains("test-7y") == true)
        #expect(timeline.first?.sensitive?.hasPrefix("purged under the retention policy on") == true)
        #expect(try await database.store.reports(refs[0].id).first?.summary.hasPrefix("purged under the retention policy on") == true)
        // New notes are refused: there is no key to seal them with.
        let note = try await Dispatcher(catalog: shippedCatalog).outcomes([.event(refs[0].id, .noteAdded(by: .person("dchen"), text: "late"))],
                                                   to: database.store, now: schoolMorning.addingTimeInterval(90_000))
        #expect(throws: StoreError.self) { try note.first?.get() }

        // The old export still verifies; a new one verifies with no key and no text.
        #expect(try IncidentExport.verify(before, pinnedKey: signer.verifierKey).entries > 0)
        let after = try await exporter.export(refs[0].id).export
        #expect(after.dataKey == nil)
        #expect(after.entries.allSatisfy { $0.text == nil })
        _ = try IncidentExport.verify(try after.encoded(), pinnedKey: signer.verifierKey)
        _ = try await AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier]).verify()

        // The other incidents keep their text, under the new key generation.
        #expect(try await database.store.timeline(refs[1].id).first?.sensitive?.hasPrefix("Student wrote a goodbye note") == true)
        if backend == .postgres {
            // What opened the key is gone from every file of the database, write-ahead log included (the
            // test cluster runs with wal_recycle = off, as docs/audit.md asks); the wrapped key's own bytes
            // may stay in the key table's free space, and nothing opens them. The tables commits read were
            // not rewritten (a rewrite takes their exclusive lock); only the secrets' table was.
            #expect(try database.files(containing: secret).isEmpty)
            #expect(try database.sql("SELECT COUNT(*) FROM key_generations") == "1")
            #expect(try database.sql("SELECT COUNT(*) FROM incident_keys WHERE generation = (SELECT generation FROM key_generations)")
                    == String(refs.count - 1))
            #expect(try database.sql(commitTables) == filesBefore, "the purge rewrote a table every commit reads")
        } else {
            // SQLite overwrites it in place (secure_delete) and checkpoints its WAL.
            #expect(try database.files(containing: wrappedBytes).isEmpty)
        }
    }

    @Test("another instance's purge moves the keys to a new generation: this one, still on the old, reports and reads on")
    func purgeByAnotherInstance() async throws {
        let masterKey = MasterKey.generate()
        let database = try await AuditDatabase.make(.postgres, masterKey: masterKey)
        defer { database.close() }
        let refs = try await populate(database.store)
        let other = try database.another(masterKey: masterKey)
        defer { (other as? PostgresStore)?.shutdown() }
        try await other.migrate()
        let (purged, _) = try await RetentionPurge(store: other, catalog: shippedCatalog)
            .run(closedBefore: schoolMorning.addingTimeInterval(86_400), policy: "test-7y")
        #expect(purged == [refs[0].id])
        #expect(try database.sql("SELECT COUNT(*) FROM key_generations WHERE generation = 1") == "0", "the first generation is destroyed")

        // This instance still wraps under generation 1, which is gone: its report is refused by the
        // database, it reloads the generations and commits again. It reads keys of the new generation.
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                            summary: "A later report", receivedAt: schoolMorning.addingTimeInterval(200))
        let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report))], to: database.store,
                                                                            now: schoolMorning.addingTimeInterval(200))
        let later = try #require(try results.first?.get()).incident
        #expect(try await database.store.timeline(later.id).first?.sensitive == "A later report")
        #expect(try await database.store.timeline(refs[1].id).first?.sensitive?.hasPrefix("Student wrote a goodbye note") == true)
        #expect(try database.sql("SELECT COUNT(DISTINCT generation) FROM incident_keys") == "1")
    }

    @Test("keys from before key generations (wrapped by the master key) move to a generation, and the key table is rewritten once")
    func legacyKeysRewrittenOnce() async throws {
        let masterKey = MasterKey.generate()
        let database = try await AuditDatabase.make(.postgres, masterKey: masterKey)
        defer { database.close() }
        let refs = try await populate(database.store)
        // As migration 013 found them: wrapped by the master key itself, and the rewrite owed.
        var legacy: [IncidentID: [UInt8]] = [:]
        for ref in refs {
            let key = try #require(try await database.store.dataKey(of: ref.id))
            let wrapped = masterKey.wrap(key, incident: ref.id.rawValue)
            legacy[ref.id] = wrapped
            try database.sql("UPDATE incident_keys SET generation = NULL, wrapped = decode('\(wrapped.hex)', 'hex') WHERE incident_id = '\(ref.id)'")
        }
        // An instance of the version before (a rolling upgrade) stores a key without a generation: taken,
        // and the rewrite is owed.
        try database.sql("INSERT INTO incident_keys (incident_id, wrapped) VALUES ('from-an-older-instance', '\\x00')")
        #expect(try database.sql("SELECT COUNT(*) FROM key_table_rewrite_pending") == "1")
        try database.sql("DELETE FROM incident_keys WHERE incident_id = 'from-an-older-instance'")
        try database.sql("VACUUM FULL incident_keys")
        let restarted = try database.another(masterKey: masterKey)
        defer { (restarted as? PostgresStore)?.shutdown() }
        #expect(try await restarted.timeline(refs[1].id).first?.sensitive?.hasPrefix("Student wrote a goodbye note") == true, "legacy keys open")

        let (purged, _) = try await RetentionPurge(store: restarted, catalog: shippedCatalog)
            .run(closedBefore: schoolMorning.addingTimeInterval(86_400), policy: "test-7y")
        #expect(purged == [refs[0].id])
        #expect(try database.sql("SELECT COUNT(*) FROM incident_keys WHERE generation IS NULL") == "0")
        #expect(try database.sql("SELECT COUNT(*) FROM key_table_rewrite_pending") == "0")
        #expect(try await restarted.timeline(refs[1].id).first?.sensitive?.hasPrefix("Student wrote a goodbye note") == true)
        // The master key alone opens a legacy copy: none is left in any file.
        for ref in refs { #expect(try database.files(containing: try #require(legacy[ref.id])).isEmpty, "\(ref.id)") }
    }

    @Test("the daily purge applies the configured policy: not before the period has passed, then the closed incident only",
          arguments: Backend.allCases)
    func dailyPurgeByPolicy(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let refs = try await populate(database.store)
        let start = schoolMorning.addingTimeInterval(86_400)
        let clock = ManualClock(start)
        let runtime = try Runtime(store: database.store, catalog: shippedCatalog, channel: FileChannel(path: "/dev/null"), clock: clock,
                                  retention: RetentionPolicy(name: "test-30d", days: 30))
        let workers = Task { await runtime.run() }
        defer { workers.cancel(); clock.wakeAll() }

        // The first pass, at start, finds nothing 30 days closed, and the worker sleeps a day.
        for _ in 0..<400 where !clock.deadlines().contains(start.addingTimeInterval(86_400)) {
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(clock.deadlines().contains(start.addingTimeInterval(86_400)), "the purge sleeps until the next day")
        #expect(try await database.store.dataKey(of: refs[0].id) != nil)
        // A month on, the next daily pass purges the resolved incident.
        clock.advance(by: 30 * 86_400)
        var timeline: [AuditRecord] = []
        for _ in 0..<400 where timeline.last?.action != .purged {
            try await Task.sleep(for: .milliseconds(25))
            clock.advance(by: 0)
            timeline = try await database.store.timeline(refs[0].id)
        }
        let purge = try #require(timeline.last)
        #expect(purge.action == .purged)
        #expect(purge.detail?.contains("test-30d") == true)
        #expect(purge.at >= start.addingTimeInterval(30 * 86_400), "purged by the pass a month on, not by the first one at \(start)")
        #expect(try await database.store.dataKey(of: refs[0].id) == nil)
        for open in refs.dropFirst() {
            #expect(try await database.store.dataKey(of: open.id) != nil, "an open incident keeps its text")
        }
    }

    @Test("a known phrase from a report, its subject and a note is nowhere in the database files, only sealed", arguments: Backend.allCases)
    func phraseNeverInClear(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        let phrase = "zebra-\(UUID().uuidString.prefix(8))-lantern"
        let refs = try await populate(database.store, phrase: phrase, count: 2)
        #expect(try await database.store.reports(refs[0].id).first?.summary == "\(phrase) 0", "the text is stored, and reads back")
        #expect(try await database.store.timeline(refs[0].id).contains { $0.sensitive == "\(phrase): called the family" })
        // Before the sequencer has run (committed, not yet in the log), and after.
        #expect(try database.files(containing: Array(phrase.utf8)).isEmpty)
        let signer = try testSigner()
        try await sequence(database.store, signer)
        let files = try database.files()
        #expect(!files.isEmpty)
        #expect(try database.files(containing: Array(phrase.utf8)).isEmpty)
        // The scan does find what is stored in clear (the incident's id), so the check above means something.
        #expect(!(try database.files(containing: Array(refs[0].id.rawValue.utf8))).isEmpty)
    }

    @Test("nothing that names a student outlives its key: the reference, its SHA-256 and the flag's name are in no database file, WAL included, while open, once resolved and once purged",
          arguments: Backend.allCases)
    func referenceAndFlagsNeverInClear(backend: Backend) async throws {
        let database = try await AuditDatabase.make(backend)
        defer { database.close() }
        // A flag name of this test's own: other tests' databases in the same cluster hold the shipped one.
        let unique = UUID().uuidString.prefix(8).lowercased()
        let flag = IncidentFlag("family-may-be-source-\(unique)")
        let folder = repositoryRoot.appendingPathComponent("playbooks")
        let playbook = try String(contentsOf: folder.appendingPathComponent("abuse-disclosure.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "family-may-be-source", with: flag.rawValue)
        let loaded = PlaybookLoader.load(directory: ("directory.yaml", try String(contentsOf: folder.appendingPathComponent("directory.yaml"), encoding: .utf8)),
                                         playbooks: [("abuse-disclosure.yaml", playbook)])
        let catalog = try #require(loaded.catalog)
        let dispatcher = Dispatcher(catalog: catalog)
        let reference = "S-\(unique)"
        let report = Report(type: "abuse-disclosure", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                            summary: "Disclosed at lunch", subject: reference, flags: [flag], receivedAt: schoolMorning)
        let ref = try #require(try await dispatcher.outcomes([.report(ReportIntake(report: report))], to: database.store, now: schoolMorning)
            .first?.get()).incident
        let abuse = try #require(catalog.playbooks[PlaybookID("abuse-disclosure")])
        let groupKey = try #require(PlaybookSet.groupingKey(for: report, playbook: abuse))
        var needles: [(String, [UInt8])] = [("the reference", Array(reference.utf8)), ("the flag's name", Array(flag.rawValue.utf8))]
        for (name, text) in [("the reference", reference), ("the grouping key", groupKey)] {
            let digest = Array(SHA256.hash(data: Data(text.utf8)))
            needles += [("SHA-256 of \(name)", digest), ("SHA-256 of \(name) in hex", Array(digest.map { String(format: "%02x", $0) }.joined().utf8))]
        }
        func expectNowhere(_ moment: String) throws {
            for (name, bytes) in needles {
                let found = try database.files(containing: bytes)
                #expect(found.isEmpty, "\(name) is in \(found) \(moment)")
            }
        }

        // Cleared and set again by a responder: the incident's record is rewritten with the flag each time.
        for (set, at) in [(false, 60.0), (true, 120.0)] {
            let decided = try await dispatcher.outcomes([.event(ref.id, .flagDecided(flag, set: set, by: .person("dchen"), reason: "spoke with the aunt"))],
                                                        to: database.store, now: schoolMorning.addingTimeInterval(at))
            _ = try #require(try decided.first?.get())
        }
        #expect(try await database.store.incident(ref.id)?.incident.flags == [flag], "the sealed flag reads back")
        #expect(try await database.store.reports(ref.id).first?.flags == [flag])
        #expect(try await database.store.timeline(ref.id).contains { $0.action == .flagSet && $0.target == "F1" })
        try expectNowhere("while the incident is open")
        // The scan does find what is stored in clear (the incident's id), so the checks mean something.
        #expect(!(try database.files(containing: Array(ref.id.rawValue.utf8))).isEmpty)

        for event in [IncidentEvent.acknowledged(by: .person("dchen"), path: .api, step: nil),
                      .resolved(by: .person("dchen"), note: nil, outcome: "handled-at-school")] {
            _ = try #require(try await dispatcher.outcomes([.event(ref.id, event)], to: database.store, now: schoolMorning.addingTimeInterval(300)).first?.get())
        }
        try expectNowhere("once the incident is resolved")

        let signer = try testSigner()
        try await sequence(database.store, signer)
        let (purged, _) = try await RetentionPurge(store: database.store, catalog: catalog)
            .run(closedBefore: schoolMorning.addingTimeInterval(86_400), policy: "test-7y")
        #expect(purged == [ref.id])
        try await sequence(database.store, signer)
        #expect(try await database.store.incident(ref.id)?.incident.flags.isEmpty == true, "no key, no flags")
        #expect(try await database.store.reports(ref.id).first?.flags.isEmpty == true)
        try expectNowhere("once the incident is purged")
    }

    @Test("two instances sequencing at once make one consistent tree, one pass at a time; one stopping leaves the other to finish")
    func twoSequencers() async throws {
        let key = MasterKey.generate()
        let database = try await AuditDatabase.make(.postgres, masterKey: key)
        defer { database.close() }
        let other = try database.another(masterKey: key)
        defer { (other as? PostgresStore)?.shutdown() }
        let signer = try testSigner()
        let settings = AuditLogSettings(signer: signer, batch: 5, interval: 0.01)
        let first = try Runtime(store: database.store, catalog: shippedCatalog, channel: FileChannel(path: "/dev/null"), instance: "one", auditLog: settings)
        let second = try Runtime(store: other, catalog: shippedCatalog, channel: FileChannel(path: "/dev/null"), instance: "two", auditLog: settings)
        let one = Task { await first.run() }
        let two = Task { await second.run() }
        var incidents = Set(try await populate(database.store, count: 5).map(\.id))
        incidents.formUnion(try await populate(other, count: 5).map(\.id))
        one.cancel()  // the first instance stops; the second takes every later pass
        incidents.formUnion(try await populate(other, count: 3).map(\.id))
        try await eventually("the second sequencer drains the log") { try await other.pendingAuditEntries() == 0 }
        two.cancel()
        let summary = try await AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier]).verify()
        #expect(summary.pending == 0)
        #expect(summary.treeSize == Int64(summary.entries))
        #expect(summary.incidents == incidents.count)
    }

    @Test("while one sequencer is in a pass no other instance integrates anything; when that sequencer is killed, another takes over")
    func takeoverWhenKilled() async throws {
        let key = MasterKey.generate()
        let database = try await AuditDatabase.make(.postgres, masterKey: key)
        defer { database.close() }
        let other = try database.another(masterKey: key)
        defer { (other as? PostgresStore)?.shutdown() }
        try await populate(database.store, count: 3)
        let pending = try await other.pendingAuditEntries()
        #expect(pending > 0)

        // A sequencer stuck mid-pass in another process: it holds PostgresStore's sequencer lock
        // (0x6D75_7374_6572_0002) in its transaction. The server notices within 100 ms when that process dies.
        let (classID, objectID) = (0x6D75_7374, 0x6572_0002)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        holder.arguments = [database.postgresURL ?? "", "-q", "-c", """
            SET client_connection_check_interval = 100; BEGIN; SELECT pg_advisory_xact_lock(\(0x6D75_7374_6572_0002)); SELECT pg_sleep(120); COMMIT;
            """]
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        let held = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = \(classID) AND objid = \(objectID)"
        try await eventually("the other process holds the sequencer lock") { try database.sql(held) == "1" }

        let signer = try testSigner()
        for _ in 0..<3 {
            let pass = try await other.integrateAuditEntries(limit: 100, now: Date(), sign: { try signer.sign(size: $0, root: $1) })
            #expect(pass == nil, "a second sequencer ran a pass while the first held the lock")
        }
        #expect(try await other.pendingAuditEntries() == pending)
        #expect(try await other.latestCheckpoint() == nil)

        // The stuck sequencer is killed (not stopped politely): its transaction aborts and the lock is free.
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        try await eventually("the dead sequencer's lock is released") { try database.sql(held) == "0" }
        try await sequence(other, signer)
        let summary = try await AuditLogVerifier(store: database.store, verifiers: [signer.signer.verifier]).verify()
        #expect(summary.pending == 0)
        #expect(summary.treeSize == Int64(pending))
    }
}

/// Hex text to bytes (what the databases print).
enum LogHashHex {
    static func bytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.lowercased().utf8)
        guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index < digits.count {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
            index += 2
        }
        return out
    }
}

/// Runs scripts/verify-export.py; its exit status.
private func python(_ file: String, key: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", repositoryRoot.appendingPathComponent("scripts/verify-export.py").path, file, "--key", key]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// One running Tests/python/tlog_witness.py: a C2SP tlog-witness written from the specs, on 127.0.0.1.
final class WitnessServer: @unchecked Sendable {
    let port: Int
    /// Its cosignature verifier key.
    let key: String
    let state: URL
    private let process: Process

    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("python/tlog_witness.py").path

    struct Failed: Error, CustomStringConvertible { var description: String }

    /// Started on a thread of its own: reading its first lines blocks.
    static func start(logKey: String) async throws -> WitnessServer {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try WitnessServer(logKey: logKey) }) }
        }
    }

    private init(logKey: String) throws {
        state = FileManager.default.temporaryDirectory.appendingPathComponent("muster-witness-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [Self.script, logKey, state.path]
        let stdout = Pipe()
        let log = state.appendingPathComponent("witness.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        var text = ""
        while text.components(separatedBy: "\n").count < 3 {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let lines = text.split(separator: "\n").map(String.init)
        guard lines.count >= 2, lines[0].hasPrefix("PORT "), let port = Int(lines[0].dropFirst(5)), lines[1].hasPrefix("KEY ") else {
            kill(process.processIdentifier, SIGKILL)
            throw Failed(description: "the witness did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
        self.port = port
        key = String(lines[1].dropFirst(4))
    }

    /// The requests once one has been accepted for a tree of `size` (waits up to 30 s for it).
    func requests(until size: Int64) async throws -> [(status: Int, old: Int64, size: Int64)] {
        for _ in 0..<600 {
            let answered = try requests()
            if answered.contains(where: { $0.status == 200 && $0.size == size }) { return answered }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try requests()
    }

    /// Every add-checkpoint request it answered: its status, the old size sent and the checkpoint's size.
    func requests() throws -> [(status: Int, old: Int64, size: Int64)] {
        let text = (try? String(contentsOf: state.appendingPathComponent("requests"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            return (Int(parts[0]) ?? 0, Int64(parts[1]) ?? -1, Int64(parts[2]) ?? -1)
        }
    }

    func stop() {
        // SIGKILL: a child inherits the signals the test process blocks, so SIGTERM could stay pending.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: state)
    }
}
