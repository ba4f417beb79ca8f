"""Several instances on one PostgreSQL (issue 25, performance): figures, not asserts.

1. Reports/s with one and with two `muster serve` instances against the same PostgreSQL: a closed loop of
   CONNECTIONS concurrent keep-alive connections POSTing /api/v1/incidents for SECONDS (spread evenly over the
   instances), each on a fresh database; then two instances with twice the connections (as many per instance as
   the single one had). Every report opens an incident whose first step pages two people over a signed webhook,
   to a receiver in a process of its own, so the delivery workers run too. With each: the CPU time per report of
   the instances, of PostgreSQL and of this client, and how busy the machine was.
2. Takeover: two instances, reports in waves to the one that will die, whose step-1 deadlines (10 s) come due
   wave after wave. It is SIGKILLed at a moment it holds due timers it claimed (their lease is 5 s), and pages in
   flight (15 s). Printed: the time from the SIGKILL to the first step-2 page the survivor sends for the timers the
   dead instance held, and for any of its incidents; how late the survivor fired its other due timers; when the
   pages it held were sent again.

Usage (Benchmarks/run-two-instance-benchmarks starts a throwaway PostgreSQL and passes its URL):

    python3 Benchmarks/two-instances.py DATABASE_URL [--binary .build/release/muster] [--seconds 15]
        [--connections 16] [--takeover-rounds 3]

On one machine the instances, PostgreSQL and this client share its cores: two instances show what a second
process costs or gains there, not what a second machine would add.
"""

import argparse
import datetime
import http.client
import multiprocessing
import os
import resource
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "python"))
from test_two_instances import (  # noqa: E402
    SITE, Cluster, WebhookSink, expected_notifications, fresh_postgres_database,
)

REPO = Path(__file__).resolve().parents[1]


def sink_process(port_pipe):
    sink = WebhookSink(delay=0.0, keep_bodies=False)
    port_pipe.send(sink.port)
    while True:
        time.sleep(3600)


class ExternalSink:
    """A webhook receiver in a process of its own, so that receiving pages costs the load generator nothing."""

    def __init__(self):
        parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=sink_process, args=(child,), daemon=True)
        self.process.start()
        self.port = parent.recv()

    def close(self):
        self.process.terminate()
        self.process.join()


def load(instances, token, connections, seconds):
    """A closed loop: each connection POSTs the next report as soon as the last is answered. Returns (answers
    by status, latencies in seconds of the 201s, elapsed seconds)."""
    body = ('{"type":"suicide-risk","severity":"high","site":"%s","summary":"Benchmark report"}' % SITE).encode()
    statuses, latencies, lock = {}, [], threading.Lock()
    begin = time.monotonic()
    end = begin + seconds

    def worker(index):
        instance = instances[index % len(instances)]
        mine, mine_latencies = {}, []
        connection = None
        while time.monotonic() < end:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=60)
            sent = time.monotonic()
            try:
                connection.request("POST", "/api/v1/incidents", body=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                status = "connection error"
                connection.close()
                connection = None
                time.sleep(0.05)
            mine[status] = mine.get(status, 0) + 1
            if status == 201:
                mine_latencies.append(time.monotonic() - sent)
        with lock:
            for status, count in mine.items():
                statuses[status] = statuses.get(status, 0) + count
            latencies.extend(mine_latencies)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, latencies, time.monotonic() - begin


def cpu_seconds(pids=None, command=None):
    """CPU time (user + system) of the processes `pids`, or of every process named `command`, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in (pids if pids is not None else [p for p in os.listdir("/proc") if p.isdigit()]):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if command is None or name == command:
            total += int(rest[11]) + int(rest[12])  # utime, stime
    return total / ticks


def postgres_pids(database_url):
    """The PostgreSQL server of `database_url` on this machine: its postmaster (started with `-p PORT`) and its children."""
    port = str(urllib.parse.urlsplit(database_url).port or 5432)
    processes = {}
    for entry in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        processes[entry] = ([a.decode(errors="replace") for a in argv], stat[stat.rindex(")") + 2:].split()[1])
    postmasters = {pid for pid, (argv, _) in processes.items()
                   if argv and argv[0].endswith("postgres") and "-p" in argv and argv[argv.index("-p") + 1:argv.index("-p") + 2] == [port]}
    return list(postmasters) + [pid for pid, (_, ppid) in processes.items() if ppid in postmasters]


def machine_busy():
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def throughput(args, count, connections):
    sink = ExternalSink()
    cluster = Cluster(sink, ack_within="1h", database_url=fresh_postgres_database("bench_", args.database_url),
                      binary=args.binary, log_level="warning")
    try:
        instances = [cluster.start(name) for name in ("a", "b")[:count]]
        load(instances, cluster.admin_token, connections, 2)  # warm-up
        pids = [instance.pid for instance in instances]
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        server = postgres_pids(args.database_url)
        muster_before, postgres_before, machine_before = cpu_seconds(pids), cpu_seconds(server), machine_busy()
        statuses, latencies, elapsed = load(instances, cluster.admin_token, connections, args.seconds)
        muster_cpu, postgres_cpu = cpu_seconds(pids) - muster_before, cpu_seconds(postgres_pids(args.database_url)) - postgres_before
        machine = [after - before for after, before in zip(machine_busy(), machine_before)]
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (cpu.ru_utime - cpu_before.ru_utime) + (cpu.ru_stime - cpu_before.ru_stime)
        created = statuses.get(201, 0)
        others = {k: v for k, v in statuses.items() if k != 201}
        print(f"reports/s, {count} instance{'s' if count > 1 else ''}, {connections} connections, {elapsed:.1f} s: "
              f"{created / elapsed:.1f}/s ({created} answered 201; p50 {quantile(latencies, 0.5) * 1000:.0f} ms, "
              f"p99 {quantile(latencies, 0.99) * 1000:.0f} ms; other answers {others or 'none'})", flush=True)
        per = 1000 / max(created, 1)
        print(f"  CPU per report: muster {muster_cpu * per:.2f} ms, PostgreSQL {postgres_cpu * per:.2f} ms, this client "
              f"{client_cpu * per:.2f} ms; the machine was {machine[0] / machine[1] * 100:.0f}% busy "
              f"({machine[0] / elapsed:.2f} of {machine[1] / elapsed:.2f} cores)", flush=True)
        for instance in instances:
            if instance.process.poll() is not None:
                print(f"  {instance.name} died: {instance.log()[-2000:]}")
        return created / elapsed
    finally:
        cluster.close()
        sink.close()


def parse_timestamp(text):
    # psql's timestamptz: 2026-12-06 21:08:32.123456+00
    text = text.strip()
    if text.endswith("+00"):
        text += ":00"
    return datetime.datetime.fromisoformat(text).timestamp()


def takeover(args, round_number):
    ack = 10
    sink = WebhookSink(delay=0.3, keep_bodies=False)  # a page is in flight for 0.3 s
    cluster = Cluster(sink, ack_within=f"{ack}s", database_url=fresh_postgres_database("bench_", args.database_url),
                      binary=args.binary, log_level="warning")
    try:
        doomed, survivor = cluster.start("a"), cluster.start("b")
        waves, per_wave, gap = 8, 5, 1.5
        reported = {}
        first = None
        # Waves of reports to the instance that will die (and one report a wave to the other), so that its due
        # timers come due wave after wave: it claims some of them, and it dies holding one batch.
        for wave in range(waves):
            at = time.monotonic()
            first = first or at
            for _ in range(per_wave):
                reported[cluster.report(doomed)["incident"]["id"]] = "a"
            reported[cluster.report(survivor)["incident"]["id"]] = "b"
            time.sleep(max(0.0, at + gap - time.monotonic()))
        # From the first deadline on, watch the claims; kill at the first batch of due timers the doomed one holds.
        time.sleep(max(0.0, first + ack - 0.5 - time.monotonic()))
        watch_until = time.monotonic() + waves * gap + 5
        timers = pages = []
        while time.monotonic() < watch_until:
            timers, pages = cluster.claims(doomed)
            if timers:
                break
            time.sleep(0.001)
        killed_wall = time.time()
        killed_at = doomed.kill()
        held_timers, held_pages = cluster.claims(doomed)
        held_pages = set(held_pages) | set(pages)
        # Every timer still waiting at the kill, of the doomed instance's incidents: when it was due.
        due = {row[0]: parse_timestamp(row[2]) for row in cluster.psql.query(
            "SELECT incident_id, key, due_at FROM timers WHERE key = 'ack:0:0'")}
        expected = {nid: (incident, step) for incident in reported for nid, step in expected_notifications(incident)}
        step2 = {nid for nid, (incident, step) in expected.items() if step == 2}
        missing = sink.wait_for(step2 | held_pages, seconds=120)
        received = sink.snapshot()

        def first_after(predicate):
            times = [r["at"] - killed_at for r in received
                     if r["sender"] == survivor.name and r["at"] > killed_at and r["id"] in expected and predicate(*expected[r["id"]])]
            return min(times) if times else None

        held_ids = {incident for incident, key, _ in held_timers if key == "ack:0:0"}
        print(f"takeover round {round_number}: killed a (pid {doomed.pid}) holding {len(held_timers)} due timer(s) "
              f"({', '.join(sorted({key for _, key, _ in held_timers})) or 'none'}) and {len(held_pages)} page(s) in flight; "
              f"{len(due)} step-1 deadlines still waiting", flush=True)
        if not held_timers:
            print("  it held no timer at the kill (the survivor claimed every batch first): no lease to wait for this round")
        held_first = first_after(lambda incident, step: step == 2 and incident in held_ids)
        any_first = first_after(lambda incident, step: step == 2 and reported[incident] == "a")
        if held_first is not None:
            held_last = max(r["at"] - killed_at for r in received if r["sender"] == survivor.name and r["at"] > killed_at
                            and r["id"] in expected and expected[r["id"]][0] in held_ids and expected[r["id"]][1] == 2)
            print(f"  SIGKILL -> first step-2 page for a timer the dead instance held: {held_first:.2f} s "
                  f"(last {held_last:.2f} s; timer lease 5 s, poll 1 s)")
        if any_first is not None:
            print(f"  SIGKILL -> first step-2 page for any incident reported to the dead instance: {any_first:.2f} s")
        # Timers of the dead instance's incidents not held by it, due after the kill: how late the survivor fired them.
        lateness = []
        for incident, due_wall in due.items():
            if reported.get(incident) != "a" or incident in held_ids or due_wall < killed_wall:
                continue
            arrivals = [r["wall"] for r in received if r["sender"] == survivor.name and r["id"] in expected and expected[r["id"]] == (incident, 2)]
            if arrivals:
                lateness.append(min(arrivals) - due_wall)
        if lateness:
            print(f"  the dead instance's other step-1 deadlines ({len(lateness)}), fired by the survivor: first step-2 page "
                  f"{statistics.median(lateness) * 1000:.0f} ms after the deadline (median), {max(lateness) * 1000:.0f} ms at most")
        resent = [min(r["at"] for r in received if r["id"] == nid and r["sender"] == survivor.name) - killed_at
                  for nid in held_pages if any(r["id"] == nid and r["sender"] == survivor.name for r in received)]
        if resent:
            print(f"  pages the dead instance held: sent by the survivor {min(resent):.2f}–{max(resent):.2f} s after the kill "
                  f"(delivery lease 15 s)")
        if missing:
            print(f"  MISSING after 120 s: {len(missing)} step-2 or held page(s), e.g. {sorted(missing)[:3]}")
        return held_first, any_first
    finally:
        cluster.close()
        sink.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", help="a PostgreSQL server's URL; each phase makes a fresh database on it")
    parser.add_argument("--binary", default=os.environ.get("MUSTER_BIN") or str(REPO / ".build" / "release" / "muster"))
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--takeover-rounds", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MUSTER_TEST_DATABASE_URL", args.database_url)
    print(f"muster: {args.binary}; PostgreSQL: {args.database_url}; {os.cpu_count()} cores", flush=True)
    if not args.skip_throughput:
        one = throughput(args, 1, args.connections)
        two = throughput(args, 2, args.connections)
        # The same connections per instance as the single one had: group commit amortises a transaction over the
        # reports that arrive together at one instance, so splitting one load in two halves each batch.
        two_doubled = throughput(args, 2, 2 * args.connections)
        print(f"two instances / one: {two / one:.2f}x with the same {args.connections} connections in all; "
              f"{two_doubled / one:.2f}x with {args.connections} per instance", flush=True)
    held, first = [], []
    for round_number in range(1, args.takeover_rounds + 1):
        h, f = takeover(args, round_number)
        if h is not None:
            held.append(h)
        if f is not None:
            first.append(f)
    if held:
        print(f"takeover of held due timers (SIGKILL -> survivor's first step-2 page), {len(held)} round(s): "
              f"{', '.join(f'{x:.2f}' for x in held)} s")
    if first:
        print(f"SIGKILL -> survivor's first step-2 page for the dead instance's incidents, {len(first)} round(s): "
              f"{', '.join(f'{x:.2f}' for x in first)} s")


if __name__ == "__main__":
    main()
