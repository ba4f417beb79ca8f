"""A real PostgreSQL high-availability cluster on 127.0.0.1, for failover tests (issue 25, item 3): one etcd
(a single member, Debian's `etcd-server`), and PostgreSQL members managed by Patroni (Debian's `patroni`, its
etcd3 client), the first a primary and the others its standbys, with `synchronous_mode: true` so that a commit
waits for a synchronous standby and survives the primary's loss. Short timings (`ttl` 10 s, `loop_wait` 1 s,
`retry_timeout` 3 s) make a failover take seconds. Everything lives in one temporary folder; the PostgreSQL
servers and Patroni run as the `postgres` user when we are root (Patroni refuses to run PostgreSQL as root).
Every port is a free loopback port; `close()` kills everything it started (Patroni, each PostgreSQL and its
backends, etcd), also when a test fails, and removes the folder unless MUSTER_TEST_KEEP is set.

    from patroni_cluster import PatroniCluster, require_patroni

    require_patroni()                       # fails with CI=true, else skips, when a tool is missing
    with PatroniCluster() as cluster:       # etcd up, the primary bootstrapped, a synchronous standby streaming
        cluster.psql(cluster.primary(), "CREATE DATABASE muster")
        url = cluster.url("muster", target_session_attrs="read-write", sslmode="disable")
        old = cluster.primary()
        died_at = cluster.kill(old)         # SIGKILL its Patroni, then its postmaster and every backend
        new = cluster.wait_for_primary(exclude=old)   # Patroni promotes the standby once the leader key expires

scripts/test installs both packages (as root). Patroni's REST API is documented at patroni.readthedocs.io
(`GET /primary` answers 200 on the leader only; `GET /cluster` lists the members and their roles).
"""

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_support import free_port, in_ci  # noqa: E402

PATRONI = "/usr/bin/patroni"
ETCD = "/usr/bin/etcd"
SCOPE = "muster-failover"


def pg_bin():
    """The newest /usr/lib/postgresql/*/bin with initdb (MUSTER_TEST_PG_BIN first, as scripts/test sets it)."""
    candidates = [os.environ.get("MUSTER_TEST_PG_BIN", "")] + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True)
    for candidate in candidates:
        if candidate and os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    return None


def require_patroni():
    """Fails (CI=true) or skips (elsewhere) unless Patroni, etcd and PostgreSQL's programs are here, and, when we
    are root, the `postgres` user to run them as."""
    missing = []
    if not os.access(PATRONI, os.X_OK):
        missing.append(f"{PATRONI} (Debian's `patroni`)")
    if not os.access(ETCD, os.X_OK):
        missing.append(f"{ETCD} (Debian's `etcd-server`)")
    if pg_bin() is None:
        missing.append("PostgreSQL's programs in /usr/lib/postgresql/*/bin (Debian's `postgresql`)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("the `postgres` user (Debian's `postgresql` creates it)")
    if missing:
        message = "the failover tests need " + "; ".join(missing)
        if in_ci():
            raise AssertionError(message + " (CI=true: they never skip; scripts/test installs them)")
        raise unittest.SkipTest(message + "; scripts/test installs them")


def http_get(url, timeout=3):
    """(status, parsed JSON or text) of a GET; (None, error) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    except (OSError, urllib.error.URLError) as error:
        return None, repr(error)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _alive(pid):
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Member:
    """One PostgreSQL server and the Patroni that manages it."""

    def __init__(self, cluster, name):
        self.cluster, self.name = cluster, name
        self.pg_port = free_port()
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.home = cluster.work / name
        self.data_dir = self.home / "data"
        self.config_path = self.home / "patroni.yml"
        self.log_path = cluster.work / f"{name}.log"
        self.process = None
        self.postmaster_pgids = set()  # every process group a postmaster of this member ran in
        self.killed_at = None

    def config(self):
        cluster = self.cluster
        # JSON is YAML: Patroni reads it as its configuration file.
        return {
            "scope": SCOPE,
            "name": self.name,
            "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
            "restapi": {"listen": f"127.0.0.1:{self.api_port}", "connect_address": f"127.0.0.1:{self.api_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{cluster.etcd_port}"], "protocol": "http"},
            "bootstrap": {
                "dcs": {
                    "ttl": cluster.ttl, "loop_wait": cluster.loop_wait, "retry_timeout": cluster.retry_timeout,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "parameters": dict({
                            "max_connections": 200,
                            "wal_recycle": "off",  # as docs/operations.md asks of Muster's server
                            "wal_keep_size": "128MB",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                        }, **cluster.dcs_parameters),
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}, {"username": "postgres"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port}",
                "connect_address": f"127.0.0.1:{self.pg_port}",
                "data_dir": str(self.data_dir),
                "bin_dir": str(cluster.pg_bin),
                "pgpass": str(self.home / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "pg_hba": [
                    "local all all trust",
                    "local replication all trust",
                    "host all all 127.0.0.1/32 trust",
                    "host replication all 127.0.0.1/32 trust",
                ],
                "parameters": {
                    "unix_socket_directories": str(self.home),
                    "cluster_name": f"{SCOPE}-{self.name}",
                    "fsync": "off" if cluster.fast else "on",  # a killed process, not a lost machine: page cache survives
                    "logging_collector": "off",
                },
                "basebackup": [{"checkpoint": "fast"}],
            },
            "watchdog": {"mode": "off"},
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
        }

    def start(self):
        """Starts (or starts again) this member's Patroni; a fresh data directory bootstraps or clones."""
        cluster = self.cluster
        self.home.mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        cluster._own(self.home, self.config_path)
        log = open(self.log_path, "ab")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
        as_user = {"user": cluster.run_as, "group": cluster.run_as, "extra_groups": []} if cluster.run_as else {}
        self.process = subprocess.Popen([PATRONI, str(self.config_path)], cwd=self.home, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **as_user)
        log.close()
        self.killed_at = None

    # --- what Patroni and PostgreSQL say ---

    def patroni(self):
        """GET /patroni: this member's own state (role, state, timeline...), or None when its Patroni is gone."""
        status, body = http_get(self.api + "/patroni")
        return body if status == 200 and isinstance(body, dict) else None

    def is_primary(self):
        """GET /primary answers 200 on the leader running as a primary, 503 elsewhere."""
        return http_get(self.api + "/primary")[0] == 200

    def postmaster_pid(self):
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def remember_postmaster(self):
        pid = self.postmaster_pid()
        if pid and _alive(pid):
            pgid = _pgid(pid)
            if pgid and pgid != os.getpgid(0):
                self.postmaster_pgids.add(pgid)

    def pids(self):
        """Every process of this member still running: its Patroni, its postmaster and the postmaster's group."""
        self.remember_postmaster()
        pids = set()
        if self.process and self.process.poll() is None:
            pids.add(self.process.pid)
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and _pgid(int(proc.name)) in self.postmaster_pgids and _alive(int(proc.name)):
                pids.add(int(proc.name))
        return pids

    def kill(self):
        """SIGKILL, no shutdown: first Patroni (so that it cannot restart PostgreSQL), then the postmaster and all
        its backends at once (their process group: Patroni starts the postmaster in a session of its own). Waits
        until all are gone; returns the monotonic time of the kill."""
        self.remember_postmaster()
        self.killed_at = time.monotonic()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        for pgid in self.postmaster_pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        if self.process:
            self.process.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = self.pids()
            if not left:
                return self.killed_at
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: processes {sorted(self.pids())} survived SIGKILL")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class PatroniCluster:
    """etcd and `members` Patroni-managed PostgreSQL servers (names pg1, pg2...), started and healthy on return:
    a leader running as primary and, with two or more members, a synchronous standby streaming (Patroni's
    /cluster says `sync_standby`, and the primary's pg_stat_replication says `sync`).
    `dcs_parameters` adds PostgreSQL settings (shared by all members, through the DCS); `fast` turns fsync off
    (a test kills processes, never the machine). `timeout` bounds every wait of the start."""

    def __init__(self, members=2, ttl=10, loop_wait=1, retry_timeout=3, dcs_parameters=None, fast=True, timeout=180):
        require_patroni()
        self.ttl, self.loop_wait, self.retry_timeout = ttl, loop_wait, retry_timeout
        self.dcs_parameters = dict(dcs_parameters or {})
        self.fast = fast
        self.pg_bin = pg_bin()
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.work = Path(tempfile.mkdtemp(prefix="muster-patroni-"))
        os.chmod(self.work, 0o755)
        self._own(self.work)
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.etcd = None
        self.members = [Member(self, f"pg{i}") for i in range(1, members + 1)]
        try:
            self._start_etcd(timeout)
            # The first member bootstraps (initdb) and takes the leader key; then the others clone it.
            self.members[0].start()
            self.wait_for_primary(seconds=timeout)
            for member in self.members[1:]:
                member.start()
            self.wait_healthy(seconds=timeout)
        except BaseException:
            self.close()  # the error says what failed, with the logs' ends
            raise

    def _own(self, *paths):
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _start_etcd(self, timeout):
        data = self.work / "etcd"
        data.mkdir(mode=0o700)
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        log = open(self.work / "etcd.log", "ab")
        self.etcd = subprocess.Popen(
            [ETCD, "--name", "etcd1", "--data-dir", str(data),
             "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"etcd1={peer}", "--initial-cluster-state", "new",
             "--initial-cluster-token", "muster-" + self.work.name],
            cwd=self.work, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.etcd.poll() is not None:
                raise AssertionError(f"etcd exited with {self.etcd.returncode}:\n{self.log('etcd')[-3000:]}")
            status, body = http_get(self.etcd_url + "/health")
            if status == 200 and isinstance(body, dict) and body.get("health") in ("true", True):
                return
            time.sleep(0.2)
        raise AssertionError(f"etcd was not healthy within {timeout} s:\n{self.log('etcd')[-3000:]}")

    # --- the cluster's state ---

    def live(self):
        return [m for m in self.members if m.process and m.process.poll() is None]

    def cluster_state(self):
        """GET /cluster from the first live member that answers: {"members": [{name, role, state, ...}]}."""
        for member in self.live():
            status, body = http_get(member.api + "/cluster")
            if status == 200 and isinstance(body, dict):
                return body
        return None

    def primary(self):
        """The member whose Patroni answers GET /primary with 200, or None."""
        for member in self.live():
            if member.is_primary():
                return member
        return None

    def wait_for_primary(self, exclude=None, seconds=120):
        """Waits for a primary other than `exclude` (Patroni promotes a standby once the dead leader's key has
        expired, `ttl` seconds after its last renewal) that accepts writes; returns it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._check_alive()
            member = self.primary()
            if member is not None and member is not exclude:
                if self.psql_ok(member, "SELECT pg_is_in_recovery()") == "f":
                    return member
            time.sleep(0.1)
        raise AssertionError(f"no primary{' other than ' + exclude.name if exclude else ''} within {seconds} s; "
                             f"/cluster: {self.cluster_state()}\n{self.logs()}")

    def sync_standbys(self, primary):
        """The standbys the primary's PostgreSQL replicates to synchronously (pg_stat_replication)."""
        rows = self.psql_ok(primary, "SELECT application_name FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'")
        return set((rows or "").split())

    def wait_healthy(self, seconds=120):
        """Waits until there is a primary and, with two or more members, every other live member streams and one
        is its synchronous standby, both as Patroni's /cluster says and as the primary's PostgreSQL says; returns
        the primary."""
        deadline = time.monotonic() + seconds
        state = None
        while time.monotonic() < deadline:
            self._check_alive()
            primary = self.primary()
            state = self.cluster_state()
            if primary is not None and state:
                roles = {m["name"]: (m.get("role"), m.get("state")) for m in state.get("members", [])}
                others = [m.name for m in self.live() if m is not primary]
                if roles.get(primary.name, (None,))[0] == "leader" and all(
                        roles.get(name, (None, None))[1] in ("running", "streaming") for name in others):
                    synced = {name for name in others if roles[name][0] == "sync_standby"}
                    if not others or (synced and synced & self.sync_standbys(primary)):
                        return primary
            time.sleep(0.2)
        raise AssertionError(f"the cluster was not healthy (a leader and a synchronous standby) within {seconds} s; "
                             f"/cluster: {state}\n{self.logs()}")

    def _check_alive(self):
        if self.etcd and self.etcd.poll() is not None:
            raise AssertionError(f"etcd exited with {self.etcd.returncode}:\n{self.log('etcd')[-3000:]}")
        for member in self.members:
            if member.process and member.killed_at is None and member.process.poll() is not None:
                raise AssertionError(f"Patroni {member.name} exited with {member.process.returncode}:\n{member.log()[-4000:]}")

    # --- talking to PostgreSQL ---

    def url(self, database="postgres", members=None, user="postgres", **params):
        """A libpq multi-host URL naming every member (or `members`), such as
        postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/muster?target_session_attrs=read-write&sslmode=disable."""
        hosts = ",".join(f"127.0.0.1:{m.pg_port}" for m in (members or self.members))
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return f"postgres://{user}@{hosts}/{database}{query}"

    def psql(self, target, sql, database="postgres", timeout=30):
        """Runs `sql` with psql on `target` (a Member, or a URL such as url(...)), ON_ERROR_STOP; returns its
        output (unaligned, tuples only) or raises with psql's error."""
        if isinstance(target, Member):
            where = ["-h", "127.0.0.1", "-p", str(target.pg_port), "-U", "postgres", "-d", database]
        else:
            where = ["-d", target]
        result = subprocess.run([str(self.pg_bin / "psql"), *where, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
        if result.returncode != 0:
            raise AssertionError(f"psql {' '.join(where)} -c {sql!r}: exit {result.returncode}: {result.stderr.strip()}")
        return result.stdout.strip()

    def psql_ok(self, target, sql, database="postgres"):
        """psql(...) or None when it fails (the server is down, in recovery for a write...)."""
        try:
            return self.psql(target, sql, database, timeout=15)
        except (AssertionError, subprocess.TimeoutExpired):
            return None

    # --- killing ---

    def kill(self, member):
        """SIGKILLs `member`'s Patroni and PostgreSQL (see Member.kill); returns the monotonic time of the kill."""
        return member.kill()

    def kill_primary(self):
        """Kills the current primary (as GET /primary finds it); returns (member, monotonic time of the kill)."""
        member = self.primary()
        if member is None:
            raise AssertionError(f"no primary to kill; /cluster: {self.cluster_state()}")
        return member, member.kill()

    # --- logs and teardown ---

    def log(self, name):
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail=3000):
        return "\n".join(f"--- {name}.log (the end):\n{self.log(name)[-tail:]}" for name in ["etcd"] + [m.name for m in self.members])

    def close(self):
        """Kills everything: each member's Patroni and PostgreSQL (SIGKILL: nothing here is worth a clean
        shutdown), then etcd, then any process still running from this cluster's folder; removes the folder
        unless MUSTER_TEST_KEEP is set."""
        for member in self.members:
            try:
                member.kill()
            except Exception as error:  # keep tearing down
                print(f"[patroni cluster] {member.name}: {error}", file=sys.stderr)
        if self.etcd and self.etcd.poll() is None:
            try:
                os.killpg(self.etcd.pid, signal.SIGKILL)
            except OSError:
                pass
            self.etcd.wait()
        # Anything else started from this folder (a postmaster whose pid file was gone, say): by pid, ours only.
        needle = str(self.work).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if needle in (proc / "cmdline").read_bytes() or str(self.work) in os.readlink(proc / "cwd"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass
        if os.environ.get("MUSTER_TEST_KEEP"):
            print(f"[patroni cluster] kept {self.work}", file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
