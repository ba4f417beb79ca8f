// The keys of the audit log and of sealed student text. Production sets them in the environment;
// the embedded default creates each once in the data directory and says where (docs/audit.md).
import ArgumentParser
import AsyncHTTPClient
import Foundation
import MusterAudit
import MusterNotify
import MusterPlaybooks
import MusterRuntime

enum AuditKeys {
    /// `MUSTER_MASTER_KEY` (32 bytes, base64), else DATA_DIR/master.key, created on first use.
    /// Every instance sharing a database must use the same master key. `create: false` refuses to make a
    /// new one: a command that reads an existing installation must not invent its keys.
    static func masterKey(dataDir: String, create: Bool = true, settings: Settings = Settings()) throws -> MasterKey {
        if let text = settings.string(.masterKey) {
            do { return try MasterKey(base64: text.trimmingCharacters(in: .whitespacesAndNewlines)) } catch {
                throw ValidationError("MUSTER_MASTER_KEY: \(error)")
            }
        }
        let path = (dataDir as NSString).appendingPathComponent("master.key")
        let text = try readOrCreate(path, what: "the master key that wraps every incident's data key", variable: "MUSTER_MASTER_KEY",
                                    create: create ? { MasterKey.generate().base64 } : nil)
        do { return try MasterKey(base64: text) } catch { throw ValidationError("\(path): \(error)") }
    }

    /// `MUSTER_AUDIT_SIGNING_KEY` (a signed-note private key, PRIVATE+KEY+…), else DATA_DIR/audit-signing.key,
    /// created on first use under the origin `MUSTER_AUDIT_LOG_ORIGIN` (default muster.local/audit-log).
    /// `create: false`: verify, export and `audit key` read the installation's key and never make a new one
    /// (a new key would sign nothing the log holds, and `audit verify` would blame the log).
    static func signer(dataDir: String, create: Bool = true, settings: Settings = Settings()) throws -> CheckpointSigner {
        if let text = settings.string(.auditSigningKey) {
            do { return CheckpointSigner(try NoteSigner(privateKey: text.trimmingCharacters(in: .whitespacesAndNewlines))) } catch {
                throw ValidationError("MUSTER_AUDIT_SIGNING_KEY: \(error)")
            }
        }
        let origin = settings.value(.auditLogOrigin)
        let path = (dataDir as NSString).appendingPathComponent("audit-signing.key")
        let text = try readOrCreate(path, what: "the key that signs the audit log's checkpoints", variable: "MUSTER_AUDIT_SIGNING_KEY",
                                    create: create ? { try NoteSigner.generate(name: origin).privateKey } : nil)
        do { return CheckpointSigner(try NoteSigner(privateKey: text)) } catch { throw ValidationError("\(path): \(error)") }
    }

    /// The witness directory: `MUSTER_AUDIT_WITNESS_DIR`, else the file's `audit.witness_directory`, else DATA_DIR/checkpoints.
    static func witnessDirectory(dataDir: String, settings: Settings) -> String {
        settings.string(.auditWitnessDir) ?? (dataDir as NSString).appendingPathComponent("checkpoints")
    }

    /// The sequencer's settings: the signing key, the witness directory, and the tlog-witnesses of the configuration.
    static func settings(_ config: AuditConfig, dataDir: String, http: HTTPClient, settings: Settings) throws -> AuditLogSettings {
        var witnesses: [any CheckpointWitness] = [
            DirectoryWitness(directory: URL(fileURLWithPath: witnessDirectory(dataDir: dataDir, settings: settings))),
        ]
        for (number, witness) in config.witnesses.enumerated() {
            do {
                witnesses.append(try TlogWitness(submissionPrefix: witness.url, key: witness.key, http: HTTPDelivery(client: http)))
            } catch {
                throw ValidationError("audit.witnesses[\(number)].key: \(error)")
            }
        }
        return AuditLogSettings(signer: try signer(dataDir: dataDir, settings: settings), witnesses: witnesses)
    }

    static func readOrCreate(_ path: String, what: String, variable: String, create: (() throws -> String)?) throws -> String {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            try requireOwnerOnly(path, what: what)
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let create else {
            throw ValidationError("\(path) does not exist: \(what) is kept there by the installation that uses this data directory. "
                + "Pass its --data-dir or set \(variable); this command does not create keys")
        }
        // Of two processes starting at once, one writes the key and the other reads it.
        if try createOwnerOnly(path, try create() + "\n") {
            printError("muster: created \(what) in \(path) (keep a copy somewhere safe; set it in the environment in production)")
        }
        return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Creates `path` exclusively (O_EXCL), readable by its owner only, in a directory only they may
    /// enter, and writes `text`; false when the file already exists.
    static func createOwnerOnly(_ path: String, _ text: String) throws -> Bool {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST { return false }
            throw ValidationError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else { throw ValidationError("cannot write \(path)") }
        return true
    }

    /// A key file anyone but its owner can read is refused, as ssh refuses such a private key: whoever
    /// read it could sign checkpoints, forge acknowledgement links or open sealed text.
    static func requireOwnerOnly(_ path: String, what: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { return }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ValidationError("\(path) holds \(what) and can be read by others (mode \(String(mode, radix: 8))): "
                                  + "run `chmod 600 \(path)` (and check who read it), then start again")
        }
    }
}
