#!/usr/bin/env python3
"""Verify a Muster incident audit export offline, independently of Muster.

Usage: verify-export.py EXPORT.json [--key VERIFIER_KEY]

EXPORT.json is the output of `muster audit export --incident ID --format json`.
VERIFIER_KEY is the log's verifier key in signed-note form (`muster audit key`
prints it); without --key the key written in the export is used, and a warning
says so. Needs Python 3.9+ and the `cryptography` package; nothing else.

Exit status: 0 when every check passes (one summary line on stdout), 1 when the
export is refused (the first failed check on stderr, naming the entry's
sequence and log index), 2 on a usage error.

The formats and the order of the checks are specified in docs/audit.md:
C2SP signed-note, tlog-checkpoint and tlog-proof; RFC 6962 section 2.1 hashing;
RFC 9162 section 2.1.3.2 inclusion proof verification.
"""

import base64
import binascii
import datetime
import hashlib
import json
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write("verify-export: needs the Python package 'cryptography' (pip install cryptography)\n")
    sys.exit(1)

PROG = "verify-export"
EXPORT_FORMAT = "muster-incident-export/1"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_SIGNATURES = 100  # signed-note: verifiers MUST accept at least 16
MAX_PROOF_HASHES = 64  # a tree of at most 2^64 leaves has at most 64 levels
ED25519_ALGORITHM = 0x01


class Refused(Exception):
    """The export fails a check; the message names the check."""


# ---------------------------------------------------------------------------
# Canonical JSON (keys sorted, no white space, JCS string escaping, integers)


def _refuse_float(text):
    raise Refused(f"number {text} is not an integer (only integers are allowed)")


def _refuse_constant(text):
    raise Refused(f"{text} is not JSON")


def _parse_int(text):
    if len(text.lstrip("-")) > 20:
        raise Refused(f"integer {text[:24]}... is too long")
    return int(text)


def _object_without_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise Refused(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def parse_json(text, what):
    """Parses JSON text, refusing duplicate keys, fractions, exponents and NaN."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_float=_refuse_float,
            parse_int=_parse_int,
            parse_constant=_refuse_constant,
        )
    except Refused as error:
        raise Refused(f"{what}: {error}") from None
    except json.JSONDecodeError as error:
        raise Refused(f"{what} is not JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
    except (ValueError, RecursionError) as error:
        raise Refused(f"{what} is not JSON: {error}") from None


def canonical_json(value):
    """The canonical bytes of a parsed value. Python sorts keys by code point,
    which is the order of their UTF-8 bytes; with ensure_ascii=False it escapes
    exactly `"`, `\\` and U+0000..U+001F (\\b \\t \\n \\f \\r, else \\u00xx), as JCS does."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return None  # e.g. a lone surrogate written as \udxxx: not encodable, so not canonical


def require_canonical(data, expected, what):
    """Refuses `data` unless it is byte for byte `expected` (the re-encoding of what was parsed)."""
    if expected == data:
        return
    if expected is None:
        raise Refused(f"{what} is not canonical JSON (a string is not valid Unicode)")
    offset, limit = 0, min(len(expected), len(data))
    while offset < limit and expected[offset] == data[offset]:
        offset += 1
    raise Refused(f"{what} is not canonical JSON (first difference at byte {offset})")


def check_object(obj, fields, what, optional=None):
    """Requires exactly the keys of `fields` (plus any of `optional`) with the given types."""
    optional = optional or {}
    if not isinstance(obj, dict):
        raise Refused(f"{what} is not a JSON object")
    missing = sorted(k for k in fields if k not in obj)
    if missing:
        raise Refused(f"{what} has no {missing[0]!r}")
    unknown = sorted(k for k in obj if k not in fields and k not in optional)
    if unknown:
        raise Refused(f"{what} has an unknown key {unknown[0]!r}")
    for key, value in sorted(obj.items()):
        expected = fields.get(key, optional.get(key))
        if not _has_type(value, expected):
            raise Refused(f"{what}: {key!r} is not {_type_name(expected)}")


def _has_type(value, expected):
    kinds = expected if isinstance(expected, tuple) else (expected,)
    for kind in kinds:
        if kind is None and value is None:
            return True
        if kind is int and type(value) is int:  # bool is an int subclass: refuse it
            return True
        if kind in (str, list, dict) and type(value) is kind:
            return True
    return False


def _type_name(expected):
    names = {str: "a string", int: "an integer", list: "an array", dict: "an object", None: "null"}
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(names[k] for k in kinds)


def decode_base64(text, what, length=None):
    """Standard base64 with padding (RFC 4648 section 4), in its one canonical form."""
    if not isinstance(text, str) or len(text) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text):
        raise Refused(f"{what} is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise Refused(f"{what} is not canonical base64")
    if length is not None and len(raw) != length:
        raise Refused(f"{what} is {len(raw)} bytes, not {length}")
    return raw


def parse_decimal(text, what):
    """ASCII decimal, no leading zeroes (unless 0), below 2^64."""
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", text) or int(text) >= 1 << 64:
        raise Refused(f"{what} {text!r} is not a decimal number without leading zeroes")
    return int(text)


# ---------------------------------------------------------------------------
# Signed notes (c2sp.org/signed-note) and verifier keys (golang.org/x/mod/sumdb/note)


class VerifierKey:
    def __init__(self, text, name, key_id, public_key):
        self.text = text
        self.name = name
        self.key_id = key_id
        self.public_key = public_key


def valid_key_name(name):
    """Non-empty, no Unicode spaces, no '+'."""
    return name != "" and "+" not in name and not any(c.isspace() for c in name)


def key_id(name, encoded_public_key):
    """SHA-256(key name || 0x0A || signature type || public key)[:4], as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + encoded_public_key).digest()
    return int.from_bytes(digest[:4], "big")


def parse_verifier_key(text):
    """`<name>+<8 lowercase hex key ID>+<base64(0x01 || 32-byte Ed25519 public key)>`."""
    parts = text.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise Refused(f"verifier key {text!r} is not of the form <name>+<key id>+<key>")
    name, hex_id, key64 = parts
    if not valid_key_name(name):
        raise Refused(f"verifier key {text!r}: the name is empty or contains a space")
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise Refused(f"verifier key {text!r}: the key ID is not 8 lowercase hex digits")
    encoded = decode_base64(key64, f"verifier key {text!r}: the key")
    if len(encoded) != 33 or encoded[0] != ED25519_ALGORITHM:
        raise Refused(f"verifier key {text!r}: the key is not 0x01 followed by a 32-byte Ed25519 public key")
    if int(hex_id, 16) != key_id(name, encoded):
        raise Refused(f"verifier key {text!r}: the key ID does not match the name and key")
    return VerifierKey(text, name, int(hex_id, 16), encoded[1:])


def open_signed_note(message, key, what):
    """Splits a signed note at its last blank line and verifies the signature by `key`.

    Returns the note text (with its final newline). Signatures by other keys are
    ignored, as the spec requires; a signature by `key` that fails refuses the
    note; so does a note with no signature by `key`."""
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(f"{what} is not valid UTF-8") from None
    if any(c < "\x20" and c != "\n" for c in message):
        raise Refused(f"{what} contains a control character other than newline")
    split = message.rfind("\n\n")
    if split < 0:
        raise Refused(f"{what} has no blank line before its signatures")
    text, signatures = message[: split + 1], message[split + 2 :]
    if signatures == "" or not signatures.endswith("\n"):
        raise Refused(f"{what} does not end with a signature line and a newline")
    verified = 0
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Refused(f"{what} has more than {MAX_SIGNATURES} signatures")
    for line in lines:
        if not line.startswith("\u2014 "):
            raise Refused(f"{what}: signature line {line[:40]!r} does not start with an em dash and a space")
        name, _, sig64 = line[2:].partition(" ")
        if not valid_key_name(name) or sig64 == "":
            raise Refused(f"{what}: malformed signature line {line[:40]!r}")
        signature = decode_base64(sig64, f"{what}: the signature by {name}")
        if len(signature) < 5:
            raise Refused(f"{what}: the signature by {name} is too short")
        if name != key.name or int.from_bytes(signature[:4], "big") != key.key_id:
            continue  # an unknown key (a witness, a rotated key): ignored
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise Refused(f"{what}: the signature by {key.name} does not verify") from None
        verified += 1
    if verified == 0:
        raise Refused(f"{what} has no signature by the verifier key {key.text}")
    return text


# ---------------------------------------------------------------------------
# Checkpoints (c2sp.org/tlog-checkpoint)


class Checkpoint:
    def __init__(self, origin, size, root, extensions):
        self.origin = origin
        self.size = size
        self.root = root
        self.extensions = extensions


def parse_checkpoint(text):
    """Note text: origin, tree size, base64 root hash, optional extension lines; all non-empty."""
    if not text.endswith("\n"):
        raise Refused("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise Refused("checkpoint has fewer than three lines (origin, size, root hash)")
    if any(line == "" for line in lines):
        raise Refused("checkpoint has an empty line")
    size = parse_decimal(lines[1], "checkpoint tree size")
    root = decode_base64(lines[2], "checkpoint root hash", 32)
    return Checkpoint(lines[0], size, root, lines[3:])


# ---------------------------------------------------------------------------
# Proofs (c2sp.org/tlog-proof) and RFC 6962 / RFC 9162 Merkle trees


class TlogProof:
    def __init__(self, extra, index, hashes, checkpoint):
        self.extra = extra
        self.index = index
        self.hashes = hashes
        self.checkpoint = checkpoint


def parse_tlog_proof(text):
    """`c2sp.org/tlog-proof@v1`, optional `extra <base64>`, `index <n>`, zero or more
    base64 hashes (leaf's sibling first), an empty line, then the checkpoint verbatim."""
    position = 0

    def next_line():
        nonlocal position
        end = text.find("\n", position)
        if end < 0:
            raise Refused("proof ends before the blank line that precedes its checkpoint")
        line = text[position:end]
        position = end + 1
        return line

    if next_line() != PROOF_HEADER:
        raise Refused(f"proof does not start with the line {PROOF_HEADER!r}")
    line = next_line()
    extra = None
    if line.startswith("extra "):
        extra = decode_base64(line[len("extra ") :], "proof extra data")
        line = next_line()
    if not line.startswith("index "):
        raise Refused("proof has no 'index' line")
    index = parse_decimal(line[len("index ") :], "proof index")
    hashes = []
    while True:
        line = next_line()
        if line == "":
            break
        if len(hashes) == MAX_PROOF_HASHES:
            raise Refused(f"proof has more than {MAX_PROOF_HASHES} hashes")
        hashes.append(decode_base64(line, f"proof hash {len(hashes) + 1}", 32))
    checkpoint = text[position:]
    if checkpoint == "":
        raise Refused("proof has no checkpoint")
    return TlogProof(extra, index, hashes, checkpoint)


def leaf_hash(entry):
    """RFC 6962 section 2.1: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    """RFC 6962 section 2.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 section 2.1.3.2, step by step. Raises Refused naming the failure."""
    # 1. leaf_index >= tree_size fails.
    if index >= size:
        raise Refused(f"index {index} is not below the tree size {size}")
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn, r = index, size - 1, leaf
    # 4. For each p in inclusion_path:
    for p in path:
        # a. sn == 0: stop and fail.
        if sn == 0:
            raise Refused(f"more hashes than the path from leaf {index} to the root of a tree of size {size}")
        # b. LSB(fn) set, or fn == sn: r = HASH(0x01 || p || r); then, if LSB(fn) is not
        #    set, right-shift fn and sn equally until LSB(fn) is set or fn is 0.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        #    Otherwise r = HASH(0x01 || r || p).
        else:
            r = node_hash(r, p)
        # c. Right-shift fn and sn once.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal the root.
    if sn != 0:
        raise Refused(f"fewer hashes than the path from leaf {index} to the root of a tree of size {size}")
    if r != root:
        raise Refused("the computed root is not the checkpoint's root hash")


# ---------------------------------------------------------------------------
# Audit entries


ENTRY_FIELDS = {"action": str, "actor": str, "at": str, "incident": str, "seq": int, "v": int}
ENTRY_OPTIONAL = {
    "channel": str, "detail": str, "notification": str, "prev": str, "recipient": str,
    "round": int, "sealed": str, "step": int, "target": str, "task": str,
}
SEALED_VERSION = 0x01
NONCE_SIZE = 12
TAG_SIZE = 16


def parse_timestamp(text, what):
    """RFC 3339 in UTC with milliseconds (`2026-12-02T16:00:00.125Z`) as milliseconds since 1970."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z", text)
    if not match:
        raise Refused(f"{what} {text!r} is not an RFC 3339 UTC time with milliseconds")
    year, month, day, hour, minute, second, millis = (int(g) for g in match.groups())
    try:
        instant = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)
    except ValueError:
        raise Refused(f"{what} {text!r} is not a valid date and time") from None
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = instant - epoch
    return (delta.days * 86400 + delta.seconds) * 1000 + millis


def parse_entry(raw):
    """The entry bytes: canonical JSON with the documented keys and types."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("'entry' is not UTF-8") from None
    entry = parse_json(text, "'entry'")
    require_canonical(raw, canonical_json(entry), "'entry'")
    check_object(entry, ENTRY_FIELDS, "'entry'", ENTRY_OPTIONAL)
    if entry["v"] not in (1, 2):
        raise Refused(f"'entry' has v={entry['v']}, neither 1 nor 2")
    if entry["v"] == 1:
        for key in ("prev", "sealed"):
            if key in entry:
                raise Refused(f"'entry' is version 1 but has {key!r}")
    if entry["seq"] < 1:
        raise Refused(f"'entry' has seq {entry['seq']}, below 1")
    if "prev" in entry and not re.fullmatch(r"[0-9a-f]{64}", entry["prev"]):
        raise Refused("'entry': 'prev' is not 64 lowercase hex digits")
    return entry


def seal_context(incident, sequence):
    """AES-GCM associated data of an entry's sealed text."""
    return f"muster/audit\n{incident}\n{sequence}".encode("utf-8")


def open_sealed(sealed, data_key, incident, sequence):
    """0x01 || 12-byte nonce || AES-256-GCM ciphertext || 16-byte tag, under the incident's data key."""
    if len(sealed) < 1 + NONCE_SIZE + TAG_SIZE or sealed[0] != SEALED_VERSION:
        raise Refused("'sealed' is not 0x01 || nonce || ciphertext || tag")
    nonce, box = sealed[1 : 1 + NONCE_SIZE], sealed[1 + NONCE_SIZE :]
    try:
        plain = AESGCM(data_key).decrypt(nonce, box, seal_context(incident, sequence))
    except InvalidTag:
        raise Refused("the sealed text does not open with the export's data key (AES-GCM authentication failed)") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("the sealed text is not UTF-8") from None


# ---------------------------------------------------------------------------
# The export file


EXPORT_FIELDS = {
    "checkpoint": str, "data_key": (str, None), "entries": list, "format": str,
    "incident": dict, "verifier_key": str,
}
EXPORT_ENTRY_FIELDS = {
    "action": str, "actor": str, "at": str, "entry": str, "log_index": int, "proof": str,
    "sequence": int, "since_report_ms": int, "text": (str, None),
}


class Result:
    def __init__(self, summary, warnings):
        self.summary = summary
        self.warnings = warnings


def check_sequences(entries):
    sequences = [e["sequence"] for e in entries]
    for i in range(1, len(sequences)):
        if sequences[i] == sequences[i - 1]:
            raise Refused(f"entries: sequence {sequences[i]} appears twice")
        if sequences[i] < sequences[i - 1]:
            raise Refused(
                f"entries are not in sequence order: sequence {sequences[i - 1]} comes before sequence {sequences[i]}")
    if sequences[0] != 1:
        raise Refused(f"entries: the first entry has sequence {sequences[0]}, not 1 (sequence 1 is missing)")
    for i in range(1, len(sequences)):
        if sequences[i] != sequences[i - 1] + 1:
            raise Refused(
                f"entries: sequence {sequences[i - 1] + 1} is missing "
                f"(sequence {sequences[i - 1]} is followed by {sequences[i]})")


def verify_entry(item, export, checkpoint, previous_leaf, report_ms, data_key):
    """Checks one export entry; returns (its leaf hash, its `at` in milliseconds)."""
    raw = decode_base64(item["entry"], "'entry'")
    entry = parse_entry(raw)
    if entry["incident"] != export["incident"]["id"]:
        raise Refused(f"'entry' names incident {entry['incident']!r}, not {export['incident']['id']!r}")
    if entry["seq"] != item["sequence"]:
        raise Refused(f"'entry' has seq {entry['seq']}, not the export's sequence {item['sequence']}")
    for key in ("at", "actor", "action"):
        if entry[key] != item[key]:
            raise Refused(f"{key!r} is {item[key]!r} in the export but {entry[key]!r} in 'entry'")
    at_ms = parse_timestamp(entry["at"], "'at'")
    leaf = leaf_hash(raw)

    # The incident's chain.
    if entry["v"] == 2:
        if entry["seq"] == 1 and "prev" in entry:
            raise Refused("prev chain: sequence 1 has a 'prev'")
        if entry["seq"] > 1:
            if "prev" not in entry:
                raise Refused("prev chain: a version-2 entry after sequence 1 has no 'prev'")
            if entry["prev"] != previous_leaf.hex():
                raise Refused(
                    f"prev chain: 'prev' is {entry['prev']}, but the leaf hash of sequence "
                    f"{entry['seq'] - 1} is {previous_leaf.hex()}")

    # Inclusion in the signed log.
    try:
        proof = parse_tlog_proof(item["proof"])
    except Refused as error:
        raise Refused(f"proof: {error}") from None
    if proof.extra is not None:
        raise Refused("proof: has an 'extra' line, which Muster does not write (it is unauthenticated)")
    if proof.checkpoint != export["checkpoint"]:
        raise Refused("proof: its checkpoint is not the export's checkpoint (byte for byte)")
    if proof.index != item["log_index"]:
        raise Refused(f"proof: its index is {proof.index}, not the entry's log_index {item['log_index']}")
    if item["log_index"] >= checkpoint.size:
        raise Refused(f"log_index {item['log_index']} is not below the checkpoint's tree size {checkpoint.size}")
    try:
        verify_inclusion(leaf, proof.index, checkpoint.size, proof.hashes, checkpoint.root)
    except Refused as error:
        raise Refused(f"inclusion proof: {error}") from None

    # Derived and unsealed fields.
    since = at_ms - (at_ms if report_ms is None else report_ms)
    if item["since_report_ms"] != since:
        raise Refused(f"since_report_ms is {item['since_report_ms']}, but 'at' minus sequence 1's 'at' is {since}")
    if "sealed" in entry:
        sealed = decode_base64(entry["sealed"], "'sealed'")
        if data_key is None:
            if item["text"] is not None:
                raise Refused("text: the data key is null (purged), so the text must be null")
        else:
            plain = open_sealed(sealed, data_key, entry["incident"], entry["seq"])
            if item["text"] != plain:
                raise Refused("text: the export's text is not the sealed text")
    elif item["text"] is not None:
        raise Refused("text: the entry has no 'sealed', so the text must be null")
    return leaf, at_ms


def verify_export(data, pinned_key=None):
    """Verifies the bytes of an export file. Returns a Result or raises Refused."""
    warnings = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(f"the file is not UTF-8 (byte {error.start})") from None
    export = parse_json(text, "the file")
    if not isinstance(export, dict):
        raise Refused("the file is not a JSON object")
    body = canonical_json(export)
    require_canonical(data, None if body is None else body + b"\n", "the file")
    if "format" not in export:
        raise Refused("the export has no 'format'")
    if export["format"] != EXPORT_FORMAT:
        raise Refused(f"format is {export['format']!r}, not {EXPORT_FORMAT!r}")
    check_object(export, EXPORT_FIELDS, "the export")

    # The key and the checkpoint.
    key = parse_verifier_key(export["verifier_key"])
    if pinned_key is not None:
        if export["verifier_key"] != pinned_key.text:
            raise Refused(f"the export's verifier key {export['verifier_key']} is not the pinned key {pinned_key.text}")
    else:
        warnings.append(
            "warning: the verifier key was taken from the export itself; pin the log's key with --key "
            "(`muster audit key` prints it) so that a re-signed export is refused")
    note_text = open_signed_note(export["checkpoint"], key, "checkpoint")
    try:
        checkpoint = parse_checkpoint(note_text)
    except Refused as error:
        raise Refused(f"checkpoint: {error}") from None

    check_object(export["incident"], {"id": str}, "'incident'")
    incident = export["incident"]["id"]
    if incident == "":
        raise Refused("'incident': 'id' is empty")
    data_key = None
    if export["data_key"] is not None:
        data_key = decode_base64(export["data_key"], "data_key", 32)

    entries = export["entries"]
    if not entries:
        raise Refused("entries: the export has no entries")
    for position, item in enumerate(entries):
        check_object(item, EXPORT_ENTRY_FIELDS, f"entries[{position}]")
    check_sequences(entries)

    previous_leaf, report_ms = None, None
    for item in entries:
        try:
            previous_leaf, at_ms = verify_entry(item, export, checkpoint, previous_leaf, report_ms, data_key)
        except Refused as error:
            raise Refused(f"entry sequence {item['sequence']} (log index {item['log_index']}): {error}") from None
        if report_ms is None:
            report_ms = at_ms

    indices = [item["log_index"] for item in entries]
    summary = (
        f"OK: incident {incident}, {len(entries)} entries, log indices {min(indices)}..{max(indices)}, "
        f"checkpoint {checkpoint.origin} size {checkpoint.size} signed by {key.name}")
    if data_key is None:
        summary += "; data key purged (sealed text not recoverable)"
    return Result(summary, warnings)


# ---------------------------------------------------------------------------
# Command line


USAGE = "usage: verify-export.py EXPORT.json [--key VERIFIER_KEY]"


def usage_error(message):
    sys.stderr.write(f"{USAGE}\n{PROG}: {message}\n")
    return 2


def main(argv):
    path, key_text = None, None
    arguments = list(argv)
    while arguments:
        argument = arguments.pop(0)
        if argument in ("-h", "--help"):
            sys.stdout.write(__doc__)
            return 0
        if argument == "--key":
            if not arguments:
                return usage_error("--key needs a value")
            key_text = arguments.pop(0)
        elif argument.startswith("--key="):
            key_text = argument[len("--key=") :]
        elif argument.startswith("-") and argument != "-":
            return usage_error(f"unknown option {argument}")
        elif path is None:
            path = argument
        else:
            return usage_error("only one export file")
    if path is None:
        return usage_error("no export file given")
    pinned = None
    if key_text is not None:
        try:
            pinned = parse_verifier_key(key_text)
        except Refused as error:
            return usage_error(f"--key: {error}")
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as error:
        sys.stderr.write(f"{PROG}: cannot read {path}: {error.strerror}\n")
        return 1
    try:
        result = verify_export(data, pinned)
    except Refused as error:
        sys.stderr.write(f"{PROG}: refused: {error}\n")
        return 1
    except Exception as error:  # a bug here must still refuse, in one line
        sys.stderr.write(f"{PROG}: refused: internal error ({type(error).__name__}: {error})\n")
        return 1
    for warning in result.warnings:
        sys.stderr.write(f"{PROG}: {warning}\n")
    sys.stdout.write(result.summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
