"""API logging (`--enable-api-logging`, `spec.logging.apiLogging`) and health detail
(`GET /v1.0/healthz?detail`, Layotto's `/actuator/health/*`) on the built binary, driven over
HTTP and with the official Python SDK over gRPC."""

import json
import time

import pytest

from conftest import free_port, http, start_redis, wait_until

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def api_lines(sidecar) -> list[dict]:
    """The sidecar's JSON log lines that log an API call."""
    lines = []
    for line in sidecar.log_text().splitlines():
        line = line.strip()
        if line.startswith("{") and "API Called" in line:
            lines.append(json.loads(line))
    return lines


def logging_config(launcher, name: str, **fields) -> "Path":
    body = "\n".join(f"      {key}: {'true' if value else 'false'}" for key, value in fields.items())
    return launcher.file(f"{name}.yaml", f"""apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: {name}
spec:
  logging:
    apiLogging:
{body}
""")


def test_the_flag_logs_every_http_and_grpc_call_with_trace_ids(module_launcher, dapr_client):
    sidecar = module_launcher.sidecar("apilog-flag", extra_args=["--enable-api-logging", "--log-as-json"])
    status, _, _ = http("POST", sidecar.http_url + "/v1.0/state/statestore", body=json.dumps([{"key": "k1", "value": 1}]).encode(),
                        headers={"traceparent": TRACEPARENT, "user-agent": "compat-test/1"})
    assert status == 204
    with dapr_client(sidecar) as client:
        client.get_state("statestore", "k1")

    def logged():
        lines = api_lines(sidecar)
        return any(line["msg"] == "gRPC API Called" for line in lines) and lines

    lines = wait_until(logged, timeout=10, what="both API log lines")
    http_line = next(line for line in lines if line["method"] == "POST /v1.0/state/statestore")
    assert http_line["msg"] == "HTTP API Called"
    assert http_line["scope"] == "dapr.runtime.http-info"
    assert http_line["code"] == "204"
    assert http_line["useragent"] == "compat-test/1"
    assert http_line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert http_line["span_id"] == "b7ad6b7169203331"
    assert int(http_line["duration"]) >= 0
    grpc_line = next(line for line in lines if line["msg"] == "gRPC API Called")
    assert grpc_line["method"] == "/dapr.proto.runtime.v1.Dapr/GetState"
    assert grpc_line["code"] == "OK"
    assert grpc_line["scope"] == "dapr.runtime.grpc-info"
    # Health probes (the harness's readiness checks) are logged unless omitted.
    assert any(line["method"].startswith("GET /v1.0/healthz") for line in lines)


def test_the_configuration_obfuscates_urls_and_omits_health_checks(module_launcher):
    config = logging_config(module_launcher, "apilog-obfuscated", enabled=True, obfuscateURLs=True, omitHealthChecks=True)
    sidecar = module_launcher.sidecar("apilog-config", config=config, extra_args=["--log-as-json"])
    http("POST", sidecar.http_url + "/v1.0/state/statestore", body=json.dumps([{"key": "secret-key-42", "value": 1}]).encode())
    http("GET", sidecar.http_url + "/v1.0/state/statestore/secret-key-42")
    http("POST", sidecar.http_url + "/v1.0/publish/pubsub/orders-topic", body=b"{}", headers={"content-type": "application/json"})
    lines = wait_until(lambda: len(api_lines(sidecar)) >= 3 and api_lines(sidecar), timeout=10, what="three API log lines")
    methods = [line["method"] for line in lines]
    assert "POST /v1.0/state/{name}" in methods
    assert "GET /v1.0/state/{name}/{key}" in methods
    assert "POST /v1.0/publish/{pubsubname}/{topic}" in methods
    assert not any("secret-key-42" in method or "orders-topic" in method for method in methods)
    assert not any("healthz" in method for method in methods)


def test_the_flag_set_to_false_overrides_the_configuration(module_launcher):
    config = logging_config(module_launcher, "apilog-on", enabled=True)
    sidecar = module_launcher.sidecar("apilog-off", config=config, extra_args=["--enable-api-logging=false", "--log-as-json"])
    http("GET", sidecar.http_url + "/v1.0/metadata")
    time.sleep(0.5)
    assert api_lines(sidecar) == []


def component_named(report: dict, name: str) -> dict:
    return next(component for component in report["components"] if component["name"] == name)


def test_health_detail_names_the_broken_component_without_affecting_readiness(module_launcher):
    port = free_port()
    redis = start_redis(module_launcher, port)
    resources = module_launcher.resources("health-resources", {
        "cache.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: cache
            spec:
              type: state.redis
              version: v1
              metadata:
                - name: redisHost
                  value: 127.0.0.1:{port}
                - name: redisPassword
                  value: ""
            """,
        "local.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: local
            spec:
              type: state.in-memory
              version: v1
            """,
    })
    sidecar = module_launcher.sidecar("health-detail", resources=[resources])
    assert http("POST", sidecar.http_url + "/v1.0/state/cache", body=json.dumps([{"key": "a", "value": 1}]).encode())[0] == 204

    status, _, body = http("GET", sidecar.http_url + "/v1.0/healthz?detail")
    assert status == 200, body
    report = json.loads(body)
    assert report["status"] == "ready"
    assert component_named(report, "cache")["status"] == "healthy"

    redis.stop()
    for _ in range(3):
        status, _, _ = http("GET", sidecar.http_url + "/v1.0/state/cache/a", timeout=15)
        assert status == 500
    # An answer about the request (a missing key) is not a failure of the store.
    assert http("GET", sidecar.http_url + "/v1.0/state/local/missing")[0] == 204

    status, _, body = http("GET", sidecar.http_url + "/v1.0/healthz?detail")
    report = json.loads(body)
    assert status == 200, body
    cache = component_named(report, "cache")
    assert cache["status"] == "unhealthy", cache
    assert cache["consecutiveFailures"] >= 3
    assert cache["since"] and cache["reason"]
    assert component_named(report, "local")["status"] == "healthy"
    state = next(block for block in report["blocks"] if block["block"] == "state")
    assert state["status"] == "degraded" and state["unhealthy"] == ["cache"]
    assert all(block["status"] == "healthy" for block in report["blocks"] if block["block"] != "state")
    # Readiness is the sidecar's own: still ready, for both health endpoints.
    assert sidecar.healthz("/v1.0/healthz") == 204
    status, _, body = http("GET", sidecar.http_url + "/actuator/health/readiness")
    assert status == 200 and json.loads(body)["status"] == "UP"
    status, _, body = http("GET", sidecar.http_url + "/actuator/health/liveness")
    assert status == 200 and json.loads(body) == {"status": "UP"}

    # The store comes back: its next successful call makes it healthy again.
    start_redis(module_launcher, port)

    def recovered():
        http("GET", sidecar.http_url + "/v1.0/state/cache/a", timeout=15)
        report = json.loads(http("GET", sidecar.http_url + "/v1.0/healthz?detail")[2])
        return component_named(report, "cache")["status"] == "healthy"

    wait_until(recovered, timeout=30, what="the cache to be healthy again")
