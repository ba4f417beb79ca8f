"""Report latency at the edge (issue 26): honest reports at a fixed rate against a running `muster serve`,
alone, with 500 slowloris connections held open, and with one integration key flooding /v2/enqueue.
Prints p50/p99/max per phase. Usage (Benchmarks/run-edge-benchmarks starts the service):

    python3 Benchmarks/edge-latency.py BASE_URL ADMIN_TOKEN INTEGRATION_KEY [--rate 200] [--seconds 20] [--flood 5000]
"""

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
import urllib.parse

REPORT_SITES = [("missing-student", "washington-elementary"), ("suicide-risk", "lincoln-high"), ("threat-of-violence", "lincoln-high")]


async def open_connection(host, port):
    return await asyncio.open_connection(host, port)


async def exchange(reader, writer, request):
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


def post(host, path, body, token=None):
    headers = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def honest(host, port, token, rate, seconds):
    """Open-loop reports at `rate` a second over a pool of kept-alive connections; each latency in ms."""
    pool = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await open_connection(host, port))
    latencies, failures = [], []

    async def one(index):
        kind, site = REPORT_SITES[index % len(REPORT_SITES)]
        body = json.dumps({"type": kind, "severity": "high", "site": site, "summary": f"benchmark report {index}",
                           "subject": f"student-{index}"}).encode()
        reader, writer = await pool.get()
        started = time.perf_counter()
        try:
            status = await exchange(reader, writer, post(host, "/api/v1/incidents", body, token))
            latencies.append((time.perf_counter() - started) * 1000)
            if status not in (200, 201):
                failures.append(status)
            pool.put_nowait((reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            failures.append(repr(error))
            pool.put_nowait(await open_connection(host, port))

    tasks = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return latencies, failures


async def slowloris(host, port, count, stop):
    """Keeps `count` connections open, each dribbling a request head one byte a second; reopens those the server closes."""
    async def holder():
        while not stop.is_set():
            try:
                reader, writer = await open_connection(host, port)
                writer.write(b"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                while not stop.is_set():
                    writer.write(b"a")
                    await writer.drain()
                    try:
                        await asyncio.wait_for(reader.read(1), timeout=1.0)
                        break  # closed (or answered) by the server: open another
                    except asyncio.TimeoutError:
                        continue
                writer.close()
            except (ConnectionError, OSError):
                await asyncio.sleep(0.1)
    return [asyncio.create_task(holder()) for _ in range(count)]


def flood(base, key, rate, seconds, counts):
    """One integration key at `rate` events a second to /v2/enqueue (another process), counting the answers."""
    async def run():
        parsed = urllib.parse.urlparse(base)
        connections = [await open_connection(parsed.hostname, parsed.port) for _ in range(16)]
        sent = {}
        start = time.perf_counter()
        body = json.dumps({"routing_key": key, "event_action": "trigger", "dedup_key": "flood",
                           "payload": {"summary": "flood", "source": "bench", "severity": "critical", "group": "lincoln-high",
                                       "class": "threat-of-violence"}}).encode()
        request = post(parsed.hostname, "/v2/enqueue", body)
        total = int(rate * seconds)

        async def worker(connection, share):
            reader, writer = connection
            for index in range(share):
                delay = start + index * len(connections) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    status = await exchange(reader, writer, request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    reader, writer = await open_connection(parsed.hostname, parsed.port)
                    status = "reset"
                sent[status] = sent.get(status, 0) + 1

        await asyncio.gather(*[worker(c, total // len(connections)) for c in connections])
        return sent, time.perf_counter() - start

    answers, elapsed = asyncio.run(run())
    counts.update({str(k): v for k, v in answers.items()})
    counts["elapsed"] = elapsed


def summary(name, latencies, failures):
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
    print(f"{name}: {len(latencies)} reports, {len(failures)} failed {failures[:3]}; "
          f"p50 {statistics.median(ordered):.2f} ms, p99 {p(0.99):.2f} ms, max {ordered[-1]:.2f} ms", flush=True)
    return p(0.99)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("token")
    parser.add_argument("key")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--flood", type=float, default=5000)
    parser.add_argument("--slow", type=int, default=500)
    args = parser.parse_args()
    parsed = urllib.parse.urlparse(args.base)
    host, port = parsed.hostname, parsed.port

    baseline = summary("alone", *asyncio.run(honest(host, port, args.token, args.rate, args.seconds)))

    async def with_slowloris():
        stop = asyncio.Event()
        holders = await slowloris(host, port, args.slow, stop)
        await asyncio.sleep(2)
        result = await honest(host, port, args.token, args.rate, args.seconds)
        stop.set()
        for task in holders:
            task.cancel()
        return result
    slow = summary(f"with {args.slow} slowloris connections", *asyncio.run(with_slowloris()))

    with multiprocessing.Manager() as manager:
        counts = manager.dict()
        flooder = multiprocessing.Process(target=flood, args=(args.base, args.key, args.flood, args.seconds + 2, counts))
        flooder.start()
        time.sleep(1)
        flooded = summary(f"with one key flooding /v2/enqueue at {args.flood:.0f}/s", *asyncio.run(honest(host, port, args.token, args.rate, args.seconds)))
        flooder.join()
        answered = {k: v for k, v in counts.items() if k != "elapsed"}
        reached = sum(answered.values()) / counts.get("elapsed", 1)
        print(f"  the flood: {dict(answered)} in {counts.get('elapsed', 0):.1f} s ({reached:.0f} answered/s)")
    for name, value in (("slowloris", slow), ("flood", flooded)):
        print(f"p99 {name} vs alone: {100 * (value / baseline - 1):+.0f}%")


if __name__ == "__main__":
    main()
