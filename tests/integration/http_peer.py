#!/usr/bin/env python3
"""A real HTTP/1.1 server for the tests, on 127.0.0.1 and a free port.

Usage: http_peer.py PORTFILE   (writes the port number to PORTFILE)

  GET  /hello          200 "hello"
  POST /echo           200 with the request body; X-Method, X-Got-Header
  GET  /status/NNN     NNN, with Retry-After: 7
  GET  /slow           answers after 3 s
  GET  /big            2 MiB body
  GET  /conns          number of distinct client connections seen so far
"""
import http.server
import sys
import threading
import time

conns = set()
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def note(self):
        with lock:
            conns.add(self.client_address)

    def do_GET(self):
        self.note()
        if self.path == "/hello":
            self.reply(200, b"hello")
        elif self.path.startswith("/status/"):
            self.reply(int(self.path[8:]), b"status", {"Retry-After": "7"})
        elif self.path == "/slow":
            time.sleep(3)
            self.reply(200, b"late")
        elif self.path == "/big":
            self.reply(200, b"x" * (2 * 1024 * 1024))
        elif self.path == "/conns":
            with lock:
                n = len(conns)
            self.reply(200, str(n).encode())
        else:
            self.reply(404, b"not found")

    def do_POST(self):
        self.note()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self.reply(200, body, {"X-Method": "POST",
                               "X-Got-Header": self.headers.get("X-Test", "")})


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
