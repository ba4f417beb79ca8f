"""Self-test of scripts/verify-export.py: run with `python3 -m unittest discover Tests/python`.

Builds its own transparency log in Python, independently of the verifier's code: an
Ed25519 signer key, canonical entry bytes written by a JCS string writer of its own,
an RFC 6962 tree (MTH and PATH as section 2.1 defines them), signed checkpoints and
tlog-proofs; several incidents are interleaved so proofs are non-trivial, and no tree
size is a power of two. Then it runs the verifier as a subprocess (sys.executable)
on good and tampered exports, and loads it in-process for the byte-flip sweep.
"""

import base64
import datetime
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

REPO = Path(__file__).resolve().parents[2]
VERIFIER = REPO / "scripts" / "verify-export.py"
T0 = 1_796_227_200_125  # 2026-12-02T16:00:00.125Z


def load_verifier():
    """The verifier as a module, for the in-process sweep (no __pycache__ left in scripts/)."""
    spec = importlib.util.spec_from_file_location("verify_export", VERIFIER)
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


# --- canonical JSON, written the way the Swift encoder writes it (not with json.dumps)


def jcs_string(text):
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif code < 0x20:
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value):
    if value is None:
        return "null"
    if isinstance(value, str):
        return jcs_string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-8"))
        return "{" + ",".join(jcs_string(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise TypeError(type(value))


def export_bytes(export):
    return (jcs(export) + "\n").encode("utf-8")


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def timestamp(ms):
    instant = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


# --- an RFC 6962 log with C2SP checkpoints and proofs


def sha256(data):
    return hashlib.sha256(data).digest()


class Signer:
    def __init__(self, name):
        self.name = name
        self.private = Ed25519PrivateKey.generate()
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = sha256(name.encode() + b"\n\x01" + public)[:4]
        encoded = b"\x01" + public
        self.verifier_key = f"{name}+{self.key_id.hex()}+{b64(encoded)}"

    def signature_line(self, text):
        return f"\u2014 {self.name} {b64(self.key_id + self.private.sign(text.encode()))}\n"


class Log:
    def __init__(self, origin, signer):
        self.origin = origin
        self.signer = signer
        self.leaves = []
        self.memo = {}

    def append(self, entry):
        self.leaves.append(entry)
        return len(self.leaves) - 1

    def mth(self, start, end):
        """RFC 6962 2.1: MTH of leaves[start:end]."""
        if (start, end) not in self.memo:
            n = end - start
            if n == 1:
                value = sha256(b"\x00" + self.leaves[start])
            else:
                k = 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n
                value = sha256(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))
            self.memo[(start, end)] = value
        return self.memo[(start, end)]

    def path(self, m, start, end):
        """RFC 6962 2.1.1: PATH(m, D[start:end]), the leaf's sibling first."""
        n = end - start
        if n == 1:
            return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            return self.path(m, start, start + k) + [self.mth(start + k, end)]
        return self.path(m - k, start + k, end) + [self.mth(start, start + k)]

    def checkpoint(self, size, cosigner=None):
        text = f"{self.origin}\n{size}\n{b64(self.mth(0, size))}\n"
        note = text + "\n" + self.signer.signature_line(text)
        if cosigner:
            note += cosigner.signature_line(text)
        return note

    def proof(self, index, size, checkpoint=None):
        lines = ["c2sp.org/tlog-proof@v1", f"index {index}"] + [b64(h) for h in self.path(index, 0, size)]
        return "\n".join(lines) + "\n\n" + (checkpoint or self.checkpoint(size))


class Incident:
    """One incident's chain of entries, appended to a shared log."""

    def __init__(self, log, ident, legacy=0, break_chain_at=None):
        self.log, self.id, self.legacy, self.break_chain_at = log, ident, legacy, break_chain_at
        self.data_key = AESGCM.generate_key(bit_length=256)
        self.entries = []  # dicts: raw, index, at, actor, action, text

    def add(self, at_ms, actor, action, text=None, **fields):
        seq = len(self.entries) + 1
        v = 1 if seq <= self.legacy else 2
        obj = {"v": v, "incident": self.id, "seq": seq, "at": timestamp(at_ms), "actor": actor, "action": action}
        obj.update(fields)
        if v == 2 and seq > 1:
            prev = sha256(b"\x00" + self.entries[-1]["raw"])
            if seq == self.break_chain_at:
                prev = sha256(b"not the previous entry")
            obj["prev"] = prev.hex()
        if text is not None:
            nonce = os.urandom(12)
            aad = f"muster/audit\n{self.id}\n{seq}".encode()
            obj["sealed"] = b64(b"\x01" + nonce + AESGCM(self.data_key).encrypt(nonce, text.encode(), aad))
        raw = jcs(obj).encode("utf-8")
        index = self.log.append(raw)
        self.entries.append({"raw": raw, "index": index, "at": at_ms, "actor": actor, "action": action,
                             "text": text, "seq": seq})

    def export(self, size, purged=False, cosigner=None):
        checkpoint = self.log.checkpoint(size, cosigner)
        entries = []
        for e in self.entries:
            if e["index"] >= size:
                continue
            entries.append({
                "action": e["action"], "actor": e["actor"], "at": timestamp(e["at"]),
                "entry": b64(e["raw"]), "log_index": e["index"],
                "proof": self.log.proof(e["index"], size, checkpoint),
                "sequence": e["seq"], "since_report_ms": e["at"] - self.entries[0]["at"],
                "text": None if purged else e["text"],
            })
        return {
            "checkpoint": checkpoint, "data_key": None if purged else b64(self.data_key), "entries": entries,
            "format": "muster-incident-export/1", "incident": {"id": self.id},
            "verifier_key": self.log.signer.verifier_key,
        }


ODD_TEXT = 'quote " backslash \\ newline \n tab \t bell \u0007 del \u007f \u00e9 \U0001F600 \u2028 end'


def build_world():
    signer = Signer("muster.example/audit")
    log = Log("muster.example/audit", signer)
    small = Incident(log, "inc-0001")
    big = Incident(log, "inc-0002")
    legacy = Incident(log, "inc-0003", legacy=2)
    purged = Incident(log, "inc-0004")
    broken = Incident(log, "inc-0005", break_chain_at=3)
    filler = Incident(log, "inc-0006")
    t = T0
    filler.add(t, "system", "reported")
    legacy.add(t + 1, "person:ann", "reported", detail="suicide-risk high")
    legacy.add(t + 2, "system", "step_started", step=1)
    small.add(t + 10, "person:ann", "reported", text="Student said she wants to disappear.", detail="suicide-risk high")
    big.add(t + 20, "integration:am", "reported", text=ODD_TEXT, detail=ODD_TEXT)
    purged.add(t + 21, "person:cy", "reported", text="Sealed and later purged.")
    broken.add(t + 22, "system", "reported")
    for i in range(3):
        filler.add(t + 30 + i, "system", "accessed", detail="from 10.0.0.%d" % i)
    big.add(t + 40, "system", "paged", step=1, round=1, channel="sms", recipient="person:bob",
            notification="inc-0002/0/page/1.1/person:bob/sms")
    small.add(t + 1_500, "system", "paged", step=1, round=1, channel="push", recipient="person:bob",
              notification="inc-0001/0/page/1.1/person:bob/push")
    legacy.add(t + 50, "person:bob", "acknowledged")
    purged.add(t + 51, "person:cy", "note_added", text="More sealed words.")
    broken.add(t + 52, "system", "step_started", step=1)
    broken.add(t + 53, "system", "paged", step=1, round=1)
    for i in range(2):
        big.add(t + 60 + i, "person:bob", "note_added", text=f"note {i}: called the guardian")
        filler.add(t + 70 + i, "system", "accessed")
    small.add(t + 90_061, "person:bob", "note_added", text="Guardian called; \"safe\" \\ \u00e9\n")
    legacy.add(t + 100, "person:bob", "task_completed", task="guardian")
    purged.add(t + 101, "system", "purged", detail="retention: 30 days after resolution")
    big.add(t + 110, "person:dee", "task_overdue", task="screening", target="role:principal@site")
    big.add(t + 111, "person:dee", "resolved")
    size = len(log.leaves)  # 25
    for i in range(7):
        filler.add(t + 200 + i, "system", "accessed")
    big.add(t + 300, "person:dee", "reopened")
    later = len(log.leaves)  # 33
    return log, small, big, legacy, purged, broken, size, later


class VerifierTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.verifier = load_verifier()
        cls.log, cls.small, cls.big, cls.legacy, cls.purged, cls.broken, cls.size, cls.later = build_world()
        if not (cls.size & (cls.size - 1) and cls.later & (cls.later - 1)):
            raise AssertionError("the tree sizes must not be powers of two")
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_verifier(self, export, *args, raw=None):
        path = Path(self.tmp.name) / "export.json"
        path.write_bytes(raw if raw is not None else export_bytes(export))
        done = subprocess.run([sys.executable, str(VERIFIER), str(path), *args],
                              capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def assert_refused(self, export, expected, *args):
        code, out, err = self.run_verifier(export, *args)
        self.assertEqual(code, 1, err)
        self.assertEqual(out, "")
        self.assertEqual(err.count("\n"), 1, err)
        self.assertTrue(err.startswith("verify-export: refused: "), err)
        self.assertIn(expected, err)
        return err

    def assert_verified(self, export, *args):
        code, out, err = self.run_verifier(export, *args)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.count("\n"), 1, out)
        self.assertTrue(out.startswith("OK: "), out)
        return out, err


class ValidExports(VerifierTestCase):
    def test_valid_export_verifies_with_pinned_key(self):
        export = self.big.export(self.size)
        out, err = self.assert_verified(export, "--key", self.log.signer.verifier_key)
        indices = [e["log_index"] for e in export["entries"]]
        self.assertEqual(out, f"OK: incident inc-0002, 6 entries, log indices {indices[0]}..{indices[-1]}, "
                              f"checkpoint muster.example/audit size {self.size} signed by muster.example/audit\n")
        self.assertEqual(err, "")

    def test_without_key_warns_that_the_key_came_from_the_export(self):
        out, err = self.assert_verified(self.small.export(self.size))
        self.assertIn("incident inc-0001, 3 entries", out)
        self.assertIn("warning: the verifier key was taken from the export itself", err)

    def test_later_checkpoint_verifies_with_more_entries(self):
        out, _ = self.assert_verified(self.big.export(self.later), "--key", self.log.signer.verifier_key)
        self.assertIn("7 entries", out)
        self.assertIn(f"size {self.later} ", out)

    def test_version_1_entries_at_the_start_of_a_chain(self):
        self.assert_verified(self.legacy.export(self.size), "--key", self.log.signer.verifier_key)

    def test_purged_export_verifies_with_null_texts(self):
        out, _ = self.assert_verified(self.purged.export(self.size, purged=True), "--key", self.log.signer.verifier_key)
        self.assertIn("data key purged", out)

    def test_witness_cosignature_is_ignored(self):
        export = self.small.export(self.size, cosigner=Signer("witness.example/w1"))
        self.assert_verified(export, "--key", self.log.signer.verifier_key)


class TamperedExports(VerifierTestCase):
    def test_every_single_byte_flip_is_refused(self):
        export = self.small.export(self.size)
        data = export_bytes(export)
        self.assertEqual(self.verifier.verify_export(data).summary.split(",")[0], "OK: incident inc-0001")
        self.assertLess(len(data), 6000)
        for position in range(len(data)):
            for mask in (0x01, 0x20):
                mutated = bytearray(data)
                mutated[position] ^= mask
                with self.subTest(position=position, mask=mask):
                    with self.assertRaises(self.verifier.Refused):
                        self.verifier.verify_export(bytes(mutated))
        # The command line agrees on a sample of them: exit 1 and one line.
        for position in range(0, len(data), 211):
            mutated = bytearray(data)
            mutated[position] ^= 0x01
            code, out, err = self.run_verifier(None, raw=bytes(mutated))
            self.assertEqual((code, out, err.count("\n")), (1, "", 1), err)

    def test_wrong_pinned_key(self):
        other = Signer("muster.example/audit")
        self.assert_refused(self.small.export(self.size), "is not the pinned key", "--key", other.verifier_key)

    def test_export_resigned_by_another_log_is_refused_under_the_pinned_key(self):
        impostor = Log("muster.example/audit", Signer("muster.example/audit"))
        impostor.leaves = list(self.log.leaves)
        copy = Incident(impostor, "inc-0001")
        copy.entries, copy.data_key = self.small.entries, self.small.data_key
        export = copy.export(self.size)
        self.assert_verified(export)  # self-consistent ...
        self.assert_refused(export, "is not the pinned key", "--key", self.log.signer.verifier_key)  # ... but not ours

    def test_verifier_key_that_did_not_sign(self):
        export = self.small.export(self.size)
        export["verifier_key"] = Signer("muster.example/audit").verifier_key
        self.assert_refused(export, "checkpoint has no signature by the verifier key")

    def test_missing_middle_entry(self):
        export = self.small.export(self.size)
        del export["entries"][1]
        self.assert_refused(export, "sequence 2 is missing")

    def test_swapped_pair(self):
        export = self.big.export(self.size)
        entries = export["entries"]
        entries[2], entries[3] = entries[3], entries[2]
        self.assert_refused(export, "not in sequence order: sequence 4 comes before sequence 3")

    def test_swapped_sequence_numbers(self):
        export = self.big.export(self.size)
        entries = export["entries"]
        entries[2]["sequence"], entries[3]["sequence"] = entries[3]["sequence"], entries[2]["sequence"]
        entries[2], entries[3] = entries[3], entries[2]
        self.assert_refused(export, "entry sequence 3 (log index %d): 'entry' has seq 4" % entries[2]["log_index"])

    def test_changed_text(self):
        export = self.small.export(self.size)
        export["entries"][2]["text"] = "Guardian called; all fine.\n"
        err = self.assert_refused(export, "text: the export's text is not the sealed text")
        self.assertIn("entry sequence 3 (log index %d)" % export["entries"][2]["log_index"], err)

    def test_text_where_nothing_was_sealed(self):
        export = self.small.export(self.size)
        export["entries"][1]["text"] = "invented"
        self.assert_refused(export, "the entry has no 'sealed', so the text must be null")

    def test_changed_data_key(self):
        export = self.small.export(self.size)
        export["data_key"] = b64(os.urandom(32))
        self.assert_refused(export, "entry sequence 1 (log index %d): the sealed text does not open with the "
                                    "export's data key" % export["entries"][0]["log_index"])

    def test_text_kept_after_purge(self):
        export = self.purged.export(self.size, purged=True)
        export["entries"][0]["text"] = "Sealed and later purged."
        self.assert_refused(export, "the data key is null (purged), so the text must be null")

    def test_proof_for_a_different_checkpoint(self):
        export = self.small.export(self.size)
        index = export["entries"][1]["log_index"]
        export["entries"][1]["proof"] = self.log.proof(index, self.later)
        self.assert_refused(export, f"entry sequence 2 (log index {index}): proof: its checkpoint is not the "
                                    f"export's checkpoint")

    def test_proof_at_another_index(self):
        export = self.small.export(self.size)
        export["entries"][1]["log_index"] += 1
        self.assert_refused(export, "its index is")

    def test_inclusion_proof_for_another_leaf(self):
        export = self.small.export(self.size)
        first = export["entries"][0]
        first["proof"] = self.log.proof(first["log_index"] + 1, self.size, export["checkpoint"])
        first["log_index"] += 1
        self.assert_refused(export, "inclusion proof: the computed root is not the checkpoint's root hash")

    def test_broken_prev_chain(self):
        export = self.broken.export(self.size)
        self.assert_refused(export, "entry sequence 3 (log index %d): prev chain: 'prev' is"
                            % export["entries"][2]["log_index"])

    def test_changed_copy_of_the_actor(self):
        export = self.small.export(self.size)
        export["entries"][2]["actor"] = "person:eve"
        self.assert_refused(export, "'actor' is 'person:eve' in the export but 'person:bob' in 'entry'")

    def test_since_report_recomputed(self):
        export = self.small.export(self.size)
        export["entries"][2]["since_report_ms"] += 1
        self.assert_refused(export, "since_report_ms is 90052")

    def test_unknown_and_missing_keys(self):
        export = self.small.export(self.size)
        export["entries"][0]["note"] = "x"
        self.assert_refused(export, "entries[0] has an unknown key 'note'")
        export = self.small.export(self.size)
        del export["incident"]
        self.assert_refused(export, "the export has no 'incident'")

    def test_not_canonical(self):
        data = export_bytes(self.small.export(self.size))
        code, _, err = self.run_verifier(None, raw=data.replace(b'{"checkpoint":', b'{ "checkpoint":', 1))
        self.assertEqual(code, 1)
        self.assertIn("the file is not canonical JSON (first difference at byte 1)", err)
        code, _, err = self.run_verifier(None, raw=data + b"\n")
        self.assertIn("not canonical JSON", err)
        code, _, err = self.run_verifier(None, raw=data.replace(b'"format"', b'"format":"x","format"', 1))
        self.assertIn("duplicate key 'format'", err)


class CommandLine(VerifierTestCase):
    def test_usage_errors_exit_2(self):
        for args in ([], ["a.json", "b.json"], ["--bogus", "a.json"], ["a.json", "--key"], ["a.json", "--key", "x"]):
            done = subprocess.run([sys.executable, str(VERIFIER), *args], capture_output=True, text=True)
            self.assertEqual(done.returncode, 2, (args, done.stderr))
            self.assertTrue(done.stderr.startswith("usage: verify-export.py EXPORT.json [--key VERIFIER_KEY]\n"))

    def test_malformed_inputs_give_one_line(self):
        for raw in (b"", b"not json\n", b"[]\n", b"\xff\n", b"{}\n", b"[" * 100000 + b"\n", b'{"a":1.5}\n'):
            code, out, err = self.run_verifier(None, raw=raw)
            self.assertEqual((code, out, err.count("\n")), (1, "", 1), (raw[:20], err))
            self.assertNotIn("Traceback", err)
            self.assertNotIn("internal error", err)
        done = subprocess.run([sys.executable, str(VERIFIER), str(Path(self.tmp.name) / "absent.json")],
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 1)
        self.assertIn("cannot read", done.stderr)


class Algorithms(VerifierTestCase):
    def test_inclusion_proofs_for_every_index_of_every_size(self):
        v = self.verifier
        for size in range(1, 34):
            root = self.log.mth(0, size)
            for index in range(size):
                leaf = self.log.mth(index, index + 1)
                path = self.log.path(index, 0, size)
                v.verify_inclusion(leaf, index, size, path, root)
                bad = [(leaf, index, size, path + [root]), (leaf, size, size, path), (sha256(b"another leaf"), index, size, path)]
                if path:
                    bad.append((leaf, index, size, path[:-1]))
                if index ^ 1 < size:
                    bad.append((leaf, index ^ 1, size, path))
                for case in bad:
                    with self.assertRaises(v.Refused, msg=(size, index, case[1:3], len(case[3]))):
                        v.verify_inclusion(*case, root)

    def test_go_sumdb_note_example(self):
        # The well-formed note and verifier key from golang.org/x/mod/sumdb/note's documentation.
        v = self.verifier
        key = v.parse_verifier_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        text = ("If you think cryptography is the answer to your problem,\n"
                "then you don't know what your problem is.\n")
        note = text + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        self.assertEqual(v.open_signed_note(note, key, "note"), text)
        with self.assertRaises(v.Refused):
            v.open_signed_note(note.replace("problem,", "problem;"), key, "note")

    def test_tlog_proof_layout(self):
        v = self.verifier
        checkpoint = self.log.checkpoint(self.size)
        proof = v.parse_tlog_proof(self.log.proof(5, self.size, checkpoint))
        self.assertEqual((proof.index, proof.checkpoint, proof.extra), (5, checkpoint, None))
        self.assertEqual(proof.hashes, self.log.path(5, 0, self.size))
        with_extra = v.parse_tlog_proof("c2sp.org/tlog-proof@v1\nextra AAEC\nindex 0\n\n" + checkpoint)
        self.assertEqual((with_extra.extra, with_extra.hashes), (b"\x00\x01\x02", []))
        for bad in ("c2sp.org/tlog-proof@v2\nindex 0\n\n", "c2sp.org/tlog-proof@v1\nindex 01\n\n" + checkpoint,
                    "c2sp.org/tlog-proof@v1\nindex 0\n" + checkpoint):
            with self.assertRaises(v.Refused):
                v.parse_tlog_proof(bad)


class DocumentedTestVector(VerifierTestCase):
    def test_the_export_in_docs_audit_md_verifies(self):
        doc = REPO / "docs" / "audit.md"
        if not doc.exists():
            self.skipTest("docs/audit.md is absent")
        lines = doc.read_text(encoding="utf-8").splitlines()
        export = next(line for line in lines if line.startswith('{"checkpoint":'))
        key = next(line for line in lines if line.startswith("muster.example/audit+"))
        code, out, err = self.run_verifier(None, "--key", key, raw=(export + "\n").encode("utf-8"))
        self.assertEqual(code, 0, err)
        self.assertIn("OK: incident inc-0042, 2 entries, log indices 2..4", out)


if __name__ == "__main__":
    unittest.main()
