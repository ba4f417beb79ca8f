"""Never silent, from the outside: the real `muster serve` binary, on SQLite and on PostgreSQL, with
Twilio played by a server of this test's own that speaks Twilio's REST API (201 and a sid), and every
inbound SMS and status callback signed with Twilio's own RequestValidator (the `twilio` package).

Run with `python3 -m unittest discover Tests/python` after `swift build` (scripts/test does both).
Each scenario is one of issue 20's: a keyword is not an acknowledgement, a replayed MessageSid changes
nothing, everyone declining starts the next step, an undelivered SMS and a voicemail move on to the
next contact point, and an integration's resolve never closes a person's report.
"""

import http.server
import json
import os
import subprocess
import tempfile
import threading
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python3 -m unittest Tests/python/...`
from browser_support import eventually, free_port  # noqa: E402

from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parents[2]
MUSTER = REPO / ".build" / "debug" / "muster"
PUBLIC_URL = "https://muster.e2e.example"
AUTH_TOKEN = "e2e-twilio-auth-token"
ACCOUNT = "AC00000000000000000000000000000e2e"
ADMIN = "mst_e2e_bootstrap_admin_token_0123456789"

DIRECTORY = """
district: { id: e2e, name: E2E District, time_zone: America/Chicago, call_back: "+15555550100" }
incident_types:
  - { id: suicide-risk, title: Student at risk of suicide or self-harm }
  - { id: threat-of-violence, title: Threat of violence }
roles:
  - { id: counselor, title: Counselor }
  - { id: teacher, title: Teacher }
sites:
  - { id: lincoln-high, name: Lincoln High School, time_zone: America/Chicago,
      school_hours: { days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" } }
people:
  - { id: ann, name: Ann Archer, roles: [counselor], sites: [lincoln-high], contacts: [ { sms: "+15555550111" }, { voice: "+15555550111" } ] }
  - { id: bo, name: Bo Baker, roles: [counselor], sites: [lincoln-high], contacts: [ { sms: "+15555550112" }, { voice: "+15555550112" } ] }
  - { id: cy, name: Cy Carter, roles: [counselor], sites: [lincoln-high], contacts: [ { voice: "+15555550113" }, { sms: "+15555550113" } ] }
  - { id: tess, name: Tess Teacher, roles: [teacher], sites: [lincoln-high], contacts: [ { sms: "+15555550114" } ] }
"""

SUICIDE_RISK = """
id: suicide-risk
title: Student at risk of suicide or self-harm
match: { types: [suicide-risk] }
group: { by: [site, subject], within: 30m }
steps:
  - { notify: [person:ann, person:bo], via: [sms], ack_within: 10m }
  - { notify: [person:cy], via: [voice], ack_within: 10m }
fallback: { notify: [person:cy], via: [sms] }
"""

THREAT = """
id: threat-of-violence
title: Threat of violence
match: { types: [threat-of-violence] }
group: { by: [site], within: 15m }
steps:
  - { notify: [person:ann], via: [sms], ack_within: 10m }
fallback: { notify: [person:cy], via: [sms] }
"""


class FakeTwilio:
    """Twilio's Messages and Calls resources on 127.0.0.1: each create is kept (its form) and answered 201."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
                kind = "Calls" if self.path.endswith("/Calls.json") else "Messages"
                sid = ("CA" if kind == "Calls" else "SM") + uuid.uuid4().hex
                with outer.lock:
                    outer.requests.append({"kind": kind, "path": self.path, "form": form, "sid": sid})
                payload = json.dumps({"sid": sid, "status": "queued"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sent(self, kind=None, to=None):
        with self.lock:
            return [r for r in self.requests if (kind is None or r["kind"] == kind) and (to is None or r["form"].get("To") == to)]

    def close(self):
        self.server.shutdown()


class Service:
    """`muster serve` on one store, with its accounts, against the fake Twilio."""

    def __init__(self, backend, twilio):
        self.work = Path(tempfile.mkdtemp(prefix=f"muster-e2e-{backend}-"))
        playbooks = self.work / "playbooks"
        playbooks.mkdir()
        (playbooks / "directory.yaml").write_text(DIRECTORY)
        (playbooks / "suicide-risk.yaml").write_text(SUICIDE_RISK)
        (playbooks / "threat-of-violence.yaml").write_text(THREAT)
        (self.work / "muster.yaml").write_text(
            f"public_url: {PUBLIC_URL}\n"
            "channels:\n"
            f"  twilio: {{ base_url: 'http://127.0.0.1:{twilio.port}', account_sid: {ACCOUNT}, from: '+15555550199' }}\n")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, MUSTER_BOOTSTRAP_ADMIN_TOKEN=ADMIN, MUSTER_TWILIO_AUTH_TOKEN=AUTH_TOKEN)
        self.env.pop("MUSTER_DATABASE_URL", None)
        if backend == "postgres":
            self.env["MUSTER_DATABASE_URL"] = fresh_postgres_database()
        self.common = ["--data-dir", str(self.work / "data")]
        self.log = open(self.work / "serve.log", "w")
        self.process = subprocess.Popen(
            [str(MUSTER), "serve", "--port", str(self.port), "--playbooks", str(playbooks), "--config", str(self.work / "muster.yaml")]
            + self.common, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        if not eventually(lambda: self.ready(), 60):
            self.stop()
            raise AssertionError("muster serve did not become ready: " + (self.work / "serve.log").read_text()[-2000:])
        self.teacher = self.account("tess", "reporter", playbooks)
        self.monitoring = self.account("monitoring", "integration", playbooks)

    def ready(self):
        try:
            return self.call("GET", "/health/ready")[0] == 200
        except OSError:
            return False

    def account(self, user, role, playbooks):
        sites = ["--site", "lincoln-high"] if role == "reporter" else []
        subprocess.run([str(MUSTER), "user", "add", user, "--role", role, "--playbooks", str(playbooks)] + sites + self.common,
                       env=self.env, check=True, capture_output=True)
        made = subprocess.run([str(MUSTER), "token", "create", user] + self.common, env=self.env, check=True, capture_output=True, text=True)
        return made.stdout.strip().split()[-1]

    def call(self, method, path, token=None, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def report(self, token, kind="suicide-risk", subject=None, summary="Student wrote a goodbye note"):
        body = {"type": kind, "severity": "high", "site": "lincoln-high", "summary": summary}
        if subject:
            body["subject"] = subject
        status, text = self.call("POST", "/api/v1/incidents", token=token, body=body)
        assert status in (200, 201), text
        return json.loads(text)

    def incident(self, number):
        status, text = self.call("GET", f"/api/v1/incidents/{number}", token=ADMIN)
        assert status == 200, text
        return json.loads(text)

    def twilio_post(self, path, params):
        """A webhook as Twilio sends it: form-encoded, signed over the public URL by RequestValidator."""
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, params)
        return self.call("POST", path, raw=urllib.parse.urlencode(params).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})

    def sms(self, phone, text, sid):
        status, body = self.twilio_post("/api/v1/integrations/twilio/sms", {
            "MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT, "From": phone, "To": "+15555550199", "Body": text,
            "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01"})
        assert status == 200, body
        return body.split("<Message>", 1)[-1].split("</Message>", 1)[0]

    def status_callback(self, created, params):
        """Posts a status callback to the StatusCallback URL Muster gave Twilio when it created `created`."""
        url = created["form"]["StatusCallback"]
        assert url.startswith(PUBLIC_URL + "/api/v1/integrations/twilio/status?n="), url
        return self.twilio_post(url[len(PUBLIC_URL):], params)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def fresh_postgres_database():
    base = os.environ.get("MUSTER_TEST_DATABASE_URL")
    if not base:
        raise unittest.SkipTest("no PostgreSQL (MUSTER_TEST_DATABASE_URL); scripts/test starts one")
    name = "e2e_" + uuid.uuid4().hex[:12]
    bin_dir = os.environ.get("MUSTER_TEST_PG_BIN", "")
    psql = str(Path(bin_dir) / "psql") if bin_dir else "psql"
    subprocess.run([psql, base.split("?")[0], "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    parsed = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parsed._replace(path="/" + name))


def timeline(incident, action):
    return [entry for entry in incident["timeline"] if entry["action"] == action]


class NeverSilent:
    backend = None

    @classmethod
    def setUpClass(cls):
        if not MUSTER.exists():
            raise AssertionError(f"{MUSTER} is missing: run `swift build` first")
        if cls.backend == "postgres" and not os.environ.get("MUSTER_TEST_DATABASE_URL") and os.environ.get("CI") == "true":
            raise AssertionError("CI needs PostgreSQL: scripts/test starts one")
        cls.twilio = FakeTwilio()
        cls.service = Service(cls.backend, cls.twilio)

    @classmethod
    def tearDownClass(cls):
        cls.service.stop()
        cls.twilio.close()

    def paged(self, number, phone, kind="Messages"):
        """Waits for Muster to ask Twilio to reach `phone` about incident `number`; returns that create request."""
        def find():
            for created in self.twilio.sent(kind, phone):
                text = created["form"].get("Body", "") + created["form"].get("Twiml", "")
                if f"#{number} " in text or f"incident {number}:" in text:
                    return created
            return None
        created = eventually(find)
        self.assertIsNotNone(created, f"no {kind} to {phone} for incident #{number}")
        return created

    def sent(self, number, sid):
        """Waits until Muster recorded Twilio's acceptance of `sid` (only then does its status callback count)."""
        def recorded():
            incident = self.service.incident(number)
            return incident if any(sid in (e.get("detail") or "") for e in timeline(incident, "sent")) else None
        incident = eventually(recorded)
        self.assertIsNotNone(incident, f"{sid} was not recorded as sent")
        return incident

    def test_a_keyword_is_not_an_acknowledgement_and_a_replay_changes_nothing(self):
        first = self.service.report(self.service.teacher, subject="S-KEYWORD")["incident"]["number"]
        self.paged(first, "+15555550111")
        for index, text in enumerate(["No, not ok", f"Cannot take {first} - in a meeting", "ok", "YES"]):
            answer = self.service.sms("+15555550111", text, f"SMkw{index}{uuid.uuid4().hex[:8]}")
            self.assertIn("ACK 4821", answer, text)
        incident = self.service.incident(first)
        self.assertEqual(incident["incident"]["status"], "escalating")
        self.assertEqual(len(timeline(incident, "reply_received")), 4)

        sid = "SMreplay" + uuid.uuid4().hex
        self.assertEqual(self.service.sms("+15555550111", "1", sid), f"Muster: incident #{first} acknowledged. It is yours.")
        second = self.service.report(self.service.teacher, subject="S-REPLAY")["incident"]["number"]
        self.paged(second, "+15555550111")
        self.assertIn("already received", self.service.sms("+15555550111", "1", sid))
        self.assertEqual(self.service.incident(second)["incident"]["status"], "escalating")

    def test_everyone_declining_starts_the_next_step_at_once(self):
        number = self.service.report(self.service.teacher, subject="S-DECLINE")["incident"]["number"]
        self.paged(number, "+15555550111")
        self.paged(number, "+15555550112")
        self.assertIn("cannot take", self.service.sms("+15555550111", f"NO {number}", "SMno" + uuid.uuid4().hex))
        self.assertEqual(self.service.incident(number)["incident"]["step"], 1, "step 1 waits for Bo")
        self.assertIn("cannot take", self.service.sms("+15555550112", f"pass #{number}", "SMno" + uuid.uuid4().hex))
        call = self.paged(number, "+15555550113", "Calls")
        self.assertEqual(call["form"]["MachineDetection"], "Enable")
        self.assertEqual(self.service.incident(number)["incident"]["step"], 2)

    def test_undelivered_sms_and_a_voicemail_move_to_the_next_contact_point(self):
        number = self.service.report(self.service.teacher, subject="S-UNDELIVERED")["incident"]["number"]
        sms = self.paged(number, "+15555550111")
        incident = self.sent(number, sms["sid"])
        self.assertFalse([e for e in timeline(incident, "delivered") if e.get("channel") == "sms"], "Twilio's 201 is 'sent', not 'delivered'")
        status, body = self.service.status_callback(sms, {
            "MessageSid": sms["sid"], "SmsSid": sms["sid"], "AccountSid": ACCOUNT, "MessageStatus": "undelivered",
            "SmsStatus": "undelivered", "ErrorCode": "30003", "To": "+15555550111", "From": "+15555550199", "ApiVersion": "2010-04-01"})
        self.assertEqual(status, 204, body)
        call = self.paged(number, "+15555550111", "Calls")  # Ann's next contact point
        self.sent(number, call["sid"])
        status, body = self.service.status_callback(call, {
            "CallSid": call["sid"], "AccountSid": ACCOUNT, "CallStatus": "completed", "AnsweredBy": "machine_start",
            "To": "+15555550111", "From": "+15555550199", "Direction": "outbound-api", "ApiVersion": "2010-04-01"})
        self.assertEqual(status, 204, body)
        def given_up():
            failed = [e for e in timeline(self.service.incident(number), "delivery_failed") if "gave up" in (e.get("detail") or "")]
            return failed if len(failed) >= 2 else None
        failures = eventually(given_up) or []
        details = " | ".join(e.get("detail") or "" for e in failures)
        self.assertIn("undelivered (error 30003)", details)
        self.assertIn("answered by machine_start", details)

    def test_an_integration_never_closes_a_persons_report(self):
        teacher = self.service.report(self.service.teacher, kind="threat-of-violence", summary="A student threatened a classmate")
        number = teacher["incident"]["number"]
        event = {"routing_key": self.service.monitoring, "event_action": "trigger", "dedup_key": "door-e2e",
                 "payload": {"summary": "Door forced open", "source": "access-control", "severity": "critical",
                             "group": "lincoln-high", "class": "threat-of-violence"}}
        status, body = self.service.call("POST", "/v2/enqueue", body=event)
        self.assertEqual(status, 202, body)
        status, body = self.service.call("POST", "/v2/enqueue", body={"routing_key": self.service.monitoring, "event_action": "resolve",
                                                                       "dedup_key": "door-e2e"})
        self.assertEqual(status, 202, body)
        incident = self.service.incident(number)
        self.assertNotEqual(incident["incident"]["status"], "resolved")
        self.assertEqual(len(incident["reports"]), 1, "the alarm did not join the teacher's incident")


class NeverSilentSQLite(NeverSilent, unittest.TestCase):
    backend = "sqlite"


class NeverSilentPostgres(NeverSilent, unittest.TestCase):
    backend = "postgres"


if __name__ == "__main__":
    unittest.main()
