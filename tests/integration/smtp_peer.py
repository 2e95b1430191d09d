#!/usr/bin/python3
"""A real SMTP server for the tests: Debian's aiosmtpd on 127.0.0.1.

Usage: smtp_peer.py PORTFILE OUTDIR [--port N] [--auth USER:PASSWORD]
                    [--tls CERT KEY] [--smtps CERT KEY]

Every message it accepts is written to OUTDIR/TIME-NNNN.eml (the bytes as
received, with X-Peer-Rcpt and X-Peer-From lines first). Recipients steer
its replies:
  tempfail-*@...   451 4.3.0 for the first RCPT of that address, then 250
  reject-*@...     550 5.1.1 no such user
With --auth, MAIL is refused (530) until the client authenticated with
USER and PASSWORD (AUTH PLAIN or LOGIN, without TLS: loopback only).
With --tls, STARTTLS is offered with CERT and KEY and required before
MAIL; with --smtps, TLS from the first byte (port 465 style).

Runs with /usr/bin/python3, where Debian's python3-aiosmtpd lives.
"""
import asyncio
import os
import socket
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

seen = set()
lock = threading.Lock()
count = [0]


class Handler:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject-"):
            return "550 5.1.1 <%s>: no such user here" % address
        if local.startswith("tempfail-"):
            with lock:
                first = address not in seen
                seen.add(address)
            if first:
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with lock:
            count[0] += 1
            n = count[0]
        name = "%d-%04d" % (time.time_ns(), n)  # unique across restarts
        tmp = os.path.join(self.out, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(("X-Peer-From: %s\r\n" % envelope.mail_from).encode())
            f.write(("X-Peer-Rcpt: %s\r\n" % ",".join(
                envelope.rcpt_tos)).encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.out, name + ".eml"))
        return "250 2.0.0 queued as %04d" % n


def main():
    args = sys.argv[1:]
    portfile, out = args[0], args[1]
    port, auth = 0, None
    if "--port" in args:
        port = int(args[args.index("--port") + 1])
    if "--auth" in args:
        auth = args[args.index("--auth") + 1].split(":", 1)
    if port == 0:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
    kw = {}
    implicit = None
    if "--smtps" in args:
        import ssl
        i = args.index("--smtps")
        implicit = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        implicit.load_cert_chain(args[i + 1], args[i + 2])
    if "--tls" in args:
        import ssl
        i = args.index("--tls")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args[i + 1], args[i + 2])
        kw.update({"tls_context": ctx, "require_starttls": True})
    if auth:
        def check(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and \
                data.login.decode() == auth[0] and \
                data.password.decode() == auth[1]
            return AuthResult(success=ok, handled=False)
        kw.update({"authenticator": check, "auth_required": True,
                   "auth_require_tls": False})
    c = Controller(Handler(out), hostname="127.0.0.1", port=port,
                   ssl_context=implicit, server_kwargs=kw)
    c.start()
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
    try:
        asyncio.new_event_loop().run_forever()
    finally:
        c.stop()


if __name__ == "__main__":
    main()
