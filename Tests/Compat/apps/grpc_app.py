"""A gRPC app written with the SDK's `dapr.ext.grpc.App` (AppCallback service).

Environment: APP_PORT, RECORD_FILE (one JSON line per call), APP_ID, PUBSUB (default `pubsub`).

Invocation methods:
  echo      the request data back with its content type, header `x-echo-app: <APP_ID>`
  whoami    JSON {"app", "method": "whoami", "content_type", "data", "metadata"}
  forward   a nested invocation, as the SDK's w3c-tracing example does: calls `whoami` on this app
            through the sidecar whose HTTP port is the request's JSON `http_port`, passing on the
            `traceparent` it received; answers {"received": <its traceparent>, "nested": <whoami's answer>}
Topics (pubsub PUBSUB):
  grpc-orders     SUCCESS
  grpc-routed     rule `event.type == "important"` -> handler `important`; rule
                  `event.data.kind == "audit"` -> `audit`; nothing else matches (dropped)
  grpc-retry      RETRY, dead-letter topic `grpc-retry-dlq`
  grpc-retry-dlq  SUCCESS
Input binding: `grpc-binding` recorded.
Own gRPC service (for gRPC proxying): /compat.Echo/Say, raw bytes in, b"<APP_ID>:" + bytes out.
"""

import json
import os
import threading
import urllib.request

import grpc

from dapr.clients.grpc._response import InvokeMethodResponse, TopicEventResponse
from dapr.ext.grpc import App, Rule, SubscriptionMessage

PORT = int(os.environ["APP_PORT"])
RECORD_FILE = os.environ["RECORD_FILE"]
APP_ID = os.environ.get("APP_ID", "")
PUBSUB = os.environ.get("PUBSUB", "pubsub")
LOCK = threading.Lock()

app = App()


def _say(request: bytes, context) -> bytes:
    record({"kind": "proxied", "data": request.decode("utf-8", errors="replace")})
    return APP_ID.encode() + b":" + request


_echo_service = grpc.method_handlers_generic_handler(
    "compat.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_say)}
)
app.add_external_service(lambda servicer, server: server.add_generic_rpc_handlers((servicer,)), _echo_service)


def record(entry):
    with LOCK, open(RECORD_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


def event_entry(kind, event: SubscriptionMessage):
    return {
        "kind": kind,
        "id": event.id(),
        "topic": event.topic(),
        "pubsub": event.pubsub_name(),
        "type": event.type(),
        "data_content_type": event.data_content_type(),
        "data": event.data() if isinstance(event.data(), (dict, list, str, int, float)) else repr(event.data()),
        "raw_data": event.raw_data().decode("utf-8", errors="replace"),
    }


@app.method("echo")
def echo(request):
    record({"kind": "invoke", "method": "echo", "data": request.text(), "content_type": request.content_type})
    response = InvokeMethodResponse(request.data, request.content_type or "application/octet-stream")
    response.headers = (("x-echo-app", APP_ID),)
    return response


@app.method("whoami")
def whoami(request):
    metadata = {key: value for key, value in request.metadata.items()} if isinstance(request.metadata, dict) else {}
    answer = {"app": APP_ID, "method": "whoami", "content_type": request.content_type, "data": request.text(), "metadata": metadata}
    return InvokeMethodResponse(json.dumps(answer), "application/json")


@app.method("forward")
def forward(request):
    received = request.metadata.get("traceparent") if isinstance(request.metadata, dict) else None
    if isinstance(received, (list, tuple)):
        received = received[0] if received else None
    port = json.loads(request.text())["http_port"]
    outgoing = urllib.request.Request(f"http://127.0.0.1:{port}/v1.0/invoke/{APP_ID}/method/whoami", data=b"nested", method="POST",
                                      headers={"traceparent": received or "", "content-type": "text/plain"})
    with urllib.request.urlopen(outgoing, timeout=10) as response:
        nested = json.loads(response.read())
    return InvokeMethodResponse(json.dumps({"received": received, "nested": nested}), "application/json")


@app.subscribe(pubsub_name=PUBSUB, topic="grpc-orders")
def grpc_orders(event: SubscriptionMessage) -> TopicEventResponse:
    record(event_entry("grpc-orders", event))
    return TopicEventResponse("success")


@app.subscribe(pubsub_name=PUBSUB, topic="grpc-routed", rule=Rule('event.type == "important"', 1))
def important(event: SubscriptionMessage) -> TopicEventResponse:
    record(event_entry("important", event))
    return TopicEventResponse("success")


@app.subscribe(pubsub_name=PUBSUB, topic="grpc-routed", rule=Rule('event.data.kind == "audit"', 2))
def audit(event: SubscriptionMessage) -> TopicEventResponse:
    record(event_entry("audit", event))
    return TopicEventResponse("success")


@app.subscribe(pubsub_name=PUBSUB, topic="grpc-retry", dead_letter_topic="grpc-retry-dlq")
def grpc_retry(event: SubscriptionMessage) -> TopicEventResponse:
    record(event_entry("grpc-retry", event))
    return TopicEventResponse("retry")


@app.subscribe(pubsub_name=PUBSUB, topic="grpc-retry-dlq")
def grpc_retry_dlq(event: SubscriptionMessage) -> TopicEventResponse:
    record(event_entry("grpc-retry-dlq", event))
    return TopicEventResponse("success")


@app.binding("grpc-binding")
def grpc_binding(request):
    record({"kind": "binding", "data": request.text()})


if __name__ == "__main__":
    print(f"grpc_app listening on {PORT}", flush=True)
    app.run(PORT, listen_address="127.0.0.1")
