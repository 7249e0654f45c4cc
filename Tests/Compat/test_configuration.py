"""The configuration API's errors through the SDK (the Redis-backed happy path is in
test_redis_components.py): daprd's gRPC codes and messages."""

import grpc
import pytest


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    return module_launcher.sidecar("config-app")


def test_without_configuration_stores(sidecar, dapr_client):
    client = dapr_client(sidecar)
    with pytest.raises(grpc.RpcError) as caught:
        client.get_configuration("configstore", ["a"])
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == "configuration stores not configured"


def test_unsubscribing_an_unknown_id_is_false(sidecar, dapr_client):
    client = dapr_client(sidecar)
    assert client.unsubscribe_configuration("configstore", "no-such-id") is False
