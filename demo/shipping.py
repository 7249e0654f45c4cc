"""Shipping: subscribes to `orders`, records a shipment per order in the state store, and answers
`GET /shipments/<id>` (called by the orders app through service invocation).

Only Python's standard library is used: the app talks plain HTTP to its Mecha sidecar."""

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

APP_PORT = int(os.environ.get("APP_PORT", "5001"))
DAPR = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}"


def dapr(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(DAPR + path, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/dapr/subscribe":
            self.reply(200, json.dumps([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]).encode())
        elif self.path.startswith("/shipments/"):
            order_id = self.path.rsplit("/", 1)[-1]
            status, body = dapr("GET", f"/v1.0/state/statestore/shipment-{order_id}")
            self.reply(200 if status == 200 else 404, body)
        else:
            self.reply(404)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        event = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/orders":
            order = event.get("data", {})
            shipment = {"order": order.get("id"), "item": order.get("item"), "carrier": "mecha-express"}
            dapr("POST", "/v1.0/state/statestore", [{"key": f"shipment-{order.get('id')}", "value": shipment}])
            print(f"shipping: received order {order.get('id')} ({order.get('item')}) from {event.get('source')}, shipment recorded", flush=True)
            self.reply(200, json.dumps({"status": "SUCCESS"}).encode())
        else:
            self.reply(404)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"shipping: listening on {APP_PORT}", flush=True)
    try:
        ThreadingHTTPServer(("127.0.0.1", APP_PORT), Handler).serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
