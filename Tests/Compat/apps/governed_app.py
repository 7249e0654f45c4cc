"""A plain `http.server` app for the governance tests (resiliency policies, TrafficPolicy): one
instance of an app id, which names itself in every answer.

Environment:
  APP_PORT        where it listens (127.0.0.1)
  INSTANCE        this instance's name: in the body of /whoami and in the header x-instance of
                  every answer
  DELAY_MS        milliseconds added before every invocation answer (default 0)
  FAIL_STATUS     if set, every invocation answers this HTTP status (body {"instance", "status"})
  RECORD_FILE     every invocation and topic delivery is appended there as one JSON line
                  {"instance", "method", "path", "query", "headers", "json"}
  SUBSCRIPTIONS   JSON answered on GET /dapr/subscribe (default [])
  TOPIC_STATUS    JSON {route: reply} for topic deliveries, as in http_app.py: "SUCCESS", "RETRY",
                  "DROP" (answered {"status": ...} with 200) or an integer HTTP status; routes not
                  listed answer SUCCESS

Invocation routes (what the sidecar calls):
  *    /whoami[/...]               200 {"instance"}
  *    /flaky/<key>?fail=N&status=S  S (default 500) for the first N calls with that key, then 200
  *    /slow?ms=M                  sleeps M ms, then 200 {"instance", "slept_ms"}
  *    /drip?ms=M                  200 with its head at once, then 10 body chunks over M ms
  POST anything else               a topic delivery: recorded, answered per TOPIC_STATUS
Control routes (the test calls them directly on APP_PORT; never delayed, never failed):
  GET  /attempts/<key>             {"key", "attempts"}: how many calls /flaky/<key> received
  GET  /calls                      {"instance", "calls"}: how many invocations this app received
  GET  /dapr/subscribe, /dapr/config, /healthz
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PORT = int(os.environ["APP_PORT"])
INSTANCE = os.environ.get("INSTANCE", f"instance-{PORT}")
DELAY = float(os.environ.get("DELAY_MS") or 0) / 1000.0
FAIL_STATUS = int(os.environ["FAIL_STATUS"]) if os.environ.get("FAIL_STATUS") else None
RECORD_FILE = os.environ.get("RECORD_FILE")
SUBSCRIPTIONS = json.loads(os.environ.get("SUBSCRIPTIONS", "[]"))
TOPIC_STATUS = json.loads(os.environ.get("TOPIC_STATUS", "{}"))
LOCK = threading.Lock()
ATTEMPTS: dict = {}
CALLS = [0]


def record(entry):
    if not RECORD_FILE:
        return
    with LOCK, open(RECORD_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY, Nagle + delayed ACK add 40 ms to
    # every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass  # thousands of calls per test: the log would only slow the app down

    def handle_any(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None

        # Control routes.
        if self.command == "GET" and url.path == "/dapr/subscribe":
            return self.reply(200, SUBSCRIPTIONS)
        if self.command == "GET" and url.path == "/dapr/config":
            return self.reply(200, {})
        if url.path == "/healthz":
            return self.reply(200, {"instance": INSTANCE})
        if self.command == "GET" and url.path.startswith("/attempts/"):
            key = url.path[len("/attempts/"):]
            with LOCK:
                return self.reply(200, {"key": key, "attempts": ATTEMPTS.get(key, 0)})
        if self.command == "GET" and url.path == "/calls":
            with LOCK:
                return self.reply(200, {"instance": INSTANCE, "calls": CALLS[0]})

        # Invocations and deliveries.
        with LOCK:
            CALLS[0] += 1
        record({
            "instance": INSTANCE, "method": self.command, "path": url.path, "query": url.query,
            "headers": {k.lower(): v for k, v in self.headers.items()}, "json": parsed, "at": time.time(),
        })
        if DELAY:
            time.sleep(DELAY)
        if url.path.startswith("/flaky/"):
            key = url.path[len("/flaky/"):]
            with LOCK:
                ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
                seen = ATTEMPTS[key]
        if FAIL_STATUS is not None:
            return self.reply(FAIL_STATUS, {"instance": INSTANCE, "status": FAIL_STATUS})
        if url.path == "/whoami" or url.path.startswith("/whoami/"):
            return self.reply(200, {"instance": INSTANCE})
        if url.path.startswith("/flaky/"):
            fail = int(query.get("fail", ["0"])[0])
            status = int(query.get("status", ["500"])[0])
            if seen <= fail:
                return self.reply(status, {"instance": INSTANCE, "key": key, "attempt": seen, "status": status})
            return self.reply(200, {"instance": INSTANCE, "key": key, "attempt": seen})
        if url.path == "/drip":
            ms = float(query.get("ms", ["0"])[0])
            chunk = b"x" * 1000
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(10 * len(chunk)))
            self.send_header("x-instance", INSTANCE)
            self.end_headers()
            self.wfile.flush()
            for _ in range(10):
                time.sleep(ms / 10000.0)
                self.wfile.write(chunk)
                self.wfile.flush()
            return None
        if url.path == "/slow":
            ms = float(query.get("ms", ["0"])[0])
            time.sleep(ms / 1000.0)
            return self.reply(200, {"instance": INSTANCE, "slept_ms": ms})
        if self.command in ("POST", "PUT"):
            reply = TOPIC_STATUS.get(url.path, "SUCCESS")
            if isinstance(reply, int):
                return self.reply(reply, {"instance": INSTANCE})
            return self.reply(200, {"status": reply})
        return self.reply(404, {"instance": INSTANCE, "error": "not found"})

    def reply(self, status, answer):
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-instance", INSTANCE)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    server = Server(("127.0.0.1", PORT), Handler)
    print(f"governed_app {INSTANCE} listening on {PORT}", flush=True)
    server.serve_forever()
