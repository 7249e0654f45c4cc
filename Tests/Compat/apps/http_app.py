"""A plain `http.server` app, as a Dapr user without a framework writes one.

Environment:
  APP_PORT        where it listens (127.0.0.1)
  RECORD_FILE     every request it receives is appended there as one JSON line
                  {"method", "path", "query", "headers", "body", "json"}
  SUBSCRIPTIONS   JSON answered on GET /dapr/subscribe (default: [])
  TOPIC_STATUS    JSON {route: reply} for topic deliveries: "SUCCESS", "RETRY", "DROP" (answered as
                  {"status": ...} with 200), "RETRY:<n>" (RETRY for the first n deliveries of an
                  event id, SUCCESS after) or an integer HTTP status; routes not listed answer SUCCESS
  APP_ID          echoed in the answers of the invocation routes
  BINDING_ROUTES  comma-separated paths whose OPTIONS answers 200 (the app takes those input
                  bindings); any other OPTIONS answers 404

Routes:
  GET  /dapr/subscribe       the SUBSCRIPTIONS
  GET  /healthz              200
  *    /echo[...]            200, the request body back with its content type; headers
                             x-echo-method, x-echo-query, x-echo-app
  *    /status/<code>        <code> with body {"status": <code>}
  *    /whoami               200 {"app": APP_ID, "method", "path", "query", "headers"}
  POST anything else         a topic delivery or binding event: recorded, answered per TOPIC_STATUS
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT = int(os.environ["APP_PORT"])
RECORD_FILE = os.environ.get("RECORD_FILE")
SUBSCRIPTIONS = json.loads(os.environ.get("SUBSCRIPTIONS", "[]"))
TOPIC_STATUS = json.loads(os.environ.get("TOPIC_STATUS", "{}"))
APP_ID = os.environ.get("APP_ID", "")
BINDING_ROUTES = {route for route in os.environ.get("BINDING_ROUTES", "").split(",") if route}
LOCK = threading.Lock()
DELIVERIES = {}


def record(entry):
    if not RECORD_FILE:
        return
    with LOCK, open(RECORD_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        print("%s %s" % (self.address_string(), format % args), flush=True)

    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        text = body.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"method": self.command, "path": url.path, "query": url.query, "headers": headers, "body": text, "json": parsed}

        if url.path == "/dapr/subscribe" and self.command == "GET":
            return self.reply(200, json.dumps(SUBSCRIPTIONS).encode(), "application/json")
        if url.path == "/dapr/config" and self.command == "GET":
            return self.reply(200, b"{}", "application/json")
        if url.path == "/healthz":
            return self.reply(200, b"ok", "text/plain")
        if url.path.startswith("/echo"):
            record(entry)
            return self.reply(
                200, body, self.headers.get("Content-Type") or "application/octet-stream",
                {"x-echo-method": self.command, "x-echo-query": url.query, "x-echo-app": APP_ID},
            )
        if url.path.startswith("/status/"):
            record(entry)
            code = int(url.path.rsplit("/", 1)[1])
            return self.reply(code, json.dumps({"status": code}).encode(), "application/json")
        if url.path == "/whoami":
            record(entry)
            answer = {"app": APP_ID, "method": self.command, "path": url.path, "query": url.query, "headers": headers}
            return self.reply(200, json.dumps(answer).encode(), "application/json")
        if self.command in ("POST", "PUT"):
            record(entry)
            reply = TOPIC_STATUS.get(url.path, "SUCCESS")
            if isinstance(reply, str) and reply.startswith("RETRY:"):
                event_id = (parsed or {}).get("id") if isinstance(parsed, dict) else None
                with LOCK:
                    DELIVERIES[event_id] = DELIVERIES.get(event_id, 0) + 1
                    seen = DELIVERIES[event_id]
                reply = "RETRY" if seen <= int(reply.split(":", 1)[1]) else "SUCCESS"
            if isinstance(reply, int):
                return self.reply(reply, b"", "text/plain")
            return self.reply(200, json.dumps({"status": reply}).encode(), "application/json")
        if self.command == "OPTIONS":
            return self.reply(200 if url.path in BINDING_ROUTES else 404, b"", "text/plain")
        return self.reply(404, b"not found", "text/plain")

    def reply(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_any


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    print(f"http_app listening on {PORT}", flush=True)
    server.serve_forever()
