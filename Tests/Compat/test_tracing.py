"""Distributed tracing (`spec.tracing`) on the built binary, with real collectors started here: a
Zipkin v2 receiver (HTTP, JSON), an OTLP/HTTP receiver and an OTLP/gRPC receiver (both decoding
with PyPI's `opentelemetry-proto`, the gRPC one served by `grpcio`). Checks the trace trees daprd
produces — caller `CallLocal` CLIENT span → callee SERVER span → the app's context, publish →
`pubsub/<topic>` delivery span in the subscriber's sidecar, component spans under API spans — and
that sampling 0 still propagates, that a dead collector costs requests nothing, and that a bad
`spec.tracing` stops the sidecar naming the field."""

import json
import subprocess
import threading
import time
import uuid
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import free_port, http, read_records, wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{INCOMING_SPAN}-01"


class Collected:
    """Spans a receiver got, as dicts {trace, id, parent, name, kind, service, attributes}."""

    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()
        self.requests = 0

    def add(self, spans):
        with self.lock:
            self.requests += 1
            self.spans.extend(spans)

    def named(self, name):
        with self.lock:
            return [span for span in self.spans if span["name"] == name]

    def wait_for(self, name, count=1, timeout=15):
        return wait_until(lambda: len(self.named(name)) >= count and self.named(name), timeout=timeout, what=f"span {name}")


def otlp_spans(request: trace_service_pb2.ExportTraceServiceRequest):
    spans = []
    kinds = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
    for resource_spans in request.resource_spans:
        service = next((kv.value.string_value for kv in resource_spans.resource.attributes if kv.key == "service.name"), "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append({
                    "trace": span.trace_id.hex(), "id": span.span_id.hex(), "parent": span.parent_span_id.hex() or None,
                    "name": span.name, "kind": kinds.get(span.kind, "UNSPECIFIED"), "service": service,
                    "attributes": {kv.key: kv.value.string_value or kv.value.int_value for kv in span.attributes},
                    "status": span.status.code,
                })
    return spans


@pytest.fixture
def receivers():
    """Starts collectors on free ports; yields a factory of (kind) -> (address, Collected)."""
    servers = []

    def start(kind: str):
        collected = Collected()
        port = free_port()
        if kind == "otlp-grpc":
            class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
                def Export(self, request, context):  # noqa: N802 - the generated service's name
                    collected.add(otlp_spans(request))
                    return trace_service_pb2.ExportTraceServiceResponse()

            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
            server.add_insecure_port(f"127.0.0.1:{port}")
            server.start()
            servers.append(lambda: server.stop(0))
            return f"127.0.0.1:{port}", collected

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if kind == "zipkin":
                    assert self.path == "/api/v2/spans", self.path
                    assert self.headers.get("content-type") == "application/json"
                    collected.add([{
                        "trace": span["traceId"], "id": span["id"], "parent": span.get("parentId"), "name": span["name"],
                        "kind": span.get("kind", "INTERNAL"), "service": span["localEndpoint"]["serviceName"],
                        "attributes": span.get("tags", {}),
                    } for span in json.loads(body)])
                else:
                    assert self.path == "/v1/traces", self.path
                    assert self.headers.get("content-type") == "application/x-protobuf"
                    assert self.headers.get("x-collector-token") == "secret-1"
                    request = trace_service_pb2.ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    collected.add(otlp_spans(request))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server.shutdown)
        return (f"http://127.0.0.1:{port}/api/v2/spans" if kind == "zipkin" else f"127.0.0.1:{port}"), collected

    yield start
    for stop in servers:
        stop()


def tracing_config(launcher, body: str):
    return launcher.file(f"tracing-{uuid.uuid4().hex[:8]}.yaml", "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n"
                         "  name: tracing\nspec:\n  tracing:\n" + body)


def zipkin_config(launcher, address, rate="1"):
    return tracing_config(launcher, f'    samplingRate: "{rate}"\n    zipkin:\n      endpointAddress: "{address}"\n')


def test_an_invocation_is_one_trace_caller_callee_app(module_launcher, receivers):
    address, collected = receivers("zipkin")
    config = zipkin_config(module_launcher, address)
    app = module_launcher.app("governed_app.py", env={"INSTANCE": "callee"})
    module_launcher.sidecar("tr-callee", app_port=app.port, config=config)
    caller = module_launcher.sidecar("tr-caller", config=config)

    status, headers, _ = http("GET", caller.http_url + "/v1.0/invoke/tr-callee/method/whoami", headers={"traceparent": TRACEPARENT})
    assert status == 200

    client_span = collected.wait_for("CallLocal/tr-callee/whoami", count=2)
    spans = {span["kind"]: span for span in collected.named("CallLocal/tr-callee/whoami")}
    caller_span, callee_span = spans["CLIENT"], spans["SERVER"]
    assert caller_span["trace"] == callee_span["trace"] == TRACE_ID
    assert caller_span["parent"] == INCOMING_SPAN
    assert callee_span["parent"] == caller_span["id"]
    assert caller_span["service"] == "tr-caller" and callee_span["service"] == "tr-callee"
    assert caller_span["attributes"]["rpc.service"] == "ServiceInvocation"
    assert caller_span["attributes"]["net.peer.name"] == "tr-callee"
    assert caller_span["attributes"]["dapr.status_code"] == "200"
    # The app saw the callee span's context: its own spans would be children of it.
    records = wait_until(lambda: read_records(app.record_file), what="the app's record")
    seen = records[-1]["headers"]
    seen = {k.lower(): v for k, v in seen.items()}
    assert seen["traceparent"] == f"00-{TRACE_ID}-{callee_span['id']}-01"
    assert client_span


def test_a_publish_links_to_the_delivery_in_the_subscribers_sidecar(module_launcher, receivers):
    address, collected = receivers("zipkin")
    config = zipkin_config(module_launcher, address)
    subscriptions = json.dumps([{"pubsubname": "pubsub", "topic": "traced", "route": "/traced"}])
    app = module_launcher.app("governed_app.py", env={"INSTANCE": "sub", "SUBSCRIPTIONS": subscriptions})
    module_launcher.sidecar("tr-sub", app_port=app.port, config=config)
    publisher = module_launcher.sidecar("tr-pub", config=config)

    status, _, body = http("POST", publisher.http_url + "/v1.0/publish/pubsub/traced", body=b'{"n": 1}',
                           headers={"content-type": "application/json", "traceparent": TRACEPARENT})
    assert status == 204, body

    publish = collected.wait_for("/v1.0/publish/pubsub/traced")[0]
    delivery = collected.wait_for("pubsub/traced")[0]
    assert publish["trace"] == delivery["trace"] == TRACE_ID
    assert publish["parent"] == INCOMING_SPAN
    assert delivery["parent"] == publish["id"]
    assert delivery["service"] == "tr-sub"
    assert delivery["attributes"]["messaging.destination.name"] == "traced"
    # The component call under the publish.
    egress = collected.wait_for("pubsub/pubsub/publish")[0]
    assert egress["parent"] == publish["id"] and egress["kind"] == "PRODUCER"
    records = wait_until(lambda: [r for r in read_records(app.record_file) if r.get("path") == "/traced"], what="the delivery")
    headers = {k.lower(): v for k, v in records[-1]["headers"].items()}
    assert headers["traceparent"] == f"00-{TRACE_ID}-{delivery['id']}-01"


def test_sdk_grpc_calls_export_over_otlp_grpc_with_component_children(module_launcher, receivers, dapr_client):
    address, collected = receivers("otlp-grpc")
    config = tracing_config(module_launcher, f'    samplingRate: "1"\n    otel:\n      endpointAddress: "{address}"\n      protocol: grpc\n      isSecure: false\n')
    sidecar = module_launcher.sidecar("tr-otlp-grpc", config=config)
    with dapr_client(sidecar) as client:
        client.save_state("statestore", "traced-key", "v")
    api = collected.wait_for("/dapr.proto.runtime.v1.Dapr/SaveState")[0]
    child = collected.wait_for("state/statestore/set")[0]
    assert api["kind"] == "CLIENT" and api["service"] == "tr-otlp-grpc"
    assert api["attributes"]["dapr.protocol"] == "grpc"
    assert child["trace"] == api["trace"] and child["parent"] == api["id"]
    assert child["attributes"]["db.system"] == "state" and child["attributes"]["db.name"] == "statestore"


def test_otlp_http_export_carries_the_configured_headers(module_launcher, receivers):
    address, collected = receivers("otlp-http")
    config = tracing_config(module_launcher, f'    samplingRate: "1"\n    otel:\n      endpointAddress: "{address}"\n      protocol: http\n'
                            '      headers:\n        - name: x-collector-token\n          value: secret-1\n')
    sidecar = module_launcher.sidecar("tr-otlp-http", config=config)
    status, _, _ = http("GET", sidecar.http_url + "/v1.0/state/statestore/nothing", headers={"traceparent": TRACEPARENT})
    assert status == 204
    span = collected.wait_for("/v1.0/state/statestore/nothing")[0]
    assert span["trace"] == TRACE_ID and span["parent"] == INCOMING_SPAN
    assert span["attributes"]["dapr.api"] == "GET /v1.0/state/statestore/nothing"


def test_sampling_zero_records_nothing_but_still_propagates(module_launcher, receivers):
    address, collected = receivers("zipkin")
    config = zipkin_config(module_launcher, address, rate="0")
    app = module_launcher.app("governed_app.py", env={"INSTANCE": "z"})
    module_launcher.sidecar("tr-zero-callee", app_port=app.port, config=config)
    caller = module_launcher.sidecar("tr-zero-caller", config=config)
    for _ in range(5):
        assert http("GET", caller.http_url + "/v1.0/invoke/tr-zero-callee/method/whoami")[0] == 200
    records = wait_until(lambda: len(read_records(app.record_file)) >= 5 and read_records(app.record_file), what="five calls")
    for record in records:
        headers = {k.lower(): v for k, v in record["headers"].items()}
        parts = headers["traceparent"].split("-")
        assert len(parts) == 4 and parts[3] == "00", headers["traceparent"]
    time.sleep(2.5)
    assert collected.spans == []


def test_a_dead_collector_costs_requests_nothing(module_launcher):
    dead = free_port()  # nothing listens there
    config = zipkin_config(module_launcher, f"http://127.0.0.1:{dead}/api/v2/spans")
    sidecar = module_launcher.sidecar("tr-dead", config=config)
    started = time.monotonic()
    for index in range(200):
        status, _, _ = http("POST", sidecar.http_url + "/v1.0/state/statestore", body=json.dumps([{"key": f"d{index}", "value": index}]).encode())
        assert status == 204
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"200 saves took {elapsed:.1f}s with a dead collector"

    def failures():
        status, _, body = http("GET", f"http://127.0.0.1:{sidecar.metrics_port}/metrics")
        for line in body.decode().splitlines():
            if line.startswith("mecha_tracing_export_failures_total{"):
                return float(line.rsplit(" ", 1)[1]) > 0
        return False

    wait_until(failures, timeout=20, what="the failed exports to be counted")
    assert sidecar.healthz() == 204


@pytest.mark.parametrize("yaml, field, reason", [
    ('    samplingRate: "2"\n', "spec.tracing.samplingRate", "from 0 to 1"),
    ('    zipkin:\n      endpointAddress: "localhost:9411"\n', "spec.tracing.zipkin.endpointAddress", "http:// or https:// URL"),
    ('    otel:\n      endpointAddress: "localhost:4317"\n      protocol: thrift\n', "spec.tracing.otel.protocol", "grpc or http"),
    ('    otel:\n      endpointAddress: "no-port"\n', "spec.tracing.otel.endpointAddress", "host:port"),
    ('    sampling: "1"\n', "spec.tracing.sampling", "unknown field"),
])
def test_a_bad_tracing_spec_is_a_startup_error_naming_the_field(module_launcher, yaml, field, reason):
    config = tracing_config(module_launcher, yaml)
    argv, *_ = module_launcher.sidecar_argv("tr-bad", config=config)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert config.name in output and field in output and reason in output, output


@pytest.mark.grpc_app
def test_the_sdk_w3c_flow_http_caller_grpc_app_nested_invocation_is_one_tree(module_launcher, receivers):
    """The Python SDK's w3c-tracing example's shape: an HTTP caller invokes a gRPC app (written
    with `dapr.ext.grpc.App`), which invokes again through its sidecar passing on the trace
    context it received."""
    address, collected = receivers("zipkin")
    config = zipkin_config(module_launcher, address)
    app = module_launcher.app("grpc_app.py", env={"APP_ID": "tr-grpc"})
    callee = module_launcher.sidecar("tr-grpc", app_port=app.port, app_protocol="grpc", config=config)
    front = module_launcher.sidecar("tr-front", config=config)

    status, _, body = http("POST", front.http_url + "/v1.0/invoke/tr-grpc/method/forward", body=json.dumps({"http_port": callee.http_port}).encode(),
                           headers={"traceparent": TRACEPARENT, "content-type": "application/json"}, timeout=20)
    assert status == 200, body
    answer = json.loads(body)

    forward = {span["kind"]: span for span in collected.wait_for("CallLocal/tr-grpc/forward", count=2)}
    # The nested call targets the app's own id: its sidecar delivers it locally (as daprd, no
    # sidecar-to-sidecar hop, so no SERVER span).
    nested = {span["kind"]: span for span in collected.wait_for("CallLocal/tr-grpc/whoami")}
    spans = [forward["CLIENT"], forward["SERVER"], nested["CLIENT"]]
    assert {span["trace"] for span in spans} == {TRACE_ID}
    assert forward["CLIENT"]["parent"] == INCOMING_SPAN and forward["CLIENT"]["service"] == "tr-front"
    assert forward["SERVER"]["parent"] == forward["CLIENT"]["id"]
    # The app received the callee span's context over gRPC metadata and passed it on.
    assert answer["received"] == f"00-{TRACE_ID}-{forward['SERVER']['id']}-01"
    assert nested["CLIENT"]["parent"] == forward["SERVER"]["id"] and nested["CLIENT"]["service"] == "tr-grpc"
    leaf = answer["nested"]["metadata"].get("traceparent")
    leaf = leaf[0] if isinstance(leaf, list) else leaf
    assert leaf == f"00-{TRACE_ID}-{nested['CLIENT']['id']}-01"


def test_an_input_binding_event_gets_a_delivery_span_the_app_continues(module_launcher, receivers):
    address, collected = receivers("zipkin")
    config = zipkin_config(module_launcher, address)
    resources = module_launcher.resources("tracing-cron", {
        "cron.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: tick
            spec:
              type: bindings.cron
              version: v1
              metadata:
              - name: schedule
                value: "@every 1s"
            """,
    })
    app = module_launcher.app("http_app.py", env={"BINDING_ROUTES": "/tick"})
    module_launcher.sidecar("tr-cron", app_port=app.port, config=config, resources=[resources])
    span = collected.wait_for("bindings/tick")[0]
    assert span["service"] == "tr-cron" and span["attributes"]["db.system"] == "bindings"
    records = wait_until(lambda: [r for r in read_records(app.record_file) if r.get("path") == "/tick" and r.get("method") == "POST"],
                         what="the cron event at the app")
    traceparents = {({k.lower(): v for k, v in r["headers"].items()}).get("traceparent", "") for r in records}
    assert any(header.split("-")[2] == span["id"] for header in traceparents if header.count("-") == 3), (traceparents, span)


def test_an_output_binding_call_carries_the_api_span_context(module_launcher, receivers):
    address, collected = receivers("zipkin")
    config = zipkin_config(module_launcher, address)
    target = module_launcher.app("http_app.py")
    resources = module_launcher.resources("tracing-http-binding", {
        "webhook.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: webhook
            spec:
              type: bindings.http
              version: v1
              metadata:
              - name: url
                value: "http://127.0.0.1:{target.port}/hook"
            """,
    })
    sidecar = module_launcher.sidecar("tr-outbind", config=config, resources=[resources])
    status, _, body = http("POST", sidecar.http_url + "/v1.0/bindings/webhook", body=json.dumps({"operation": "post", "data": {"n": 1}}).encode(),
                           headers={"traceparent": TRACEPARENT, "content-type": "application/json"})
    assert status in (200, 204), body
    api = collected.wait_for("/v1.0/bindings/webhook")[0]
    call = collected.wait_for("bindings/webhook/invoke")[0]
    assert api["parent"] == INCOMING_SPAN and call["parent"] == api["id"]
    assert call["attributes"]["db.operation"] == "post"
    records = wait_until(lambda: [r for r in read_records(target.record_file) if r.get("path") == "/hook"], what="the binding's request")
    assert records[-1]["headers"]["traceparent"] == f"00-{TRACE_ID}-{api['id']}-01"
