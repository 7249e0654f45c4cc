"""Hot reload of `--resources-path` files (on by default, as Dapr 1.18's HotReload): a changed
component is re-initialised while the others keep serving, components and subscriptions come and
go without a restart, and a change that fails to load leaves the previous version serving and is
reported (log, `GET /v1.0/healthz?detail`, metric). Driven with the official SDK."""

import json
import textwrap
import threading
import time
import uuid

import pytest

from conftest import http, read_records, sqlite_pubsub, sqlite_state, wait_until


def write(path, text):
    """Replaces a file at once (rename), as editors and `kubectl cp`-style tools do."""
    temporary = path.with_name("." + path.name + ".tmp")
    temporary.write_text(textwrap.dedent(text).lstrip())
    temporary.rename(path)


@pytest.fixture(scope="module")
def setup(module_launcher):
    home = module_launcher.home
    directory = module_launcher.resources("hot-resources", {
        "steady.yaml": sqlite_state("steady", home / "steady.db"),
        "store.yaml": sqlite_state("hr", home / "one.db"),
        "pubsub.yaml": sqlite_pubsub("hotpubsub", home / "pubsub-one.db"),
    })
    app = module_launcher.app("http_app.py", env={"APP_ID": "hot", "SUBSCRIPTIONS": "[]"})
    sidecar = module_launcher.sidecar("hot", resources=[directory], app_port=app.port)
    return directory, app, sidecar, home


def state(sidecar, store, key):
    status, _, body = http("GET", f"{sidecar.http_url}/v1.0/state/{store}/{key}", timeout=5)
    return status, body


def health_detail(sidecar):
    status, _, body = http("GET", f"{sidecar.http_url}/v1.0/healthz?detail", timeout=5)
    return json.loads(body)


def reload_count(sidecar, outcome):
    status, _, body = http("GET", f"http://127.0.0.1:{sidecar.metrics_port}/metrics", timeout=5)
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("mecha_hot_reloads_total{") and f'outcome="{outcome}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


class SteadyLoad:
    """Saves and reads back keys of the `steady` store in a loop, recording every failure."""

    def __init__(self, sidecar):
        self.sidecar, self.failures, self.count = sidecar, [], 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.is_set():
            key, value = f"k{self.count % 50}", uuid.uuid4().hex
            try:
                status, _, body = http("POST", f"{self.sidecar.http_url}/v1.0/state/steady",
                                       json.dumps([{"key": key, "value": value}]).encode(),
                                       {"Content-Type": "application/json"}, timeout=5)
                if status != 204:
                    self.failures.append((status, body[:200]))
                status, body = state(self.sidecar, "steady", key)
                if status != 200 or json.loads(body) != value:
                    self.failures.append((status, body[:200]))
            except OSError as error:
                self.failures.append(str(error))
            self.count += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(10)


def test_a_changed_component_is_reinitialised_while_the_others_keep_serving(setup, dapr_client):
    directory, _, sidecar, home = setup
    client = dapr_client(sidecar)
    client.save_state("hr", "k", "one")
    assert client.get_state("hr", "k").data == b"one"
    with SteadyLoad(sidecar) as load:
        time.sleep(0.5)
        write(directory / "store.yaml", sqlite_state("hr", home / "two.db"))
        # The new component reads another database: the key is not there.
        wait_until(lambda: client.get_state("hr", "k").data == b"", timeout=15, what="the changed component to serve")
        client.save_state("hr", "k", "two")
        time.sleep(0.5)
    assert load.count > 20, load.count
    assert load.failures == [], load.failures[:5]
    assert client.get_state("hr", "k").data == b"two"
    detail = health_detail(sidecar)["lastReload"]
    assert detail["status"] == "applied" and "Component/hr changed" in detail["applied"], detail
    assert "hot reload: Component/hr changed" in sidecar.log_text()
    sidecar.assert_alive("the reload")


def test_a_change_that_fails_leaves_the_previous_version_serving(setup, dapr_client):
    directory, _, sidecar, home = setup
    client = dapr_client(sidecar)
    client.save_state("hr", "kept", "yes")
    before = reload_count(sidecar, "failed")
    bad = textwrap.dedent(sqlite_state("hr", home / "three.db")).replace(
        "metadata:\n  - name: connectionString", "metadata:\n  - name: busyTimeout\n    value: soon\n  - name: connectionString")
    assert "busyTimeout" in bad
    write(directory / "store.yaml", bad)
    wait_until(lambda: health_detail(sidecar).get("lastReload", {}).get("status") == "failed", timeout=15,
               what="the failed reload to be reported")
    failed = " ".join(health_detail(sidecar)["lastReload"]["failed"])
    for needle in ("store.yaml", "Component/hr", "busyTimeout"):
        assert needle in failed, failed
    assert client.get_state("hr", "kept").data == b"yes"
    assert reload_count(sidecar, "failed") >= before + 1
    # Malformed YAML: nothing changes, the file is named.
    (directory / "broken.yaml").write_text("kind: Component\nmetadata: [unclosed\n")
    wait_until(lambda: "broken.yaml" in " ".join(health_detail(sidecar).get("lastReload", {}).get("failed", [])), timeout=15,
               what="the malformed file to be reported")
    assert client.get_state("hr", "kept").data == b"yes"
    (directory / "broken.yaml").unlink()
    # Fixed: the change applies.
    write(directory / "store.yaml", sqlite_state("hr", home / "three.db"))
    wait_until(lambda: client.get_state("hr", "kept").data == b"", timeout=15, what="the fixed component to serve")


def test_components_come_and_go(setup, dapr_client):
    directory, _, sidecar, home = setup
    client = dapr_client(sidecar)
    write(directory / "extra.yaml", sqlite_state("extra", home / "extra.db"))
    wait_until(lambda: any(c.name == "extra" for c in client.get_metadata().registered_components), timeout=15,
               what="the added component")
    client.save_state("extra", "a", "1")
    assert client.get_state("extra", "a").data == b"1"
    (directory / "extra.yaml").unlink()
    wait_until(lambda: state(sidecar, "extra", "a")[0] == 400, timeout=15, what="the removed component to be gone")
    status, body = state(sidecar, "extra", "a")
    assert json.loads(body)["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"


SUBSCRIPTION = """\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: hot
spec:
  pubsubname: hotpubsub
  topic: hot
  routes:
    default: /hot
"""


def delivered(app, tag):
    return [r for r in read_records(app.record_file)
            if r.get("path") == "/hot" and isinstance(r.get("json"), dict) and (r["json"].get("data") or {}).get("tag") == tag]


def publish_until_delivered(client, app, timeout=20):
    tag = uuid.uuid4().hex
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.publish_event("hotpubsub", "hot", json.dumps({"tag": tag}), data_content_type="application/json")
        end = time.monotonic() + 1
        while time.monotonic() < end:
            if delivered(app, tag):
                return tag
            time.sleep(0.05)
    raise AssertionError(f"no delivery of {tag} within {timeout}s")


def topics(sidecar):
    """The topics `GET /v1.0/metadata` lists as subscribed (the SDK's metadata response has no subscriptions)."""
    return [s["topic"] for s in sidecar.metadata().get("subscriptions", [])]


def test_subscriptions_start_stop_and_follow_their_pubsub(setup, dapr_client):
    directory, app, sidecar, home = setup
    client = dapr_client(sidecar)
    write(directory / "subscription.yaml", SUBSCRIPTION)
    wait_until(lambda: "hot" in topics(sidecar), timeout=15, what="the subscription")
    publish_until_delivered(client, app)
    # The pubsub changes (another database): the subscription moves to the new component.
    write(directory / "pubsub.yaml", sqlite_pubsub("hotpubsub", home / "pubsub-two.db"))
    wait_until(lambda: "Component/hotpubsub changed" in health_detail(sidecar).get("lastReload", {}).get("applied", []), timeout=15,
               what="the pubsub reload")
    publish_until_delivered(client, app)
    # Removed: no more deliveries.
    (directory / "subscription.yaml").unlink()
    wait_until(lambda: "hot" not in topics(sidecar), timeout=15, what="the subscription to go")
    time.sleep(0.5)
    tag = uuid.uuid4().hex
    client.publish_event("hotpubsub", "hot", json.dumps({"tag": tag}), data_content_type="application/json")
    time.sleep(1.5)
    assert delivered(app, tag) == []
    sidecar.assert_alive("the reloads")


RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: hot-retry
spec:
  policies:
    retries:
      thrice:
        policy: constant
        duration: 10ms
        maxRetries: 2
  targets:
    apps:
      hot:
        retry: thrice
"""


def test_a_new_resiliency_applies_to_new_calls(setup):
    directory, app, sidecar, _ = setup

    def attempts():
        """Invokes the app's /status/503 once; returns how many requests the app received."""
        mark = uuid.uuid4().hex
        status, _, _ = http("GET", f"{sidecar.http_url}/v1.0/invoke/hot/method/status/503?m={mark}", timeout=10)
        assert status == 503
        time.sleep(0.2)
        return len([r for r in read_records(app.record_file) if r.get("path") == "/status/503" and mark in r.get("query", "")])

    assert attempts() == 1
    write(directory / "resiliency.yaml", RESILIENCY)
    wait_until(lambda: "Resiliency" in health_detail(sidecar).get("lastReload", {}).get("applied", []), timeout=15,
               what="the Resiliency reload")
    assert attempts() == 3
    (directory / "resiliency.yaml").unlink()
    wait_until(lambda: attempts() == 1, timeout=15, what="the Resiliency to be gone")


TRAFFIC = """\
apiVersion: mecha.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: hot-fault
spec:
  target: hot-callee
  routes:
    - match: {pathPrefix: /whoami}
      fault: {abort: {httpStatus: 418, percent: 100}}
"""


def test_a_new_traffic_policy_applies_to_new_calls(module_launcher, setup):
    """The caller's TrafficPolicy (an abort fault) comes and goes without a restart."""
    directory, _, sidecar, _ = setup
    callee_app = module_launcher.app("http_app.py", env={"APP_ID": "hot-callee"})
    module_launcher.sidecar("hot-callee", app_port=callee_app.port)

    def status():
        return http("GET", f"{sidecar.http_url}/v1.0/invoke/hot-callee/method/whoami", timeout=10)[0]

    assert status() == 200
    write(directory / "traffic.yaml", TRAFFIC)
    wait_until(lambda: status() == 418, timeout=15, what="the fault to apply")
    assert "TrafficPolicy" in health_detail(sidecar)["lastReload"]["applied"]
    (directory / "traffic.yaml").unlink()
    wait_until(lambda: status() == 200, timeout=15, what="the fault to be gone")


ACCESS = """\
apiVersion: mecha.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: hot-access
spec:
  defaultAction: allow
  policies:
  - appId: hot
    defaultAction: allow
    operations:
    - name: /state/hr/locked
      action: deny
"""


def test_a_new_access_policy_applies_to_the_next_call(setup):
    directory, _, sidecar, _ = setup

    def save():
        return http("POST", f"{sidecar.http_url}/v1.0/state/hr", json.dumps([{"key": "locked", "value": 1}]).encode(),
                    {"Content-Type": "application/json"}, timeout=5)[0]

    assert save() == 204
    write(directory / "access.yaml", ACCESS)
    wait_until(lambda: save() == 403, timeout=15, what="the AccessPolicy to apply")
    (directory / "access.yaml").unlink()
    wait_until(lambda: save() == 204, timeout=15, what="the AccessPolicy to be gone")


ACL = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: callee-config
spec:
  accessControl:
    defaultAction: {default}
    trustDomain: public
{tracing}"""


def test_the_configuration_file_is_watched_access_control_applies_to_new_calls(module_launcher, dapr_client):
    """`--config` is watched: `spec.accessControl` applies to the next call (no restart), a broken
    Configuration keeps the previous one in force and is reported, and a change to a part that
    only applies at startup is reported as such."""
    config = module_launcher.root / "callee-config.yaml"
    write(config, ACL.format(default="deny", tracing=""))
    app = module_launcher.app("http_app.py", env={"APP_ID": "cfg-callee"})
    callee = module_launcher.sidecar("cfg-callee", config=config, app_port=app.port)
    caller = module_launcher.sidecar("cfg-caller")
    client = dapr_client(caller)

    def call():
        return http("GET", f"{caller.http_url}/v1.0/invoke/cfg-callee/method/whoami", timeout=5)[0]

    assert call() == 403
    write(config, ACL.format(default="allow", tracing=""))
    wait_until(lambda: call() == 200, timeout=10, what="the allowing access control to apply")
    assert b"cfg-callee" in client.invoke_method("cfg-callee", "whoami", data=b"", http_verb="GET").data
    assert "spec.accessControl" in " ".join(health_detail(callee)["lastReload"]["applied"])

    # A broken Configuration: the previous one stays in force, the failure is named.
    failed_before = reload_count(callee, "failed")
    write(config, ACL.format(default="maybe", tracing=""))
    wait_until(lambda: health_detail(callee)["lastReload"].get("status") == "failed", timeout=10, what="the failure to be reported")
    assert "defaultAction" in " ".join(health_detail(callee)["lastReload"]["failed"])
    assert reload_count(callee, "failed") > failed_before
    assert call() == 200

    # Back to deny, with a tracing change that applies only after a restart.
    write(config, ACL.format(default="deny", tracing="  tracing:\n    samplingRate: \"1\"\n"))
    wait_until(lambda: call() == 403, timeout=10, what="the denying access control to apply")
    applied = " ".join(health_detail(callee)["lastReload"]["applied"])
    assert "spec.tracing (applies after a restart)" in applied, applied
    assert "these apply after a restart" in callee.log_text()
