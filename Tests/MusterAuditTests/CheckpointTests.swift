// Checkpoint note text as C2SP tlog-checkpoint specifies it: exact output, faithful parsing, and a
// precise refusal for every malformed text.
import Foundation
import MusterAudit
import Testing

private func checkpointError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as CheckpointError {
        return error.description
    } catch {
        return "unexpected \(type(of: error)): \(error)"
    }
}

@Suite("Checkpoints")
struct CheckpointTests {
    @Test("the text is origin, decimal size and base64 root, each on its own line (Go's TestFormatTree)")
    func format() throws {
        let root = MerkleTree.leafHash(Array("hello world".utf8))
        let checkpoint = Checkpoint(origin: "go.sum database tree", size: 123_456_789_012, root: root)
        #expect(checkpoint.text == "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n")
        #expect(try Checkpoint.parse(checkpoint.text) == checkpoint)
        try checkpoint.validate()
    }

    @Test("the spec's example parses, and extension lines follow the root")
    func specExample() throws {
        let checkpoint = try Checkpoint.parse("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
        #expect(checkpoint.origin == "example.com/behind-the-sofa")
        #expect(checkpoint.size == 20_852_163)
        #expect(checkpoint.root.base64 == "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
        #expect(checkpoint.extensions.isEmpty)

        let extended = Checkpoint(origin: "muster.example/audit", size: 0, root: MerkleTree.emptyRoot, extensions: ["timestamp 1796227200", "— not a signature"])
        #expect(extended.text == "muster.example/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntimestamp 1796227200\n— not a signature\n")
        #expect(try Checkpoint.parse(extended.text) == extended)
    }

    @Test("a signed checkpoint opens and its text parses back")
    func signed() throws {
        let signer = try NoteSigner.generate(name: "muster.example/audit")
        let checkpoint = Checkpoint(origin: "muster.example/audit", size: 42, root: MerkleTree.leafHash([1, 2, 3]))
        let note = try SignedNote.sign(checkpoint.text, with: [signer])
        let opened = try SignedNote.open(note, verifiers: [signer.verifier])
        #expect(try Checkpoint.parse(opened.text) == checkpoint)
    }

    @Test("malformed checkpoint texts are refused with the reason",
          arguments: [
              ("", "end in a newline"),
              ("example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "end in a newline"),
              ("example.com/log\n5\n", "2 line(s)"),
              ("\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "line 1 is empty"),
              ("example.com/log\n\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "line 2 is empty"),
              ("example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n", "line 4 is empty"),
              ("example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n\nmore\n", "line 5 is empty"),
              ("go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n", "tree size \"0xabcdef\""),
              ("example.com/log\n05\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "tree size \"05\""),
              ("example.com/log\n-5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "tree size \"-5\""),
              ("example.com/log\n+5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "tree size \"+5\""),
              ("example.com/log\n 5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "tree size \" 5\""),
              ("example.com/log\n9223372036854775808\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "fits in 63 bits"),
              ("example.com/log\n５\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", "tree size"),
              ("go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n", "root hash"),
              ("example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n", "root hash"),
              ("example.com/log\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n", "root hash"),
              ("example.com/log\n5\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n", "root hash"),
              ("example.com/log\r\n5\r\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n", "control character"),
          ])
    func malformed(text: String, reason: String) {
        let error = checkpointError { _ = try Checkpoint.parse(text) }
        #expect(error?.contains(reason) == true, "\(error ?? "accepted")")
    }

    @Test("the largest size and size 0 parse")
    func sizeLimits() throws {
        #expect(try Checkpoint.parse("l\n9223372036854775807\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n").size == Int64.max)
        #expect(try Checkpoint.parse("l\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n").size == 0)
    }

    @Test("validate refuses what would not read back")
    func validate() {
        let root = MerkleTree.emptyRoot
        #expect(checkpointError { try Checkpoint(origin: "", size: 0, root: root).validate() }?.contains("origin is empty") == true)
        #expect(checkpointError { try Checkpoint(origin: "a\nb", size: 0, root: root).validate() }?.contains("control character") == true)
        #expect(checkpointError { try Checkpoint(origin: "a", size: -1, root: root).validate() }?.contains("negative") == true)
        #expect(checkpointError { try Checkpoint(origin: "a", size: 1, root: root, extensions: [""]).validate() }?.contains("extension line 1 is empty") == true)
        #expect(checkpointError { try Checkpoint(origin: "a", size: 1, root: root, extensions: ["x", "y\n"]).validate() }?.contains("extension line 2") == true)
    }
}
