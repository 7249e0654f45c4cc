"""The SDK against `state.redis`, `pubsub.redis`, `lock.redis` and `configuration.redis` the way `dapr init` sets them up (components
named `statestore` and `pubsub` on one redis-server), with a real redis-server this module starts on
a free port: numeric ETags as Dapr's Redis store gives them, transactions, state shared by two
sidecars, and pub/sub that loses nothing when the subscriber's sidecar is killed."""

import json
import signal
import time
import uuid

import grpc
import pytest

from conftest import free_port, read_records, start_redis, wait_records, wait_until
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._response import UnlockResponseStatus
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import StateItem


@pytest.fixture(scope="module")
def redis(module_launcher):
    port = free_port()
    start_redis(module_launcher, port)
    return port


def redis_component(name: str, kind: str, port: int, extra: dict) -> str:
    metadata = {"redisHost": f"127.0.0.1:{port}", "redisPassword": "", **extra}
    lines = [
        "apiVersion: dapr.io/v1alpha1", "kind: Component", "metadata:", f"  name: {name}", "spec:",
        f"  type: {kind}", "  version: v1", "  metadata:",
    ]
    for key, value in metadata.items():
        lines += [f"  - name: {key}", f"    value: {json.dumps(value)}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def resources(module_launcher, redis):
    return module_launcher.resources("redis-resources", {
        "statestore.yaml": redis_component("statestore", "state.redis", redis, {"actorStateStore": "true"}),
        "shared.yaml": redis_component("shared", "state.redis", redis, {"keyPrefix": "none"}),
        "pubsub.yaml": redis_component("pubsub", "pubsub.redis", redis, {"processingTimeout": "2s", "redeliverInterval": "500ms"}),
        "lockstore.yaml": redis_component("lockstore", "lock.redis", redis, {}),
        "sharedlock.yaml": redis_component("sharedlock", "lock.redis", redis, {"keyPrefix": "name"}),
        "configstore.yaml": redis_component("configstore", "configuration.redis", redis, {}),
        "cache.yaml": redis_component("cache", "bindings.redis", redis, {}),
    })


@pytest.fixture(scope="module")
def first(module_launcher, resources):
    return module_launcher.sidecar("redis-first", resources=[resources])


@pytest.fixture(scope="module")
def second(module_launcher, resources):
    return module_launcher.sidecar("redis-second", resources=[resources])


def key() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


def test_etags_are_redis_versions(first, dapr_client):
    client = dapr_client(first)
    k = key()
    client.save_state("statestore", k, "value_1")
    got = client.get_state("statestore", k)
    assert (got.data, got.etag) == (b"value_1", "1")
    client.save_state("statestore", k, "value_1_updated", etag=got.etag)
    assert client.get_state("statestore", k).etag == "2"
    with pytest.raises(DaprGrpcError) as caught:
        client.save_state("statestore", k, "stale", etag="1")
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert caught.value.error_code() == "ERR_STATE_SAVE"
    assert client.get_state("statestore", k).data == b"value_1_updated"


def test_bulk_and_transactions(first, dapr_client):
    client = dapr_client(first)
    a, b = key(), key()
    client.save_bulk_state("statestore", [StateItem(key=a, value="A"), StateItem(key=b, value="B")])
    items = {item.key: (item.data, item.etag) for item in client.get_bulk_state("statestore", [a, b]).items}
    assert items == {a: (b"A", "1"), b: (b"B", "1")}

    client.execute_state_transaction("statestore", [
        TransactionalStateOperation(key=a, data="A2", etag="1"),
        TransactionalStateOperation(key=b, data="", operation_type=TransactionOperationType.delete),
    ])
    assert client.get_state("statestore", a).data == b"A2"
    assert client.get_state("statestore", b).data == b""

    # One stale ETag aborts the whole transaction: nothing of it is applied.
    with pytest.raises(DaprGrpcError):
        client.execute_state_transaction("statestore", [
            TransactionalStateOperation(key=b, data="B3"),
            TransactionalStateOperation(key=a, data="A3", etag="1"),
        ])
    assert client.get_state("statestore", a).data == b"A2"
    assert client.get_state("statestore", b).data == b""


def test_two_sidecars_share_state(first, second, dapr_client):
    k = key()
    # `statestore` prefixes keys with the app id, as Dapr does: another app does not see them.
    dapr_client(first).save_state("statestore", k, "private")
    assert dapr_client(second).get_state("statestore", k).data == b""
    # `shared` (keyPrefix: none) is one keyspace for both apps, ETags included.
    dapr_client(first).save_state("shared", k, "from-first")
    seen = dapr_client(second).get_state("shared", k)
    assert (seen.data, seen.etag) == (b"from-first", "1")
    dapr_client(second).save_state("shared", k, "from-second", etag=seen.etag)
    again = dapr_client(first).get_state("shared", k)
    assert (again.data, again.etag) == (b"from-second", "2")


def test_pubsub_survives_a_killed_subscriber_sidecar(module_launcher, resources, first, dapr_client):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    subscriptions = [{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}]
    app = module_launcher.app("http_app.py", env={"SUBSCRIPTIONS": json.dumps(subscriptions), "APP_ID": "redis-sub"})
    subscriber = module_launcher.sidecar("redis-sub", resources=[resources], app_port=app.port)
    publisher = dapr_client(first)
    publisher.publish_event("pubsub", topic, json.dumps({"n": 0}), data_content_type="application/json")
    wait_records(app, lambda records: [r for r in records if r["path"] == "/orders"], what="the first event")

    # The subscriber's sidecar dies without a goodbye; messages published meanwhile wait in
    # the app's consumer group and arrive once a sidecar for the app is back.
    subscriber.signal(signal.SIGKILL)
    subscriber.wait_exit(10)
    for n in range(1, 6):
        publisher.publish_event("pubsub", topic, json.dumps({"n": n}), data_content_type="application/json")
    module_launcher.sidecar("redis-sub", resources=[resources], app_port=app.port)

    def received():
        numbers = {r["json"]["data"]["n"] for r in read_records(app.record_file) if r["path"] == "/orders"}
        return numbers if numbers >= set(range(6)) else None

    assert wait_until(received, timeout=30, what="every event after the restart") == set(range(6))


def test_lock_redis(first, second, dapr_client):
    """Locks are per app id by default (daprd's `lock||<app id>||<resource>` keys); with keyPrefix
    `name` two apps contend for one lock."""
    a = dapr_client(first)
    r = key()
    assert a.try_lock("lockstore", r, "owner-a", 30).success
    assert not a.try_lock("lockstore", r, "owner-b", 30).success
    assert a.try_lock("sharedlock", r, "owner-a", 30).success
    b = dapr_client(second)
    # Another app id: its own key under the default prefix, the same one under `name`.
    assert b.try_lock("lockstore", r, "owner-b", 30).success
    assert not b.try_lock("sharedlock", r, "owner-b", 30).success
    assert b.unlock("sharedlock", r, "owner-b").status == UnlockResponseStatus.lock_belongs_to_others
    assert a.unlock("sharedlock", r, "owner-a").status == UnlockResponseStatus.success
    assert b.try_lock("sharedlock", r, "owner-b", 30).success
    assert b.unlock("sharedlock", r, "owner-b").status == UnlockResponseStatus.success
    assert b.unlock("sharedlock", r, "owner-b").status == UnlockResponseStatus.lock_does_not_exist


def redis_command(port: int, *args: str):
    """One command over a raw socket (RESP2), for writing configuration items as an operator would."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        sock.sendall(payload.encode())
        reply = sock.recv(4096)
    assert not reply.startswith(b"-"), reply
    return reply


def test_configuration_redis(first, redis, dapr_client):
    client = dapr_client(first)
    k1, k2 = key(), key()
    redis_command(redis, "SET", k1, "blue||1")
    items = client.get_configuration("configstore", [k1, k2]).items
    assert set(items) == {k1}
    assert (items[k1].value, items[k1].version) == ("blue", "1")

    received = []
    sub_id = client.subscribe_configuration("configstore", [k1, k2], lambda _id, response: received.append((_id, response)))
    assert sub_id
    redis_command(redis, "SET", k2, "green||2")
    wait_until(lambda: any(k2 in r.items for _, r in received), what="the configuration update")
    got_id, response = next((i, r) for i, r in received if k2 in r.items)
    assert got_id == sub_id
    assert (response.items[k2].value, response.items[k2].version) == ("green", "2")
    redis_command(redis, "DEL", k1)
    wait_until(lambda: any(k1 in r.items for _, r in received), what="the deletion")
    deleted = next(r for _, r in received if k1 in r.items).items[k1]
    assert (deleted.value, deleted.version) == ("", "")

    assert client.unsubscribe_configuration("configstore", sub_id) is True
    assert client.unsubscribe_configuration("configstore", sub_id) is False
    count = len(received)
    redis_command(redis, "SET", k2, "red||3")
    time.sleep(0.5)
    assert len(received) == count, "an update arrived after unsubscribe"


def test_bindings_redis(first, redis, dapr_client):
    client = dapr_client(first)
    k = key()
    client.invoke_binding("cache", "create", data="hello", binding_metadata={"key": k, "ttlInSeconds": "60"})
    assert client.invoke_binding("cache", "get", binding_metadata={"key": k}).data == b"hello"
    client.invoke_binding("cache", "increment", binding_metadata={"key": k + "-n"})
    assert client.invoke_binding("cache", "get", binding_metadata={"key": k + "-n"}).data == b"1"
    client.invoke_binding("cache", "delete", binding_metadata={"key": k})
    assert client.invoke_binding("cache", "get", binding_metadata={"key": k}).data == b""
    with pytest.raises(grpc.RpcError) as caught:
        client.invoke_binding("cache", "get", binding_metadata={})
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "redis binding: missing key in request metadata" in caught.value.details()
