"""A tiny HTTP app that records every request it receives.

Environment:
  APP_PORT        where it listens (127.0.0.1)
  RECORD_FILE     every request is appended there as one JSON line
                  {"method", "path", "raw_path", "headers", "body"}
  SUBSCRIPTIONS   JSON answered on GET /dapr/subscribe (default: [])
  TOPIC_REPLY     body answered (200) to anything but the routes below (default {"status": "SUCCESS"};
                  {"status": "RETRY"} makes every topic delivery a retry)

Answers: GET /dapr/subscribe the SUBSCRIPTIONS; /dapr/config {}; /echo... 200 with the request
body; anything else 200 with TOPIC_REPLY (by default a topic delivery is accepted).
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT = int(os.environ["APP_PORT"])
RECORD_FILE = os.environ.get("RECORD_FILE")
SUBSCRIPTIONS = os.environ.get("SUBSCRIPTIONS", "[]").encode()
TOPIC_REPLY = os.environ.get("TOPIC_REPLY", '{"status":"SUCCESS"}').encode()
LOCK = threading.Lock()


def record(entry):
    if RECORD_FILE:
        with LOCK, open(RECORD_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record({"method": self.command, "path": url.path, "raw_path": self.path, "headers": headers,
                "body": body.decode("utf-8", errors="replace")})
        if url.path == "/dapr/subscribe":
            return self.reply(200, SUBSCRIPTIONS, "application/json")
        if url.path == "/dapr/config":
            return self.reply(200, b"{}", "application/json")
        if url.path.startswith("/echo"):
            return self.reply(200, body, self.headers.get("Content-Type") or "application/octet-stream")
        return self.reply(200, TOPIC_REPLY, "application/json")

    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server(("127.0.0.1", PORT), Handler).serve_forever()
