#!/usr/bin/python3
# A real SMTP server for the email channel's tests (Debian's python3-aiosmtpd): it listens on a free
# port of 127.0.0.1, prints that port on stdout, and writes every message it accepts to a directory,
# one JSON file each, with the envelope, the raw bytes and what Python's `email` parser makes of them.
# It runs until its stdin closes (the test ends or dies) or it gets SIGTERM.
#
#   smtp_sink.py --dir DIR [--tls-cert CERT --tls-key KEY] [--require-starttls] [--implicit-tls]
#                [--auth USER:PASSWORD] [--auth-exclude PLAIN] [--rcpt-reply "550 5.1.1 No such user"]
#                [--no-ehlo] [--stall-data] [--silent]
#
# --silent accepts TCP connections and never says a word (the timeout case); --stall-data never
# answers the end of DATA; --no-ehlo refuses EHLO so that clients must fall back to HELO.
import argparse
import asyncio
import base64
import email
import email.policy
import json
import os
import signal
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_message(raw: bytes) -> dict:
    """What a mail client would see: decoded headers and the text of each leaf part."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    defects = [type(d).__name__ for d in msg.defects]
    parts = []
    for part in msg.walk():
        defects += [type(d).__name__ for d in part.defects]
        if part.is_multipart():
            continue
        parts.append({
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "transfer_encoding": part.get("Content-Transfer-Encoding", ""),
            "text": part.get_content(),
        })
    return {
        "headers": [[name, str(value)] for name, value in msg.items()],
        "content_type": msg.get_content_type(),
        "parts": parts,
        "defects": defects,
    }


class Sink:
    """Writes each accepted message to its own file; the write is atomic so readers never see half."""

    def __init__(self, directory: str, rcpt_reply: str | None, stall_data: bool):
        self.directory = directory
        self.rcpt_reply = rcpt_reply
        self.stall_data = stall_data
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stall_data:
            await asyncio.sleep(3600)
        raw = envelope.original_content or b""
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # STARTTLS sets session.ssl; with implicit TLS the transport itself is the TLS one.
            "tls": session.ssl is not None
            or (server.transport is not None and server.transport.get_extra_info("ssl_object") is not None),
            "authenticated": bool(session.authenticated),
            "auth": session.auth_data if isinstance(session.auth_data, str) else None,
            "helo": session.host_name,
            "extended_smtp": session.extended_smtp,
            "raw_base64": base64.b64encode(raw).decode(),
        }
        try:
            record["parsed"] = parse_message(raw)
        except Exception as error:  # the test reports what broke rather than seeing no file
            record["parse_error"] = repr(error)
        with self.lock:
            self.count += 1
            name = f"message-{self.count:04d}.json"
        path = os.path.join(self.directory, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        return "250 2.0.0 Message accepted for delivery"


class NoEHLO(SMTP):
    """A server of the old school: only HELO."""

    async def smtp_EHLO(self, hostname: str):
        await self.push("502 5.5.1 EHLO not implemented")


class SinkController(Controller):
    """A Controller on a socket we bound ourselves to port 0, so the free port is never raced for."""

    def __init__(self, handler, sock: socket.socket, smtp_class=SMTP, **kwargs):
        self.sock = sock
        self.smtp_class = smtp_class
        # A generous start-up allowance: the test machine may be busy compiling or running other suites.
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], ready_timeout=30, **kwargs)

    def factory(self):
        return self.smtp_class(self.handler, **self.SMTP_kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def wait_for_end():
    """Blocks until stdin reaches end of file or SIGTERM arrives."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def read_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            done.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    done.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth", help="USER:PASSWORD, the one account that may log in")
    parser.add_argument("--auth-exclude", action="append", default=[], help="a mechanism not to offer")
    parser.add_argument("--rcpt-reply", help='the reply to every RCPT TO, e.g. "550 5.1.1 No such user"')
    parser.add_argument("--no-ehlo", action="store_true")
    parser.add_argument("--stall-data", action="store_true")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()

    sock = bound_socket()
    if args.silent:
        # Listening is enough: the kernel completes the TCP handshake and nothing is ever sent.
        sock.listen(16)
        print(sock.getsockname()[1], flush=True)
        wait_for_end()
        return

    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    kwargs = {"require_starttls": args.require_starttls, "auth_exclude_mechanism": args.auth_exclude}
    if args.implicit_tls:
        kwargs["ssl_context"] = tls_context
    elif tls_context:
        kwargs["tls_context"] = tls_context
    if args.auth:
        user, _, password = args.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            # What the test checks: which mechanism the client chose, and who logged in. handled=False
            # lets aiosmtpd answer a failure itself (535); handled=True would leave the client waiting.
            return AuthResult(success=ok, handled=False, auth_data=f"{mechanism}:{user}" if ok else None)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        # AUTH is offered over plain text only when the server has no TLS at all, so that the
        # client's refusal to send credentials in clear is what the test sees.
        kwargs["auth_require_tls"] = tls_context is not None

    os.makedirs(args.dir, exist_ok=True)
    sink = Sink(args.dir, args.rcpt_reply, args.stall_data)
    controller = SinkController(sink, sock, smtp_class=NoEHLO if args.no_ehlo else SMTP, **kwargs)
    controller.start()
    print(controller.port, flush=True)
    try:
        wait_for_end()
    finally:
        controller.stop(no_assert=True)


if __name__ == "__main__":
    main()
