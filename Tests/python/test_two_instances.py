"""Several instances (issue 25, item 2): two `muster serve` processes on different ports against one PostgreSQL
database, with the same master key, link key, audit signing key and webhook secret. Reports go to both; in the
middle of the escalations one of them is killed with SIGKILL (no shutdown, so its claims are not handed back and
must lapse: a timer's lease is 5 s, a page's 15 s). The test then reads every incident's timeline from the survivor
and the webhooks a receiver of its own got, and asserts that:

- every incident ran every step of its playbook, the fallback included, each exactly once: one `step_started`
  per step, one `escalated` per move, one `paged` per step and target, one `fallback_paged`, one `unowned`;
- every notification was delivered and recorded once (one `delivered` entry per notification id), and reached
  the receiver, correctly signed (Standard Webhooks), exactly once, except a page the killed instance had sent
  but not recorded: that one may arrive a second time, from the survivor, under the same `webhook-id`;
- no step started before the previous one's `ack_within` ran out;
- the timers and pages the killed instance held at its death were taken over by the survivor once their leases
  lapsed, and the escalations of the incidents reported to the killed instance went on with pages the survivor
  sent (the receiver tells the senders apart by their TCP connections, through /proc);
- a client whose report was in flight when the instance died, and that sends it again with the same
  Idempotency-Key to the survivor, gets one incident (`created` or `duplicate`), never two: the database holds
  exactly one report per key and one incident per report;
- `muster audit verify` passes afterwards, with both instances' witness directories.

Run with `python3 -m unittest discover -s Tests/python` after `swift build` (scripts/test does both, with
MUSTER_TEST_DATABASE_URL pointing at its throwaway PostgreSQL). Without PostgreSQL the test skips, except with
CI=true, where it fails. MUSTER_TEST_BINARY runs another build than .build/debug/muster. Benchmarks/two-instances.py
reuses this harness (Cluster, WebhookSink, Psql).
"""

import base64
import datetime
import glob
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python3 -m unittest Tests/python/...`
from browser_support import free_port, in_ci  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
AUDIT_ORIGIN = "muster.two-instances.test/audit-log"
SITE = "lincoln-high"
# Who each step pages (one webhook contact point each): step 1 pages two people, so a step has several targets.
STEPS = [["ann", "bo"], ["cy"], ["dee"]]
FALLBACK = "ed"
PEOPLE = ["ann", "bo", "cy", "dee", "ed"]


def muster_binary():
    return Path(os.environ.get("MUSTER_TEST_BINARY") or REPO / ".build" / "debug" / "muster")


def postgres_tool(name):
    """A PostgreSQL client program: from MUSTER_TEST_PG_BIN (scripts/test), else Debian's newest, else PATH."""
    if os.environ.get("MUSTER_TEST_PG_BIN"):
        return str(Path(os.environ["MUSTER_TEST_PG_BIN"]) / name)
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return found[-1] if found else (shutil.which(name) or name)


def require_postgres():
    """MUSTER_TEST_DATABASE_URL, the server scripts/test starts. Without it: fail with CI=true, else skip."""
    base = os.environ.get("MUSTER_TEST_DATABASE_URL")
    if not base:
        message = "no PostgreSQL (MUSTER_TEST_DATABASE_URL); scripts/test starts one"
        if in_ci():
            raise AssertionError(message + " (CI=true: the PostgreSQL tests never skip)")
        raise unittest.SkipTest(message)
    return base


def fresh_postgres_database(prefix="two_", base=None):
    """A new, empty database on the test server (or on the server of the URL `base`); returns its URL."""
    base = base or require_postgres()
    name = prefix + uuid.uuid4().hex[:12]
    subprocess.run([postgres_tool("psql"), base.split("?")[0], "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    parsed = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parsed._replace(path="/" + name))


def shared_keys():
    """The secrets every instance on one database must share: the master key (MUSTER_MASTER_KEY), the link key
    (MUSTER_LINK_KEY) and the audit log's signing key (MUSTER_AUDIT_SIGNING_KEY, a C2SP signed-note Ed25519 key);
    returns them as environment variables, and the signing key's verifier key."""
    private = Ed25519PrivateKey.generate()
    seed, public = private.private_bytes_raw(), private.public_key().public_bytes_raw()
    key_hash = hashlib.sha256(AUDIT_ORIGIN.encode() + b"\n" + b"\x01" + public).digest()[:4].hex()
    env = {
        "MUSTER_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "MUSTER_LINK_KEY": base64.b64encode(os.urandom(32)).decode(),
        "MUSTER_AUDIT_SIGNING_KEY": f"PRIVATE+KEY+{AUDIT_ORIGIN}+{key_hash}+" + base64.b64encode(b"\x01" + seed).decode(),
        "MUSTER_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    return env, f"{AUDIT_ORIGIN}+{key_hash}+" + base64.b64encode(b"\x01" + public).decode()


def directory_yaml(sink_port):
    people = "\n".join(
        f"  - {{ id: {person}, name: {person.title()} Test, roles: [counselor], sites: [{SITE}], "
        f"contacts: [ {{ webhook: \"http://127.0.0.1:{sink_port}/hook/{person}\" }} ] }}" for person in PEOPLE)
    return f"""
district: {{ id: two, name: Two Instances District, time_zone: America/Chicago }}
incident_types:
  - {{ id: suicide-risk, title: Student at risk of suicide or self-harm }}
roles:
  - {{ id: counselor, title: Counselor }}
sites:
  - {{ id: {SITE}, name: Lincoln High School, time_zone: America/Chicago,
      school_hours: {{ days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" }} }}
people:
{people}
"""


def playbook_yaml(ack_within):
    steps = "\n".join(f"  - {{ notify: [{', '.join('person:' + p for p in targets)}], via: [webhook], ack_within: {ack_within} }}"
                      for targets in STEPS)
    # No grouping: every report opens an incident of its own. The fallback pages once in the test's time.
    return f"""
id: suicide-risk
title: Student at risk of suicide or self-harm
match: {{ types: [suicide-risk] }}
steps:
{steps}
fallback: {{ notify: [person:{FALLBACK}], via: [webhook], repeat_every: 1h }}
"""


CONFIG = f"""public_url: https://muster.two-instances.example
channels:
  webhook: {{ allow_hosts: [127.0.0.1] }}
rate_limits:
  account: {{ per_minute: 1000000, burst: 1000000 }}
"""


def expected_notifications(incident_id):
    """Every notification an incident sends when nobody answers: (notification id, step or None for the fallback)."""
    ids = [(f"{incident_id}/c0/page/s{step}r0/person:{person}/webhook", step)
           for step, targets in enumerate(STEPS, start=1) for person in targets]
    return ids + [(f"{incident_id}/c0/fallback/-/person:{FALLBACK}/webhook", None)]


def socket_owner(client_port, server_port, processes):
    """Which of `processes` ({name: pid}) holds the client end of the loopback TCP connection from `client_port` to
    `server_port` (Linux: /proc/net/tcp and the processes' open files); None when none does (any more)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
            if int(local, 16) == client_port and int(remote, 16) == server_port:
                inodes.add(f"socket:[{fields[9]}]")
    for name, pid in processes.items():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return name
                except OSError:
                    pass
        except OSError:
            pass
    return None


class WebhookSink:
    """A webhook receiver on 127.0.0.1: verifies each request with Standard Webhooks' own library, keeps it (its
    webhook-id, when it arrived, whether its signature held, and which instance sent it when `senders` is set:
    a {name: pid} of the live instances, checked on each connection's first request), waits `delay` seconds (so
    that pages are in flight when an instance dies) and answers 204."""

    def __init__(self, secret=WEBHOOK_SECRET, delay=0.0, keep_bodies=True):
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # PyPI's standardwebhooks (scripts/test)
        self.delay = delay
        self.senders = {}  # name -> pid of the instances to tell apart
        self.received = []  # dicts: id, path, at (monotonic), wall (time.time()), valid, body, sender
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        verifier = Webhook(secret)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    verifier.verify(body, headers)
                    valid = True
                except WebhookVerificationError:
                    valid = False
                at, wall = time.monotonic(), time.time()
                if not hasattr(self, "sender"):  # once per connection (they are kept alive)
                    self.sender = socket_owner(self.client_address[1], outer.port, dict(outer.senders)) if outer.senders else None
                entry = {"id": headers.get("webhook-id"), "path": self.path, "at": at, "wall": wall,
                         "valid": valid, "body": json.loads(body) if keep_bodies else None, "sender": self.sender}
                with outer.arrived:
                    outer.received.append(entry)
                    outer.arrived.notify_all()
                if outer.delay:
                    time.sleep(outer.delay)
                try:
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender died meanwhile

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a sender that died: expected
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return list(self.received)

    def wait_for(self, ids, seconds):
        """Waits until every id in `ids` has arrived; returns the ids still missing."""
        deadline = time.monotonic() + seconds
        with self.arrived:
            while True:
                missing = set(ids) - {entry["id"] for entry in self.received}
                if not missing or time.monotonic() >= deadline:
                    return missing
                self.arrived.wait(min(1.0, max(0.0, deadline - time.monotonic())))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Psql:
    """One psql session kept open (so a question costs a round trip, not a process): `query(sql)` returns rows of
    text columns. For reading the claims tables; Muster itself is only ever driven through its API and CLI."""

    def __init__(self, url, log_path):
        self._stderr = open(log_path, "ab")
        self.process = subprocess.Popen([postgres_tool("psql"), url, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=0"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self.lock = threading.Lock()

    def query(self, sql):
        with self.lock:
            self.process.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __muster_end__\n")
            self.process.stdin.flush()
            rows = []
            while True:
                line = self.process.stdout.readline()
                if not line:
                    raise AssertionError("psql ended")
                line = line.rstrip("\n")
                if line == "__muster_end__":
                    return rows
                if line:
                    rows.append(line.split("\t"))

    def close(self):
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
        self._stderr.close()


class Instance:
    """One `muster serve` on its own port and data directory (its witness directory is DATA_DIR/checkpoints)."""

    def __init__(self, cluster, name):
        self.cluster, self.name = cluster, name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = cluster.work / name
        self.log_path = cluster.work / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.command = [str(cluster.binary), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                        "--playbooks", str(cluster.playbooks), "--config", str(cluster.config), "--data-dir", str(self.data_dir)]
        self.process = subprocess.Popen(self.command, cwd=cluster.work, env=cluster.env, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.killed_at = None

    @property
    def pid(self):
        return self.process.pid

    def ready(self):
        try:
            return request(self.base, "GET", "/health/ready", timeout=5)[0] == 200
        except OSError:
            return False

    def wait_ready(self, seconds=120):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"muster serve ({self.name}) exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if self.ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"muster serve ({self.name}) was not ready within {seconds} s:\n{self.log()[-3000:]}")

    def kill(self):
        """SIGKILL: no shutdown, no claims handed back. Returns the monotonic time of the kill."""
        self.killed_at = time.monotonic()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        return self.killed_at

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def request(base, method, path, token=None, body=None, headers=None, timeout=60):
    parsed = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        data = None
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace"), dict(response.getheaders())
    finally:
        connection.close()


class Cluster:
    """One PostgreSQL database, the shared keys, a playbook folder whose pages go to `sink`, and the instances."""

    def __init__(self, sink, ack_within="10s", database_url=None, binary=None, log_level="info"):
        self.sink = sink
        self.binary = Path(binary or muster_binary())
        if not self.binary.exists():
            raise AssertionError(f"{self.binary} is missing: run `swift build` first (or set MUSTER_TEST_BINARY)")
        self.database_url = database_url or fresh_postgres_database()
        self.work = Path(tempfile.mkdtemp(prefix="muster-two-instances-"))
        self.playbooks = self.work / "playbooks"
        self.playbooks.mkdir()
        (self.playbooks / "directory.yaml").write_text(directory_yaml(sink.port))
        (self.playbooks / "suicide-risk.yaml").write_text(playbook_yaml(ack_within))
        self.config = self.work / "muster.yaml"
        self.config.write_text(CONFIG)
        self.admin_token = "mst_two_instances_" + uuid.uuid4().hex
        keys, self.verifier_key = shared_keys()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MUSTER_") or k.startswith("MUSTER_TEST_")}
        self.env.update(keys)
        self.env.update({"MUSTER_DATABASE_URL": self.database_url, "MUSTER_BOOTSTRAP_ADMIN_TOKEN": self.admin_token,
                         "MUSTER_LOG_LEVEL": log_level})
        self.instances = []
        self.psql = Psql(self.database_url, self.work / "psql.log")

    def start(self, name):
        instance = Instance(self, name)
        self.instances.append(instance)
        if isinstance(getattr(self.sink, "senders", None), dict):
            self.sink.senders[name] = instance.pid
        instance.wait_ready()
        return instance

    def cli(self, *args, data_dir=None):
        """Another command of the same binary, on the same database and keys."""
        return subprocess.run([str(self.binary), *map(str, args)] + (["--data-dir", str(data_dir)] if data_dir else []),
                              cwd=self.work, env=self.env, capture_output=True, text=True, timeout=300)

    def report(self, instance, summary="Student wrote a goodbye note", attempts=20, key=None):
        """POSTs one report to `instance` (retrying a 503 or a refused connection with the same Idempotency-Key);
        returns the answer's JSON."""
        key = key or "two-" + uuid.uuid4().hex
        body = {"type": "suicide-risk", "severity": "high", "site": SITE, "summary": summary, "subject": "S-" + key[-8:]}
        last = None
        for _ in range(attempts):
            try:
                status, text, _ = request(instance.base, "POST", "/api/v1/incidents", self.admin_token, body, {"Idempotency-Key": key})
            except OSError as error:
                last = error
                time.sleep(0.5)
                continue
            if status in (200, 201):
                return json.loads(text)
            last = f"{status} {text}"
            if status != 503:
                break
            time.sleep(1)
        raise AssertionError(f"report to {instance.name} not taken: {last}")

    def incident(self, instance, incident_id, attempts=10):
        """The incident with its timeline (retrying a 503: the database did not answer in time)."""
        for _ in range(attempts):
            status, text, _ = request(instance.base, "GET", f"/api/v1/incidents/{incident_id}", self.admin_token)
            if status == 200:
                return json.loads(text)
            if status != 503:
                break
            time.sleep(1)
        raise AssertionError(f"GET incident {incident_id} from {instance.name}: {status} {text}")

    def claims(self, instance):
        """What `instance` holds now: its claimed timers (incident, key, due) and outbox rows (notification id),
        leases still running."""
        owner = f"%/{instance.pid}"
        timers = self.psql.query(f"SELECT incident_id, key, due_at FROM timers WHERE claimed_by LIKE '{owner}' AND lease_until > now()")
        outbox = self.psql.query(f"SELECT id FROM outbox WHERE claimed_by LIKE '{owner}' AND status = 'queued' AND lease_until > now()")
        return [tuple(row) for row in timers], [row[0] for row in outbox]

    def pending_audit_entries(self):
        return int(self.psql.query("SELECT count(*) FROM audit_pending")[0][0])

    def close(self):
        for instance in self.instances:
            instance.stop()
        self.psql.close()
        if not os.environ.get("MUSTER_TEST_KEEP"):
            shutil.rmtree(self.work, ignore_errors=True)


def entries(incident, action):
    return [entry for entry in incident["timeline"] if entry["action"] == action]


def epoch(text):
    """An RFC 3339 instant of the API (2026-12-06T08:00:00.000Z) as seconds since 1970."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(wall):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"


class TwoInstancesOnePostgres(unittest.TestCase):
    PER_INSTANCE = 10  # incidents reported to each instance
    ACK_WITHIN = 10  # seconds, every step

    @classmethod
    def setUpClass(cls):
        require_postgres()
        cls.sink = WebhookSink(delay=1.0)  # a page is in flight for a second: some are, when an instance dies
        cls.addClassCleanup(cls.sink.close)
        cls.cluster = Cluster(cls.sink, ack_within=f"{cls.ACK_WITHIN}s")
        cls.addClassCleanup(cls.cluster.close)
        # One after the other: the first applies the migrations and creates the admin from the bootstrap token.
        cls.doomed = cls.cluster.start("a")
        cls.survivor = cls.cluster.start("b")

    def fail_with_logs(self, message):
        logs = "\n".join(f"--- {i.name} (pid {i.pid}) log, the end:\n{i.log()[-4000:]}" for i in self.cluster.instances)
        self.fail(f"{message}\n{logs}")

    def test_the_survivor_takes_over_timers_and_pages_and_nothing_runs_twice(self):
        cluster, doomed, survivor = self.cluster, self.doomed, self.survivor
        # The audit key both instances sign with is the one given to both.
        key = cluster.cli("audit", "key", data_dir=survivor.data_dir)
        self.assertEqual(key.stdout.strip(), cluster.verifier_key, key.stderr)

        # Reports to both, interleaved and spread over a few seconds, so that escalations run at different times.
        reported = {}  # incident id -> the instance that took its report
        started = time.monotonic()
        for index in range(self.PER_INSTANCE):
            for instance in (doomed, survivor):
                answer = cluster.report(instance)
                self.assertEqual(answer["outcome"], "created", answer)
                self.assertEqual({(p["recipient"], p["step"]) for p in answer["paging"]},
                                 {(f"person:{p}", 1) for p in STEPS[0]}, answer)
                reported[answer["incident"]["id"]] = instance
            time.sleep(0.4)

        # Around the kill, a client keeps reporting to the doomed instance, one report after the other (then one a
        # second, after 40); the kill lands while one is in flight. When its connection fails, the client sends the
        # same report, with the same Idempotency-Key, to the survivor: answered `created` (the first never
        # committed) or `duplicate` (it did, and the survivor answers with its incident), never a second incident.
        failover = {}
        stop_reporting, in_flight = threading.Event(), threading.Event()

        def keep_reporting():
            sent = 0
            while not stop_reporting.is_set():
                key = "two-" + uuid.uuid4().hex
                body = json.dumps({"type": "suicide-risk", "severity": "high", "site": SITE, "summary": "Another report",
                                   "subject": "S-" + key[-8:]})
                connection = http.client.HTTPConnection("127.0.0.1", doomed.port, timeout=60)
                try:
                    connection.connect()
                    in_flight.set()
                    connection.request("POST", "/api/v1/incidents", body=body, headers={
                        "Authorization": f"Bearer {cluster.admin_token}", "Content-Type": "application/json", "Idempotency-Key": key})
                    response = connection.getresponse()
                    status, text = response.status, response.read().decode()
                except (OSError, http.client.HTTPException) as error:
                    failover.update(key=key, error=repr(error), answer=cluster.report(survivor, key=key))
                    return
                finally:
                    in_flight.clear()
                    connection.close()
                if status in (200, 201):
                    failover.setdefault("before", []).append(json.loads(text))
                elif status != 503:
                    failover.update(key=key, error=f"{status} {text}")
                    return
                sent += 1
                stop_reporting.wait(0.0 if sent < 40 else 1.0)

        # Wait until escalations are under way (past the first step-1 deadlines), then kill the doomed instance at a
        # moment it holds claims (a timer if one can be caught, else a page in flight) and a report is in flight.
        time.sleep(max(0.0, started + self.ACK_WITHIN + 1.0 - time.monotonic()))
        reporter = threading.Thread(target=keep_reporting, daemon=True)
        reporter.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            timers, pages = cluster.claims(doomed)
            if (timers or (pages and time.monotonic() > deadline - 12)) and (in_flight.is_set() or time.monotonic() > deadline - 5):
                break
            time.sleep(0.002)
        killed_wall = time.time()
        killed_at = doomed.kill()
        # What it held at its death: its leases run on. (A page it held just before may have been recorded since.)
        held_timers, pages_after = cluster.claims(doomed)
        held_pages = set(pages) | set(pages_after)
        print(f"\n[two instances] killed {doomed.name} (pid {doomed.pid}) {killed_at - started:.1f} s after the first report, "
              f"holding {len(held_timers)} timer(s) and {len(held_pages)} page(s)", file=sys.stderr)

        self.assertTrue(held_timers or held_pages, "the killed instance held no timer and no page: no lease had to lapse")

        # The client's failover: its report, sent again to the survivor, is one incident, whoever committed it.
        reporter.join(120)
        stop_reporting.set()
        self.assertIn("answer", failover, f"the client did not fail over: {failover}")
        self.assertIn(failover["answer"]["outcome"], ("created", "duplicate"), failover)
        for answer in failover.get("before", []):
            self.assertEqual(answer["outcome"], "created", answer)
            reported[answer["incident"]["id"]] = doomed
        retried = failover["answer"]["incident"]["id"]
        self.assertNotIn(retried, reported, "the failed-over report joined another incident")
        reported[retried] = doomed if failover["answer"]["outcome"] == "duplicate" else survivor
        # (Keys are kept per account: "ACCOUNT:KEY".)
        rows = cluster.psql.query(f"SELECT count(*), count(*) FILTER (WHERE idempotency_key LIKE '%:{failover['key']}') FROM reports")
        self.assertEqual(rows, [[str(len(reported)), "1"]], "one report per Idempotency-Key, however the client failed over")
        incident_count = cluster.psql.query("SELECT count(*) FROM incidents")
        self.assertEqual(incident_count, [[str(len(reported))]], "an incident per report, none twice")
        print(f"[two instances] the client's report that failed at the kill ({failover['error']}; "
              f"{len(failover.get('before', []))} taken before), sent again to the survivor: {failover['answer']['outcome']}",
              file=sys.stderr)

        # Every notification of every incident arrives, however long the machine takes.
        expected = {nid: (incident, step) for incident in reported for nid, step in expected_notifications(incident)}
        missing = self.sink.wait_for(expected, seconds=300)
        if missing:
            self.fail_with_logs(f"{len(missing)} notification(s) never arrived, e.g. {sorted(missing)[:5]}")

        # ...and is recorded, on every incident's timeline, read from the survivor.
        def settled():
            incidents = {}
            for incident_id in reported:
                incident = cluster.incident(survivor, incident_id)
                delivered = {e.get("notification") for e in entries(incident, "delivered")}
                ids = {nid for nid, _ in expected_notifications(incident_id)}
                if incident["incident"]["status"] != "unowned" or not ids <= delivered:
                    return None
                incidents[incident_id] = incident
            return incidents
        deadline = time.monotonic() + 180
        incidents = settled()
        while incidents is None and time.monotonic() < deadline:
            time.sleep(3)
            incidents = settled()
        if incidents is None:
            self.fail_with_logs("not every incident reached its fallback with every page recorded as delivered")
        # Anything sent twice would come within a delivery lease (15 s) of the last page: wait for that much quiet.
        while time.monotonic() - max(r["at"] for r in self.sink.snapshot()) < 16:
            time.sleep(1)

        for incident_id, incident in incidents.items():
            where = f"incident #{incident['incident']['number']} (reported to {reported[incident_id].name})"
            timeline = incident["timeline"]
            self.assertEqual([e["sequence"] for e in timeline], list(range(1, len(timeline) + 1)), f"{where}: sequence numbers")
            self.assertEqual(len(entries(incident, "reported")), 1, where)
            self.assertEqual(sorted(e.get("step") for e in entries(incident, "step_started")), [1, 2, 3], f"{where}: each step started once")
            self.assertEqual(len(entries(incident, "escalated")), 3, f"{where}: to step 2, to step 3, to the fallback, once each")
            paged = Counter((e.get("step"), e.get("round"), e.get("recipient"), e.get("channel")) for e in entries(incident, "paged"))
            self.assertEqual(paged, Counter({(step, 0, f"person:{person}", "webhook"): 1
                                             for step, targets in enumerate(STEPS, start=1) for person in targets}),
                             f"{where}: each step's pages, once per target")
            self.assertEqual([e.get("recipient") for e in entries(incident, "fallback_paged")], [f"person:{FALLBACK}"], where)
            self.assertEqual(len(entries(incident, "unowned")), 1, where)
            delivered = Counter(e.get("notification") for e in entries(incident, "delivered"))
            self.assertEqual(delivered, Counter({nid: 1 for nid, _ in expected_notifications(incident_id)}),
                             f"{where}: each notification recorded as delivered once")
            self.assertFalse([e for e in entries(incident, "delivery_failed") if "gave up" in (e.get("detail") or "")], where)
            # Escalation is in order and never early: no step before its predecessor's deadline.
            started_at = {e["step"]: epoch(e["at"]) for e in entries(incident, "step_started")}
            for step in range(2, len(STEPS) + 1):
                self.assertGreaterEqual(started_at[step] - started_at[step - 1], self.ACK_WITHIN - 0.01, f"{where}: step {step} early")

        # The receiver: every id signed correctly; nothing unexpected; nothing twice, except a page the doomed
        # instance held when it died (sent, never recorded), which the survivor sends again under the same id.
        received = self.sink.snapshot()
        self.assertEqual([r["id"] for r in received if not r["valid"]], [], "webhooks whose Standard Webhooks signature fails")
        counts = Counter(r["id"] for r in received)
        self.assertEqual(set(counts) - set(expected), set(), "notifications nobody expected (a repeat, a second fallback round)")
        twice = {nid: n for nid, n in counts.items() if n > 1}
        for nid, n in twice.items():
            copies = sorted(r["at"] for r in received if r["id"] == nid)
            self.assertIn(nid, held_pages, f"{nid} arrived {n} times, but the killed instance did not hold it")
            self.assertEqual(n, 2, f"{nid} arrived {n} times")
            self.assertLess(copies[0], killed_at + 2, f"{nid}: its first copy came after the kill")
        for nid in held_pages:
            self.assertIn(nid, counts, f"{nid}, held by the killed instance, never arrived")

        # The survivor took over: the incidents reported to the dead instance escalated on after its death, with
        # pages the survivor sent (the receiver tells the senders apart by their connections).
        doomed_incidents = {i for i, instance in reported.items() if instance is doomed}
        by_survivor = [r for r in received if r["sender"] == survivor.name]
        taken_over = [r for r in by_survivor if r["at"] > killed_at and expected[r["id"]][0] in doomed_incidents]
        self.assertTrue(taken_over, "the survivor sent no page for the killed instance's incidents after its death (killed too late?)")
        # Timers it held (acknowledgement deadlines not yet fired, or their rows would be gone): each fired after the
        # kill, by the survivor (and once: three escalations in all, asserted above).
        for incident_id, key, _ in held_timers:
            moved = [e for e in entries(incidents[incident_id], "escalated") if e["at"] >= iso(killed_wall)]
            self.assertTrue(moved, f"timer {key} of {incident_id}, held by the killed instance, never fired after its death")

        def since_kill(records):
            times = sorted(r["at"] - killed_at for r in records)
            return f"{times[0]:.2f}–{times[-1]:.2f} s" if times else "none"

        held_next = []  # the first page of the step each held timer started
        for incident_id, key, _ in held_timers:
            parts = key.split(":")  # ack:STEP:ROUND, steps counted from 0 here
            if parts[0] == "ack":
                following = int(parts[1]) + 2 if int(parts[1]) + 1 < len(STEPS) else None
                held_next += sorted((r for r in by_survivor if expected[r["id"]] == (incident_id, following)), key=lambda r: r["at"])[:1]
        step2 = [r for r in taken_over if expected[r["id"]][1] == 2]
        senders = Counter(r["sender"] or "?" for r in received if r["at"] < killed_at)
        print(f"[two instances] pages before the kill by sender: {dict(senders)}; after the kill, the survivor sent the dead "
              f"instance's incidents' pages from {since_kill(taken_over)} (step 2: {since_kill(step2)}); the next step of each "
              f"timer it held: {since_kill(held_next)} (lease 5 s); the pages it held: "
              f"{since_kill([r for r in by_survivor if r['id'] in held_pages and r['at'] > killed_at])} (lease 15 s); "
              f"{len(twice)} arrived twice (same webhook-id)", file=sys.stderr)

        # The audit log: every entry sequenced (the survivor's sequencer takes over too), then verified with the
        # checkpoints both instances kept outside the database.
        deadline = time.monotonic() + 120
        while cluster.pending_audit_entries() and time.monotonic() < deadline:
            time.sleep(1)
        self.assertEqual(cluster.pending_audit_entries(), 0, "entries the sequencer never took in")
        verify = cluster.cli("audit", "verify", "--witness", doomed.data_dir / "checkpoints", "--witness", survivor.data_dir / "checkpoints",
                             data_dir=survivor.data_dir)
        self.assertEqual(verify.returncode, 0, f"muster audit verify:\n{verify.stdout}\n{verify.stderr}")
        self.assertTrue(verify.stdout.startswith("OK"), verify.stdout)
        print(f"[two instances] {verify.stdout.strip()}", file=sys.stderr)
        self.assertIsNone(survivor.process.poll(), "the survivor is still serving")


if __name__ == "__main__":
    unittest.main()
