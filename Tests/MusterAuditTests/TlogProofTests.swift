// C2SP tlog-proof texts: the spec's example layout exactly, faithful parsing, an end-to-end proof from a
// real log, and a precise refusal for every malformed text.
import Foundation
import MusterAudit
import Testing

private func proofError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}

/// The spec's example proof hashes and extra data (c2sp.org/tlog-proof).
private let specExtra = "YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ"
private let specHashes = [
    "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=",
    "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=",
    "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=",
    "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=",
    "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=",
]

/// A small log with a signed checkpoint, to prove entries from.
private struct SignedLog {
    let signer: NoteSigner
    let origin = "muster.example/audit"
    var entries: [[UInt8]] = []
    var stored: [Int64: LogHash] = [:]
    var range = CompactRange()

    init() throws {
        signer = try NoteSigner.generate(name: origin)
        for i in 0..<21 {
            let entry = Array(#"{"seq":\#(i)}"#.utf8)
            let start = MerkleTree.storedHashCount(size: range.size)
            for (offset, h) in range.append(MerkleTree.leafHash(entry)).enumerated() { stored[start + Int64(offset)] = h }
            entries.append(entry)
        }
    }

    func proof(of index: Int64) throws -> TlogProof {
        let checkpoint = Checkpoint(origin: origin, size: range.size, root: range.root())
        let note = try SignedNote.sign(checkpoint.text, with: [signer])
        let hashes = try MerkleTree.inclusionProof(index: index, size: range.size, hashes: stored)
        return TlogProof(index: index, hashes: hashes, checkpoint: note)
    }
}

@Suite("tlog-proof")
struct TlogProofTests {
    @Test("the text is laid out as the spec's example: header, extra, index, hashes, blank line, checkpoint note")
    func specLayout() throws {
        let signer = try NoteSigner.generate(name: "example.com/fancylog")
        let checkpoint = try SignedNote.sign("example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n", with: [signer])
        let extra = [UInt8](try #require(Data(base64Encoded: specExtra)))
        let proof = TlogProof(index: 73894, hashes: try specHashes.map { try #require(LogHash(base64: $0)) }, checkpoint: checkpoint, extra: extra)
        // The spec's example line by line; its signature lines are elided there, so only the first
        // signature line's start is compared.
        let expected = [
            "c2sp.org/tlog-proof@v1",
            "extra \(specExtra)",
            "index 73894",
        ] + specHashes + [
            "",
            "example.com/fancylog",
            "109482",
            "sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=",
            "",
            "— example.com/fancylog ",
        ]
        #expect(proof.text.hasPrefix(expected.joined(separator: "\n")))
        #expect(proof.text.hasSuffix("\n") && proof.text.components(separatedBy: "\n").count == 15)
        #expect(try TlogProof.parse(proof.text) == proof)

        // Without extra data there is no extra line; with none proof hashes, the blank line follows the index.
        let bare = TlogProof(index: 0, hashes: [], checkpoint: checkpoint)
        #expect(bare.text == "c2sp.org/tlog-proof@v1\nindex 0\n\n" + checkpoint)
        #expect(try TlogProof.parse(bare.text) == bare)
        let emptyExtra = TlogProof(index: 7, hashes: [], checkpoint: checkpoint, extra: [])
        #expect(emptyExtra.text.hasPrefix("c2sp.org/tlog-proof@v1\nextra \nindex 7\n\n"))
        #expect(try TlogProof.parse(emptyExtra.text) == emptyExtra)
    }

    @Test("a proof from a real log round-trips and verifies; the wrong leaf, origin, key or index does not")
    func endToEnd() throws {
        let log = try SignedLog()
        for index in Int64(0)..<21 {
            let proof = try log.proof(of: index)
            let parsed = try TlogProof.parse(proof.text)
            #expect(parsed == proof)
            let leaf = MerkleTree.leafHash(log.entries[Int(index)])
            let checkpoint = try parsed.verify(leafHash: leaf, origin: log.origin, verifiers: [log.signer.verifier])
            #expect(checkpoint.size == 21)
            #expect(checkpoint.root == log.range.root())

            let other = MerkleTree.leafHash(log.entries[Int((index + 1) % 21)])
            #expect(proofError { _ = try parsed.verify(leafHash: other, origin: log.origin, verifiers: [log.signer.verifier]) }?
                .contains("does not lead to the checkpoint's root") == true)
        }
        let proof = try log.proof(of: 3)
        let leaf = MerkleTree.leafHash(log.entries[3])
        #expect(proofError { _ = try proof.verify(leafHash: leaf, origin: "other.example/log", verifiers: [log.signer.verifier]) }?
            .contains("not \"other.example/log\"") == true)
        let stranger = try NoteSigner.generate(name: log.origin)
        #expect(proofError { _ = try proof.verify(leafHash: leaf, origin: log.origin, verifiers: [stranger.verifier]) }?
            .contains("no verifiable signatures") == true)
        var moved = proof
        moved.index = 4
        #expect(proofError { _ = try moved.verify(leafHash: leaf, origin: log.origin, verifiers: [log.signer.verifier]) } != nil)
        moved.index = 21
        #expect(proofError { _ = try moved.verify(leafHash: leaf, origin: log.origin, verifiers: [log.signer.verifier]) }?
            .contains("not in the checkpoint's tree") == true)
    }

    @Test("malformed proofs are refused with the reason")
    func malformed() throws {
        let log = try SignedLog()
        let good = try log.proof(of: 5).text
        let hashes = try log.proof(of: 5).hashes.map(\.base64)
        let checkpoint = try log.proof(of: 5).checkpoint
        let cases: [(String, String)] = [
            ("", "first line"),
            ("c2sp.org/tlog-proof@v2\nindex 5\n\n" + checkpoint, "first line"),
            (" c2sp.org/tlog-proof@v1\nindex 5\n\n" + checkpoint, "first line"),
            ("c2sp.org/tlog-proof@v1", "first line"),
            ("c2sp.org/tlog-proof@v1\n", "ends after the header"),
            ("c2sp.org/tlog-proof@v1\nextra AAAA\n", "ends after the extra"),
            ("c2sp.org/tlog-proof@v1\nextra !!!!\nindex 5\n\n" + checkpoint, "extra data is not padded base64"),
            ("c2sp.org/tlog-proof@v1\nextra AAA\nindex 5\n\n" + checkpoint, "extra data is not padded base64"),
            ("c2sp.org/tlog-proof@v1\nextra\nindex 5\n\n" + checkpoint, "expected \"index <n>\" on line 2"),
            ("c2sp.org/tlog-proof@v1\nIndex 5\n\n" + checkpoint, "expected \"index <n>\""),
            ("c2sp.org/tlog-proof@v1\nindex  5\n\n" + checkpoint, "index is not a decimal"),
            ("c2sp.org/tlog-proof@v1\nindex 05\n\n" + checkpoint, "index is not a decimal"),
            ("c2sp.org/tlog-proof@v1\nindex -5\n\n" + checkpoint, "index is not a decimal"),
            ("c2sp.org/tlog-proof@v1\nindex \n\n" + checkpoint, "index is not a decimal"),
            ("c2sp.org/tlog-proof@v1\nindex 9223372036854775808\n\n" + checkpoint, "index is not a decimal"),
            ("c2sp.org/tlog-proof@v1\nindex 5\nextra AAAA\n\n" + checkpoint, "line 3 is not the padded base64 of a 32-byte hash"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\(hashes[0])\n\(hashes[1].dropLast())\n\n" + checkpoint, "line 4 is not"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\(String(repeating: "\(hashes[0])\n", count: 64))\n" + checkpoint, "more than 63"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\(hashes[0])\n", "no blank line before the checkpoint"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\(hashes[0])", "no blank line before the checkpoint"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\n", "checkpoint is missing"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\nmuster.example/audit\n21\n", "its checkpoint"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\n" + checkpoint.replacingOccurrences(of: "\n21\n", with: "\n021\n"), "tree size"),
            ("c2sp.org/tlog-proof@v1\nindex 5\n\n" + checkpoint.replacingOccurrences(of: "— ", with: "- "), "em dash"),
            (good.replacingOccurrences(of: "\n\n", with: "\n\n\n"), "its checkpoint"),
        ]
        for (text, reason) in cases {
            let error = proofError { _ = try TlogProof.parse(text) }
            #expect(error?.contains(reason) == true, "\(text.debugDescription): \(error ?? "accepted")")
        }
        #expect(try TlogProof.parse(good).index == 5)
    }

    @Test("the extra data is carried, not trusted: changing it changes nothing verify checks")
    func extraIsUnauthenticated() throws {
        let log = try SignedLog()
        var proof = try log.proof(of: 2)
        proof.extra = Array("context".utf8)
        let parsed = try TlogProof.parse(proof.text)
        #expect(parsed.extra == Array("context".utf8))
        #expect(try parsed.verify(leafHash: MerkleTree.leafHash(log.entries[2]), origin: log.origin, verifiers: [log.signer.verifier]).size == 21)
    }
}
