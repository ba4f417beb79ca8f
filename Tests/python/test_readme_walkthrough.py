"""The README's "Try it in ten minutes", step by step, in a real headless Chromium at a phone's size (390 x 844
CSS pixels) against the built `muster serve --demonstration-inbox --demo-speed 60` on a clean data directory.
These are the steps as this test performs them, each with what you should see:

 1. Start the service: `muster serve --demonstration-inbox --demo-speed 60`.
    You see: "Muster is serving http://127.0.0.1:8080/", "Demonstration speed: every timer runs 60 times
    faster." and "Demonstration sign-ins (shown once; ...)" with six lines, each a job, a user and a password:
    Teacher (raises incidents), Social worker (on call), Counselor (on call), Principal, District crisis lead
    (coordinator) and Auditor. (Before them, serve warns of coverage gaps: 20 lines and a count.)
 2. Open that URL and sign in with the user and password of the Teacher line.
    You see: "Hello, Olivia Brennan", and under the menu the yellow banner "Demonstration. Messages go to the
    inbox on this site, not to real phones. Timers run 60 times faster."
 3. Press "Raise an incident". In "What is happening?" choose "Student at risk of suicide"; in "How urgent?"
    choose "Life in danger now".
    You see: a red box above the form, "Call 911 now. A life may be in danger. Call first, then send this
    form: the team is paged at the same time." with a "Call 911" button (docs/images/raise-911.png).
    Write what happened in "What happened?" and press "Send the report".
    You see: "Sent. The team is being alerted now.", the red "Call 911 now if you have not" box, the heading
    "Incident #1: Student at risk of suicide" (its number), and under "Being alerted" each person paged with
    the channel, "in the demonstration inbox" (outside school hours: Kwame Mensah, by voice and SMS).
 4. Follow "inbox" in the yellow banner.
    You see: "Demonstration inbox", a tab per person with messages, and in the tab of the person paged first
    the page for incident #1: "Muster #1 Student at risk of suicide, imminent, Lincoln High School. Reply
    ACK 1 or open ...", with the links "Open incident #1" and "Acknowledge link" (docs/images/inbox-page.png).
    Wait about ten seconds and open the inbox again: at 60 times the speed an acknowledgement window of
    5 minutes passes in 5 seconds.
    You see: nobody acknowledged, so escalation paged the playbook's next step: a new tab (outside school
    hours Marcus Whitfield, the district crisis lead, about 10 s after the first page: one repeat, then step
    2; in school hours the social worker and counselor are first and step 2 comes after about 6 s). Tabs for
    the principal and assistant principals appear too, with "TASK OVERDUE (supervision)": the checklist's
    10-minute task. Left alone, paging reaches the county mobile crisis team and the fallback in about 25 s.
 5. In the tab of the person paged first, follow "Acknowledge link" of their page.
    You see: "Take ownership of incident #1?" and their name; press "Acknowledge: I take ownership".
    You see: "Incident #1 is yours" and "Acknowledged as <name>. Escalation has stopped."
 6. Press "Sign out Olivia Brennan" at the top. On the sign-in page, under "No password?", enter the user
    name of the person who acknowledged (their directory id, such as omensah; their inbox tab's address
    ends ?to=person:omensah) and press "Email me a sign-in link".
    You see: "If that user name has an email address, a sign-in link is on its way. It works once, for
    15 minutes."
    Follow "inbox" in the banner and open their tab: the newest message is the email "Muster sign-in link.
    ..." with a "Sign-in link"; follow it.
    You see: "Sign in to Muster" and a "Sign in" button; press it.
    You see: "Hello, <their name>". Open "My incidents", then the incident.
    You see: the incident, "Acknowledged" and the owner, and the "Protocol checklist". Press "Mark done" on the
    first task: "Task marked done." Write a note under "Add a note" and press "Add the note": "Note added."
    Write a closing note and press "Resolve": "Resolved."
 7. Sign out; sign in with the user and password of the Auditor line. Choose "Audit" in the menu and press
    "Search" with the fields empty (every incident).
    You see: the incident, "Resolved", and "Export JSON with proofs · CSV".
    Open the incident.
    You see: its whole timeline, each entry with its time from the report: reported, paged, shown in the
    demonstration inbox, escalated, acknowledged, the task done, the note, resolved, and each time someone
    opened the details (docs/images/incident-timeline.png).
    Download "JSON with proofs": the file muster-incident-1.json.
    You see, on the incident's timeline opened again: the export ("auditor exported as JSON from ...").
    Back on "Audit", press "Check the whole log now".
    You see: "Verified: OK: N audit entries of 1 incidents; tree of N leaves matches M signed checkpoints,
    each consistent with the next".
 8. Check the export offline, in the folder where you started the service:
    `muster audit verify --file muster-incident-1.json` and, with no Muster at all,
    `python3 scripts/verify-export.py muster-incident-1.json --key "$(muster audit key)"`.
    You see: each prints one line, "OK: incident ..., N entries, log indices 0..N-1, checkpoint
    muster.local/audit-log size N signed by muster.local/audit-log", and exits 0. (verify-export.py without
    --key takes the key written in the export, and warns: pin it with --key.)

Then, after the walkthrough: the coordinator's pages as the district crisis lead (on call now and this week
at a site, playbooks and the linter, coverage, the simulator and its timeline, a simulation with a bad time),
and the administrator's pages as the admin account: with the password printed on its Administrator line, or
made by `muster user password admin`, where the build has either; else by copying the auditor's bcrypt hash
into the database (the admin account is made with an API token only).

Every distinct page visited is checked as in test_web_pages.py: axe-core (WCAG 2.0/2.1/2.2 A and AA), a
screenshot (.build/screenshots/web-walk-NAME.png and -320.png), no horizontal scrolling at 320 CSS pixels,
page weight under 100 KB and no request to another origin. The README's pictures are kept under
.build/screenshots/readme-*.png; MUSTER_README_IMAGES=docs/images renews the committed ones.
The time the walkthrough took, and the part of it the checks took, is printed. Run after `swift build`:

    python3 -m unittest Tests/python/test_readme_walkthrough.py -v   (MUSTER_TEST_BINARY chooses another binary)
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python3 -m unittest Tests/python/...`
from browser_support import REPO, SCREENSHOTS, MusterProcess, chrome, eventually, require_browser, screenshot
import test_web_pages as web  # its helpers (a module, so its test case is not run again from here)

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

PHONE = web.PHONE
SPEED = 60
TEACHER, AUDITOR, COORDINATOR = "Teacher (raises incidents)", "Auditor", "District crisis lead (coordinator)"
ROLES = [TEACHER, "Social worker (on call)", "Counselor (on call)", "Principal", COORDINATOR, AUDITOR]

# Every page the steps visit, by the name its screenshot and checks carry.
PAGES = ["sign-in", "home", "raise", "raise-911", "confirmation", "inbox", "ack", "ack-done", "sign-in-sent", "sign-in-link",
         "mine", "incident-responder", "resolved", "auditor", "auditor-results", "incident-auditor", "auditor-verified",
         "coordinator", "simulation", "simulation-error", "admin", "admin-person"]


def addressee(meta):
    """The person's name in a message's line "sms to Kwame Mensah · +15555550104 · incident #1"."""
    return re.match(r"\S+ to (.+?) · ", meta)[1]


def readme_images():
    """Where the README's pictures go: only when MUSTER_README_IMAGES names a folder (docs/images to renew them),
    so that a test run leaves the committed pictures alone."""
    chosen = os.environ.get("MUSTER_README_IMAGES", "")
    if not chosen or chosen.lower() == "off":
        return None
    return Path(chosen) if Path(chosen).is_absolute() else REPO / chosen


class ReadmeWalkthrough(unittest.TestCase):
    number = None          # the incident the teacher raised (step 3)
    first = None           # (recipient, name, acknowledgement link) of the page followed (step 4)
    acknowledged = False   # step 5 got to the end
    worked = False         # step 6 got to the end
    export_path = None     # the JSON export (step 7)
    verified_offline = False
    checked = {}           # page name -> its figures
    asset_sizes = {}
    seen = {}              # step -> what the user sees, as printed at the end
    checks_seconds = 0.0   # the time the page checks took, within the walkthrough

    # test_web_pages' helpers, the same functions.
    go = web.WebPages.go
    path = web.WebPages.path
    wait = web.WebPages.wait
    click_and_load = web.WebPages.click_and_load
    button = web.WebPages.button
    text = web.WebPages.text
    h1 = web.WebPages.h1
    status = web.WebPages.status
    need = web.WebPages.need
    inbox_tabs = web.WebPages.inbox_tabs
    messages = web.WebPages.messages
    _check_page = web.WebPages.check_page

    @classmethod
    def setUpClass(cls):
        require_browser()
        cls.started = time.monotonic()
        cls.muster = MusterProcess(args=["--demo-speed", str(SPEED)])
        cls.addClassCleanup(cls.muster.close)
        cls.driver = chrome(*PHONE)
        cls.addClassCleanup(cls.driver.quit)
        cls.origin = cls.muster.base
        cls.checked, cls.asset_sizes, cls.seen = {}, {}, {}
        cls.work = Path(tempfile.mkdtemp(prefix="muster-walkthrough-"))
        cls.addClassCleanup(shutil.rmtree, cls.work, ignore_errors=True)
        found = eventually(lambda: web.sign_ins(cls.muster.log()) if "Auditor" in cls.muster.log() else None, 10)
        cls.accounts = found or {}

    # MARK: helpers

    def check_page(self, name):
        """test_web_pages' checks of a page (screenshot, weight, origins, 320 px, axe-core), once per page."""
        if name in self.checked:
            return
        started = time.monotonic()
        try:
            self._check_page("walk-" + name)
        finally:
            self.checked[name] = self.checked.pop("walk-" + name, {"url": self.path()})
            type(self).checks_seconds += time.monotonic() - started

    def saw(self, step, line):
        self.seen.setdefault(step, []).append(line)

    def full_page(self, name, width=PHONE[0], max_height=4000):
        """A screenshot of the whole page (up to max_height CSS pixels) at `width`, saved as a README picture
        (and under .build/screenshots); the viewport is the phone's again afterwards."""
        height = min(max_height, self.driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)"))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": max(height, PHONE[1]), "deviceScaleFactor": 1, "mobile": False})
        try:
            self.wait(lambda d: d.execute_script("return innerHeight") == max(height, PHONE[1]), 5)
            self.driver.execute_script("window.scrollTo(0, 0); if (document.activeElement) document.activeElement.blur()")
            path = screenshot(self.driver, "readme-" + name)
        finally:
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": False})
            self.wait(lambda d: d.execute_script("return innerHeight") == PHONE[1], 5)
        folder = readme_images()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / (name + ".png")).write_bytes(path.read_bytes())
            return folder / (name + ".png")
        return path

    def click_link(self, text, within="body"):
        """Follows the (first) link whose visible text is `text`."""
        for link in self.driver.find_elements(By.CSS_SELECTOR, within + " a"):
            if link.text.strip() == text:
                self.click_and_load(link)
                return
        self.fail(f"no link {text!r} in {within} on {self.path()}:\n{self.text()[:1500]}")

    def sign_out(self):
        forms = self.driver.find_elements(By.CSS_SELECTOR, "form.signout")
        self.assertTrue(forms, f"no sign-out button on {self.path()}")
        self.assertTrue(forms[0].text.startswith("Sign out "), forms[0].text)
        self.click_and_load(forms[0].find_element(By.TAG_NAME, "button"))
        self.assertTrue(self.path().startswith("/sign-in"), self.path())

    def sign_in(self, role):
        user, name, password = self.accounts[role]
        form = self.driver.find_element(By.CSS_SELECTOR, "form[action='/sign-in']")
        form.find_element(By.ID, "user").send_keys(user)
        form.find_element(By.ID, "password").send_keys(password)
        self.click_and_load(form.find_element(By.TAG_NAME, "button"))
        self.assertNotIn("/sign-in", self.path(), f"signing in as {user} failed:\n{self.text()[:800]}")
        return user, name

    def deliveries(self):
        """The demonstration file's messages: [dict]."""
        path = self.muster.data_dir / "deliveries.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def pages_for(self, number):
        """The pages (not task reminders) sent for incident `number`: [(step, recipient, channel)], by the
        step the message's id names (".../page/s2r0/person:x/sms")."""
        found = []
        for message in self.deliveries():
            step = re.search(r"/page/s(\d+)r\d+/", message.get("id", ""))
            if message.get("number") == str(number) and message.get("kind") == "page" and step:
                found.append((int(step[1]), message["recipient"], message["channel"]))
        return found

    def cookie_header(self):
        return "; ".join(f"{c['name']}={c['value']}" for c in self.driver.get_cookies())

    def fetch(self, path):
        """GET with the browser's cookies: (status, headers, body bytes)."""
        request = urllib.request.Request(self.origin + path, headers={"Cookie": self.cookie_header()})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    # MARK: 1. start

    def test_1_start_the_service(self):
        log = self.muster.log()
        served = re.search(r"^Muster is serving (\S+)", log, re.MULTILINE)
        self.assertIsNotNone(served, "serve printed no URL:\n" + log[-3000:])
        self.assertEqual(served[1], self.origin + "/")
        self.assertIn(f"Demonstration speed: every timer runs {SPEED} times faster.", log)
        # The six jobs, in order (a build that also prints the first admin's sign-in adds an "Administrator" line).
        expected = ROLES + (["Administrator"] if "Administrator" in self.accounts else [])
        self.assertEqual(list(self.accounts), expected, "the demonstration sign-ins printed:\n" + log[-2000:])
        type(self).url = served[1]
        self.saw(1, served[0])
        self.saw(1, f"{len(self.accounts)} sign-ins: " + ", ".join(self.accounts))
        warnings = len(re.findall(r" warning muster: .*coverage:", log))
        self.saw(1, f"(before them, {warnings} coverage warning lines)")

    # MARK: 2. sign in as the teacher

    def test_2_open_the_url_and_sign_in_as_the_teacher(self):
        self.need(getattr(self, "url", None), "step 1 (start)")
        self.driver.delete_all_cookies()
        self.driver.get(self.url)
        self.assertTrue(self.path().startswith("/sign-in"), f"signed out, the URL went to {self.path()}")
        self.assertEqual(self.h1(), "Sign in")
        self.check_page("sign-in")
        user, name = self.sign_in(TEACHER)
        self.assertEqual(self.path(), "/")
        self.assertEqual(self.h1(), f"Hello, {name}")
        banner = self.text("p.demo")
        self.assertIn("Demonstration. Messages go to the inbox on this site, not to real phones.", banner)
        self.assertIn(f"Timers run {SPEED} times faster.", banner)
        self.saw(2, self.h1())
        self.saw(2, banner)
        self.check_page("home")

    # MARK: 3. raise

    def test_3_raise_an_imminent_suicide_risk_and_see_call_911(self):
        self.need(self.accounts and self.path() == "/", "step 2 (sign in)")
        self.click_link("Raise an incident", "main")
        self.assertEqual(self.path(), "/raise")
        self.assertEqual(self.h1(), "Raise an incident")
        notice = self.driver.find_element(By.ID, "call-911")
        self.assertFalse(notice.is_displayed(), "Call 911 shown before anything was chosen")
        self.check_page("raise")

        Select(self.driver.find_element(By.ID, "type")).select_by_visible_text("Student at risk of suicide")
        choice = self.driver.find_element(By.CSS_SELECTOR, "label[for='severity-imminent']")
        self.assertTrue(choice.text.startswith("Life in danger now"), choice.text)
        choice.click()
        self.assertTrue(notice.is_displayed(), "choosing 'Life in danger now' did not show the Call 911 notice")
        self.assertIn("Call 911 now", notice.text)
        self.assertTrue(self.driver.find_element(By.CSS_SELECTOR, "#call-911 a[href='tel:911']").is_displayed())
        summary = "Student told me he has a plan to end his life tonight. He is with me in room 114."
        self.driver.find_element(By.ID, "summary").send_keys(summary)
        self.driver.find_element(By.ID, "subject").send_keys("S-20417")
        self.saw(3, notice.text.replace("\n", " "))
        picture = self.full_page("raise-911")
        self.saw(3, f"picture: {picture}")
        self.check_page("raise-911")

        self.click_and_load(self.button("Send the report"))
        self.assertEqual(self.status(), 200)
        self.assertRegex(self.path(), r"^/incidents/\d+\?done=raised-imminent$")
        self.assertIn("Sent. The team is being alerted now.", self.text(".notice"))
        self.assertIn("Call 911 now", self.text(".call911"))
        match = re.fullmatch(r"Incident #(\d+): Student at risk of suicide", self.h1())
        self.assertIsNotNone(match, f"the confirmation's heading is {self.h1()!r}")
        alerted = [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, "ul.paging li")]
        self.assertTrue(alerted, "the confirmation names nobody being alerted:\n" + self.text("main"))
        self.assertIn(summary, self.text("main"))
        type(self).number = int(match[1])
        self.saw(3, self.text(".notice"))
        self.saw(3, self.h1())
        self.saw(3, "Being alerted: " + "; ".join(alerted))
        self.check_page("confirmation")

    # MARK: 4. the inbox, and escalation

    def test_4_the_inbox_shows_the_page_and_escalation_pages_more_people(self):
        number = self.need(self.number, "step 3 (raise)")
        self.click_link("inbox", "p.demo")
        self.assertEqual(self.path(), "/inbox")
        self.assertEqual(self.h1(), "Demonstration inbox")

        def first_page():
            self.go("/inbox")
            for recipient, href in self.inbox_tabs():
                if not recipient.startswith("person:"):
                    continue
                self.driver.get(href)
                for meta, links in self.messages():
                    if f"incident #{number}" in meta and "Acknowledge link" in links:
                        return recipient, addressee(meta), links["Acknowledge link"]
            return None
        # The first step's people: those paged by step 1 (by the messages' ids), else anyone paged.
        steps = eventually(lambda: self.pages_for(number), 15)
        self.assertTrue(steps, f"nothing was paged for incident #{number}")
        found = eventually(first_page, 15)
        self.assertIsNotNone(found, f"no page with an acknowledgement link for incident #{number} in the inbox")
        recipient, name, ack = found
        first_step = min(step for step, who, _ in steps if who == recipient)
        type(self).first = found
        item = [text for text in (li.text for li in self.driver.find_elements(By.CSS_SELECTOR, "li.message")) if f"#{number}" in text]
        self.saw(4, f"tab {name}: " + item[0].replace("\n", " | ")[:300])
        picture = self.full_page("inbox-page", max_height=1400)
        self.saw(4, f"picture: {picture}")
        self.check_page("inbox")

        # Nobody acknowledges: the next step pages someone else.
        waited = time.monotonic()
        later = eventually(lambda: [page for page in self.pages_for(number) if page[0] > first_step], 60)
        self.assertTrue(later, f"no later step paged anyone within 60 s at {SPEED}x:\n{self.pages_for(number)}")
        seconds = time.monotonic() - waited
        step, who, _ = later[0]
        self.go("/inbox?to=" + urllib.parse.quote(who, safe=":"))
        shown = [meta for meta, links in self.messages() if f"incident #{number}" in meta and "Acknowledge link" in links]
        self.assertTrue(shown, f"the inbox tab of {who} shows no page for incident #{number}")
        tab = addressee(shown[0])
        self.saw(4, f"step {first_step} paged {name} ({recipient}); {seconds:.1f} s later (after the first page was seen), "
                    f"step {step} paged {tab} ({who})")
        type(self).escalation = (first_step, step, who, seconds)

    # MARK: 5. acknowledge

    def test_5_follow_the_acknowledge_link_and_press_the_button(self):
        number = self.need(self.number, "step 3 (raise)")
        recipient, name, ack = self.need(self.first, "step 4 (the inbox)")
        self.go("/inbox?to=" + urllib.parse.quote(recipient, safe=":"))
        links = [a for a in self.driver.find_elements(By.CSS_SELECTOR, "li.message p.links a") if a.text == "Acknowledge link"]
        self.assertTrue(links)
        self.click_and_load(links[-1])  # the oldest: the first page they got
        self.assertEqual(self.h1(), f"Take ownership of incident #{number}?")
        self.assertIn(name, self.text())
        self.saw(5, self.h1())
        self.check_page("ack")
        self.click_and_load(self.button("Acknowledge: I take ownership"))
        self.assertEqual(self.h1(), f"Incident #{number} is yours")
        self.assertIn("Escalation has stopped", self.text())
        self.saw(5, self.h1() + " / " + next(line for line in self.text("main").splitlines() if "Escalation has stopped" in line))
        self.check_page("ack-done")
        type(self).acknowledged = True

    # MARK: 6. the person who acknowledged signs in with an emailed link and works the incident

    def test_6_sign_in_with_an_emailed_link_and_work_the_incident(self):
        number = self.need(self.number, "step 3 (raise)")
        self.need(self.acknowledged, "step 5 (acknowledge)")
        recipient, name, _ = self.first
        person = recipient.split(":", 1)[1]
        # The user name to type, as a newcomer looks for it: on their inbox tab (before any email is sent to them,
        # whose address would contain it).
        self.go("/inbox?to=" + urllib.parse.quote(recipient, safe=":"))
        with self.subTest(check="the inbox tab shows the user name to type"):
            shown = re.search(rf"(?<![\w.@-]){re.escape(person)}(?![\w@-])", self.text("main"))
            self.assertIsNotNone(shown, f"the inbox tab of {name} does not show their user name {person!r}: only its address "
                                 f"has it (/inbox?to={recipient})")
        self.sign_out()

        form = self.driver.find_element(By.CSS_SELECTOR, "form[action='/sign-in/link']")
        form.find_element(By.ID, "link-user").send_keys(person)
        self.click_and_load(self.button("Email me a sign-in link", within=form))
        self.assertIn("a sign-in link is on its way", self.text(".notice"))
        self.saw(6, self.text(".notice"))
        self.check_page("sign-in-sent")

        self.click_link("inbox", "p.demo")
        self.click_link(next(tab.text for tab in self.driver.find_elements(By.CSS_SELECTOR, "ul.tabs a")
                             if tab.get_attribute("href").endswith("to=" + recipient)), "ul.tabs")
        link = eventually(lambda: next((links["Sign-in link"] for _, links in self.messages() if "Sign-in link" in links), None)
                          or self.driver.refresh(), 15)
        self.assertIsNotNone(link, f"no sign-in link for {person} in the inbox")
        item = self.driver.find_elements(By.CSS_SELECTOR, "li.message")[0].text
        self.saw(6, f"newest message of {name}: " + item.replace("\n", " | ")[:200])
        self.click_link("Sign-in link", "li.message")
        self.assertEqual(self.h1(), "Sign in to Muster")
        self.check_page("sign-in-link")
        self.click_and_load(self.button("Sign in"))
        self.assertEqual(self.path(), "/")
        self.assertEqual(self.h1(), f"Hello, {name}")
        self.saw(6, self.h1())

        self.click_link("My incidents", "nav")
        self.assertIn(f"#{number}", self.text("main"), "the incident they own is not in My incidents")
        self.check_page("mine")
        self.click_and_load(next(a for a in self.driver.find_elements(By.CSS_SELECTOR, "main a")
                                 if a.get_attribute("href").endswith(f"/incidents/{number}")))
        self.assertTrue(self.h1().startswith(f"Incident #{number}:"))
        facts = self.text(".facts")
        self.assertIn("Acknowledged", facts)
        self.assertIn(name, facts, "the owner is not the person who acknowledged")
        self.check_page("incident-responder")

        mark = self.button("Mark done")
        task = mark.find_element(By.XPATH, "./ancestor::li[1]").find_element(By.CSS_SELECTOR, ".title").text
        self.click_and_load(mark)
        self.assertEqual(self.text(".notice"), "Task marked done.")
        self.saw(6, f"Mark done ({task}): " + self.text(".notice"))
        note = "Screened with the C-SSRS; mobile crisis team called; mother on her way."
        self.driver.find_element(By.ID, "note-text").send_keys(note)
        self.click_and_load(self.button("Add the note"))
        self.assertEqual(self.text(".notice"), "Note added.")
        self.assertIn(note, self.text(".timeline"))
        self.saw(6, "Add the note: " + self.text(".notice"))
        Select(self.driver.find_element(By.ID, "resolve-outcome")).select_by_value("emergency-services")
        self.driver.find_element(By.ID, "resolve-note").send_keys("Student taken to the emergency department by his mother.")
        self.click_and_load(self.button("Resolve"))
        self.assertEqual(self.text(".notice"), "Resolved.")
        self.assertIn("Resolved", self.text(".facts .badge"))
        self.saw(6, "Resolve: " + self.text(".notice"))
        self.check_page("resolved")
        type(self).task, type(self).note, type(self).worked = task, note, True

    # MARK: 7. the auditor

    def test_7_the_auditor_searches_reads_the_timeline_and_downloads_the_export(self):
        number = self.need(self.number, "step 3 (raise)")
        self.need(self.worked, "step 6 (work the incident)")
        recipient, name, _ = self.first
        teacher = self.accounts[TEACHER][1]
        self.go("/")
        self.sign_out()
        self.sign_in(AUDITOR)
        self.click_link("Audit", "nav")
        self.assertEqual(self.path(), "/auditor")
        self.assertEqual(self.h1(), "Audit")
        self.check_page("auditor")

        self.click_and_load(self.button("Search"))
        self.assertTrue(self.path().startswith("/auditor?"), self.path())
        results = self.driver.find_elements(By.CSS_SELECTOR, "ul.incidents li")
        ours = [li for li in results if li.find_element(By.CSS_SELECTOR, "a").text.startswith(f"#{number} ")]
        self.assertEqual(len(ours), 1, f"incident #{number} is not in the search's results:\n{self.text('main')}")
        self.assertIn("Resolved", ours[0].text)
        # Each link's text ends with a visually hidden " of incident N".
        exports = {a.text.split("\n")[0].strip(): a.get_attribute("href") for a in ours[0].find_elements(By.CSS_SELECTOR, ".exports a")}
        self.assertEqual(sorted(exports), ["CSV", "JSON with proofs"], exports)
        self.saw(7, "result: " + ours[0].text.replace("\n", " "))
        self.check_page("auditor-results")

        self.click_and_load(ours[0].find_element(By.CSS_SELECTOR, "a[href='/incidents/%d']" % number))
        self.assertTrue(self.h1().startswith(f"Incident #{number}:"))
        entries = [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, ".timeline li")]
        timeline = "\n".join(entries)
        for entry in (f"{teacher} reported it", "Paged ", f"{name} acknowledged", f"{name} completed ", f"{name} added a note",
                      f"{name} resolved it", "opened the details"):
            with self.subTest(entry=entry):
                self.assertTrue(any(entry.lower() in line.lower() for line in entries), f"{entry!r} is not on the timeline:\n{timeline}")
        for line in entries:
            self.assertRegex(line, r"^\+\d+:\d\d:\d\d ", "each entry says its time from the report")
        page_links = {a.text.strip(): a.get_attribute("href") for a in self.driver.find_elements(By.CSS_SELECTOR, "main p a")
                      if "/export?" in (a.get_attribute("href") or "")}
        self.assertEqual(sorted(page_links), ["CSV", "JSON with proofs"], "the incident page's export links for an auditor")
        self.saw(7, f"{len(entries)} timeline entries, from {entries[0]!r} to {entries[-1]!r}")
        picture = self.full_page("incident-timeline", max_height=6000)
        self.saw(7, f"picture: {picture}")
        self.check_page("incident-auditor")

        # The JSON export, with the browser's session (the checkpoint that covers the entries may lag a moment).
        href = urllib.parse.urlsplit(exports["JSON with proofs"])
        def download():
            status, headers, body = self.fetch(href.path + "?" + href.query)
            return (status, headers, body) if status == 200 else None
        got = eventually(download, 30)
        self.assertIsNotNone(got, f"the JSON export did not download: {self.fetch(href.path + '?' + href.query)[:1]}")
        status, headers, body = got
        self.assertIn("application/json", headers.get("Content-Type", ""))
        disposition = headers.get("Content-Disposition", "")
        filename = re.search(r'filename="?([^";]+)', disposition)
        path = self.work / (filename[1] if filename else f"incident-{number}.json")
        path.write_bytes(body)
        json.loads(body)
        type(self).export_path = path
        self.saw(7, f"export: {len(body)} bytes, Content-Disposition: {disposition or '(none)'}, saved as {path}")

        before = len(entries)
        self.go(f"/incidents/{number}")
        entries = [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, ".timeline li")]
        self.saw(7, f"timeline after the export: {len(entries)} entries (before: {before}), the last: " + " / ".join(entries[-2:]))
        with self.subTest(check="the export is on the incident's timeline, told apart from a reading"):
            exported = [line for line in entries if "exported as JSON" in line]
            self.assertTrue(exported, f"the export is not on the incident's timeline as 'exported as JSON' ({len(entries)} entries, "
                            f"{before} before the export); its end:\n" + "\n".join(entries[-4:]))
            self.assertNotIn("opened the details", exported[-1], "an export reads as an export, not as a look at the page")
            self.assertIn("auditor", exported[-1].lower())

        self.click_link("Audit", "nav")
        self.click_and_load(self.button("Check the whole log now"))
        result = self.text("p[role=status]")
        self.assertTrue(result.startswith("Verified: OK: "), result)
        self.saw(7, result)
        self.check_page("auditor-verified")

    # MARK: 8. offline

    def test_8_the_export_verifies_offline(self):
        path = self.need(self.export_path, "step 7 (the export)")
        # As a person in the folder where they started the service (its data directory is the default there).
        muster = self.muster.cli("audit", "verify", "--file", path, check=False)
        self.assertEqual(muster.returncode, 0, f"muster audit verify --file refused it:\n{muster.stdout}{muster.stderr}")
        self.assertTrue(muster.stdout.startswith("OK: "), muster.stdout)
        self.saw(8, "muster audit verify --file: " + (muster.stdout.strip() or muster.stderr.strip()))
        with self.subTest(check="--file checks against this installation's key by default, as its --help says"):
            self.assertNotIn("key taken from the export itself", muster.stdout,
                             "`muster audit verify --help` says --key defaults to this installation's key, but with --file and the "
                             "installation's --data-dir it used the key written in the export")
        key = self.muster.cli("audit", "key").stdout.strip()
        self.assertTrue(key)
        pinned = self.muster.cli("audit", "verify", "--file", path, "--key", key, check=False)
        self.assertEqual(pinned.returncode, 0, f"muster audit verify --file --key refused it:\n{pinned.stdout}{pinned.stderr}")
        self.assertTrue(pinned.stdout.startswith("OK: "), pinned.stdout)
        self.assertNotIn("key taken from the export itself", pinned.stdout)
        self.saw(8, "muster audit verify --file --key: " + pinned.stdout.strip())
        script = [sys.executable, str(REPO / "scripts" / "verify-export.py"), str(path)]
        checked = subprocess.run(script + ["--key", key], capture_output=True, text=True)
        self.assertEqual(checked.returncode, 0, f"verify-export.py --key refused it:\n{checked.stdout}{checked.stderr}")
        self.assertEqual(checked.stderr.strip(), "")
        self.saw(8, "verify-export.py --key: " + checked.stdout.strip())
        plain = subprocess.run(script, capture_output=True, text=True)
        self.assertEqual(plain.returncode, 0, f"verify-export.py refused it:\n{plain.stdout}{plain.stderr}")
        self.saw(8, "verify-export.py (no --key): " + plain.stdout.strip() + (" / stderr: " + plain.stderr.strip() if plain.stderr.strip() else ""))
        type(self).verified_offline = True
        type(self).walkthrough_seconds = time.monotonic() - self.started
        type(self).walkthrough_checks_seconds = self.checks_seconds

    # MARK: 9. the coordinator's pages

    def test_9a_the_coordinator_sees_who_is_on_call_and_simulates(self):
        self.need(self.accounts, "step 1 (start)")
        self.go("/")
        if self.driver.find_elements(By.CSS_SELECTOR, "form.signout"):
            self.sign_out()
        else:
            self.go("/sign-in")
        user, name = self.sign_in(COORDINATOR)
        self.click_link("On call & playbooks", "nav")
        self.assertEqual(self.path(), "/coordinator")
        self.assertEqual(self.h1(), "On call and playbooks")
        self.assertIn("The playbook folder passes the linter.", self.text("main"))
        sites = Select(self.driver.find_element(By.ID, "c-site"))
        other = sites.options[-1].text
        sites.select_by_visible_text(other)
        self.click_and_load(self.button("Show", within=self.driver.find_element(By.CSS_SELECTOR, "form.filters")))
        self.assertIn(f"Who is on call at {other}", self.text("main"))
        rows = self.driver.find_elements(By.CSS_SELECTOR, "table.grid tbody tr")
        self.assertTrue(rows)
        # A week's shifts are behind each role's disclosure: opened, so that they are checked too.
        for summary in self.driver.find_elements(By.CSS_SELECTOR, "details > summary"):
            summary.click()
        self.assertTrue(any(li.is_displayed() for li in self.driver.find_elements(By.CSS_SELECTOR, "ul.shifts li")), "no shift this week")
        self.check_page("coordinator")

        Select(self.driver.find_element(By.ID, "s-type")).select_by_visible_text("Student at risk of suicide")
        Select(self.driver.find_element(By.ID, "s-severity")).select_by_value("imminent")
        Select(self.driver.find_element(By.ID, "s-site")).select_by_visible_text("Lincoln High School")
        # A Tuesday at 10:00, school hours (set as the field's value: typing into a datetime-local field depends on the locale).
        self.driver.execute_script("document.getElementById('s-when').value = '2026-12-08T10:00'")
        Select(self.driver.find_element(By.ID, "s-ack")).select_by_visible_text("Grace Liu")
        after = self.driver.find_element(By.ID, "s-after")
        after.clear()
        after.send_keys("4")
        self.click_and_load(self.button("Simulate"))
        self.assertEqual(self.status(), 200, self.text("main")[:1000])
        self.assertTrue(self.path().startswith("/coordinator/simulate?"))
        self.assertIn("Lincoln High School", self.h1())
        lines = [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, "ol.timeline li")]
        self.assertTrue(lines, "the simulation shows no timeline")
        self.assertTrue(any(" ack · " in line and "Grace Liu" in line for line in lines),
                        "the scripted acknowledgement is not in the timeline:\n" + "\n".join(lines))
        self.check_page("simulation")

        self.go("/coordinator/simulate?type=suicide-risk&severity=high&site=lincoln-high&when=tomorrow")
        self.assertEqual(self.status(), 422)
        self.assertIn("When:", self.text("p.error"))
        self.check_page("simulation-error")

    # MARK: 9b. the administrator's pages

    def test_9b_the_administrator_sees_people(self):
        self.need(self.accounts, "step 1 (start)")
        # The admin's web password: printed with the demonstration sign-ins, or made by `muster user password`, where
        # the build has either; else (the admin account made with an API token only) the auditor's, by copying the
        # auditor's bcrypt hash in the database.
        if "Administrator" in self.accounts:
            password, how = self.accounts["Administrator"][2], "the printed Administrator sign-in"
        else:
            made = self.muster.cli("user", "password", "admin", check=False)
            found = re.search(r"new web password (\S+)", made.stdout) if made.returncode == 0 else None
            if found:
                password, how = found[1], "`muster user password admin`"
            else:
                database = self.muster.data_dir / "muster.sqlite"
                with sqlite3.connect(database, timeout=30) as db:
                    db.execute("UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE id = 'auditor') WHERE id = 'admin'")
                password, how = self.accounts[AUDITOR][2], "the auditor's password hash copied in the database"
        self.saw(9, f"admin signed in with {how}")
        self.go("/")
        if self.driver.find_elements(By.CSS_SELECTOR, "form.signout"):
            self.sign_out()
        else:
            self.go("/sign-in")
        form = self.driver.find_element(By.CSS_SELECTOR, "form[action='/sign-in']")
        form.find_element(By.ID, "user").send_keys("admin")
        form.find_element(By.ID, "password").send_keys(password)
        self.click_and_load(form.find_element(By.TAG_NAME, "button"))
        self.assertEqual(self.path(), "/", self.text("main")[:500])
        self.click_link("People", "nav")
        self.assertEqual(self.path(), "/admin")
        self.assertEqual(self.h1(), "People")
        self.check_page("admin")
        self.click_link(self.accounts[TEACHER][1], "table")
        self.assertEqual(self.h1(), self.accounts[TEACHER][1])
        self.check_page("admin-person")

    # MARK: 9z. the summary

    def test_9z_every_page_was_checked_and_the_walkthrough_timed(self):
        print("\n  What the walkthrough saw:", flush=True)
        for step in sorted(self.seen):
            for line in self.seen[step]:
                print(f"  {step}. {line}", flush=True)
        print("\n  page                 weight (HTML + assets, bytes)   scrollWidth at 320 px", flush=True)
        for name, figures in self.checked.items():
            print(f"  {name:20} {figures.get('weight', '?'):>7} ({figures.get('html', '?')} + {figures.get('assets', '?')})"
                  f"          {figures.get('scroll_width_320', '?')}", flush=True)
        seconds = getattr(self, "walkthrough_seconds", None)
        if seconds is not None:
            print(f"\n  walkthrough (steps 1-8, from starting the service): {seconds:.1f} s, "
                  f"of which the page checks took {self.walkthrough_checks_seconds:.1f} s", flush=True)
        missing = [page for page in PAGES if page not in self.checked]
        self.assertEqual(missing, [], "pages the steps did not reach, so not checked")
        self.assertTrue(self.verified_offline, "the walkthrough did not get to the end")


if __name__ == "__main__":
    unittest.main()
