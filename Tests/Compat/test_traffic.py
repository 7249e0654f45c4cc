"""Mecha's `TrafficPolicy` (apiVersion mecha.dev/v1alpha1), applied by the CALLING sidecar: outlier
ejection of a failing instance (with a Dapr retry policy sending its calls elsewhere), peakEWMA
balancing away from a slow instance, weighted splits between app ids, mirroring, fault injection
(abort and delay) and a local rate limit.

Several instances of one app id are several sidecars started with the same `--app-id` (one
`governed_app.py` each, naming itself with INSTANCE), found by name resolution in the launcher's
shared mecha home. Each test's caller is a sidecar without app whose resources hold the policy."""

import json
import threading
import time
import uuid
from http.client import HTTPConnection

import pytest

from conftest import http, read_records, wait_until


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def start_instance(launcher, app_id: str, instance: str, port=None, **env):
    """One instance of `app_id`: a governed_app named `instance` and its sidecar."""
    app = launcher.app("governed_app.py", port=port, env={"INSTANCE": instance, **{k: str(v) for k, v in env.items()}})
    sidecar = launcher.sidecar(app_id, app_port=app.port)
    return app, sidecar


def calls(app) -> int:
    """How many invocations the app received (asked directly on its port)."""
    status, _, body = http("GET", f"http://127.0.0.1:{app.port}/calls")
    assert status == 200, body
    return json.loads(body)["calls"]


@pytest.fixture
def caller(module_launcher):
    """caller({file: yaml}) -> a sidecar without app holding those resources; stopped at the end of the test."""
    started = []

    def make(documents: dict, name: str = "tr-caller"):
        app_id = f"{name}-{uuid.uuid4().hex[:6]}"
        directory = module_launcher.resources(f"resources-{app_id}", documents)
        sidecar = module_launcher.sidecar(app_id, resources=[directory])
        started.append(sidecar)
        return sidecar

    yield make
    for sidecar in started:
        sidecar.stop()


class Result:
    __slots__ = ("status", "body", "headers", "started", "seconds")

    def __init__(self, status, body, headers, started, seconds):
        self.status, self.body, self.headers, self.started, self.seconds = status, body, headers, started, seconds

    @property
    def instance(self):
        try:
            return json.loads(self.body).get("instance")
        except (ValueError, AttributeError):
            return None


def one_call(connection: HTTPConnection, path: str, headers=None) -> Result:
    started = time.monotonic()
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    return Result(response.status, body, {k.lower(): v for k, v in response.getheaders()}, started, time.monotonic() - started)


def load(sidecar, app_id: str, method: str, count: int, *, threads: int = 8, time_limit: float = 60.0,
         rate: float = 0.0, duration: float = 0.0, headers=None) -> list[Result]:
    """`count` invocations of `method` on `app_id` through `sidecar` from `threads` keep-alive
    connections, stopping at `time_limit` seconds whatever happened. With `rate` (> 0) and
    `duration`, the calls are instead paced at `rate` per second in total for `duration` seconds."""
    path = f"/v1.0/invoke/{app_id}/method/{method}"
    results: list[Result] = []
    lock = threading.Lock()
    issued = [0]
    begin = time.monotonic()
    end = begin + (duration if rate else time_limit)
    errors: list[BaseException] = []

    def next_slot():
        with lock:
            n = issued[0]
            if (not rate and n >= count) or time.monotonic() >= end:
                return None
            issued[0] += 1
            return n

    def worker():
        connection = HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
        try:
            while True:
                n = next_slot()
                if n is None:
                    return
                if rate:
                    wait = begin + n / rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if time.monotonic() >= end:
                        return
                try:
                    result = one_call(connection, path, headers)
                except OSError as error:  # a reset connection: counted as status 0, then reconnect
                    connection.close()
                    connection = HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
                    result = Result(0, repr(error).encode(), {}, time.monotonic(), 0.0)
                with lock:
                    results.append(result)
        except BaseException as error:  # noqa: BLE001 - reported by the caller of load()
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(max(0.0, end - time.monotonic()) + 15)
    assert not errors, errors
    results.sort(key=lambda r: r.started)
    return results


def sequential(sidecar, app_id: str, method: str, count: int, time_limit: float = 60.0) -> list[Result]:
    return load(sidecar, app_id, method, count, threads=1, time_limit=time_limit)


def share(results: list[Result], instance: str) -> float:
    return sum(1 for r in results if r.instance == instance) / max(1, len(results))


def statuses(results: list[Result]) -> dict:
    counted: dict = {}
    for r in results:
        counted[r.status] = counted.get(r.status, 0) + 1
    return counted


def traffic_policy(name: str, spec: str) -> str:
    return f"apiVersion: mecha.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: {name}\nspec:\n{spec}"


# --------------------------------------------------------------------------------------------
# Outlier detection
# --------------------------------------------------------------------------------------------

OUTLIER_APP = "tr-outlier"


def test_outlier_ejection_and_return(module_launcher, caller):
    good = [start_instance(module_launcher, OUTLIER_APP, f"good-{n}")[0] for n in (1, 2)]
    bad, _ = start_instance(module_launcher, OUTLIER_APP, "bad", FAIL_STATUS=503)
    sidecar = caller({
        "traffic.yaml": traffic_policy("outlier-traffic", f"""\
  target: {OUTLIER_APP}
  loadBalancer:
    policy: roundRobin   # so that only the ejection keeps the failing instance out
  outlierDetection:
    consecutiveFailures: 3
    baseEjectionTime: 5s
    maxEjectionPercent: 50
"""),
        "resiliency.yaml": f"""\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: outlier-retries
spec:
  policies:
    retries:
      retry503:
        policy: constant
        duration: 10ms
        maxRetries: 2
        matching:
          httpStatusCodes: "503"
  targets:
    apps:
      {OUTLIER_APP}:
        retry: retry503
""",
    })

    first_started = time.time()
    first = sequential(sidecar, OUTLIER_APP, "whoami", 30)
    first_ended = time.time()
    bad_before = calls(bad)
    rest = sequential(sidecar, OUTLIER_APP, "whoami", 270)
    bad_after = calls(bad)
    results = first + rest
    assert len(results) == 300
    assert statuses(results) == {200: 300}, [r.body[:200] for r in results if r.status != 200][:5]
    assert {r.instance for r in results} == {"good-1", "good-2"}
    assert all(calls(app) > 0 for app in good)
    assert bad_after - bad_before < 0.02 * len(rest), (
        f"the failing instance received {bad_after - bad_before} of the last {len(rest)} calls (total {bad_after})")
    assert bad_before >= 3, "it was tried, and ejected after 3 failures"

    # Healthy again (restarted without FAIL_STATUS on the same port): once its ejection ends it
    # gets traffic again.
    port = bad.port
    bad.stop()
    healed_at = time.time()
    healed = module_launcher.app("governed_app.py", port=port, env={"INSTANCE": "bad"})
    seen = []

    def back():
        seen.extend(sequential(sidecar, OUTLIER_APP, "whoami", 20))
        return calls(healed) > 0

    wait_until(back, timeout=30, interval=0.05, what="the healed instance to get traffic again")
    assert statuses(seen) == {200: len(seen)}
    returned = min(r["at"] for r in read_records(healed.record_file) if r["at"] >= healed_at)
    returned_after = returned - first_started
    assert returned_after >= 5.0 - 0.05, f"back {returned_after:.2f}s after the first call: the ejection lasts 5s"
    if bad_after == bad_before:  # not probed (and ejected for 10s) again during the 270 calls
        assert returned - first_ended <= 5.0 + 3.0, f"back only {returned - first_ended:.2f}s after the first 30 calls"
    after = sequential(sidecar, OUTLIER_APP, "whoami", 300)
    assert statuses(after) == {200: 300}
    assert 0.30 <= share(after, "bad") <= 0.37, f"round robin over 3: the healed instance's share {share(after, 'bad'):.3f} (returned after {returned_after:.1f}s)"


# --------------------------------------------------------------------------------------------
# peakEWMA
# --------------------------------------------------------------------------------------------

SLOW_APP = "tr-slow"


def test_peak_ewma_avoids_a_slow_instance(module_launcher, caller):
    for n in (1, 2):
        start_instance(module_launcher, SLOW_APP, f"fast-{n}")
    start_instance(module_launcher, SLOW_APP, "slow", DELAY_MS=50)
    sidecar = caller({"traffic.yaml": traffic_policy("slow-traffic", f"""\
  target: {SLOW_APP}
  loadBalancer:
    policy: peakEWMA
""")})
    warmup = sequential(sidecar, SLOW_APP, "whoami", 30)
    assert statuses(warmup) == {200: 30}
    measured = sequential(sidecar, SLOW_APP, "whoami", 300)
    assert statuses(measured) == {200: 300}
    counts = {name: sum(1 for r in measured if r.instance == name) for name in ("fast-1", "fast-2", "slow")}
    assert counts["slow"] < 0.10 * len(measured), counts
    assert counts["fast-1"] > 0 and counts["fast-2"] > 0, counts


# --------------------------------------------------------------------------------------------
# Routes: split, mirror, faults, rate limit (one instance each of three app ids)
# --------------------------------------------------------------------------------------------

ORDERS, ORDERS_V2, SHADOW = "tr-orders", "tr-orders-v2", "tr-shadow"


@pytest.fixture(scope="module")
def orders(module_launcher):
    """{app id: its app}: one instance each of tr-orders, tr-orders-v2 and tr-shadow."""
    return {app_id: start_instance(module_launcher, app_id, app_id)[0] for app_id in (ORDERS, ORDERS_V2, SHADOW)}


def test_split_90_10(orders, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("orders-split", f"""\
  target: {ORDERS}
  routes:
  - split:
    - appId: {ORDERS}
      weight: 90
    - appId: {ORDERS_V2}
      weight: 10
""")})
    results = load(sidecar, ORDERS, "whoami", 2000, threads=8, time_limit=60)
    assert len(results) == 2000, f"only {len(results)} calls within 60s"
    assert statuses(results) == {200: 2000}, [r.body[:200] for r in results if r.status != 200][:5]
    v2 = share(results, ORDERS_V2)
    assert share(results, ORDERS) + v2 == 1.0
    assert abs(v2 - 0.10) <= 0.03, f"{ORDERS_V2} got {v2:.3f} of the calls"


def test_mirror_20_percent(orders, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("orders-mirror", f"""\
  target: {ORDERS}
  routes:
  - mirror:
      appId: {SHADOW}
      percent: 20
""")})
    shadow = orders[SHADOW]
    before = calls(shadow)
    results = load(sidecar, ORDERS, "whoami/mirrored", 1000, threads=8, time_limit=60)
    assert len(results) == 1000
    assert statuses(results) == {200: 1000}
    assert {r.instance for r in results} == {ORDERS}, "every answer comes from the primary"
    # Fire-and-forget: the copies may still be on their way when the answers are in.
    mirrored = []

    def settled():
        mirrored.append(calls(shadow) - before)
        return len(mirrored) >= 3 and mirrored[-1] == mirrored[-3]

    wait_until(settled, timeout=10, interval=0.2, what="the mirrored calls to settle")
    assert abs(mirrored[-1] / 1000 - 0.20) <= 0.05, f"the shadow received {mirrored[-1]} of 1000 calls"
    copies = [r for r in read_records(shadow.record_file) if r["path"] == "/whoami/mirrored"]
    assert len(copies) == mirrored[-1]


def test_mirror_never_slows_the_caller(orders, module_launcher, caller):
    """Every call mirrored to a shadow that takes 300 ms: the caller's answers keep the primary's
    latency (p50 far below the shadow's), and the shadow still gets its copies."""
    slow_shadow, _ = start_instance(module_launcher, "tr-shadow-slow", "tr-shadow-slow", DELAY_MS=300)
    plain = caller({"traffic.yaml": traffic_policy("orders-plain", f"  target: {ORDERS}\n")})
    mirrored = caller({"traffic.yaml": traffic_policy("orders-mirror-slow", f"""\
  target: {ORDERS}
  routes:
  - mirror:
      appId: tr-shadow-slow
      percent: 100
""")})
    baseline = sorted(r.seconds for r in sequential(plain, ORDERS, "whoami", 100))
    with_mirror = sorted(r.seconds for r in sequential(mirrored, ORDERS, "whoami", 100))
    p50_plain, p50_mirror = baseline[len(baseline) // 2], with_mirror[len(with_mirror) // 2]
    assert p50_mirror < 0.05, f"p50 {p50_mirror * 1000:.1f} ms with a 300 ms shadow (plain {p50_plain * 1000:.1f} ms)"
    assert p50_mirror <= 2 * p50_plain + 0.005, f"p50 {p50_mirror * 1000:.2f} ms vs {p50_plain * 1000:.2f} ms without the mirror"
    wait_until(lambda: calls(slow_shadow) >= 100, timeout=40, what="the shadow to receive its 100 copies")


def test_fault_abort_10_percent(orders, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("orders-abort", f"""\
  target: {ORDERS}
  routes:
  - fault:
      abort:
        httpStatus: 503
        percent: 10
""")})
    before = calls(orders[ORDERS])
    results = load(sidecar, ORDERS, "whoami", 1000, threads=8, time_limit=60)
    assert len(results) == 1000
    counted = statuses(results)
    assert set(counted) == {200, 503}, counted
    aborted = [r for r in results if r.status == 503]
    assert {r.body for r in aborted} == {b"fault filter abort"}
    assert abs(len(aborted) / 1000 - 0.10) <= 0.03, counted
    assert calls(orders[ORDERS]) - before == counted[200], "aborted calls never reach the app"


def test_fault_delay_50_percent(orders, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("orders-delay", f"""\
  target: {ORDERS}
  routes:
  - fault:
      delay:
        fixed: 100ms
        percent: 50
""")})
    results = load(sidecar, ORDERS, "whoami", 400, threads=8, time_limit=60)
    assert len(results) == 400
    assert statuses(results) == {200: 400}
    delayed = sum(1 for r in results if r.seconds >= 0.1)
    assert abs(delayed / 400 - 0.5) <= 0.1, f"{delayed} of 400 calls took 100 ms or more"


def test_local_rate_limit(orders, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("orders-limit", f"""\
  target: {ORDERS}
  routes:
  - rateLimit:
      requestsPerSecond: 100
      burst: 10
""")})
    before = calls(orders[ORDERS])
    results = load(sidecar, ORDERS, "whoami", 0, threads=16, rate=500, duration=3.0)
    span = results[-1].started - results[0].started
    offered = len(results) / span
    assert offered >= 300, f"offered only {offered:.0f} calls/s (paced at 500/s): the limit was not under pressure"
    counted = statuses(results)
    assert set(counted) <= {200, 429}, counted
    admitted = counted.get(200, 0)
    expected = 100 * span + 10
    assert abs(admitted - expected) <= 0.05 * expected, f"{admitted} admitted in {span:.2f}s (expected {expected:.0f}); {counted}"
    rejected = [r for r in results if r.status == 429]
    assert rejected
    assert {json.loads(r.body)["errorCode"] for r in rejected} == {"ERR_TOO_MANY_REQUESTS"}, rejected[0].body
    assert calls(orders[ORDERS]) - before == admitted, "rejected calls never reach the app"


def test_global_rate_limit_across_two_sidecars(orders, module_launcher):
    """Two sidecars of one app share a `globalRateLimit` of 100/s through the embedded SQLite
    state store: offered ~500/s together, every full wall-clock second admits 100 ± 10 %."""
    directory = module_launcher.resources("global-limit", {
        "statestore.yaml": f"""\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: "{module_launcher.home / 'limits.db'}"
""",
        "traffic.yaml": traffic_policy("orders-global", f"""\
  target: {ORDERS}
  routes:
  - globalRateLimit:
      requestsPerSecond: 100
      store: statestore
"""),
    })
    sidecars = [module_launcher.sidecar("tr-global-caller", resources=[directory]) for _ in range(2)]
    try:
        # A wall-clock origin for the monotonic start times (windows are wall-clock seconds).
        offset = time.time() - time.monotonic()
        outcomes: list[list[Result]] = [[], []]

        def drive(index):
            outcomes[index] = load(sidecars[index], ORDERS, "whoami", 0, threads=8, rate=250, duration=4.2)

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        results = sorted(outcomes[0] + outcomes[1], key=lambda r: r.started)
        counted = statuses(results)
        assert set(counted) <= {200, 429}, counted
        per_second: dict[int, int] = {}
        for result in results:
            second = int(result.started + offset)
            per_second.setdefault(second, 0)
            if result.status == 200:
                per_second[second] += 1
        seconds = sorted(per_second)
        full = seconds[1:-1]  # the first and last seconds are partly outside the run
        assert len(full) >= 3, per_second
        for second in full:
            assert 90 <= per_second[second] <= 110, f"second {second}: {per_second[second]} admitted; {per_second}"
        # Both sidecars got a share of the budget.
        assert all(any(r.status == 200 for r in outcome) for outcome in outcomes)
        rejected = [r for r in results if r.status == 429]
        assert {json.loads(r.body)["errorCode"] for r in rejected} == {"ERR_TOO_MANY_REQUESTS"}
    finally:
        for sidecar in sidecars:
            sidecar.stop()


def test_route_match_by_path_method_and_header(orders, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("orders-canary", f"""\
  target: {ORDERS}
  routes:
  - match:
      pathPrefix: /whoami/v2/
      method: GET
      headers:
        x-canary: "true"
    split:
    - appId: {ORDERS_V2}
      weight: 100
""")})
    connection = HTTPConnection("127.0.0.1", sidecar.http_port, timeout=10)
    base = f"/v1.0/invoke/{ORDERS}/method"

    def answered_by(method, path, headers):
        connection.request(method, base + path, body=b"" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
        return json.loads(body)["instance"]

    canary = {"x-canary": "true"}
    try:
        for _ in range(20):
            assert answered_by("GET", "/whoami/v2/a", canary) == ORDERS_V2
            assert answered_by("GET", "/whoami/v2/a", {}) == ORDERS, "no header"
            assert answered_by("GET", "/whoami/v2/a", {"x-canary": "false"}) == ORDERS, "another header value"
            assert answered_by("POST", "/whoami/v2/a", canary) == ORDERS, "another method"
            assert answered_by("GET", "/whoami/v1/a", canary) == ORDERS, "another path"
    finally:
        connection.close()


RING_APP = "tr-ring"


@pytest.fixture(scope="module")
def ring_instances(module_launcher):
    return [start_instance(module_launcher, RING_APP, f"ring-{n}")[0] for n in (1, 2, 3)]


def test_ring_hash_sticks_to_one_instance_per_header_value(ring_instances, caller):
    sidecar = caller({"traffic.yaml": traffic_policy("ring-traffic", f"""\
  target: {RING_APP}
  loadBalancer:
    policy: ringHash
    hashOn:
      header: x-user
""")})
    owners = {}
    for user in range(30):
        results = load(sidecar, RING_APP, "whoami", 10, threads=2, headers={"x-user": f"user-{user}"})
        assert statuses(results) == {200: 10}
        instances = {r.instance for r in results}
        assert len(instances) == 1, f"user-{user} was served by {instances}"
        owners[user] = instances.pop()
    assert set(owners.values()) == {"ring-1", "ring-2", "ring-3"}, f"30 users hash onto every instance: {owners}"
