"""State management through the SDK's gRPC client against the embedded `statestore` (state.sqlite)."""

import json
import time
import uuid

import grpc
import pytest

from conftest import http
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError, DaprInternalError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, Consistency, StateItem, StateOptions

STORE = "statestore"


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    # No --resources-path: the embedded defaults (statestore, pubsub) in the temporary mecha home.
    return module_launcher.sidecar("state-app")


@pytest.fixture
def client(sidecar, dapr_client) -> DaprClient:
    return dapr_client(sidecar)


def key() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


def test_save_get_delete(client):
    k = key()
    client.save_state(STORE, k, "value-1")
    got = client.get_state(STORE, k)
    assert got.data == b"value-1"
    assert got.text() == "value-1"
    assert got.etag, "a saved item has an ETag"

    client.delete_state(STORE, k)
    gone = client.get_state(STORE, k)
    assert gone.data == b""
    assert gone.etag == ""


def test_missing_key_is_empty_not_an_error(client):
    got = client.get_state(STORE, key())
    assert got.data == b""
    assert got.etag == ""


def test_json_value_round_trip_and_http_view(client, sidecar):
    k = key()
    document = {"n": 1, "tags": ["a", "b"], "nested": {"ok": True}}
    client.save_state(STORE, k, json.dumps(document))
    assert json.loads(client.get_state(STORE, k).data) == document
    # The same item through the HTTP API (as a non-SDK caller of the same app sees it).
    status, _, body = http("GET", f"{sidecar.http_url}/v1.0/state/{STORE}/{k}")
    assert status == 200
    assert json.loads(body) == document


def test_bytes_value(client):
    k = key()
    payload = bytes(range(256))
    client.save_state(STORE, k, payload)
    assert client.get_state(STORE, k).data == payload


def test_bulk_save_and_bulk_get(client):
    keys = [key() for _ in range(3)]
    client.save_bulk_state(STORE, [StateItem(key=k, value=f"v-{i}") for i, k in enumerate(keys)])
    missing = key()
    items = client.get_bulk_state(STORE, keys + [missing], parallelism=2).items
    by_key = {item.key: item for item in items}
    assert set(by_key) == set(keys + [missing])
    for i, k in enumerate(keys):
        assert by_key[k].data == f"v-{i}".encode()
        assert by_key[k].etag
        assert by_key[k].error == ""
    assert by_key[missing].data == b""
    assert by_key[missing].etag == ""


def test_etag_update_and_conflict(client):
    k = key()
    client.save_state(STORE, k, "v1")
    etag = client.get_state(STORE, k).etag

    client.save_state(STORE, k, "v2", etag=etag)
    second = client.get_state(STORE, k)
    assert second.data == b"v2"
    assert second.etag != etag, "a write changes the ETag"

    with pytest.raises(DaprGrpcError) as conflict:
        client.save_state(STORE, k, "v3", etag=etag)  # stale
    assert conflict.value.code() == grpc.StatusCode.ABORTED
    assert STORE in conflict.value.details()
    assert client.get_state(STORE, k).data == b"v2"


def test_delete_with_stale_etag_is_aborted(client):
    k = key()
    client.save_state(STORE, k, "v1")
    etag = client.get_state(STORE, k).etag
    client.save_state(STORE, k, "v2")
    with pytest.raises(DaprGrpcError) as conflict:
        client.delete_state(STORE, k, etag=etag)
    assert conflict.value.code() == grpc.StatusCode.ABORTED
    client.delete_state(STORE, k, etag=client.get_state(STORE, k).etag)
    assert client.get_state(STORE, k).data == b""


def test_bulk_save_with_stale_etag_is_aborted(client):
    a, b = key(), key()
    client.save_bulk_state(STORE, [StateItem(key=a, value="a1"), StateItem(key=b, value="b1")])
    with pytest.raises(DaprGrpcError) as conflict:
        client.save_bulk_state(STORE, [StateItem(key=a, value="a2", etag="not-the-etag")])
    assert conflict.value.code() == grpc.StatusCode.ABORTED
    assert client.get_state(STORE, a).data == b"a1"


def test_first_write_concurrency(client):
    k = key()
    first_write = StateOptions(concurrency=Concurrency.first_write, consistency=Consistency.strong)
    client.save_state(STORE, k, "first", options=first_write)
    with pytest.raises(DaprGrpcError) as conflict:
        client.save_state(STORE, k, "second", options=first_write)
    assert conflict.value.code() == grpc.StatusCode.ABORTED
    assert client.get_state(STORE, k).data == b"first"
    # With the current ETag, first-write accepts the update.
    etag = client.get_state(STORE, k).etag
    client.save_state(STORE, k, "second", etag=etag, options=first_write)
    assert client.get_state(STORE, k).data == b"second"


def test_ttl_in_seconds(client):
    k = key()
    client.save_state(STORE, k, "short-lived", state_metadata={"ttlInSeconds": "1"})
    got = client.get_state(STORE, k)
    assert got.data == b"short-lived"
    time.sleep(2.2)
    assert client.get_state(STORE, k).data == b""


def test_transaction_upsert_and_delete(client):
    a, b, c = key(), key(), key()
    client.save_state(STORE, c, "to-delete")
    client.execute_state_transaction(
        STORE,
        [
            TransactionalStateOperation(key=a, data="A", operation_type=TransactionOperationType.upsert),
            TransactionalStateOperation(key=b, data=json.dumps({"b": 2})),
            TransactionalStateOperation(key=c, operation_type=TransactionOperationType.delete),
        ],
    )
    assert client.get_state(STORE, a).data == b"A"
    assert json.loads(client.get_state(STORE, b).data) == {"b": 2}
    assert client.get_state(STORE, c).data == b""


def test_transaction_is_atomic_on_etag_conflict(client):
    a, b = key(), key()
    client.save_state(STORE, b, "b-original")
    with pytest.raises(DaprGrpcError) as failure:
        client.execute_state_transaction(
            STORE,
            [
                TransactionalStateOperation(key=a, data="A"),
                TransactionalStateOperation(key=b, data="B", etag="stale-etag"),
            ],
        )
    assert failure.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED)
    assert client.get_state(STORE, a).data == b"", "the first operation was rolled back"
    assert client.get_state(STORE, b).data == b"b-original"


def test_async_client_state(sidecar, use_sidecar):
    import asyncio

    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(sidecar)
    k = key()

    async def scenario():
        async with AsyncDaprClient() as client:
            await client.save_state(STORE, k, "async-value")
            got = await client.get_state(STORE, k)
            assert got.data == b"async-value"
            await client.save_bulk_state(STORE, [StateItem(key=k + "-2", value="two")])
            items = (await client.get_bulk_state(STORE, [k, k + "-2"])).items
            assert sorted(item.data for item in items) == [b"async-value", b"two"]
            # The aio client wraps save errors in DaprInternalError carrying the status text.
            with pytest.raises(DaprInternalError) as conflict:
                await client.save_state(STORE, k, "x", etag="stale")
            assert "etag" in str(conflict.value.message).lower()
            await client.delete_state(STORE, k)
            assert (await client.get_state(STORE, k)).data == b""

    asyncio.run(scenario())
