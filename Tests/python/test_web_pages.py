"""The web pages in a real headless Chromium at a phone's size, against the built `muster serve` with the
demonstration inbox: a teacher raises an imminent suicide-risk report and is told to call 911; the person
paged acknowledges from the link in their message, signs in with an emailed link and works the incident
(a checklist task, a note, resolve); an auditor reads the whole timeline; a form without its CSRF token is
refused, and a teacher cannot open an incident at another site.

Every distinct page visited is checked the same way: axe-core (WCAG 2.0/2.1/2.2 A and AA), a screenshot
(.build/screenshots/web-NAME.png), no horizontal scrolling at 320 CSS pixels, a page weight under 100 KB
(the HTML and every style sheet, script and image it loads, uncompressed) and no request to another origin.
The time from opening /raise to the confirmation being loaded is printed, never asserted.

The steps share one server and one browser and run in order (test_1 ... test_9); a later step fails, never
skips, when an earlier one did not get as far as it needs. Run after `swift build`:

    python3 -m unittest Tests/python/test_web_pages.py -v    (MUSTER_TEST_BINARY chooses another binary)
"""

import datetime
import json
import re
import sys
import time
import unittest
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python3 -m unittest Tests/python/...`
from browser_support import REPO, MusterProcess, assert_accessible, chrome, eventually, require_browser, screenshot

from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

PHONE = (390, 844)
NARROW = 320
WEIGHT_LIMIT = 100 * 1024

# Every page the steps visit, by the name its screenshot and checks carry.
PAGES = ["sign-in", "home", "raise", "raise-errors", "confirmation", "inbox", "ack", "ack-done", "sign-in-link",
         "incident-responder", "board", "mine", "incident-auditor", "compliance", "incident-reporter", "403", "404", "404-address"]

# "  Teacher (raises incidents)   user obrennan (Olivia Brennan)   password abcd-efgh-jkmn"; the auditor has no name.
SIGN_IN_LINE = re.compile(r"^\s+(?P<role>\S.*?)\s{2,}user (?P<user>\S+)(?: \((?P<name>[^)]*)\))?\s+password (?P<password>\S+)\s*$",
                          re.MULTILINE)

# The page's weight and origins, read in the page: the navigation, every resource it fetched, and the
# URLs of what it loads or posts to.
PAGE_FACTS = """
const nav = performance.getEntriesByType('navigation')[0] || {};
const resources = performance.getEntriesByType('resource').map(r => ({
  name: r.name, transferSize: r.transferSize, encodedBodySize: r.encodedBodySize, decodedBodySize: r.decodedBodySize}));
const loads = [];
document.querySelectorAll('link[href]').forEach(e => loads.push(e.href));
document.querySelectorAll('script[src], img[src], iframe[src], source[src], video[src], audio[src]').forEach(e => loads.push(e.src));
document.querySelectorAll('form').forEach(e => loads.push(e.action));
return {navigation: {name: nav.name, status: nav.responseStatus, transferSize: nav.transferSize,
                     encodedBodySize: nav.encodedBodySize, decodedBodySize: nav.decodedBodySize},
        resources: resources, loads: loads, html: document.documentElement.outerHTML.length,
        assets: Array.from(document.querySelectorAll('link[rel~=stylesheet][href], script[src], img[src]'))
                     .map(e => e.href || e.src)};
"""

# What sticks out past the viewport's right edge, deepest first (to say what to fix): boxes whose right edge
# is beyond it, and boxes whose content (a long word, a wide select) is wider than the box.
OVERFLOWING = """
const width = document.documentElement.clientWidth;
const found = [];
document.querySelectorAll('body *').forEach(e => {
  if (e.closest('.visually-hidden, .skip')) return;
  const box = e.getBoundingClientRect();
  if (box.width === 0) return;
  const past = box.right > width + 0.5;
  const spills = getComputedStyle(e).display !== 'inline' && e.scrollWidth > e.clientWidth + 1;
  if (past || spills) found.push([e, past ? 'right edge at ' + Math.round(box.right) + ' px'
                                          : 'content ' + e.scrollWidth + ' px wide in a box of ' + e.clientWidth + ' px']);
});
return found.filter(([e]) => !found.some(([other]) => other !== e && e.contains(other))).slice(0, 8).map(([e, why]) =>
  e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +
  ' (' + why + '): ' + (e.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 100));
"""


def sign_ins(log):
    """The demonstration sign-ins serve printed on its first start: {role words: (user, name, password)}."""
    return {m["role"].strip(): (m["user"], m["name"], m["password"]) for m in SIGN_IN_LINE.finditer(log)}


class WebPages(unittest.TestCase):
    number = None          # the incident the teacher raised (step 1)
    paged = None           # (person id, name) of the person who acknowledged it (step 2)
    worked = False         # step 2 got to the end
    checked = {}           # page name -> its figures
    timings = {}

    @classmethod
    def setUpClass(cls):
        require_browser()
        cls.muster = MusterProcess()
        cls.addClassCleanup(cls.muster.close)
        cls.driver = chrome(*PHONE)
        cls.addClassCleanup(cls.driver.quit)
        cls.origin = cls.muster.base
        found = eventually(lambda: sign_ins(cls.muster.log()) if "Auditor" in cls.muster.log() else None, 10)
        if not found:
            raise AssertionError("muster serve printed no demonstration sign-ins:\n" + cls.muster.log()[-3000:])
        cls.accounts = found
        cls.asset_sizes = {}

    # MARK: helpers

    def go(self, path):
        self.driver.get(self.origin + path)

    def path(self):
        parts = urllib.parse.urlsplit(self.driver.current_url)
        return parts.path + ("?" + parts.query if parts.query else "")

    def wait(self, condition, seconds=15, message=""):
        return WebDriverWait(self.driver, seconds).until(condition, message)

    def click_and_load(self, element):
        """Clicks a button or link that leaves the page and waits until the next page has loaded."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        element.click()

        def left(driver):
            # Chromium sometimes answers a question about a node of the page just left with an inspector
            # error instead of "stale element": either way the old page is gone.
            try:
                return expected_conditions.staleness_of(old)(driver)
            except WebDriverException:
                return True

        self.wait(left, message="the page did not change")
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete", message="the page did not load")

    def button(self, text, within=None):
        """The (first) button whose visible text starts with `text`."""
        for candidate in (within or self.driver).find_elements(By.CSS_SELECTOR, "button"):
            if candidate.text.strip().startswith(text):
                return candidate
        raise AssertionError(f"no button starting {text!r} on {self.path()}:\n{self.text()[:1500]}")

    def text(self, selector="body"):
        return self.driver.find_element(By.CSS_SELECTOR, selector).text

    def h1(self):
        return self.text("h1")

    def status(self):
        """The HTTP status of the page shown (the navigation's, after any redirect)."""
        return self.driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return n && n.responseStatus")

    def sign_out(self):
        self.go("/")
        forms = self.driver.find_elements(By.CSS_SELECTOR, "form.signout")
        if forms:
            self.click_and_load(forms[0].find_element(By.TAG_NAME, "button"))
        self.assertTrue(self.path().startswith("/sign-in"), self.path())

    def sign_in(self, role, check=None):
        user, name, password = self.accounts[role]
        self.sign_out()
        if check:
            self.check_page(check)
        form = self.driver.find_element(By.CSS_SELECTOR, "form[action='/sign-in']")
        form.find_element(By.ID, "user").send_keys(user)
        form.find_element(By.ID, "password").send_keys(password)
        self.click_and_load(form.find_element(By.TAG_NAME, "button"))
        self.assertNotIn("/sign-in", self.path(), f"signing in as {user} failed:\n{self.text()[:800]}")
        return user, name

    def need(self, value, step):
        if not value:
            self.fail(f"{step} did not get far enough for this step")
        return value

    def check_page(self, name):
        """The checks of every page, once per page: a screenshot; its weight and origins; no horizontal
        scrolling at 320 px; axe-core. Each is a subTest, so one failure does not hide the others."""
        if name in self.checked:
            return
        figures = {"url": self.path()}
        self.checked[name] = figures
        screenshot(self.driver, "web-" + name)
        facts = self.driver.execute_script(PAGE_FACTS)
        # Weight: the HTML (as sent, else as parsed) and each style sheet, script and image, uncompressed and
        # counted even when the browser had it cached.
        html = facts["navigation"].get("decodedBodySize") or facts["html"]
        assets = 0
        for url in dict.fromkeys(facts["assets"]):
            if url not in self.asset_sizes:
                with urllib.request.urlopen(url, timeout=10) as response:
                    self.asset_sizes[url] = len(response.read())
            assets += self.asset_sizes[url]
        transferred = (facts["navigation"].get("transferSize") or 0) + sum(r["transferSize"] or 0 for r in facts["resources"])
        figures.update(html=html, assets=assets, weight=html + assets, transferred=transferred)
        with self.subTest(page=name, check="weight under 100 KB"):
            self.assertLess(html + assets, WEIGHT_LIMIT, f"{name}: {html} bytes of HTML and {assets} of assets")
        with self.subTest(page=name, check="no request to another origin"):
            names = [r["name"] for r in facts["resources"]] + [facts["navigation"].get("name") or self.origin]
            foreign = [url for url in names + facts["loads"]
                       if url and not url.startswith(self.origin + "/") and url != self.origin
                       and not url.startswith(("data:", "blob:", "about:"))]
            self.assertEqual(foreign, [], f"{name} loads or posts to another origin")
        with self.subTest(page=name, check="no horizontal scrolling at 320 px"):
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                        {"width": NARROW, "height": PHONE[1], "deviceScaleFactor": 1, "mobile": False})
            try:
                self.wait(lambda d: d.execute_script("return innerWidth") == NARROW, 5)
                scroll = self.driver.execute_script("return document.documentElement.scrollWidth")
                sticking_out = self.driver.execute_script(OVERFLOWING) if scroll > NARROW else []
                screenshot(self.driver, f"web-{name}-320")
            finally:
                self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                            {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": False})
                self.wait(lambda d: d.execute_script("return innerWidth") == PHONE[0], 5)
            figures["scroll_width_320"] = scroll
            self.assertLessEqual(scroll, NARROW, f"{name} scrolls sideways at 320 px ({scroll} px wide); what sticks out:\n  "
                                 + "\n  ".join(sticking_out))
        with self.subTest(page=name, check="axe-core WCAG 2.2 AA"):
            assert_accessible(self, self.driver, "web-" + name)

    def inbox_tabs(self):
        """The inbox's tabs for people: [(recipient, href)]."""
        tabs = []
        for link in self.driver.find_elements(By.CSS_SELECTOR, "ul.tabs a"):
            href = link.get_attribute("href")
            recipient = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query).get("to", [""])[0]
            tabs.append((recipient, href))
        return tabs

    def messages(self):
        """The messages of the inbox tab shown: [(meta text, {link text: href})]."""
        found = []
        for item in self.driver.find_elements(By.CSS_SELECTOR, "li.message"):
            links = {a.text.strip(): a.get_attribute("href") for a in item.find_elements(By.CSS_SELECTOR, "p.links a")}
            found.append((item.find_element(By.CSS_SELECTOR, "p.meta").text, links))
        return found

    # MARK: 1. a teacher raises an imminent report

    def test_1_a_teacher_raises_an_imminent_report_and_is_told_to_call_911(self):
        self.driver.delete_all_cookies()
        self.go("/")
        self.assertTrue(self.path().startswith("/sign-in?next="), f"signed out, / went to {self.path()}")
        teacher, name = self.sign_in("Teacher (raises incidents)", check="sign-in")
        self.assertEqual(self.path(), "/")
        self.assertIn(name, self.h1())
        self.check_page("home")

        self.go("/raise")
        self.assertEqual(self.h1(), "Raise an incident")
        self.assertFalse(self.driver.find_element(By.ID, "call-911").is_displayed(), "Call 911 shown before anything was chosen")
        self.check_page("raise")

        # Sent empty (the browser's own checks off): the errors, each a link to its field.
        self.driver.execute_script("document.getElementById('raise-form').noValidate = true")
        self.click_and_load(self.button("Send the report"))
        self.assertEqual(self.status(), 422)
        errors = self.text("#form-errors")
        for expected in ("Choose what is happening.", "Choose how urgent it is.", "Say what happened"):
            self.assertIn(expected, errors)
        self.check_page("raise-errors")

        # Timed: from opening /raise to the confirmation loaded.
        started = time.monotonic()
        self.go("/raise")
        opened_at = self.driver.execute_script("return performance.timeOrigin")
        Select(self.driver.find_element(By.ID, "type")).select_by_value("suicide-risk")
        notice = self.driver.find_element(By.ID, "call-911")
        if self.driver.find_element(By.CSS_SELECTOR, "option[value='suicide-risk']").get_attribute("data-call911") != "true":
            self.assertFalse(notice.is_displayed(), "Call 911 shown before imminent was chosen")
        self.driver.find_element(By.ID, "severity-imminent").click()
        self.assertTrue(notice.is_displayed(), "choosing imminent did not show the Call 911 notice")
        self.assertIn("Call 911 now", notice.text)
        self.assertEqual(notice.get_attribute("role"), "alert")
        site = Select(self.driver.find_element(By.ID, "site")).first_selected_option.get_attribute("value")
        self.driver.find_element(By.ID, "summary").send_keys("Student said he has a plan to end his life tonight; he is with me in room 114.")
        self.driver.find_element(By.ID, "subject").send_keys("S-20417")
        screenshot(self.driver, "web-raise-imminent")
        self.click_and_load(self.button("Send the report"))
        elapsed = time.monotonic() - started
        loaded_at = self.driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return performance.timeOrigin + n.loadEventEnd")

        self.assertRegex(self.path(), r"^/incidents/\d+\?done=raised-imminent$")
        self.assertEqual(self.status(), 200)
        call = self.driver.find_element(By.CSS_SELECTOR, ".call911")
        self.assertTrue(call.is_displayed())
        self.assertIn("Call 911 now", call.text)
        self.assertIn("Sent. The team is being alerted now.", self.text(".notice"))
        match = re.fullmatch(r"Incident #(\d+): (.+)", self.h1())
        self.assertIsNotNone(match, f"the confirmation's heading is {self.h1()!r}")
        self.assertEqual(self.path().split("?")[0], f"/incidents/{match[1]}")
        self.assertIn("Being alerted", self.text("main"))
        type(self).number = int(match[1])
        type(self).teacher_site = site
        self.check_page("confirmation")

        browser = (loaded_at - opened_at) / 1000
        type(self).timings.update(raise_to_confirmation_wall=elapsed, raise_to_confirmation_browser=browser)
        print(f"\n  raise -> confirmation: {elapsed:.2f} s by the test's clock (driver.get('/raise') to the confirmation "
              f"loaded), {browser:.2f} s by the browser's (the raise page's timeOrigin to the confirmation's loadEventEnd)",
              flush=True)

    # MARK: 2. the person paged acknowledges, signs in with a link and works the incident

    def find_page(self, number):
        """(recipient, name, acknowledgement link) of a page for incident `number` in the inbox."""
        def look():
            self.go("/inbox")
            for recipient, href in self.inbox_tabs():
                if not recipient.startswith("person:"):
                    continue
                self.driver.get(href)
                for meta, links in self.messages():
                    if f"incident #{number}" in meta and "Acknowledge link" in links:
                        # The name from the message's line ("sms to Kwame Mensah · +1555... · incident #1"): the
                        # tab's text may say more than the name.
                        return recipient, re.match(r"\S+ to (.+?) · ", meta)[1], links["Acknowledge link"]
            return None
        return eventually(look, 30)

    def test_2_the_person_paged_acknowledges_signs_in_with_a_link_and_works_the_incident(self):
        number = self.need(self.number, "step 1 (raise)")
        self.go("/inbox")
        self.assertEqual(self.h1(), "Demonstration inbox")
        self.check_page("inbox")
        found = self.find_page(number)
        self.assertIsNotNone(found, f"no page with an acknowledgement link for incident #{number} in the inbox")
        recipient, name, ack = found
        person = recipient.split(":", 1)[1]

        # The link from the message: a confirmation page, and only its button acknowledges.
        self.driver.get(ack)
        self.assertEqual(self.h1(), f"Take ownership of incident #{number}?")
        self.assertIn(name, self.text())
        self.check_page("ack")
        self.click_and_load(self.button("Acknowledge: I take ownership"))
        self.assertEqual(self.h1(), f"Incident #{number} is yours")
        self.assertIn("Escalation has stopped", self.text())
        self.check_page("ack-done")

        # Signed in as the person paged, with a link emailed to them (to their inbox tab).
        self.sign_out()
        form = self.driver.find_element(By.CSS_SELECTOR, "form[action='/sign-in/link']")
        form.find_element(By.ID, "link-user").send_keys(person)
        self.click_and_load(self.button("Email me a sign-in link", within=form))
        self.assertIn("a sign-in link is on its way", self.text(".notice"))

        def sign_in_link():
            self.go("/inbox?to=" + urllib.parse.quote(recipient, safe=":"))
            for _, links in self.messages():  # newest first
                if "Sign-in link" in links:
                    return links["Sign-in link"]
            return None
        link = eventually(sign_in_link, 15)
        self.assertIsNotNone(link, f"no sign-in link for {person} in the inbox")
        self.driver.get(link)
        self.assertEqual(self.h1(), "Sign in to Muster")
        self.check_page("sign-in-link")
        self.click_and_load(self.button("Sign in"))
        self.assertEqual(self.path(), "/")
        self.assertIn(name, self.h1())
        type(self).paged = (person, name)

        self.go("/board")
        self.assertIn(f"#{number}", self.text("#live-list"))
        self.check_page("board")
        self.go("/mine")
        self.assertIn(f"#{number}", self.text("#live-list"), "the incident they own is not in My incidents")
        self.check_page("mine")

        self.go(f"/incidents/{number}")
        self.assertTrue(self.h1().startswith(f"Incident #{number}:"))
        facts = self.text(".facts")
        self.assertIn("Acknowledged", facts)
        self.assertIn(name, facts, "the owner is not the person who acknowledged")
        self.check_page("incident-responder")

        # A checklist task.
        mark = self.button("Mark done")
        task = mark.find_element(By.XPATH, "./ancestor::li[1]").find_element(By.CSS_SELECTOR, ".title").text
        self.click_and_load(mark)
        self.assertEqual(self.text(".notice"), "Task marked done.")
        done = [li for li in self.driver.find_elements(By.CSS_SELECTOR, "ul.tasks li.task")
                if li.find_element(By.CSS_SELECTOR, ".title").text == task]
        self.assertEqual(len(done), 1, task)
        self.assertIn("done", done[0].get_attribute("class").split())
        self.assertIn("Done ", done[0].find_element(By.CSS_SELECTOR, ".due").text)
        self.assertIn(name, done[0].find_element(By.CSS_SELECTOR, ".due").text)

        # A note.
        note = "Screened with the C-SSRS; mobile crisis team called; mother on her way."
        self.driver.find_element(By.ID, "note-text").send_keys(note)
        self.click_and_load(self.button("Add the note"))
        self.assertEqual(self.text(".notice"), "Note added.")
        self.assertIn(note, self.text(".timeline"))

        # Resolved, saying how it ended.
        Select(self.driver.find_element(By.ID, "resolve-outcome")).select_by_value("emergency-services")
        self.driver.find_element(By.ID, "resolve-note").send_keys("Student taken to the emergency department by his mother.")
        self.click_and_load(self.button("Resolve"))
        self.assertEqual(self.text(".notice"), "Resolved.")
        self.assertIn("Resolved", self.text(".facts .badge"))
        self.assertEqual(self.driver.find_elements(By.ID, "note-text"), [], "a resolved incident still takes notes")
        type(self).task = task
        type(self).worked = True

    # MARK: 3. the auditor reads the whole timeline

    def test_3_the_auditor_sees_the_whole_timeline(self):
        number = self.need(self.number, "step 1 (raise)")
        self.need(self.worked, "step 2 (acknowledge and work the incident)")
        person, name = self.paged
        teacher = self.accounts["Teacher (raises incidents)"][1]
        self.sign_in("Auditor")
        self.go(f"/incidents/{number}")
        self.assertTrue(self.h1().startswith(f"Incident #{number}:"))
        entries = [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, ".timeline li")]
        timeline = "\n".join(entries)
        for entry in (f"{teacher} reported it", "Paged ", f"{name} acknowledged", f"{name} completed ", f"{name} added a note",
                      f"{name} resolved it", f"{teacher} opened the details", f"{name} opened the details"):
            with self.subTest(entry=entry):
                self.assertTrue(any(entry.lower() in line.lower() for line in entries), f"{entry!r} is not on the timeline:\n{timeline}")
        # The teacher's confirmation, the responder's pages and now the auditor's: each opening is an entry.
        self.assertGreaterEqual(sum("opened the details" in line for line in entries), 3, timeline)
        for line in entries:
            self.assertRegex(line, r"^\+\d+:\d\d:\d\d ", "each entry says its time from the report")
        self.check_page("incident-auditor")

        # The compliance report for a period around today: the incident is a row, resolved, with its outcome.
        today = datetime.date.today()
        period = f"from={today - datetime.timedelta(days=1)}&to={today + datetime.timedelta(days=1)}"
        self.go(f"/auditor/compliance?{period}")
        self.assertEqual(self.h1(), "Compliance report")
        rows = [row.text for row in self.driver.find_elements(By.CSS_SELECTOR, "table.report tbody tr")]
        self.assertTrue(any(row.startswith(f"#{number} ") and "Resolved" in row and "Emergency services involved" in row for row in rows), rows)
        self.check_page("compliance")

    # MARK: 4. CSRF, and the reporter's view

    def test_4_a_form_without_its_csrf_token_is_refused_and_a_teacher_sees_only_their_sites(self):
        number = self.need(self.number, "step 1 (raise)")
        self.sign_in("Teacher (raises incidents)")

        # The reporter's own incident, without the confirmation: facts and their own report only.
        self.go(f"/incidents/{number}")
        self.assertTrue(self.h1().startswith(f"Incident #{number}:"))
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "form[action$='/acknowledge'], form[action$='/resolve']"), [],
                         "the reporter is offered responders' actions")
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, ".call911"), [], "Call 911 is shown again after the confirmation")
        self.check_page("incident-reporter")

        before = self.incident_numbers()
        self.go("/raise")
        Select(self.driver.find_element(By.ID, "type")).select_by_value("other-concern")
        self.driver.find_element(By.ID, "severity-low").click()
        self.driver.find_element(By.ID, "summary").send_keys("This report must not be accepted.")
        removed = self.driver.execute_script(
            "const f = document.getElementById('raise-form'); const c = f.querySelector('input[name=csrf]'); c.remove(); return !!c")
        self.assertTrue(removed)
        self.click_and_load(self.button("Send the report"))
        self.assertEqual(self.h1(), "This form has expired")
        self.assertEqual(self.status(), 403)
        self.assertEqual(self.incident_numbers(), before, "the refused form raised an incident")
        self.check_page("403")

        # An incident at another site, raised through the API: the teacher cannot open it.
        directory = (REPO / "playbooks" / "directory.yaml").read_text()
        sites = re.findall(r"^  - id: (\S+)\n    name:", directory.split("\nsites:\n", 1)[1].split("\n\n# ", 1)[0], re.MULTILINE)
        other = next(site for site in sites if site != self.teacher_site)
        raised = self.api("POST", "/api/v1/incidents", {"type": "threat-of-violence", "severity": "high", "site": other,
                                                         "summary": "A threat written on a bathroom wall."})
        elsewhere = raised["incident"]["number"]
        self.assertNotEqual(elsewhere, number)
        self.go(f"/incidents/{elsewhere}")
        self.assertEqual(self.h1(), "No such incident")
        self.assertEqual(self.status(), 404)
        self.assertNotIn("bathroom", self.text())
        self.check_page("404")

    # MARK: 5. a mistyped address

    def test_5_an_unknown_address_shows_a_page_not_json(self):
        # Someone who mistypes an address, or follows a stale link, gets a page like the others (the API's
        # problem documents are for API clients).
        self.go("/incidents-of-mine")
        self.assertEqual(self.status(), 404)
        self.check_page("404-address")
        with self.subTest(check="HTML, not a problem document"):
            self.assertEqual(self.driver.execute_script("return document.contentType"), "text/html")

    def api(self, method, path, body=None):
        request = urllib.request.Request(self.origin + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": "Bearer " + self.muster.admin_token,
                                                  "Content-Type": "application/json", "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read())

    def incident_numbers(self):
        """The numbers of every incident, as the admin's API lists them."""
        found = set()
        def walk(value):
            if isinstance(value, dict):
                if isinstance(value.get("number"), int):
                    found.add(value["number"])
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
        walk(self.api("GET", "/api/v1/incidents?limit=500"))
        return found

    # MARK: 9. every page was checked

    def test_9_every_page_visited_was_checked(self):
        print("\n  page                 weight (HTML + assets, bytes)   transferred   scrollWidth at 320 px", flush=True)
        for name, figures in self.checked.items():
            print(f"  {name:20} {figures.get('weight', '?'):>7} ({figures.get('html', '?')} + {figures.get('assets', '?')})"
                  f"{figures.get('transferred', '?'):>18}   {figures.get('scroll_width_320', '?')}", flush=True)
        for name, seconds in self.timings.items():
            print(f"  {name}: {seconds:.2f} s", flush=True)
        missing = [page for page in PAGES if page not in self.checked]
        self.assertEqual(missing, [], "pages the steps did not reach, so not checked")


if __name__ == "__main__":
    unittest.main()
