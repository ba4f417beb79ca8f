"""The browser tests' harness: a real headless Chromium driven by Selenium, axe-core 4.x run in the page,
screenshots, and the built `muster serve` on a free loopback port with a data directory of its own.

scripts/test provides the parts: Debian's `chromium` and `chromium-driver`, Selenium from PyPI, and
axe-core's `axe.min.js` (taken from PyPI's axe-playwright-python wheel, never committed) at
MUSTER_TEST_AXE_JS. With CI=true a missing part fails the tests; elsewhere it skips them, saying what
is missing. Use:

    from browser_support import MusterProcess, assert_accessible, chrome, require_browser, screenshot

    class Pages(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            require_browser()
            cls.muster = MusterProcess()
            cls.addClassCleanup(cls.muster.close)
            cls.driver = chrome()
            cls.addClassCleanup(cls.driver.quit)

        def test_sign_in(self):
            self.driver.get(self.muster.base + "/sign-in")
            screenshot(self.driver, "sign-in")
            assert_accessible(self, self.driver, "sign-in")
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE_CACHE = REPO / ".build" / "axe" / "axe.min.js"  # where scripts/test fetches it
SCREENSHOTS = REPO / ".build" / "screenshots"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options as _ChromeOptions
    from selenium.webdriver.chrome.service import Service as _ChromeService
    _SELENIUM_ERROR = None
except ImportError as error:  # reported by require_browser(), so that importing this module never fails
    webdriver = None
    _SELENIUM_ERROR = error


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1")


def unavailable(message):
    """A missing part: in CI the tests fail (never skip); elsewhere they skip with this message."""
    if in_ci():
        raise AssertionError(f"{message} (CI=true: the browser tests never skip; scripts/test provides it)")
    raise unittest.SkipTest(f"{message}; scripts/test provides it")


def axe_path():
    return Path(os.environ.get("MUSTER_TEST_AXE_JS") or AXE_CACHE)


def require_browser():
    """Fails (CI) or skips (elsewhere) unless Chromium, chromedriver, Selenium and axe-core 4.x are all here."""
    missing = []
    if _SELENIUM_ERROR is not None:
        missing.append(f"Selenium (PyPI's `selenium`: {_SELENIUM_ERROR})")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian's `chromium`)")
    if not os.access(CHROMEDRIVER, os.X_OK):
        missing.append(f"{CHROMEDRIVER} (Debian's `chromium-driver`)")
    axe = axe_path()
    if not axe.is_file():
        missing.append(f"axe-core's axe.min.js at {axe} (MUSTER_TEST_AXE_JS)")
    elif not _axe_header(axe).startswith("/*! axe v4."):
        missing.append(f"axe-core 4.x: {axe} starts {_axe_header(axe)!r}")
    if missing:
        unavailable("the browser tests need " + "; ".join(missing))


def _axe_header(path):
    with open(path, "rb") as file:
        return file.read(20).decode("utf-8", "replace")


_axe_source = None


def axe_source():
    global _axe_source
    if _axe_source is None:
        require_browser()
        _axe_source = axe_path().read_text(encoding="utf-8")
    return _axe_source


def chrome(width=390, height=844):
    """A headless Chromium (Debian's, with its chromedriver) whose viewport is width x height CSS pixels:
    a phone's by default. The caller quits it."""
    require_browser()
    options = _ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=_ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        # The window size includes no browser chrome in headless mode, but pin the viewport exactly.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(60)
    except Exception:
        driver.quit()
        raise
    return driver


_AXE_RUN = """
const [context, options, done] = arguments;
axe.run(context || document, options).then(
  results => done({version: axe.version, violations: results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary}))}))}),
  error => done({error: String(error && error.stack || error)}));
"""


def axe_violations(driver, context=None):
    """Injects axe-core into the page shown and runs it for WCAG 2.0/2.1 A and AA and WCAG 2.2 AA; returns
    its violations (each: id, impact, help, helpUrl, nodes with target, html, summary). `context` is any
    axe context (a selector, or {"include": ..., "exclude": ...}); None checks the whole document."""
    driver.execute_script(axe_source())
    options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
    result = driver.execute_async_script(_AXE_RUN, context, options)
    if not isinstance(result, dict) or "error" in (result or {}):
        raise AssertionError(f"axe.run failed on {driver.current_url}: {result}")
    if not str(result.get("version", "")).startswith("4."):
        raise AssertionError(f"axe-core {result.get('version')} ran, not 4.x")
    return result["violations"]


def describe_violations(violations, targets=3):
    lines = []
    for violation in violations:
        nodes = violation["nodes"]
        shown = ", ".join(" ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
                          for node in nodes[:targets])
        more = f" and {len(nodes) - targets} more" if len(nodes) > targets else ""
        lines.append(f"  - {violation['id']} ({violation['impact']}): {violation['help']}\n"
                     f"      {len(nodes)} element(s): {shown}{more}\n      {violation['helpUrl']}")
    return "\n".join(lines)


def assert_accessible(testcase, driver, page_name, context=None):
    """Fails `testcase` when axe-core finds any WCAG 2.2 AA violation on the page shown, naming each rule."""
    violations = axe_violations(driver, context)
    if violations:
        testcase.fail(f"{page_name} ({driver.current_url}) has {len(violations)} accessibility violation(s):\n"
                      + describe_violations(violations))


def screenshot(driver, name):
    """Saves the viewport as .build/screenshots/NAME.png; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9._-]+", "-", name) + ".png")
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"could not save the screenshot {path}")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(condition, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


class MusterProcess:
    """The built binary as `muster serve --port PORT` on 127.0.0.1, with a new data directory (SQLite) in a
    temporary folder, the repository's playbooks and the demonstration inbox, and a known first admin token
    (`admin_token`). Its output goes to `log_path`. `args` are added to serve's command line; `playbooks` is
    the playbook folder (the repository's by default); `env` is added to the environment (None removes a
    variable; MUSTER_DATABASE_URL is removed unless given, so SQLite is the default); `config` is the text of
    a muster.yaml passed with --config. The process runs in its temporary folder, so no ./muster.yaml is read."""

    def __init__(self, args=(), env=None, config=None, playbooks=None, binary=None, demonstration_inbox=True,
                 ready_within=60):
        self.binary = Path(binary or os.environ.get("MUSTER_TEST_BINARY") or REPO / ".build" / "debug" / "muster")
        if not self.binary.exists():
            raise AssertionError(f"{self.binary} is missing: run `swift build` first (or set MUSTER_TEST_BINARY)")
        self.work = Path(tempfile.mkdtemp(prefix="muster-browser-"))
        self.data_dir = self.work / "data"
        self.log_path = self.work / "serve.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_token = "mst_browser_" + secrets.token_hex(16)
        self.env = {k: v for k, v in os.environ.items() if k != "MUSTER_DATABASE_URL"}
        self.env["MUSTER_BOOTSTRAP_ADMIN_TOKEN"] = self.admin_token
        for name, value in (env or {}).items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.playbooks = Path(playbooks or REPO / "playbooks")
        self.common = ["--data-dir", str(self.data_dir)]
        command = [str(self.binary), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--playbooks", str(self.playbooks)] + self.common
        if config is not None:
            (self.work / "muster.yaml").write_text(config)
            command += ["--config", str(self.work / "muster.yaml")]
        if demonstration_inbox:
            command.append("--demonstration-inbox")
        self.command = command + [str(arg) for arg in args]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, cwd=self.work, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        if not eventually(lambda: self.process.poll() is not None or self.ready(), ready_within) or self.process.poll() is not None:
            code = self.process.poll()
            output = self.log()[-3000:]
            self.close()
            state = f"exited with {code}" if code is not None else f"was not ready within {ready_within} s"
            raise AssertionError(f"muster serve {state}: {' '.join(self.command)}\n"
                                 f"its output (the end):\n{output}")

    def ready(self):
        try:
            with urllib.request.urlopen(self.base + "/health/ready", timeout=5) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def log(self):
        """What the process has written to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args, check=True):
        """Runs another command of the same binary on this data directory and environment, such as
        `cli("user", "add", "ann", "--role", "admin", "--playbooks", m.playbooks)` or `cli("token", "create", "ann")`;
        returns the CompletedProcess (text)."""
        return subprocess.run([str(self.binary), *map(str, args), *self.common], cwd=self.work, env=self.env,
                              check=check, capture_output=True, text=True)

    def close(self, keep=False):
        """Stops the process (SIGTERM, then SIGKILL after 20 s) and removes its folder unless `keep` (or
        MUSTER_TEST_KEEP is set)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        if not keep and not os.environ.get("MUSTER_TEST_KEEP"):
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
