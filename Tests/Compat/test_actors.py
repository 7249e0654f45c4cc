"""Virtual actors with the official SDK: its actor runtime (`DaprActor` for FastAPI) hosts the
types in `apps/actor_app.py`, its `ActorProxy` calls them through other sidecars.

Placement is the embedded one: every sidecar of the Mecha home leases membership in mecha.db.
"""

import asyncio
import json
import os
import random
import signal
import time
import urllib.error
import urllib.request

import pytest

from conftest import http, read_records, sqlite_state, wait_until

from dapr.actor import ActorId, ActorProxy
from dapr.actor.client.proxy import ActorProxyFactory
from dapr.clients.http.client import DaprHttpClient


def actor_resources(launcher, home):
    return launcher.resources("actor-resources", {
        "statestore.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: statestore
            spec:
              type: state.sqlite
              version: v1
              metadata:
              - name: connectionString
                value: "{home / 'actor-state.db'}"
              - name: actorStateStore
                value: "true"
            """,
    })


def jhttp(method, url, body=None):
    """(status, JSON body or None)."""
    status, _, raw = http(method, url, body, {"content-type": "application/json"} if body is not None else None)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def start_host(launcher, resources, app_id="actor-host", env=None, extra_args=()):
    """A sidecar and the SDK actor app behind it (the app calls its own sidecar)."""
    from conftest import free_port
    port = free_port()
    sidecar = launcher.sidecar(app_id, resources=[resources], app_port=port, wait=False, extra_args=extra_args)
    app = launcher.app("actor_app.py", port=port, env={"DAPR_HTTP_PORT": str(sidecar.http_port), **(env or {})}, wait=False)
    sidecar.wait_healthy(app=True)
    sidecar.app = app
    return sidecar


def call(sidecar, actor_type, actor_id, method, body=None, timeout=30.0):
    """POST /v1.0/actors/<type>/<id>/method/<method> as the SDK's proxy sends it: (status, JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{sidecar.http_port}/v1.0/actors/{actor_type}/{actor_id}/method/{method}", data=data, method="POST",
        headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")


def proxy(monkeypatch, sidecar, actor_type, actor_id):
    """The SDK's ActorProxy, pointed at `sidecar` (for this test only)."""
    from dapr.conf import settings
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.http_port))
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", sidecar.http_port)
    return ActorProxy.create(actor_type, ActorId(actor_id), actor_proxy_factory=ActorProxyFactory())


def overlaps(*hosts):
    return [r for host in hosts for r in read_records(host.app.record_file) if r.get("event") == "overlap"]


@pytest.fixture
def home_resources(launcher):
    return actor_resources(launcher, launcher.home)


def test_sdk_proxy_state_and_turns_through_a_client_sidecar(launcher, home_resources, monkeypatch):
    host = start_host(launcher, home_resources)
    client = launcher.sidecar("actor-client", resources=[home_resources])

    async def run():
        counter = proxy(monkeypatch, client, "Counter", "turns-1")
        results = await asyncio.gather(*(counter.invoke_method("Increment") for _ in range(40)))
        return sorted(json.loads(r) for r in results), json.loads(await counter.invoke_method("Get"))

    results, final = asyncio.run(run())
    # Forty calls at once, one turn at a time: each saw the previous one's write.
    assert results == list(range(1, 41))
    assert final == 40
    assert overlaps(host) == []

    # The state is in the actor state store with daprd's key layout.
    import sqlite3
    with sqlite3.connect(launcher.home / "actor-state.db") as db:
        rows = dict(db.execute("SELECT key, value FROM state WHERE key LIKE 'actor-host||Counter||turns-1||%'").fetchall())
    assert json.loads(rows["actor-host||Counter||turns-1||count"]) == 40

    # Metadata, as daprd: the types with their active actors, and the runtime's status.
    metadata = jhttp("GET", f"{host.http_url}/v1.0/metadata")[1]
    assert {"type": "Counter", "count": 1} in metadata["actors"]
    assert metadata["actorRuntime"]["runtimeStatus"] == "RUNNING"
    assert metadata["actorRuntime"]["hostReady"] is True
    assert metadata["actorRuntime"]["placement"] == "placement: connected"
    client_metadata = jhttp("GET", f"{client.http_url}/v1.0/metadata")[1]
    assert "actors" not in client_metadata


def test_errors_as_daprd(launcher, home_resources):
    host = start_host(launcher, home_resources)
    client = launcher.sidecar("actor-client", resources=[home_resources])
    status, body = call(client, "NoSuchType", "x", "Get", timeout=30)
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_INVOKE_METHOD"
    assert "did not find address for actor 'NoSuchType/x'" in body["message"]

    base = f"{host.http_url}/v1.0/actors/Counter/err-1"
    status, body = jhttp("PUT", f"{base}/reminders/r", json.dumps({"dueTime": "1s", "period": "every now and then"}).encode())
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_REMINDER_CREATE"
    status, body = jhttp("PUT", f"{base}/reminders/r", json.dumps({"dueTime": "soon"}).encode())
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_REMINDER_CREATE"
    status, body = jhttp("PUT", f"{base}/timers/t", json.dumps({"period": "R0/PT1S", "callback": "x"}).encode())
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_TIMER_CREATE"
    # Reminders only on a sidecar whose app hosts the type.
    status, body = jhttp("PUT", f"{client.http_url}/v1.0/actors/Counter/err-1/reminders/r", json.dumps({"dueTime": "1s"}).encode())
    assert status == 403 and body["errorCode"] == "ERR_ACTOR_REMINDER_NON_HOSTED"
    status, body = jhttp("GET", f"{base}/reminders/missing")
    assert status == 404 and body["errorCode"] == "ERR_ACTOR_REMINDER_NOT_FOUND"
    status, body = jhttp("PUT", f"{base}/state", b"{not json")
    assert status == 400 and body["errorCode"] == "ERR_MALFORMED_REQUEST"
    status, body = jhttp("PUT", f"{base}/state", json.dumps([{"operation": "upsert", "request": {"key": "k", "value": 1}},
                                                         {"operation": "merge", "request": {"key": "k2"}}]).encode())
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_STATE_TRANSACTION_SAVE"
    # Nothing half-written: the first operation of the refused transaction is not there.
    assert jhttp("GET", f"{base}/state/k")[0] == 204
    status, body = jhttp("GET", f"{host.http_url}/v1.0/actors/dapr.internal.default.wf/x/state/k")
    assert status == 403 and body["errorCode"] == "ERR_ACTOR_TYPE_RESERVED"
    status, body = jhttp("PUT", f"{base}/state", json.dumps([{"operation": "upsert", "request": {"key": "k", "value": {"a": 1}}}]).encode())
    assert status == 204
    status, body = jhttp("GET", f"{base}/state/k")
    assert status == 200 and body == {"a": 1}

    # Names that would travel in the app's URL are refused (daprd's ValidateName).
    for bad in ("%2E%2E", "a%5Cb", "a%23b", "a%3Fb", "a%00b"):
        status, body = jhttp("POST", f"{host.http_url}/v1.0/actors/Counter/{bad}/method/Get")
        assert status == 400 and body["errorCode"] == "ERR_BAD_REQUEST", (bad, body)
    status, body = jhttp("PUT", f"{base}/reminders/%2E%2E", json.dumps({"dueTime": "1s"}).encode())
    assert status == 400 and body["errorCode"] == "ERR_BAD_REQUEST"
    status, body = jhttp("POST", f"{host.http_url}/v1.0/actors/Counter/ok/method/Get%00")
    assert status == 400 and body["errorCode"] == "ERR_BAD_REQUEST"

    # A sidecar without an actor state store.
    bare = launcher.sidecar("no-actors", resources=[launcher.resources("bare", {"statestore.yaml": sqlite_state("plain", launcher.home / "plain.db")})])
    status, body = call(bare, "Counter", "x", "Get")
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_RUNTIME_NOT_FOUND"


def test_reentrancy_on_and_off(launcher, home_resources):
    host = start_host(launcher, home_resources)
    status, body = call(host, "Reentrant", "re-a", "Ping", "re-b")
    assert status == 200, body
    assert body == "re-a<-re-b:0"
    # Reentrancy off: A → B → A waits for A's turn, which waits for B — as daprd, until the
    # caller gives up.
    with pytest.raises(TimeoutError):
        call(host, "Counter", "dl-a", "Ping", "dl-b", timeout=3)


def test_reminder_fires_and_survives_a_full_restart(launcher, home_resources):
    host = start_host(launcher, home_resources)
    assert call(host, "Counter", "rem-1", "StartReminder")[0] == 200
    wait_until(lambda: call(host, "Counter", "rem-1", "Reminded")[1] >= 2, timeout=15, what="the reminder fires every second")
    status, body = jhttp("GET", f"{host.http_url}/v1.0/actors/Counter/rem-1/reminders/tick")
    assert status == 200
    assert body["period"] and body["data"] == "dG9jaw=="
    # Every sidecar and app stops; the reminder is in the actor state store.
    host.stop()
    host.app.stop()
    restarted = start_host(launcher, home_resources)
    first = call(restarted, "Counter", "rem-1", "Reminded")[1]
    wait_until(lambda: call(restarted, "Counter", "rem-1", "Reminded")[1] >= first + 2, timeout=15,
               what="the reminder fires again after the restart")
    assert call(restarted, "Counter", "rem-1", "StopReminder")[0] == 200
    time.sleep(1.5)
    stopped_at = call(restarted, "Counter", "rem-1", "Reminded")[1]
    time.sleep(2.5)
    assert call(restarted, "Counter", "rem-1", "Reminded")[1] == stopped_at
    reminders = [r for r in read_records(restarted.app.record_file) if r.get("event") == "reminder"]
    assert reminders and all(r["state"] == "tock" for r in reminders)
    # daprd's actor metrics, at the metrics seam.
    metrics = http("GET", f"http://127.0.0.1:{restarted.metrics_port}/metrics")[2].decode()
    fired = [line for line in metrics.splitlines() if line.startswith("dapr_runtime_actor_reminders_fired_total{") and 'success="true"' in line]
    assert fired and float(fired[0].rsplit(" ", 1)[1]) >= 2, fired


def test_three_hosts_exact_counts_and_failover(launcher, home_resources):
    # Three replicas of one app (actor state is keyed by the hosting app's id, as daprd's).
    hosts = [start_host(launcher, home_resources, app_id="actor-replicas") for n in range(3)]
    actors = [f"n-{i}" for i in range(60)]
    rounds = 10

    def load(targets, errors):
        done = {a: 0 for a in actors}
        calls = [(a, r) for a in actors for r in range(rounds)]
        random.shuffle(calls)

        async def one(actor_id):
            sidecar = random.choice(targets)
            status, body = await asyncio.to_thread(call, sidecar, "Counter", actor_id, "Increment")
            if status == 200:
                done[actor_id] += 1
            else:
                errors.append((actor_id, status, body))

        async def run():
            semaphore = asyncio.Semaphore(24)

            async def guarded(actor_id):
                async with semaphore:
                    await one(actor_id)
            await asyncio.gather(*(guarded(a) for a, _ in calls))
        asyncio.run(run())
        return done

    errors = []
    done = load(hosts, errors)
    assert errors == []
    for actor_id in actors:
        assert call(hosts[0], "Counter", actor_id, "Get")[1] == rounds, actor_id
    # The actors spread over the three hosts.
    activations = [{r["id"] for r in read_records(h.app.record_file) if r.get("event") == "activate"} for h in hosts]
    assert all(len(ids) > 5 for ids in activations), [len(ids) for ids in activations]

    # SIGKILL one host (sidecar and app) while calls go on through the two others.
    victim = hosts[2]
    moved = sorted(activations[2])[:5]
    os.kill(victim.pid, signal.SIGKILL)
    os.kill(victim.app.pid, signal.SIGKILL)
    killed = time.monotonic()
    survivors = hosts[:2]
    for actor_id in moved:
        wait_until(lambda: call(survivors[0], "Counter", actor_id, "Get", timeout=10)[0] == 200, timeout=20,
                   what=f"{actor_id} reactivates elsewhere")
    failover = time.monotonic() - killed
    print(f"failover after SIGKILL: {failover:.2f}s")
    errors = []
    done = load(survivors, errors)
    assert errors == []
    for actor_id in actors:
        assert call(survivors[0], "Counter", actor_id, "Get")[1] == 2 * rounds, actor_id
    assert overlaps(*hosts) == []
    assert failover < 10


def test_resiliency_timeout_on_an_actor_type_ends_a_deadlock(launcher):
    resources = actor_resources(launcher, launcher.home)
    (resources / "resiliency.yaml").write_text("""
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: actor-policies
spec:
  policies:
    timeouts:
      short: 2s
  targets:
    actors:
      Counter:
        timeout: short
""")
    host = start_host(launcher, resources)
    started = time.monotonic()
    status, body = call(host, "Counter", "to-a", "Ping", "to-b", timeout=20)
    elapsed = time.monotonic() - started
    assert status == 500 and body["errorCode"] == "ERR_ACTOR_INVOKE_METHOD", body
    assert 1.5 < elapsed < 8, elapsed
    # The actors are usable again once the chain unwound.
    wait_until(lambda: call(host, "Counter", "to-a", "Increment", timeout=5)[0] == 200, timeout=15, what="to-a serves again")


def test_placement_across_homes_through_a_shared_redis_actor_store(launcher):
    """Two Mecha homes (as two hosts: separate embedded databases) whose actor state store is one
    redis-server: membership lives in that store, so both homes share one placement table."""
    import shutil
    from conftest import free_port, start_redis
    port = free_port()
    start_redis(launcher, port)
    resources = launcher.resources("redis-actors", {
        "statestore.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: statestore
            spec:
              type: state.redis
              version: v1
              metadata:
              - name: redisHost
                value: "127.0.0.1:{port}"
              - name: actorStateStore
                value: "true"
            """,
    })
    first = start_host(launcher, resources, app_id="shared-actors")
    # The second home trusts the first one's CA (copied, as between hosts without a control plane).
    second_home = launcher.root / "second-home"
    shutil.copytree(launcher.home / "ca", second_home / "ca")
    second = start_host(launcher, resources, app_id="shared-actors", extra_args=["--mecha-home", str(second_home)])
    actors = [f"s-{i}" for i in range(30)]
    for round_ in range(4):
        for actor_id in actors:
            sidecar = first if (hash(actor_id) + round_) % 2 else second
            status, body = call(sidecar, "Counter", actor_id, "Increment")
            assert status == 200, body
    # Both homes host some (an actor may have moved once, when the second home joined).
    hosts = [{r["id"] for r in read_records(h.app.record_file) if r.get("event") == "activate"} for h in (first, second)]
    assert hosts[0] and hosts[1], hosts
    for actor_id in actors:
        assert call(second, "Counter", actor_id, "Get") == (200, 4), actor_id
    # The second home stops: its actors move to the first within the lease.
    second.stop()
    second.app.stop()
    for actor_id in actors:
        assert call(first, "Counter", actor_id, "Increment", timeout=20) == (200, 5)
    assert overlaps(first, second) == []


def test_grpc_app_hosts_actors_over_the_actor_stream(launcher, home_resources):
    """The SDK's ActorGrpcHost: turns, state, reminders, timers-free idle deactivation, over
    SubscribeActorEventsAlpha1; and the stream refused to an HTTP app's clients."""
    from conftest import free_port
    port = free_port()
    host = launcher.sidecar("grpc-actors", resources=[home_resources], app_port=port, app_protocol="grpc", wait=False)
    app = launcher.app("actor_grpc_app.py", port=port, wait=False, env={
        "DAPR_GRPC_PORT": str(host.grpc_port), "DAPR_HTTP_PORT": str(host.http_port), "IDLE_SECONDS": "2"})
    host.wait_healthy(app=True)
    host.app = app
    client = launcher.sidecar("grpc-actors-client", resources=[home_resources])
    # The stream registers after the app's listener is up: the first calls may wait for it.
    wait_until(lambda: call(client, "Counter", "g-1", "Get", timeout=10)[0] == 200, timeout=30, what="the gRPC host serves")

    async def burst():
        return await asyncio.gather(*(asyncio.to_thread(call, client, "Counter", "g-1", "Increment") for _ in range(20)))
    results = asyncio.run(burst())
    assert sorted(body for status, body in results if status == 200) == list(range(1, 21)), results
    assert call(host, "Reentrant", "g-a", "Ping", "g-b") == (200, "g-a<-g-b:0")

    assert call(host, "Counter", "g-r", "StartReminder")[0] == 200
    wait_until(lambda: call(client, "Counter", "g-r", "Reminded")[1] >= 2, timeout=15, what="the reminder fires over the stream")
    assert call(host, "Counter", "g-r", "StopReminder")[0] == 200
    reminders = [r for r in read_records(app.record_file) if r.get("event") == "reminder"]
    assert reminders and all(r["state"] == "tock" for r in reminders)

    metadata = jhttp("GET", f"{host.http_url}/v1.0/metadata")[1]
    assert any(entry["type"] == "Counter" and entry["count"] >= 1 for entry in metadata["actors"])

    # Idle deactivation (2 s) reaches the app as deactivate requests; the next call activates again.
    activations = lambda: len([r for r in read_records(app.record_file) if r.get("event") == "activate" and r["id"] == "g-1"])
    first = activations()
    time.sleep(4)
    assert call(client, "Counter", "g-1", "Get")[1] == 20
    assert activations() == first + 1
    assert overlaps(host) == []
