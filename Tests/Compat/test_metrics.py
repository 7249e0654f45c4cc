"""Prometheus metrics with Dapr's names, scraped by a real Prometheus server (Debian's
`prometheus`, started here on a free port with a generated scrape configuration): two sidecars
serve known traffic, and PromQL queries over Prometheus's HTTP API return what was sent — counts,
errors, latency buckets, rates. Also: the series budget keeps memory flat under unbounded paths,
`--enable-metrics=false` serves nothing, and a bad `spec.metrics` is a startup error naming the
file and field."""

import json
import shutil
import subprocess
import time
import urllib.parse
from http.client import HTTPConnection

import pytest

from conftest import Process, free_port, http, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def scrape(sidecar) -> str:
    status, _, body = http("GET", f"http://127.0.0.1:{sidecar.metrics_port}/metrics")
    assert status == 200, body
    return body.decode()


def send(connection, method: str, path: str, times: int = 1, body=None, headers=None):
    """`times` requests on a kept-alive connection; the statuses answered."""
    statuses = []
    for _ in range(times):
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    return statuses


def series(text: str, name: str) -> dict:
    """{labels text: value} for the samples of `name` in an exposition."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            found[labels[len(name):]] = float(value)
    return found


@pytest.fixture
def prometheus(module_launcher):
    """prometheus(targets) -> a function running a PromQL instant query, against a Prometheus
    server scraping `targets` (host:port) every second."""
    if not shutil.which("prometheus") and not shutil.which(PROMETHEUS):
        pytest.fail("the metrics tests need Prometheus: apt-get install prometheus")
    started = []

    def start(targets):
        port = free_port()
        root = module_launcher.root / f"prometheus-{port}"
        root.mkdir()
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
            "scrape_configs:\n  - job_name: mecha\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
        )
        process = Process(
            name=f"prometheus {port}",
            argv=[PROMETHEUS, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                  f"--storage.tsdb.path={root / 'data'}", "--log.level=warn"],
            log_path=root / "prometheus.log",
        )
        started.append(process)

        def query(promql: str):
            status, _, body = http("GET", f"http://127.0.0.1:{port}/api/v1/query?query=" + urllib.parse.quote(promql), timeout=5)
            assert status == 200, body
            document = json.loads(body)
            assert document["status"] == "success", document
            return document["data"]["result"]

        def targets_up():
            try:
                return len(query("up == 1")) == len(targets)
            except (OSError, AssertionError):
                return False

        wait_until(targets_up, timeout=60, what="Prometheus to scrape every sidecar")
        return query

    yield start
    for process in started:
        process.stop()


def value(result) -> float:
    """The single value of an instant query's result (0 when it has no series)."""
    if not result:
        return 0.0
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_scrapes_two_sidecars_and_promql_returns_the_traffic_sent(module_launcher, prometheus):
    app = module_launcher.app("governed_app.py", env={"INSTANCE": "b"})
    callee = module_launcher.sidecar("mx-callee", app_port=app.port)
    caller = module_launcher.sidecar("mx-caller")
    query = prometheus([f"127.0.0.1:{caller.metrics_port}", f"127.0.0.1:{callee.metrics_port}"])

    connection = HTTPConnection("127.0.0.1", caller.http_port, timeout=10)
    assert send(connection, "GET", "/v1.0/invoke/mx-callee/method/whoami", 30) == [200] * 30
    send(connection, "GET", "/v1.0/invoke/mx-callee/method/slow?ms=300", 3)
    assert send(connection, "GET", "/v1.0/invoke/mx-ghost/method/whoami", 5) == [500] * 5
    for index in range(10):
        assert send(connection, "POST", "/v1.0/state/statestore", body=json.dumps([{"key": f"k{index}", "value": index}]),
                    headers={"content-type": "application/json"}) == [204]
    connection.close()

    caller_labels = 'app_id="mx-caller"'

    def counted():
        return value(query(f'sum(dapr_runtime_service_invocation_req_sent_total{{{caller_labels},dst_app_id="mx-callee"}})')) == 33

    wait_until(counted, timeout=30, what="Prometheus to see the 33 invocations sent")

    def eventually(promql: str, expected: float, at_least: bool = False):
        # Each sidecar is scraped every second: its latest figures may be one scrape behind.
        seen = {}

        def check():
            seen["value"] = value(query(promql))
            return seen["value"] >= expected if at_least else seen["value"] == expected

        try:
            wait_until(check, timeout=10, what=promql)
        except BaseException:
            pytest.fail(f"{promql} = {seen.get('value')}, expected {expected}")

    # The caller's side of service invocation: sent, answered (by status), latency.
    eventually(f'dapr_runtime_service_invocation_res_recv_total{{{caller_labels},src_app_id="mx-callee",status="200"}}', 33)
    eventually(f'dapr_runtime_service_invocation_res_recv_total{{{caller_labels},src_app_id="mx-ghost",status="500"}}', 5)
    # The three slow calls are the only ones in the buckets above 250 ms.
    slow = f'dapr_runtime_service_invocation_res_recv_latency_ms_bucket{{{caller_labels},src_app_id="mx-callee",status="200"'
    eventually(slow + ',le=~"250(\\\\.0)?"}', 30)
    eventually(slow + ',le="+Inf"}', 33)
    # The callee's side.
    eventually('dapr_runtime_service_invocation_req_recv_total{app_id="mx-callee",src_app_id="mx-caller"}', 33)
    eventually('dapr_runtime_service_invocation_res_sent_total{app_id="mx-callee",dst_app_id="mx-caller",status="200"}', 33)
    # The callee's sidecar calling its app (daprd's app channel metrics): the 33 invocations (and
    # the subscription listing at startup), of which only the three slow ones above 250 ms.
    eventually('sum(dapr_http_client_completed_count{app_id="mx-callee",method="GET",status="200"})', 33, at_least=True)
    client = 'sum(dapr_http_client_roundtrip_latency_bucket{app_id="mx-callee",status="200",le="%s"})'
    eventually(f'{client % "+Inf"} - {client % "250.0"}', 3)
    eventually('sum(dapr_http_client_sent_bytes_count{app_id="mx-callee"})', 33, at_least=True)
    # The HTTP server, by status: 33 invocations answered 200, 5 failed, 10 saves.
    eventually(f'sum(dapr_http_server_request_count{{{caller_labels},status="200"}})', 33)
    eventually(f'sum(dapr_http_server_request_count{{{caller_labels},status="500"}})', 5)
    eventually(f'sum(dapr_http_server_request_count{{{caller_labels},method="POST",status="204"}})', 10)
    eventually(f'sum(dapr_http_server_latency_count{{{caller_labels},status=~"200|500"}})', 38)
    # Components: ten saves on the caller's state store.
    eventually(f'dapr_component_state_count{{{caller_labels},component="statestore",operation="set",success="true"}}', 10)
    eventually(f'dapr_runtime_component_loaded{{{caller_labels}}}', 3, at_least=True)
    # A rate over the window: non-zero while the traffic is in it. A series' first sample is not an
    # increase for Prometheus, so more traffic follows once every series exists.
    connection = HTTPConnection("127.0.0.1", caller.http_port, timeout=10)
    assert send(connection, "GET", "/v1.0/invoke/mx-callee/method/whoami", 5) == [200] * 5
    connection.close()
    wait_until(lambda: value(query(f'sum(rate(dapr_http_server_request_count{{{caller_labels}}}[1m]))')) > 0,
               timeout=10, what="a non-zero rate of the caller's requests")
    # Process figures.
    assert value(query(f'process_resident_memory_bytes{{instance="127.0.0.1:{caller.metrics_port}"}}')) > 1_000_000


def test_grpc_calls_and_pubsub_flow_are_counted(module_launcher, dapr_client):
    sidecar = module_launcher.sidecar("mx-grpc")
    with dapr_client(sidecar) as client:
        client.save_state("statestore", "a", "1")
        client.get_state("statestore", "a")
        client.publish_event("pubsub", "orders", json.dumps({"n": 1}), data_content_type="application/json")
        with pytest.raises(Exception):
            client.get_state("nostore", "a")
    text = scrape(sidecar)
    completed = series(text, "dapr_grpc_io_server_completed_rpcs")
    assert completed['{app_id="mx-grpc",grpc_server_method="/dapr.proto.runtime.v1.Dapr/SaveState",grpc_server_status="OK"}'] == 1
    assert completed['{app_id="mx-grpc",grpc_server_method="/dapr.proto.runtime.v1.Dapr/GetState",grpc_server_status="OK"}'] == 1
    assert completed['{app_id="mx-grpc",grpc_server_method="/dapr.proto.runtime.v1.Dapr/GetState",grpc_server_status="InvalidArgument"}'] == 1
    egress = series(text, "dapr_component_pubsub_egress_count")
    assert egress['{app_id="mx-grpc",component="pubsub",namespace="default",success="true",topic="orders"}'] == 1
    assert any(label.startswith('{app_id="mx-grpc",grpc_server_method="/dapr.proto.runtime.v1.Dapr/GetState"')
               for label in series(text, "dapr_grpc_io_server_server_latency_count"))


def test_every_invocation_form_is_counted_on_the_callers_side(module_launcher, dapr_client):
    """The invoke URL, the `dapr-app-id` header (both through the fast path) and the SDK's gRPC
    `InvokeService` all count as invocations sent by the caller's sidecar, with the answer's status."""
    app = module_launcher.app("governed_app.py", env={"INSTANCE": "forms"})
    callee = module_launcher.sidecar("mx-forms-callee", app_port=app.port)
    caller = module_launcher.sidecar("mx-forms-caller")
    connection = HTTPConnection("127.0.0.1", caller.http_port, timeout=10)
    assert send(connection, "GET", "/v1.0/invoke/mx-forms-callee/method/whoami", 2) == [200] * 2
    assert send(connection, "GET", "/whoami", 3, headers={"dapr-app-id": "mx-forms-callee"}) == [200] * 3
    connection.close()
    with dapr_client(caller) as client:
        for _ in range(4):
            client.invoke_method("mx-forms-callee", "whoami", data=b"", http_verb="GET")
    text = scrape(caller)
    labels = '{app_id="mx-forms-caller",dst_app_id="mx-forms-callee",type="unary"}'
    assert series(text, "dapr_runtime_service_invocation_req_sent_total").get(labels) == 9, text
    received = series(text, "dapr_runtime_service_invocation_res_recv_total")
    assert received.get('{app_id="mx-forms-caller",src_app_id="mx-forms-callee",status="200",type="unary"}') == 9
    assert callee.alive()


def test_record_error_codes_counts_the_errors_answered_by_code_and_category(module_launcher, dapr_client):
    config = module_launcher.file("metrics-error-codes.yaml", """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: errorcodes
spec:
  metrics:
    recordErrorCodes: true
""")
    sidecar = module_launcher.sidecar("mx-errors", config=config)
    status, headers, body = http("GET", f"{sidecar.http_url}/v1.0/state/nostore/k")
    assert status == 400 and json.loads(body)["errorCode"] == "ERR_STATE_STORE_NOT_FOUND", body
    # The code travels to the metrics inside the sidecar only: it never reaches the caller.
    assert not any(name.lower() == "x-mecha-error-code" for name in headers), headers
    status, headers, body = http("GET", f"{sidecar.http_url}/v1.0/invoke/mx-ghost/method/x")
    assert status == 500 and json.loads(body)["errorCode"] == "ERR_DIRECT_INVOKE", body
    assert not any(name.lower() == "x-mecha-error-code" for name in headers), headers
    with dapr_client(sidecar) as client:
        with pytest.raises(Exception):
            client.get_state("nostore", "k")
    counted = series(scrape(sidecar), "dapr_error_code_total")
    assert counted.get('{app_id="mx-errors",error_code="ERR_STATE_STORE_NOT_FOUND",category="state"}') == 2, counted
    assert counted.get('{app_id="mx-errors",error_code="ERR_DIRECT_INVOKE",category="service-invocation"}') == 1, counted
    # Without `recordErrorCodes` nothing is counted.
    plain = module_launcher.sidecar("mx-errors-off")
    http("GET", f"{plain.http_url}/v1.0/state/nostore/k")
    assert series(scrape(plain), "dapr_error_code_total") == {}


def test_unbounded_paths_fold_into_other_and_memory_stays_flat(module_launcher):
    config = module_launcher.file("metrics-budget.yaml", """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: budget
spec:
  metrics:
    seriesLimit: 200
    http:
      increasedCardinality: true
""")
    sidecar = module_launcher.sidecar("mx-budget", config=config)

    def rss() -> float:
        return series(scrape(sidecar), "process_resident_memory_bytes")[""]

    def send(start: int, count: int):
        connection = HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
        for index in range(start, start + count):
            connection.request("GET", f"/v1.0/nothing/{index}")
            response = connection.getresponse()
            response.read()
        connection.close()

    send(0, 5_000)
    baseline = rss()
    deadline = time.monotonic() + 120
    sent = 5_000
    while sent < 100_000 and time.monotonic() < deadline:
        send(sent, 5_000)
        sent += 5_000
    assert sent >= 50_000, f"only {sent} requests in 120 s"
    text = scrape(sidecar)
    paths = series(text, "dapr_http_server_request_count")
    # 200 real series, then the unbounded label folds into `_other`.
    assert len(paths) <= 201, len(paths)
    assert any('path="_other"' in label for label in paths)
    folded = series(text, "mecha_metrics_folded_total")['{metric="dapr_http_server_request_count"}']
    assert folded >= sent - 200
    growth = rss() - baseline
    assert growth < 8_000_000, f"RSS grew by {growth / 1e6:.1f} MB over {sent} distinct paths"


def test_metrics_can_be_switched_off(module_launcher):
    sidecar = module_launcher.sidecar("mx-off", extra_args=["--enable-metrics=false"])
    with pytest.raises(OSError):
        http("GET", f"http://127.0.0.1:{sidecar.metrics_port}/metrics", timeout=2)
    assert sidecar.healthz() == 204


@pytest.mark.parametrize("field, yaml, reason", [
    ("spec.metrics.rules[0].labels[0].regex.x", "rules:\n      - name: dapr_http_server_request_count\n        labels:\n          - name: path\n            regex:\n              x: '(unclosed'",
     "not a valid regular expression"),
    ("spec.metrics.latencyDistributionBuckets[1]", "latencyDistributionBuckets: [5, 2]", "bucket bounds must increase"),
    ("spec.metrics.http.pathMatching[0]", "http:\n      pathMatching: ['orders/{id}']", "starts with '/'"),
    ("spec.metrics.enabeld", "enabeld: true", "unknown field"),
])
def test_a_bad_metrics_spec_is_a_startup_error_naming_the_field(module_launcher, field, yaml, reason):
    config = module_launcher.file(f"bad-metrics-{abs(hash(field))}.yaml",
                                  "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: bad\nspec:\n  metrics:\n    " + yaml + "\n")
    argv, *_ = module_launcher.sidecar_argv("mx-bad", config=config)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(config.name) in output and field in output and reason in output, output
