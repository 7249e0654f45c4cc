"""Dapr `Resiliency` resources (https://docs.dapr.io/operations/resiliency/) applied by real
sidecars: retries (constant backoff, `matching.httpStatusCodes`), timeouts and circuit breakers on
an app target (service invocation over HTTP and gRPC), a circuit breaker on a `state.redis`
component (a real redis-server stopped and started again), an inbound retry on a pub/sub component
that then dead-letters, and the startup errors of bad resources.

The resiliency resources live in the CALLER's `--resources-path` (the sidecar that applies them);
the callee, `res-callee`, is a `governed_app.py` behind its own sidecar that has none."""

from http.client import HTTPConnection
import json
import statistics
import threading
import time
import uuid

import grpc
import pytest

from conftest import free_port, http, read_records, sqlite_pubsub, start_redis, wait_until
from dapr.clients.exceptions import DaprGrpcError, DaprHttpError

CALLEE = "res-callee"


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def callee_app(module_launcher):
    return module_launcher.app("governed_app.py", env={"INSTANCE": CALLEE})


@pytest.fixture(scope="module")
def callee(module_launcher, callee_app):
    return module_launcher.sidecar(CALLEE, app_port=callee_app.port)


@pytest.fixture
def caller(module_launcher, callee, request):
    """caller(resiliency_yaml or None, name=...) -> a sidecar without app whose resources hold that
    Resiliency (the callee is already up: same mecha home, found by name). Stopped when the test ends."""
    started = []

    def make(resiliency, name="res-caller", extra=None, app_id=None, env=None):
        app_id = app_id or f"{name}-{uuid.uuid4().hex[:6]}"
        documents = dict(extra or {})
        if resiliency is not None:
            documents["resiliency.yaml"] = resiliency
        directory = module_launcher.resources(f"resources-{app_id}", documents)
        sidecar = module_launcher.sidecar(app_id, resources=[directory], env=env)
        started.append(sidecar)
        return sidecar

    yield make
    for sidecar in started:
        sidecar.stop()


def attempts(app, key) -> int:
    status, _, body = http("GET", f"http://127.0.0.1:{app.port}/attempts/{key}")
    assert status == 200, body
    return json.loads(body)["attempts"]


def key() -> str:
    return f"k{uuid.uuid4().hex[:10]}"


def invoke(sidecar, method: str, timeout: float = 10.0):
    """A plain HTTP service invocation through `sidecar`: (status, headers, body, seconds)."""
    started = time.monotonic()
    status, headers, body = http("GET", f"{sidecar.http_url}/v1.0/invoke/{CALLEE}/method/{method}", timeout=timeout)
    return status, headers, body, time.monotonic() - started


def resiliency_metric(sidecar, name: str, policy: str, status: str = "", target: str = f"app_{CALLEE}") -> float:
    """One of daprd's `dapr_resiliency_*` samples on `sidecar`'s metrics port (0 when absent)."""
    code, _, body = http("GET", f"http://127.0.0.1:{sidecar.metrics_port}/metrics")
    assert code == 200, body
    labels = (f'{{app_id="{sidecar.app_id}",name="myresiliency",policy="{policy}",namespace="default",'
              f'flow_direction="outbound",target="{target}",status="{status}"}}')
    for line in body.decode().splitlines():
        if line.startswith(name + labels + " "):
            return float(line.rpartition(" ")[2])
    return 0.0


def resiliency(spec: str, name: str = "myresiliency") -> str:
    """A Resiliency resource around `spec` (the YAML below `spec:`, indented by 2)."""
    return f"apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: {name}\nspec:\n{spec}"


# The "Complete example policy" of https://docs.dapr.io/operations/resiliency/resiliency-overview/
# (dapr/docs daprdocs/content/en/operations/resiliency/resiliency-overview.md), copied from the
# documentation with two changes only:
#   - the app target `appB` is renamed `res-callee` (this test's callee);
#   - the retry policy `important` waits `duration: 100ms` between retries instead of 5s, so that
#     two retries take 0.2 s instead of 10 s.
# Its `scopes` (app1, app2) are kept: the caller that applies it is started as `app1`.
DOCS_COMPLETE_EXAMPLE = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
# similar to subscription and configuration specs, scopes lists the Dapr App IDs that this
# resiliency spec can be used by.
scopes:
  - app1
  - app2
spec:
  # policies is where timeouts, retries and circuit breaker policies are defined. 
  # each is given a name so they can be referred to from the targets section in the resiliency spec.
  policies:
    # timeouts are simple named durations.
    timeouts:
      general: 5s
      important: 60s
      largeResponse: 10s

    # retries are named templates for retry configurations and are instantiated for life of the operation.
    retries:
      pubsubRetry:
        policy: constant
        duration: 5s
        maxRetries: 10

      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1 # retry indefinitely

      important:
        policy: constant
        duration: 100ms
        maxRetries: 30

      someOperation:
        policy: exponential
        maxInterval: 15s

      largeResponse:
        policy: constant
        duration: 5s
        maxRetries: 3

    # circuit breakers are automatically instantiated per component and app instance.
    # circuit breakers maintain counters that live as long as the Dapr sidecar is running. They are not persisted.
    circuitBreakers:
      simpleCB:
        maxRequests: 1
        timeout: 30s 
        trip: consecutiveFailures >= 5

      pubsubCB:
        maxRequests: 1
        interval: 8s
        timeout: 45s
        trip: consecutiveFailures > 8

  # targets are what named policies are applied to. Dapr supports 3 target types - apps, components and actors
  targets:
    apps:
      res-callee:
        timeout: general
        retry: important
        # circuit breakers for services are scoped app instance.
        # when a breaker is tripped, that route is removed from load balancing for the configured `timeout` duration.
        circuitBreaker: simpleCB

    actors:
      myActorType: # custom Actor Type Name
        timeout: general
        retry: important
        # circuit breakers for actors are scoped by type, id, or both.
        # when a breaker is tripped, that type or id is removed from the placement table for the configured `timeout` duration.
        circuitBreaker: simpleCB
        circuitBreakerScope: both ## 
        circuitBreakerCacheSize: 5000

    components:
      # for state stores, policies apply to saving and retrieving state.
      statestore1: # any component name -- happens to be a state store here
        outbound:
          timeout: general
          retry: retryForever
          # circuit breakers for components are scoped per component configuration/instance. For example myRediscomponent.
          # when this breaker is tripped, all interaction to that component is prevented for the configured `timeout` duration.
          circuitBreaker: simpleCB

      pubsub1: # any component name -- happens to be a pubsub broker here
        outbound:
          retry: pubsubRetry
          circuitBreaker: pubsubCB

      pubsub2: # any component name -- happens to be another pubsub broker here
        outbound:
          retry: pubsubRetry
          circuitBreaker: pubsubCB
        inbound: # inbound only applies to delivery from sidecar to app
          timeout: general
          retry: important
          circuitBreaker: pubsubCB
"""


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------

def test_docs_example_retries_app_errors_with_the_sdk(caller, callee_app, dapr_client):
    """The documentation's complete example, unchanged but for the target id and one duration:
    `invoke_method` of an app that fails twice succeeds, the app having seen 3 attempts spaced
    by the constant 100 ms."""
    client = dapr_client(caller(DOCS_COMPLETE_EXAMPLE, app_id="app1"))
    k = key()
    started = time.monotonic()
    response = client.invoke_method(CALLEE, f"flaky/{k}", data="", http_verb="GET", http_querystring=(("fail", "2"),))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"instance": CALLEE, "key": k, "attempt": 3}
    assert attempts(callee_app, k) == 3
    assert elapsed >= 0.2, f"two retries 100 ms apart took only {elapsed:.3f}s"


# The documentation's example exactly as published: targets `appB`, `important` retries every 5 s.
DOCS_UNCHANGED = DOCS_COMPLETE_EXAMPLE.replace("      res-callee:\n        timeout: general", "      appB:\n        timeout: general").replace(
    "        duration: 100ms\n", "        duration: 5s\n"
)


def test_docs_example_unchanged_with_the_sdk(module_launcher, caller, dapr_client):
    """The complete example copied unchanged (the callee is named `appB` and the caller `app1`, as
    the documentation names them): the SDK's `invoke_method` of a method that fails twice succeeds
    after the 5 s constant retries, and the app counted 3 attempts."""
    assert "appB:" in DOCS_UNCHANGED and "duration: 100ms" not in DOCS_UNCHANGED
    app_b = module_launcher.app("governed_app.py", env={"INSTANCE": "appB"})
    module_launcher.sidecar("appB", app_port=app_b.port)
    client = dapr_client(caller(DOCS_UNCHANGED, app_id="app1"))
    k = key()
    started = time.monotonic()
    response = client.invoke_method("appB", f"flaky/{k}", data="", http_verb="GET", http_querystring=(("fail", "2"),))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == {"instance": "appB", "key": k, "attempt": 3}
    assert attempts(app_b, k) == 3
    assert 10.0 <= elapsed < 20.0, f"two retries 5 s apart took {elapsed:.3f}s"


def test_docs_example_does_not_apply_outside_its_scopes(caller, callee_app, dapr_client):
    """The same resource in the resources of `app3`, which its scopes (app1, app2) do not list."""
    client = dapr_client(caller(DOCS_COMPLETE_EXAMPLE, app_id="app3"))
    k = key()
    with pytest.raises(DaprHttpError) as caught:
        client.invoke_method(CALLEE, f"flaky/{k}", data="", http_verb="GET", http_querystring=(("fail", "2"),))
    assert caught.value.status_code == 500
    time.sleep(0.3)
    assert attempts(callee_app, k) == 1


def test_without_resiliency_app_errors_are_not_retried(caller, callee_app, dapr_client):
    client = dapr_client(caller(None))
    k = key()
    with pytest.raises(DaprHttpError) as caught:
        client.invoke_method(CALLEE, f"flaky/{k}", data="", http_verb="GET", http_querystring=(("fail", "2"),))
    assert caught.value.status_code == 500
    time.sleep(0.3)
    assert attempts(callee_app, k) == 1


MATCHING = resiliency("""\
  policies:
    retries:
      retry500:
        policy: constant
        duration: 50ms
        maxRetries: 3
        matching:
          httpStatusCodes: "500"
  targets:
    apps:
      res-callee:
        retry: retry500
""")


def test_matching_retries_a_500(caller, callee_app):
    sidecar = caller(MATCHING)
    k = key()
    status, headers, body, elapsed = invoke(sidecar, f"flaky/{k}?fail=2&status=500")
    assert status == 200, body
    assert json.loads(body)["attempt"] == 3
    assert attempts(callee_app, k) == 3
    assert elapsed >= 0.1
    # daprd's resiliency metrics: the call ran under the retry policy once; it retried twice.
    assert resiliency_metric(sidecar, "dapr_resiliency_count", "retry") == 1
    assert resiliency_metric(sidecar, "dapr_resiliency_activations_total", "retry") == 2


def test_matching_does_not_retry_a_404(caller, callee_app):
    sidecar = caller(MATCHING)
    k = key()
    status, headers, body, _ = invoke(sidecar, f"flaky/{k}?fail=2&status=404")
    assert status == 404, body
    assert json.loads(body) == {"instance": CALLEE, "key": k, "attempt": 1, "status": 404}
    time.sleep(0.3)
    assert attempts(callee_app, k) == 1


def test_last_answer_is_passed_through_when_retries_give_up(caller, callee_app):
    sidecar = caller(MATCHING)
    k = key()
    status, headers, body, _ = invoke(sidecar, f"flaky/{k}?fail=10&status=500")
    assert status == 500, body
    assert json.loads(body) == {"instance": CALLEE, "key": k, "attempt": 4, "status": 500}, "the app's own last answer"
    assert headers.get("x-instance") == CALLEE
    time.sleep(0.3)
    assert attempts(callee_app, k) == 4, "1 attempt + maxRetries 3"


# Dapr's default policies: by name, for every target of their kind that names no policy of its own
# (DefaultApp…Policy for apps, then the generic Default…Policy).
DEFAULT_APP_RETRY = resiliency("""\
  policies:
    retries:
      DefaultAppRetryPolicy:
        policy: constant
        duration: 50ms
        maxRetries: 2
""", name="default-app-retry")

DEFAULT_RETRY = resiliency("""\
  policies:
    retries:
      DefaultRetryPolicy:
        policy: constant
        duration: 50ms
        maxRetries: 1
""", name="default-retry")


def test_default_app_retry_policy(caller, callee_app):
    sidecar = caller(DEFAULT_APP_RETRY)
    k = key()
    status, _, body, _ = invoke(sidecar, f"flaky/{k}?fail=2")
    assert status == 200, body
    assert attempts(callee_app, k) == 3
    k = key()
    status, _, body, _ = invoke(sidecar, f"flaky/{k}?fail=5")
    assert status == 500, body
    assert json.loads(body)["attempt"] == 3
    time.sleep(0.3)
    assert attempts(callee_app, k) == 3


def test_default_retry_policy_is_the_fallback(caller, callee_app):
    sidecar = caller(DEFAULT_RETRY)
    k = key()
    status, _, body, _ = invoke(sidecar, f"flaky/{k}?fail=1")
    assert status == 200, body
    assert attempts(callee_app, k) == 2
    k = key()
    status, _, body, _ = invoke(sidecar, f"flaky/{k}?fail=5")
    assert status == 500, body
    time.sleep(0.3)
    assert attempts(callee_app, k) == 2


def test_a_named_target_policy_overrides_the_default(caller, callee_app):
    both = resiliency("""\
  policies:
    retries:
      DefaultAppRetryPolicy:
        policy: constant
        duration: 50ms
        maxRetries: 4
      once:
        policy: constant
        duration: 50ms
        maxRetries: 1
  targets:
    apps:
      res-callee:
        retry: once
""", name="named-over-default")
    sidecar = caller(both)
    k = key()
    status, _, body, _ = invoke(sidecar, f"flaky/{k}?fail=3")
    assert status == 500, body
    time.sleep(0.3)
    assert attempts(callee_app, k) == 2


# --------------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------------

TIMEOUT = resiliency("""\
  policies:
    timeouts:
      short: 300ms
  targets:
    apps:
      res-callee:
        timeout: short
""")


def test_timeout_over_http(caller):
    sidecar = caller(TIMEOUT)
    status, _, body, elapsed = invoke(sidecar, "slow?ms=2000")
    assert status == 500, body
    assert json.loads(body) == {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": f"failed to invoke, id: {CALLEE}, err: context deadline exceeded",
    }
    assert 0.3 <= elapsed < 1.0, f"answered after {elapsed:.3f}s (timeout 300ms)"
    # A call within the timeout is untouched.
    status, _, body, _ = invoke(sidecar, "slow?ms=10")
    assert status == 200, body
    # Both calls ran under the timeout; it fired once.
    assert resiliency_metric(sidecar, "dapr_resiliency_count", "timeout") == 2
    assert resiliency_metric(sidecar, "dapr_resiliency_activations_total", "timeout") == 1


@pytest.mark.parametrize("fast_path", ["1", "0"])
def test_timeout_ends_when_the_answer_begins(caller, fast_path):
    """As daprd's, the timeout bounds the wait for the answer, not its body: an answer whose head
    comes at once and whose body takes 0.8 s arrives whole under a 300 ms timeout, on the fast
    path and on the general path (MECHA_FAST_INVOKE=0)."""
    sidecar = caller(TIMEOUT, env={"MECHA_FAST_INVOKE": fast_path})
    # A kept-alive connection (urllib sends `Connection: close`, which the fast path leaves to
    # the general path).
    connection = HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
    try:
        started = time.monotonic()
        connection.request("GET", f"/v1.0/invoke/{CALLEE}/method/drip?ms=800")
        response = connection.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
        assert response.status == 200, body
        assert body == b"x" * 10_000
        assert elapsed >= 0.7, f"the body came in {elapsed:.3f}s: the app did not drip"
        # And a slow head is still cut at the timeout, on the same connection.
        started = time.monotonic()
        connection.request("GET", f"/v1.0/invoke/{CALLEE}/method/slow?ms=2000")
        response = connection.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
        assert response.status == 500, body
        assert json.loads(body)["message"] == f"failed to invoke, id: {CALLEE}, err: context deadline exceeded"
        assert 0.3 <= elapsed < 1.0, f"answered after {elapsed:.3f}s (timeout 300ms)"
    finally:
        connection.close()


def test_default_app_timeout_policy(caller):
    sidecar = caller(resiliency("""\
  policies:
    timeouts:
      DefaultAppTimeoutPolicy: 300ms
""", name="default-app-timeout"))
    status, _, body, elapsed = invoke(sidecar, "slow?ms=2000")
    assert status == 500, body
    assert json.loads(body)["message"] == f"failed to invoke, id: {CALLEE}, err: context deadline exceeded"
    assert 0.3 <= elapsed < 1.0, f"answered after {elapsed:.3f}s (timeout 300ms)"


def test_timeout_over_grpc(caller, use_sidecar, monkeypatch):
    from dapr.clients import DaprClient

    use_sidecar(caller(TIMEOUT))
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            client.invoke_method(CALLEE, "slow", data="", http_verb="GET", http_querystring=(("ms", "2000"),))
        elapsed = time.monotonic() - started
        error = DaprGrpcError(caught.value)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (error.code(), error.details())
        assert "context deadline exceeded" in error.details()
        assert 0.3 <= elapsed < 1.0, f"answered after {elapsed:.3f}s (timeout 300ms)"
        answer = client.invoke_method(CALLEE, "slow", data="", http_verb="GET", http_querystring=(("ms", "10"),)).json()
        assert answer == {"instance": CALLEE, "slept_ms": 10.0}


# --------------------------------------------------------------------------------------------
# Circuit breaker on an app target
# --------------------------------------------------------------------------------------------

APP_BREAKER = resiliency("""\
  policies:
    circuitBreakers:
      threeStrikes:
        maxRequests: 1
        timeout: 1s
        trip: consecutiveFailures >= 3
  targets:
    apps:
      res-callee:
        circuitBreaker: threeStrikes
""")


def test_circuit_breaker_on_an_app(caller, callee_app):
    sidecar = caller(APP_BREAKER)
    k = key()
    method = f"flaky/{k}?fail=3"
    for n in (1, 2, 3):
        status, _, body, _ = invoke(sidecar, method)
        assert status == 500 and json.loads(body)["attempt"] == n, (n, status, body)
    tripped = time.monotonic()

    open_calls = [invoke(sidecar, method) for _ in range(5)]
    for status, _, body, _ in open_calls:
        assert status == 500, body
        assert json.loads(body) == {
            "errorCode": "ERR_DIRECT_INVOKE",
            "message": f"failed to invoke, id: {CALLEE}, err: circuit breaker is open",
        }
    times = [elapsed for *_, elapsed in open_calls]
    assert statistics.median(times) < 0.05, f"an open breaker answers at once: {[round(t * 1000, 1) for t in times]} ms"
    assert attempts(callee_app, k) == 3, "an open breaker does not call the app"
    assert time.monotonic() - tripped < 1.0, "the open-breaker calls ran within the breaker's timeout"

    # Dapr scopes an app's breakers per method: another method still reaches the app.
    status, _, body, _ = invoke(sidecar, "whoami")
    assert status == 200, body

    # After the timeout the breaker is half-open: one success closes it.
    time.sleep(max(0.0, tripped + 1.1 - time.monotonic()))
    status, _, body, _ = invoke(sidecar, method)
    assert status == 200, body
    assert json.loads(body)["attempt"] == 4
    for n in (5, 6):
        status, _, body, _ = invoke(sidecar, method)
        assert status == 200 and json.loads(body)["attempt"] == n, (status, body)
    assert attempts(callee_app, k) == 6

    # daprd's resiliency metrics: every call is counted with its breaker's state as it began
    # (3 failures, whoami and 2 successes while closed; 5 refusals and the probe while open);
    # each state change is an activation; the gauge holds the last state seen.
    def metric(name, status):
        return resiliency_metric(sidecar, name, "circuitbreaker", status)

    assert metric("dapr_resiliency_count", "closed") == 6
    assert metric("dapr_resiliency_count", "open") == 6
    assert [metric("dapr_resiliency_activations_total", state) for state in ("open", "half-open", "closed")] == [1, 1, 1]
    assert [metric("dapr_resiliency_cb_state", state) for state in ("closed", "half-open", "open", "unknown")] == [1, 0, 0, 0]


# --------------------------------------------------------------------------------------------
# Circuit breaker on a state.redis component
# --------------------------------------------------------------------------------------------

STORE_BREAKER = resiliency("""\
  policies:
    circuitBreakers:
      storeCB:
        maxRequests: 1
        timeout: 3s
        trip: consecutiveFailures >= 3
  targets:
    components:
      rstore:
        outbound:
          circuitBreaker: storeCB
""")


def test_circuit_breaker_on_a_redis_state_store(module_launcher, caller):
    port = free_port()
    redis = start_redis(module_launcher, port)
    component = f"""\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: rstore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: "127.0.0.1:{port}"
  - name: redisPassword
    value: ""
"""
    sidecar = caller(STORE_BREAKER, name="res-store", extra={"rstore.yaml": component})
    base = "/v1.0/state/rstore"
    connection = HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)

    def call(method, path, body=None):
        started = time.monotonic()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, base + path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, time.monotonic() - started

    k = key()
    status, body, _ = call("POST", "", json.dumps([{"key": k, "value": "v1"}]))
    assert status == 204, body
    status, body, _ = call("GET", f"/{k}")
    assert (status, body) == (200, b'"v1"')

    redis.stop()
    open_message = f"fail to get {k} from state store rstore: circuit breaker is open"
    failures = []
    deadline = time.monotonic() + 20
    starts = []
    while True:
        starts.append(time.monotonic())
        status, body, elapsed = call("GET", f"/{k}")
        assert status == 500, body
        failures.append(json.loads(body))
        if failures[-1].get("message") == open_message:
            break
        assert time.monotonic() < deadline, f"the breaker did not open within 20s: {failures[-5:]}"
    assert len(failures) == 4, f"consecutiveFailures >= 3 trips on the 3rd failure, the 4th call is rejected: {failures}"
    assert all(f["errorCode"] == "ERR_STATE_GET" for f in failures), failures
    tripped = time.monotonic()
    opened_after = starts[-2]  # the breaker opened when the 3rd failing call ended

    samples = [call("GET", f"/{k}") for _ in range(30)]
    for status, body, _ in samples:
        assert status == 500, body
        assert json.loads(body) == {"errorCode": "ERR_STATE_GET", "message": open_message}
    median = statistics.median(elapsed for *_, elapsed in samples)
    assert median < 0.005, f"median {median * 1000:.2f} ms with an open breaker"
    status, body, _ = call("POST", "", json.dumps([{"key": k, "value": "v2"}]))
    assert status == 500, body
    assert json.loads(body) == {"errorCode": "ERR_STATE_SAVE", "message": "failed saving state in state store rstore: circuit breaker is open"}
    assert time.monotonic() - tripped < 3.0, "the open-breaker calls ran within the breaker's timeout"

    # redis-server again on the same port: once the breaker's timeout has passed, a call goes
    # through (half-open) and closes it.
    start_redis(module_launcher, port)
    results = []

    def saved():
        status, body, _ = call("POST", "", json.dumps([{"key": k, "value": "v3"}]))
        results.append((round(time.monotonic() - opened_after, 2), status, body[:200]))
        return status == 204

    wait_until(saved, timeout=20, interval=0.2, what=f"a save once redis is back (results: {results[-5:]})")
    assert results[-1][0] >= 3.0, f"a call went through before the breaker's 3s timeout: {results}"
    early = [r for r in results[:-1] if r[0] < 3.0]
    assert all(b"circuit breaker is open" in r[2] for r in early), f"still open before its timeout, redis or not: {early}"
    for _ in range(5):
        status, body, _ = call("GET", f"/{k}")
        assert (status, body) == (200, b'"v3"')
    connection.close()


# --------------------------------------------------------------------------------------------
# Pub/sub inbound retry, then the dead-letter topic
# --------------------------------------------------------------------------------------------

def test_pubsub_inbound_retry_then_dead_letter(module_launcher):
    subscriber_id = "res-sub"
    app = module_launcher.app("governed_app.py", env={"INSTANCE": subscriber_id, "TOPIC_STATUS": json.dumps({"/poison": "RETRY"})})
    directory = module_launcher.resources("pubsub-inbound", {
        "pubsub.yaml": sqlite_pubsub("rpubsub", module_launcher.root / "rpubsub.db"),
        "subscriptions.yaml": f"""\
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: poison-sub
            spec:
              pubsubname: rpubsub
              topic: poison
              routes:
                default: /poison
              deadLetterTopic: poison-dlq
            scopes:
            - {subscriber_id}
            ---
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: poison-dlq-sub
            spec:
              pubsubname: rpubsub
              topic: poison-dlq
              routes:
                default: /poison-dlq
            scopes:
            - {subscriber_id}
            """,
        "resiliency.yaml": resiliency("""\
  policies:
    retries:
      threeDeliveries:
        policy: constant
        duration: 50ms
        maxRetries: 2
  targets:
    components:
      rpubsub:
        inbound:
          retry: threeDeliveries
"""),
    })
    sidecar = module_launcher.sidecar(subscriber_id, resources=[directory], app_port=app.port)
    tag = uuid.uuid4().hex
    status, _, body = http("POST", f"{sidecar.http_url}/v1.0/publish/rpubsub/poison", json.dumps({"tag": tag}).encode(), {"Content-Type": "application/json"})
    assert status == 204, body

    def tagged(path):
        return [r for r in read_records(app.record_file)
                if r["path"] == path and isinstance(r.get("json"), dict) and (r["json"].get("data") or {}).get("tag") == tag]

    wait_until(lambda: tagged("/poison-dlq"), timeout=20, what="the dead-lettered event")
    time.sleep(1.0)
    deliveries, dead = tagged("/poison"), tagged("/poison-dlq")
    assert len(deliveries) == 3, f"1 delivery + maxRetries 2, then the dead-letter topic: {[(r['at'], r['json']['id']) for r in deliveries]}"
    assert len({r["json"]["id"] for r in deliveries}) == 1
    gaps = [b["at"] - a["at"] for a, b in zip(deliveries, deliveries[1:])]
    assert all(gap >= 0.045 for gap in gaps), f"constant 50ms between deliveries: {gaps}"
    assert len(dead) == 1
    assert dead[0]["json"]["id"] == deliveries[0]["json"]["id"]
    assert dead[0]["at"] >= deliveries[-1]["at"]


# --------------------------------------------------------------------------------------------
# Bad resources are refused at startup
# --------------------------------------------------------------------------------------------

BAD_RESOURCES = {
    "unknown-policy": (resiliency("""\
  policies:
    retries:
      known:
        policy: constant
        duration: 1s
  targets:
    apps:
      res-callee:
        retry: noSuchPolicy
""", name="bad-unknown-policy"), "bad-unknown-policy", "spec.targets.apps.res-callee.retry"),
    "bad-trip": (resiliency("""\
  policies:
    circuitBreakers:
      cb:
        maxRequests: 1
        timeout: 1s
        trip: consecutiveFailures >=
  targets:
    apps:
      res-callee:
        circuitBreaker: cb
""", name="bad-trip"), "bad-trip", "spec.policies.circuitBreakers.cb.trip"),
    "negative-duration": (resiliency("""\
  policies:
    retries:
      r:
        policy: constant
        duration: -100ms
        maxRetries: 3
  targets:
    apps:
      res-callee:
        retry: r
""", name="bad-negative-duration"), "bad-negative-duration", "spec.policies.retries.r.duration"),
    "traffic-weights": ("""\
apiVersion: mecha.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: bad-weights
spec:
  target: orders
  routes:
  - split:
    - appId: orders
      weight: 60
    - appId: orders-v2
      weight: 30
""", "bad-weights", "spec.routes[0].split"),
}


@pytest.fixture(scope="module")
def refusals(module_launcher):
    """Every bad case's sidecar, started at once: case -> (exit status or None, log)."""
    results = {}

    def start(case, text):
        directory = module_launcher.resources(f"bad-{case}", {f"{case}.yaml": text}, dedent=False)
        sidecar = module_launcher.sidecar(f"bad-{case}", resources=[directory], wait=False)
        results[case] = (sidecar.wait_exit(20), sidecar)

    threads = [threading.Thread(target=start, args=(case, text)) for case, (text, *_) in BAD_RESOURCES.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("case", list(BAD_RESOURCES))
def test_bad_resource_is_refused_at_startup(refusals, case):
    _, resource, field = BAD_RESOURCES[case]
    returncode, sidecar = refusals[case]
    log = sidecar.log_text()
    assert returncode is not None, f"still running after 20s:\n{sidecar.log_tail(30)}"
    assert returncode > 0, f"exit status {returncode}:\n{sidecar.log_tail(30)}"
    missing = [needle for needle in (f"{case}.yaml", resource, field) if needle not in log]
    assert not missing, f"the startup error does not name {missing}:\n{sidecar.log_tail(30)}"
