// A witness reached over HTTP with the C2SP tlog-witness protocol: each new checkpoint is submitted to
// `<prefix>/add-checkpoint` with a consistency proof from the last size the witness cosigned, and the
// witness answers with its cosignature (C2SP tlog-cosignature), which is checked when its key is configured.
import AsyncHTTPClient
import Foundation
import Logging
import MusterAudit
import MusterNotify
import MusterStore
import NIOHTTP1
import Synchronization

public struct WitnessRefusal: Error, CustomStringConvertible, Sendable {
    public var description: String
}

public final class TlogWitness: CheckpointWitness {
    public let submissionPrefix: String
    let cosigner: CosignatureVerifier?
    let http: HTTPDelivery
    /// The size the witness last cosigned, as far as we know: 0 at first, then learnt from its answers
    /// (a 409 names its size, as the protocol intends for clients that do not know it).
    private let witnessedSize = Mutex<Int64>(0)
    /// The newest checkpoint waiting to go, and whether a submission is under way.
    private let feed = Mutex<(waiting: StoredCheckpoint?, sending: Bool)>((nil, false))
    private let logger: Logger

    public var name: String { "witness \(HTTPDelivery.redactedURL(submissionPrefix))" }

    /// `key`: the witness's cosignature verifier key (`name+hash+base64(0x04 ‖ key)`); without one its
    /// answer is taken on trust.
    public init(submissionPrefix: String, key: String?, http: HTTPDelivery, logger: Logger = Logger(label: "muster.witness")) throws {
        self.submissionPrefix = submissionPrefix.hasSuffix("/") ? String(submissionPrefix.dropLast()) : submissionPrefix
        cosigner = try key.map { try CosignatureVerifier(verifierKey: $0) }
        self.http = http
        self.logger = logger
    }

    /// Returns at once: a witness that is slow or down must not hold up the next checkpoint. Submissions
    /// go one at a time, and only the newest checkpoint waiting is sent (it covers those before it).
    public func publish(_ checkpoint: StoredCheckpoint, log: any AuditLogStore) async throws {
        let start = feed.withLock { state -> Bool in
            if let waiting = state.waiting, waiting.size >= checkpoint.size { return false }
            state.waiting = checkpoint
            if state.sending { return false }
            state.sending = true
            return true
        }
        guard start else { return }
        Task {
            while let next = feed.withLock({ state -> StoredCheckpoint? in
                defer { state.waiting = nil }
                if state.waiting == nil { state.sending = false }
                return state.waiting
            }) {
                do { _ = try await submit(next, log: log) } catch {
                    logger.error("checkpoint \(next.size) not published to \(name): \(error)")
                }
            }
        }
    }

    /// The cosignature's time (nil when no key is configured or the witness already holds a larger tree).
    /// Throws `WitnessRefusal` when the witness refuses the checkpoint (a conflict it cannot resolve, a
    /// proof it rejects) or its cosignature does not verify.
    public func submit(_ checkpoint: StoredCheckpoint, log: any AuditLogStore) async throws -> Date? {
        for _ in 0..<2 {
            let old = witnessedSize.withLock { $0 }
            // The witness already holds a larger tree (another instance's newer checkpoint reached it first).
            if old > checkpoint.size { return nil }
            let proof = old == 0 ? [] : try await log.consistencyProof(from: old, to: checkpoint.size)
            var body = "old \(old)\n"
            for hash in proof { body += hash.base64 + "\n" }
            body += "\n" + checkpoint.note
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            let response = try await http.post(submissionPrefix + "/add-checkpoint", headers: headers, body: Array(body.utf8))
            let answer = String(decoding: response.body, as: UTF8.self)
            switch response.status.code {
            case 200:
                witnessedSize.withLock { $0 = max($0, checkpoint.size) }
                guard let cosigner else { return nil }
                do { return try cosigner.verify(lines: answer, checkpointText: try SignedNote.text(of: checkpoint.note)) } catch {
                    throw WitnessRefusal(description: "\(name) answered, but \(error)")
                }
            case 409 where response.headers.first(name: "Content-Type")?.hasPrefix("text/x.tlog.size") == true:
                // Its size differs from ours: learn it and try once more with a proof from there.
                guard let size = Int64(answer.trimmingCharacters(in: .whitespacesAndNewlines)), size != old else {
                    throw WitnessRefusal(description: "\(name) refused checkpoint \(checkpoint.size): its tree of that size differs (409)")
                }
                witnessedSize.withLock { $0 = size }
            default:
                throw WitnessRefusal(description: "\(name) refused checkpoint \(checkpoint.size): HTTP \(response.status.code) "
                    + answer.prefix(200).trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        throw WitnessRefusal(description: "\(name) keeps naming another size for checkpoint \(checkpoint.size)")
    }
}
