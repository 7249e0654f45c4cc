"""Defect 4: a NUL in a state key or ETag was cut off somewhere on the way to SQLite: saving
"victim\\u0000attacker" overwrote `victim`, `GET …/victim%00whatever` read it, and an ETag with a NUL
suffix was accepted. After the fix each is refused (400 / 409) and `victim` is unchanged."""

import json

import grpc
import pytest

from conftest import dapr_error, http


@pytest.fixture
def store(launcher):
    sidecar = launcher.sidecar("nul-state")
    url = f"{sidecar.http_url}/v1.0/state/statestore"
    status, _, body = http("POST", url, json.dumps([{"key": "victim", "value": "good"}]).encode(), {"Content-Type": "application/json"})
    assert status == 204, body
    return sidecar, url


def victim(url):
    status, headers, body = http("GET", f"{url}/victim")
    assert status == 200, (status, body)
    return json.loads(body), headers.get("ETag") or headers.get("etag")


def test_nul_key_save_is_refused(store):
    """Defect 4: saving key "victim\\u0000attacker" overwrote `victim`; it must be 400, victim unchanged."""
    sidecar, url = store
    body = b'[{"key":"victim\\u0000attacker","value":"evil"}]'
    status, _, answer = http("POST", url, body, {"Content-Type": "application/json"})
    assert victim(url)[0] == "good", "the save of 'victim\\0attacker' overwrote 'victim'"
    assert status == 400, f"save of a key with a NUL: {status} {answer[:300]!r}"
    dapr_error(answer)


def test_nul_key_get_is_refused(store):
    """Defect 4: GET /v1.0/state/statestore/victim%00whatever read `victim`; it must be 400."""
    sidecar, url = store
    status, _, answer = http("GET", f"{url}/victim%00whatever")
    assert status == 400, f"GET of a key with a NUL: {status} {answer[:300]!r}"
    dapr_error(answer)


def test_nul_suffixed_etag_is_refused(store):
    """Defect 4: an ETag "<real etag>\\u0000x" was accepted as the real one; it must be 409 or 400."""
    sidecar, url = store
    _, etag = victim(url)
    assert etag, "no ETag header on GET"
    body = ('[{"key":"victim","value":"evil","etag":' + json.dumps(etag)[:-1] + '\\u0000x"}]').encode()
    status, _, answer = http("POST", url, body, {"Content-Type": "application/json"})
    assert victim(url)[0] == "good", f"a save with the ETag {etag!r} + NUL suffix overwrote 'victim' (answer {status})"
    assert status in (400, 409), f"save with a NUL-suffixed ETag: {status} {answer[:300]!r}"


NUL_WRITES = {
    "transaction-upsert": ("POST", "/transaction", b'{"operations":[{"operation":"upsert","request":{"key":"victim\\u0000x","value":"evil"}}]}'),
    "transaction-delete": ("POST", "/transaction", b'{"operations":[{"operation":"delete","request":{"key":"victim\\u0000x"}}]}'),
    "delete": ("DELETE", "/victim%00x", None),
}


@pytest.mark.parametrize("case", list(NUL_WRITES))
def test_nul_key_in_other_writes_is_refused(store, case):
    """Found while probing (defect 4's class): a transaction upsert of "victim\\u0000x" overwrote
    `victim`; `DELETE …/victim%00x` and a transaction delete of it deleted `victim`. Each must be
    400 with victim unchanged."""
    sidecar, url = store
    method, suffix, body = NUL_WRITES[case]
    status, _, answer = http(method, url + suffix, body, {"Content-Type": "application/json"})
    got, _, value = http("GET", f"{url}/victim")
    assert (got, value) == (200, b'"good"'), f"{case} with a NUL key changed 'victim': now {got} {value[:100]!r}"
    assert status == 400, f"{case} with a NUL key: {status} {answer[:300]!r}"
    dapr_error(answer)


def test_grpc_nul_key_is_invalid_argument(store):
    """Defect 4: gRPC SaveState / GetState with a NUL in the key must be INVALID_ARGUMENT."""
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2

    sidecar, url = store
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        with pytest.raises(grpc.RpcError) as saved:
            stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=[
                common_pb2.StateItem(key="victim\x00attacker", value=b'"evil"')]), timeout=10)
        assert victim(url)[0] == "good", "gRPC SaveState of 'victim\\0attacker' overwrote 'victim'"
        assert saved.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (saved.value.code(), saved.value.details())
        with pytest.raises(grpc.RpcError) as got:
            stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="victim\x00whatever"), timeout=10)
        assert got.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (got.value.code(), got.value.details())
