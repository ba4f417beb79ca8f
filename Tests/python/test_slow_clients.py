"""Slow clients cannot hold the server (issue 26, item 2): the real `muster serve` on 127.0.0.1 with
500 slowloris connections, some dribbling a request head one byte at a time and some a body, while
ordinary reports keep being answered; each dribbler is closed by the server once its header or body
timeout has passed; and a connection beyond `server.max_connections` is refused at once.

Run with `python3 -m unittest Tests/python/test_slow_clients.py` after `swift build` (scripts/test does both).
The latency figures under load are measured by Benchmarks/run-edge-benchmarks, not asserted here.
"""

import asyncio
import json
import socket
import sys
import time
import unittest
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_support import MusterProcess  # noqa: E402

REPORT = {"type": "missing-student", "severity": "high", "site": "washington-elementary", "summary": "Not back from recess"}


def report(process, token):
    request = urllib.request.Request(process.base + "/api/v1/incidents", data=json.dumps(REPORT).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


async def dribbler(port, token, body, every, results):
    """One slowloris connection: a head (or, with `body`, a whole head and then its body) one byte every
    `every` seconds, until the server closes the connection; records how long the server let it live."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    head = b"POST /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if body:
        # Signed in, so the handler waits for the body rather than refusing the request at once.
        writer.write(head + f"Authorization: Bearer {token}\r\nContent-Length: 100000\r\n\r\n".encode())
        dribble = b"{" + b" " * 99_999
    else:
        writer.write(head)
        dribble = b"X-Slow: " + b"a" * 10_000
    try:
        for byte in dribble:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(4096), timeout=every)
                break  # the server closed it (or answered and closed it)
            except asyncio.TimeoutError:
                continue
    except (ConnectionError, OSError):
        pass
    results.append(time.monotonic() - started)
    writer.close()


class SlowClientTests(unittest.TestCase):
    def test_five_hundred_dribbling_connections_are_cut_off_while_reports_go_through(self):
        config = "server: { header_timeout: 3s, body_timeout: 4s, idle_timeout: 60s, max_connections: 1000 }\n"
        with MusterProcess(config=config) as muster:
            token = muster.admin_token
            self.assertEqual(report(muster, token), 201)
            heads, bodies = [], []

            async def scenario():
                loop = asyncio.get_running_loop()
                tasks = [asyncio.create_task(dribbler(muster.port, token, index % 2 == 1, 0.5, bodies if index % 2 else heads))
                         for index in range(500)]
                await asyncio.sleep(1.0)  # every dribbler is connected and sending
                answers = [await loop.run_in_executor(None, report, muster, token) for _ in range(10)]
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
                return answers

            answers = asyncio.run(scenario())
            self.assertEqual(answers, [201] * 10, "ordinary reports were answered while 500 connections dribbled")
            self.assertEqual(len(heads), 250)
            self.assertEqual(len(bodies), 250)
            # Without the guard a head dribbler lives until Hummingbird's idle timeout (60 s here) and a body
            # dribbler for ever (every byte counts as activity): each would run out its 60 s wait.
            self.assertLess(max(heads), 20, f"head dribblers were held for up to {max(heads):.1f} s")
            self.assertGreaterEqual(min(heads), 2.5, "closed before the header timeout")
            self.assertLess(max(bodies), 20, f"body dribblers were held for up to {max(bodies):.1f} s")
            self.assertGreaterEqual(min(bodies), 3.5, "closed before the body timeout (so not by the handler)")
            self.assertEqual(report(muster, token), 201)

    def test_a_connection_beyond_the_cap_is_refused_at_once_and_the_slots_come_back(self):
        config = "server: { header_timeout: 60s, max_connections: 10 }\n"
        with MusterProcess(config=config) as muster:
            held = [socket.create_connection(("127.0.0.1", muster.port)) for _ in range(10)]
            time.sleep(0.5)
            extra = socket.create_connection(("127.0.0.1", muster.port))
            extra.settimeout(5)
            started = time.monotonic()
            try:
                extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = extra.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""
            self.assertEqual(answer, b"", f"the eleventh connection was served: {answer[:200]!r}")
            self.assertLess(time.monotonic() - started, 4, "refused at once, not queued")
            extra.close()
            for connection in held:
                connection.close()
            time.sleep(0.5)
            self.assertTrue(muster.ready(), "the slots of closed connections are free again")


if __name__ == "__main__":
    unittest.main()
