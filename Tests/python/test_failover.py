"""The primary dies (issue 25, item 3): Muster on a real PostgreSQL high-availability cluster on 127.0.0.1
(patroni_cluster.py: one etcd, a primary and a synchronous standby managed by Patroni), connected with a libpq
multi-host URL (`postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/muster?target_session_attrs=read-write`). While
reports arrive (one every ~100 ms) and escalations run, the primary's Patroni and PostgreSQL are SIGKILLed, and
Patroni promotes the standby once the dead leader's key expires. Asserted:

- meanwhile Muster answers `503` with `Retry-After`, never another error, and never makes a client wait for
  more than the client's 10 s (no hang);
- it reconnects to the new primary by itself and takes reports again (a 201 within 90 s of the kill); the time
  from the primary's death to that first 201 is printed, beside Patroni's own share (the promotion);
- every report answered 201 is there afterwards, with its pages; a report retried with its Idempotency-Key is
  one incident; each escalation step ran exactly once (the timelines), and each page reached the webhook
  receiver exactly once (per `webhook-id`: Muster did not die, so its de-duplication holds), correctly signed;
- `muster audit verify` passes, with the witness directory as it was at the kill: the log after the failover
  is consistent with the last checkpoint signed before it.

PatroniHarness checks the harness alone (a cluster, the primary killed, the standby promoted, a committed row
still there, psql's own multi-host connection reaching the new primary), so that a failure of the Muster test
says which side failed. Both need Debian's `patroni` and `etcd-server` (scripts/test installs them): without
them the tests skip, except with CI=true, where they fail. Run with `python3 -m unittest Tests/python/test_failover.py`
after `swift build`; MUSTER_TEST_BINARY runs another build than .build/debug/muster.
"""

import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python3 -m unittest Tests/python/...`
from browser_support import MusterProcess  # noqa: E402
from patroni_cluster import PatroniCluster, require_patroni  # noqa: E402
from test_two_instances import WebhookSink, entries, epoch, request  # noqa: E402

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SITE = "lincoln-high"
STEPS = ["ann", "bo", "cy"]  # who each step pages (a webhook contact point each)
FALLBACK = "ed"
PEOPLE = STEPS + [FALLBACK]
ACK_WITHIN = 10  # seconds, every step
CLIENT_TIMEOUT = 10  # seconds a client waits for an answer: longer is a hang
RECOVERY_LIMIT = 90  # seconds from the kill to the first 201 again

DIRECTORY = """
district: {{ id: failover, name: Failover District, time_zone: America/Chicago }}
incident_types:
  - {{ id: suicide-risk, title: Student at risk of suicide or self-harm }}
roles:
  - {{ id: counselor, title: Counselor }}
sites:
  - {{ id: {site}, name: Lincoln High School, time_zone: America/Chicago,
      school_hours: {{ days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" }} }}
people:
{people}
"""

PLAYBOOK = """
id: suicide-risk
title: Student at risk of suicide or self-harm
match: {{ types: [suicide-risk] }}
steps:
{steps}
fallback: {{ notify: [person:{fallback}], via: [webhook], repeat_every: 1h }}
"""

CONFIG = f"""public_url: https://muster.failover.example
channels:
  webhook: {{ secret: {WEBHOOK_SECRET}, allow_hosts: [127.0.0.1] }}
rate_limits:
  account: {{ per_minute: 1000000, burst: 1000000 }}
"""


def write_playbooks(folder, sink_port):
    """A directory whose people each have one webhook contact point at the receiver, and one playbook: three
    steps of one person each, ACK_WITHIN apart, then the fallback (once in the test's time). No grouping."""
    folder.mkdir(parents=True, exist_ok=True)
    people = "\n".join(
        f"  - {{ id: {p}, name: {p.title()} Test, roles: [counselor], sites: [{SITE}], "
        f"contacts: [ {{ webhook: \"http://127.0.0.1:{sink_port}/hook/{p}\" }} ] }}" for p in PEOPLE)
    (folder / "directory.yaml").write_text(DIRECTORY.format(site=SITE, people=people))
    steps = "\n".join(f"  - {{ notify: [person:{p}], via: [webhook], ack_within: {ACK_WITHIN}s }}" for p in STEPS)
    (folder / "suicide-risk.yaml").write_text(PLAYBOOK.format(steps=steps, fallback=FALLBACK))
    return folder


def expected_notifications(incident_id):
    """Every notification an incident sends when nobody answers: {notification id: step, or None for the fallback}."""
    ids = {f"{incident_id}/c0/page/s{step}r0/person:{person}/webhook": step for step, person in enumerate(STEPS, start=1)}
    ids[f"{incident_id}/c0/fallback/-/person:{FALLBACK}/webhook"] = None
    return ids


class Reporter(threading.Thread):
    """Reports one incident every ~100 ms (never more than one request in flight). A report that is not answered
    201/200 is sent again with the same Idempotency-Key, as a client would. Records every attempt: when it was
    sent and answered (monotonic), its status (None: no answer within CLIENT_TIMEOUT or a broken connection,
    with the error), its Retry-After, its key and, on success, the incident it made."""

    def __init__(self, base, token, interval=0.1):
        super().__init__(daemon=True)
        self.base, self.token, self.interval = base, token, interval
        self.attempts = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stopping_at = None

    def run(self):
        key = None
        while True:
            if key is None and self.stopping.is_set():
                return  # only between reports: every key ends answered...
            if self.stopping.is_set() and time.monotonic() > self.stopping_at + 2 * CLIENT_TIMEOUT:
                return  # ...unless Muster never answers it (the test fails on that)
            if key is None:
                key = "failover-" + uuid.uuid4().hex
            body = {"type": "suicide-risk", "severity": "high", "site": SITE, "summary": "Student wrote a goodbye note",
                    "subject": "S-" + key[-8:]}
            sent = time.monotonic()
            attempt = {"key": key, "sent": sent, "status": None, "retry_after": None, "incident": None, "outcome": None}
            try:
                status, text, headers = request(self.base, "POST", "/api/v1/incidents", self.token, body,
                                                {"Idempotency-Key": key}, timeout=CLIENT_TIMEOUT)
                attempt["status"] = status
                attempt["retry_after"] = {k.lower(): v for k, v in headers.items()}.get("retry-after")
                if status in (200, 201):
                    answer = json.loads(text)
                    attempt["incident"], attempt["outcome"] = answer["incident"]["id"], answer.get("outcome")
                    key = None
                else:
                    attempt["text"] = text[:500]
            except (OSError, socket.timeout, http.client.HTTPException) as error:
                attempt["error"] = repr(error)
            attempt["answered"] = time.monotonic()
            with self.lock:
                self.attempts.append(attempt)
            if attempt["status"] is None and self.stopping.is_set():
                return
            time.sleep(max(0.0, sent + self.interval - time.monotonic()))

    def snapshot(self):
        with self.lock:
            return list(self.attempts)

    def stop(self):
        if not self.stopping.is_set():
            self.stopping_at = time.monotonic()
            self.stopping.set()
        self.join(CLIENT_TIMEOUT * 3)


class ReadinessProbe(threading.Thread):
    """Asks GET /health/ready every 250 ms, as a load balancer would; records (sent, answered, status or None)."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base = base
        self.answers = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            sent = time.monotonic()
            try:
                status = request(self.base, "GET", "/health/ready", timeout=CLIENT_TIMEOUT)[0]
            except (OSError, http.client.HTTPException):
                status = None
            self.answers.append((sent, time.monotonic(), status))
            self.stopping.wait(max(0.0, sent + 0.25 - time.monotonic()))

    def stop(self):
        self.stopping.set()
        self.join(CLIENT_TIMEOUT * 2)


class PatroniHarness(unittest.TestCase):
    """The harness alone: a leader and a synchronous standby; the primary killed; the standby promoted and
    taking writes; what was committed before the kill is there."""

    def test_the_standby_takes_over_with_every_committed_row(self):
        require_patroni()
        cluster = PatroniCluster()
        self.addCleanup(cluster.close)
        primary = cluster.primary()
        standby = next(m for m in cluster.members if m is not primary)
        self.assertEqual(cluster.sync_standbys(primary), {standby.name}, "the standby replicates synchronously")
        cluster.psql(primary, "CREATE DATABASE harness")
        cluster.psql(primary, "CREATE TABLE committed (n int PRIMARY KEY); INSERT INTO committed SELECT generate_series(1, 1000)",
                     database="harness")
        multi = cluster.url("harness", target_session_attrs="read-write", sslmode="disable", connect_timeout="3")
        self.assertEqual(cluster.psql(multi, "SELECT inet_server_port()"), str(primary.pg_port), "libpq's multi-host URL finds the primary")

        killed_at = cluster.kill(primary)
        self.assertFalse(primary.pids(), "no process of the killed member runs")
        new = cluster.wait_for_primary(exclude=primary, seconds=120)
        promoted = time.monotonic() - killed_at
        self.assertIs(new, standby)
        self.assertEqual(cluster.psql(new, "SELECT count(*) FROM committed", database="harness"), "1000",
                         "every row committed before the kill (synchronous replication)")
        cluster.psql(new, "INSERT INTO committed VALUES (1001)", database="harness")
        self.assertEqual(cluster.psql(multi, "SELECT inet_server_port(), pg_is_in_recovery()"), f"{new.pg_port}|f",
                         "the multi-host URL now reaches the new primary, skipping the dead host")
        state = cluster.cluster_state()
        self.assertEqual([(m["name"], m["role"]) for m in state["members"] if m["role"] == "leader"], [(new.name, "leader")], state)
        print(f"\n[failover harness] {primary.name} killed; {new.name} promoted and writable {promoted:.1f} s later "
              f"(ttl {cluster.ttl} s, loop_wait {cluster.loop_wait} s)", file=sys.stderr)


class MusterSurvivesThePrimarysDeath(unittest.TestCase):
    BEFORE_KILL = 15  # seconds of reports before the kill: the first reports' step 2 is under way
    AFTER_RECOVERY = 5  # seconds of reports after the first 201 following the failover

    @classmethod
    def setUpClass(cls):
        require_patroni()
        # Each page takes the receiver 0.3 s: some are in flight when the primary dies, their delivery not yet recorded.
        cls.sink = WebhookSink(secret=WEBHOOK_SECRET, delay=0.3, keep_bodies=False)
        cls.addClassCleanup(cls.sink.close)
        cls.cluster = PatroniCluster()
        cls.addClassCleanup(cls.cluster.close)
        cls.cluster.psql(cls.cluster.primary(), "CREATE DATABASE muster")
        cls.database_url = cls.cluster.url("muster", target_session_attrs="read-write", sslmode="disable")
        cls.work = Path(tempfile.mkdtemp(prefix="muster-failover-"))
        cls.addClassCleanup(lambda: os.environ.get("MUSTER_TEST_KEEP") or shutil.rmtree(cls.work, ignore_errors=True))
        playbooks = write_playbooks(cls.work / "playbooks", cls.sink.port)
        cls.muster = MusterProcess(env={"MUSTER_DATABASE_URL": cls.database_url, "MUSTER_LOG_LEVEL": "info"},
                                   config=CONFIG, playbooks=playbooks, demonstration_inbox=False, ready_within=120)
        cls.addClassCleanup(cls.muster.close)

    def fail_with_logs(self, message):
        self.fail(f"{message}\n--- muster serve's log (the end):\n{self.muster.log()[-5000:]}\n{self.cluster.logs(2000)}")

    def incident(self, incident_id):
        """GET /api/v1/incidents/{id} with its timeline (retrying a 503)."""
        status = text = None
        for _ in range(30):
            status, text, _ = request(self.muster.base, "GET", f"/api/v1/incidents/{incident_id}", self.muster.admin_token, timeout=30)
            if status == 200:
                return json.loads(text)
            if status != 503:
                break
            time.sleep(1)
        self.fail_with_logs(f"GET incident {incident_id}: {status} {text[:500] if text else text}")

    def test_reports_survive_and_escalations_resume_after_the_primary_dies(self):
        cluster, muster = self.cluster, self.muster
        old = cluster.primary()
        self.assertIsNotNone(old, "a primary")
        witness = muster.data_dir / "checkpoints"

        reporter = Reporter(muster.base, muster.admin_token)
        self.addCleanup(reporter.stop)
        probe = ReadinessProbe(muster.base)
        self.addCleanup(probe.stop)
        started = time.monotonic()
        reporter.start()
        probe.start()
        time.sleep(self.BEFORE_KILL)
        answered = [a for a in reporter.snapshot() if a["status"] in (200, 201)]
        self.assertTrue(answered, f"no report was taken before the kill: {reporter.snapshot()[-3:]}")
        self.assertTrue((witness / "checkpoint").exists(), f"no checkpoint was published in {witness} before the kill")

        # The primary dies: its Patroni and its PostgreSQL, SIGKILL. The witness directory as it is at that moment
        # holds the last checkpoint signed before the failover.
        before = self.work / "witness-before-failover"
        killed_at = cluster.kill(old)
        killed_wall = time.time()
        # The witness keeps publishing meanwhile: its files are replaced by rename, and the temporary files
        # of a write in progress (Foundation's ".dat.nosync…") may vanish under the copy.
        shutil.copytree(witness, before, ignore=shutil.ignore_patterns(".dat.nosync*"))
        last_before = (before / "checkpoint").read_text()
        new = cluster.wait_for_primary(exclude=old, seconds=120)
        promoted_at = time.monotonic()
        print(f"\n[failover] killed {old.name} (the primary) {killed_at - started:.1f} s after the first report; "
              f"Patroni promoted {new.name} {promoted_at - killed_at:.1f} s later", file=sys.stderr)

        # Reports go on until Muster takes them again, and a few seconds more.
        deadline = killed_at + RECOVERY_LIMIT
        recovered = None
        while time.monotonic() < deadline and reporter.is_alive():
            recovered = next((a for a in reporter.snapshot() if a["sent"] > killed_at and a["status"] in (200, 201)), None)
            if recovered:
                break
            time.sleep(0.1)
        if recovered is None:
            reporter.stop()
            statuses = Counter(a["status"] for a in reporter.snapshot() if a["sent"] > killed_at)
            self.fail_with_logs(f"no report was taken within {RECOVERY_LIMIT} s of the primary's death "
                                f"(answers since the kill: {dict(statuses)}; last: {reporter.snapshot()[-2:]})")
        time.sleep(self.AFTER_RECOVERY)
        reporter.stop()
        probe.stop()
        self.assertFalse(reporter.is_alive(), "the reporting client stopped")
        attempts = reporter.snapshot()
        outage = [a for a in attempts if a["answered"] > killed_at and a["sent"] < recovered["sent"]]
        refused = [a for a in attempts if a["status"] == 503]
        print(f"[failover] the first 201 after the failover: {recovered['answered'] - killed_at:.1f} s after the primary's death "
              f"({recovered['answered'] - promoted_at:.1f} s after the promotion; answered {recovered['status']} "
              f"{recovered['outcome']}); {len(attempts)} requests, {dict(Counter(a['status'] for a in attempts))}; "
              f"during the outage: {len(outage)} answered in at most "
              f"{max((a['answered'] - a['sent'] for a in outage), default=0):.2f} s", file=sys.stderr)

        # Meanwhile: 503 with Retry-After, never a hang, never another error.
        broken = [a for a in attempts if a["status"] is None]
        self.assertEqual(broken, [], f"requests not answered within {CLIENT_TIMEOUT} s (a hang) or whose connection broke")
        self.assertEqual([a for a in attempts if a["status"] not in (200, 201, 503)], [], "answers other than 201, 200 and 503")
        self.assertTrue([a for a in outage if a["status"] == 503], f"no 503 while the database was gone: {outage[:5]}")
        self.assertEqual([a for a in refused if not (a["retry_after"] or "").isdigit()], [], "503s without a Retry-After in seconds")
        self.assertLessEqual(recovered["answered"] - killed_at, RECOVERY_LIMIT)

        # Readiness, as a load balancer sees it: 503 while the database is gone, 200 again after; never a hang.
        probes = [(sent - killed_at, status) for sent, _, status in probe.answers]
        self.assertEqual([p for p in probes if p[1] not in (200, 503)], [], "readiness answers other than 200 and 503, or none in time")
        self.assertTrue([p for p in probes if 0 < p[0] < promoted_at - killed_at and p[1] == 503], "/health/ready never said 503 during the outage")
        ready_again = next((t for t, status in probes if t > promoted_at - killed_at and status == 200), None)
        self.assertIsNotNone(ready_again, "/health/ready never said 200 again")
        print(f"[failover] /health/ready: first 503 {min(t for t, status in probes if t > 0 and status == 503):.1f} s after the kill, "
              f"200 again {ready_again:.1f} s after it", file=sys.stderr)

        # Every key is one incident, whatever the failover did to its attempts; the database holds exactly these.
        by_key = {}
        for a in attempts:
            if a["incident"]:
                by_key.setdefault(a["key"], set()).add(a["incident"])
        self.assertEqual({k: v for k, v in by_key.items() if len(v) > 1}, {}, "a report retried with its key made a second incident")
        self.assertEqual(set(a["key"] for a in attempts), set(by_key), "every report was answered in the end")
        reported = {next(iter(v)) for v in by_key.values()}
        count = cluster.psql(self.database_url, "SELECT count(*) FROM incidents", database="muster")
        self.assertEqual(count, str(len(reported)), "an incident for each report answered, no other")

        # Every page of every incident arrives, and every incident runs to its fallback.
        expected = {}
        for incident_id in reported:
            expected.update({nid: (incident_id, step) for nid, step in expected_notifications(incident_id).items()})
        missing = self.sink.wait_for(expected, seconds=300)
        if missing:
            self.fail_with_logs(f"{len(missing)} of {len(expected)} page(s) never arrived, e.g. {sorted(missing)[:5]}")

        def settled():
            incidents = {}
            for incident_id in reported:
                incident = self.incident(incident_id)
                delivered = {e.get("notification") for e in entries(incident, "delivered")}
                if incident["incident"]["status"] != "unowned" or not set(expected_notifications(incident_id)) <= delivered:
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

        late = []
        for incident_id, incident in incidents.items():
            where = f"incident #{incident['incident']['number']} ({incident_id})"
            timeline = incident["timeline"]
            self.assertEqual([e["sequence"] for e in timeline], list(range(1, len(timeline) + 1)), f"{where}: sequence numbers")
            self.assertEqual(len(entries(incident, "reported")), 1, where)
            self.assertEqual(sorted(e.get("step") for e in entries(incident, "step_started")), [1, 2, 3], f"{where}: each step started once")
            self.assertEqual(len(entries(incident, "escalated")), 3, f"{where}: to step 2, to step 3, to the fallback, once each")
            paged = Counter((e.get("step"), e.get("recipient"), e.get("channel")) for e in entries(incident, "paged"))
            self.assertEqual(paged, Counter({(step, f"person:{p}", "webhook"): 1 for step, p in enumerate(STEPS, start=1)}),
                             f"{where}: each step's page, once")
            self.assertEqual([e.get("recipient") for e in entries(incident, "fallback_paged")], [f"person:{FALLBACK}"], where)
            self.assertEqual(len(entries(incident, "unowned")), 1, where)
            delivered = Counter(e.get("notification") for e in entries(incident, "delivered"))
            self.assertEqual(delivered, Counter({nid: 1 for nid in expected_notifications(incident_id)}),
                             f"{where}: each page recorded as delivered once")
            # Never early; late only by the outage.
            started_at = {e["step"]: epoch(e["at"]) for e in entries(incident, "step_started")}
            for step in range(2, len(STEPS) + 1):
                gap = started_at[step] - started_at[step - 1]
                self.assertGreaterEqual(gap, ACK_WITHIN - 0.01, f"{where}: step {step} early")
                late.append(gap - ACK_WITHIN)

        # The receiver: each page exactly once, correctly signed, nothing unexpected.
        received = self.sink.snapshot()
        self.assertEqual([r["id"] for r in received if not r["valid"]], [], "webhooks whose Standard Webhooks signature fails")
        counts = Counter(r["id"] for r in received)
        self.assertEqual(set(counts) - set(expected), set(), "pages nobody expected (a repeat, a second fallback round)")
        twice = {nid: n for nid, n in counts.items() if n > 1}
        during = [r for r in received if killed_at <= r["at"] <= recovered["answered"]]
        in_flight = [r for r in received if killed_at - self.sink.delay <= r["at"] < killed_at]
        unrecorded = muster.log().count("a delivery attempt was not recorded")
        print(f"[failover] {len(reported)} incidents, {len(received)} pages ({len(in_flight)} in flight at the kill, "
              f"{len(during)} sent while the database was away; {unrecorded} delivery outcome(s) Muster could not record then); "
              f"steps late by at most {max(late, default=0):.1f} s; {len(twice)} page(s) arrived more than once", file=sys.stderr)
        self.assertEqual(twice, {}, "pages that reached the receiver more than once (same webhook-id)")

        # The audit log: every entry sequenced, then verified against the database and the witness directory,
        # both as it was at the kill (the last checkpoint signed before the failover) and as it is now.
        deadline = time.monotonic() + 120
        pending = lambda: int(cluster.psql(self.database_url, "SELECT count(*) FROM audit_pending"))  # noqa: E731
        while pending() and time.monotonic() < deadline:
            time.sleep(1)
        self.assertEqual(pending(), 0, "entries the sequencer never took in")
        size_before = int(last_before.split("\n")[1])
        stored = cluster.psql(self.database_url, f"SELECT note FROM audit_checkpoints WHERE size = {size_before}")
        self.assertEqual(stored.strip(), last_before.strip(),
                         f"the last checkpoint published before the failover (size {size_before}) is the one in the database")
        verify = muster.cli("audit", "verify", "--witness", before, "--witness", witness, check=False)
        self.assertEqual(verify.returncode, 0, f"muster audit verify:\n{verify.stdout}\n{verify.stderr}")
        self.assertTrue(verify.stdout.startswith("OK"), verify.stdout)
        size_now = int((witness / "checkpoint").read_text().split("\n")[1])
        self.assertGreater(size_now, size_before, "checkpoints were signed after the failover")
        print(f"[failover] the last checkpoint before the failover: size {size_before} (published "
              f"{killed_wall - (before / 'checkpoint').stat().st_mtime:.1f} s before the kill); now {size_now}; "
              f"{verify.stdout.strip()}", file=sys.stderr)
        self.assertIsNone(muster.process.poll(), "muster serve is still running")


if __name__ == "__main__":
    unittest.main()
