"""The browser harness can fail: axe-core, run in a real headless Chromium, finds the WCAG violations of a
page made to have them and none on a clean page; screenshots are written; and MusterProcess starts, reads
and stops a server (a stand-in here, so that this test needs no Swift build), and reports one that dies.
"""

import http.server
import os
import stat
import sys
import tempfile
import textwrap
import threading
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when run as `python3 -m unittest Tests/python/...`
from browser_support import MusterProcess, assert_accessible, axe_violations, chrome, require_browser, screenshot

PAGES = {
    # An image with no text alternative, a field with no label, a button with no name; no lang, no title.
    "/broken": """<!doctype html>
<html><head><meta charset="utf-8"></head>
<body>
  <img src="/pixel.png">
  <form><input type="text" name="q"><button type="submit"></button></form>
</body></html>""",
    "/clean": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clean page</title></head>
<body>
  <header><p>Muster</p></header>
  <nav aria-label="Main"><a href="/clean">Home</a></nav>
  <main>
    <h1>Report a concern</h1>
    <img src="/pixel.png" alt="The district's logo" width="1" height="1">
    <form method="post" action="/clean">
      <label for="summary">What happened?</label>
      <input type="text" id="summary" name="summary" autocomplete="off">
      <button type="submit">Send the report</button>
    </form>
  </main>
  <footer><p>Lincoln High School</p></footer>
</body></html>""",
}
PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                      "0000000d49444154789c6360f8cfc0f01f0005000201a9b1b8f80000000049454e44ae426082")


class Pages:
    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/pixel.png":
                    body, kind = PIXEL, "image/png"
                elif self.path in PAGES:
                    body, kind = PAGES[self.path].encode(), "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class BrowserHarness(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_browser()
        cls.pages = Pages()
        cls.addClassCleanup(cls.pages.close)
        cls.driver = chrome()
        cls.addClassCleanup(cls.driver.quit)

    def test_axe_finds_the_violations_of_a_broken_page(self):
        self.driver.get(self.pages.base + "/broken")
        found = {violation["id"] for violation in axe_violations(self.driver)}
        for rule in ("image-alt", "label", "button-name", "html-has-lang", "document-title"):
            self.assertIn(rule, found)
        with self.assertRaises(AssertionError) as failure:
            assert_accessible(self, self.driver, "broken")
        message = str(failure.exception)
        self.assertIn("broken (" + self.pages.base + "/broken)", message)
        self.assertIn("image-alt (critical): Images must have alternative text", message)
        self.assertIn("1 element(s): img", message)

    def test_a_context_limits_the_check(self):
        self.driver.get(self.pages.base + "/broken")
        found = {violation["id"] for violation in axe_violations(self.driver, "form")}
        self.assertIn("label", found)
        self.assertNotIn("image-alt", found)

    def test_a_clean_page_has_no_violations(self):
        self.driver.get(self.pages.base + "/clean")
        self.assertEqual(axe_violations(self.driver), [])
        assert_accessible(self, self.driver, "clean")

    def test_the_viewport_is_a_phones_and_screenshots_are_written(self):
        self.driver.get(self.pages.base + "/clean")
        self.assertEqual(self.driver.execute_script("return [innerWidth, innerHeight]"), [390, 844])
        path = screenshot(self.driver, "harness/clean page")
        self.assertEqual(path.name, "harness-clean-page.png")
        data = path.read_bytes()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual((int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")), (390, 844))


STAND_IN = """\
#!{python}
# Plays `muster serve`: answers /health/ready, prints its arguments and one variable, or dies at once.
import http.server, os, sys
args = sys.argv[1:]
print("args:", " ".join(args), flush=True)
print("env:", os.environ.get("MUSTER_STAND_IN"), os.environ.get("MUSTER_BOOTSTRAP_ADMIN_TOKEN", "")[:12], flush=True)
if "--die" in args:
    print("dying as asked", file=sys.stderr, flush=True)
    sys.exit(3)
if args[0] != "serve":
    sys.exit(0)
port = int(args[args.index("--port") + 1])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health/ready" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


class MusterProcessMechanics(unittest.TestCase):
    """MusterProcess against a stand-in binary: the real one is exercised by the page tests after `swift build`."""

    @classmethod
    def setUpClass(cls):
        folder = Path(tempfile.mkdtemp(prefix="muster-stand-in-"))
        cls.binary = folder / "muster"
        cls.binary.write_text(STAND_IN.format(python=sys.executable))
        cls.binary.chmod(cls.binary.stat().st_mode | stat.S_IXUSR)
        cls.addClassCleanup(lambda: (cls.binary.unlink(), folder.rmdir()))

    def test_serves_on_a_free_port_with_its_own_data_directory_and_stops(self):
        muster = MusterProcess(args=["--extra", "1"], env={"MUSTER_STAND_IN": "passed"}, config="channels: {}\n",
                               binary=self.binary)
        try:
            self.assertTrue(muster.ready())
            log = muster.log()
            self.assertIn(f"serve --host 127.0.0.1 --port {muster.port} --playbooks ", log)
            self.assertIn(f"--data-dir {muster.data_dir}", log)
            self.assertIn(f"--config {muster.work / 'muster.yaml'} --demonstration-inbox --extra 1", log)
            self.assertIn("env: passed mst_browser_", log)
            self.assertIn("args: token create ann --data-dir", muster.cli("token", "create", "ann").stdout)
        finally:
            muster.close()
        self.assertIsNotNone(muster.process.poll())
        self.assertFalse(muster.ready())
        self.assertFalse(muster.work.exists())

    def test_a_server_that_dies_fails_with_its_output(self):
        with self.assertRaises(AssertionError) as failure:
            MusterProcess(args=["--die"], binary=self.binary)
        message = str(failure.exception)
        self.assertIn("muster serve exited with 3", message)
        self.assertIn("dying as asked", message)

    def test_a_missing_binary_fails(self):
        with self.assertRaises(AssertionError) as failure:
            MusterProcess(binary=os.devnull + "-muster")
        self.assertIn("run `swift build` first", str(failure.exception))


if __name__ == "__main__":
    unittest.main()
