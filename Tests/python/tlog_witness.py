#!/usr/bin/env python3
"""A transparency-log witness speaking C2SP tlog-witness (add-checkpoint), for the tests.

Written from the specs (c2sp.org/tlog-witness, tlog-cosignature, RFC 9162 section 2.1.4.2), not from
Muster's Swift code: it checks the log's signature with the log's verifier key, checks each new
checkpoint's consistency proof against the last one it cosigned, and answers with an Ed25519
cosignature/v1. It keeps each log's latest checkpoint in STATE_DIR/<hex origin> and appends
"<status> <old> <size>" for every request to STATE_DIR/requests.

Usage: tlog_witness.py LOG_VERIFIER_KEY STATE_DIR
Prints "PORT <port>" and "KEY <witness verifier key>" on standard output, then serves on 127.0.0.1.
"""

import base64
import hashlib
import http.server
import importlib.util
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.dont_write_bytecode = True
_spec = importlib.util.spec_from_file_location(
    "verify_export", Path(__file__).resolve().parents[2] / "scripts" / "verify-export.py")
verify_export = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verify_export)

WITNESS_NAME = "witness.test/w1"
COSIGNATURE_ALGORITHM = b"\x04"


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 section 2.1.4.2, step by step."""
    if first == second:
        return proof == [] and first_hash == second_hash
    if first == 0:
        return proof == []
    if first > second or not proof:
        return False
    if first & (first - 1) == 0:
        proof = [first_hash] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


class Witness:
    def __init__(self, log_key, state):
        self.log_key = verify_export.parse_verifier_key(log_key)
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.private = Ed25519PrivateKey.generate()
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        encoded = COSIGNATURE_ALGORITHM + public
        key_id = hashlib.sha256(WITNESS_NAME.encode() + b"\n" + encoded).digest()[:4]
        self.key_id = key_id
        self.verifier_key = f"{WITNESS_NAME}+{key_id.hex()}+{base64.b64encode(encoded).decode()}"

    def latest(self, origin):
        path = self.state / origin.encode().hex()
        if not path.exists():
            return 0, None
        size, root = path.read_text().split()
        return int(size), base64.b64decode(root)

    def add_checkpoint(self, body):
        """(status, content type, answer)."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, "text/plain", "not UTF-8\n"
        head, sep, note = text.partition("\n\n")
        if not sep:
            return 400, "text/plain", "no blank line after the proof\n"
        lines = head.split("\n")
        if not lines[0].startswith("old ") or len(lines) - 1 > 63:
            return 400, "text/plain", "bad old size line or too many proof lines\n"
        old_text = lines[0][4:]
        if not old_text.isdigit() or (old_text != "0" and old_text.startswith("0")):
            return 400, "text/plain", "bad old size\n"
        old = int(old_text)
        try:
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        except ValueError:
            return 400, "text/plain", "a proof line is not base64\n"
        if any(len(hash) != 32 for hash in proof):
            return 400, "text/plain", "a proof line is not a 32-byte hash\n"
        origin = note.split("\n", 1)[0]
        if origin != self.log_key.name:
            return 404, "text/plain", "unknown log\n"
        try:
            checkpoint_text = verify_export.open_signed_note(note, self.log_key, "checkpoint")
            checkpoint = verify_export.parse_checkpoint(checkpoint_text)
        except verify_export.Refused as refused:
            return 403, "text/plain", f"{refused}\n"
        if old > checkpoint.size:
            return 400, "text/plain", "old size beyond the checkpoint\n"
        latest, latest_root = self.latest(origin)
        if old != latest:
            return 409, "text/x.tlog.size", f"{latest}\n"
        if old == checkpoint.size:
            if latest_root != checkpoint.root:
                return 409, "text/x.tlog.size", f"{latest}\n"
        elif not verify_consistency(old, checkpoint.size, latest_root or b"", checkpoint.root, proof):
            return 422, "text/plain", "the consistency proof does not verify\n"
        (self.state / origin.encode().hex()).write_text(f"{checkpoint.size} {base64.b64encode(checkpoint.root).decode()}\n")
        timestamp = int(time.time())
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()
        signature = self.key_id + timestamp.to_bytes(8, "big") + self.private.sign(message)
        return 200, "text/plain", f"\u2014 {WITNESS_NAME} {base64.b64encode(signature).decode()}\n"


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    witness = Witness(argv[1], argv[2])

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.path != "/add-checkpoint":
                status, kind, answer = 404, "text/plain", "not found\n"
            else:
                old = body.split(b"\n", 1)[0].decode("utf-8", "replace")
                size = body.split(b"\n\n", 1)[-1].split(b"\n")[1:2]
                # Checking the old size and storing the new checkpoint stay atomic; the log keeps their order.
                with lock:
                    status, kind, answer = witness.add_checkpoint(body)
                    with open(witness.state / "requests", "a") as log:
                        log.write(f"{status} {old[4:]} {size[0].decode('utf-8', 'replace') if size else '?'}\n")
            data = answer.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    lock = threading.Lock()
    # A thread per connection: clients keep connections alive, and one must not block the others.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    print(f"KEY {witness.verifier_key}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
