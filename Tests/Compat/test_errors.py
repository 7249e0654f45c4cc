"""Rich gRPC errors as the SDK's `DaprGrpcError` exposes them: code(), details(), error_code(),
status_details() (ErrorInfo, ResourceInfo, BadRequest), json()."""

import json

import grpc
import pytest

from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._state import StateItem

STORE = "statestore"
APP_ID = "errors-app"


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    return module_launcher.sidecar(APP_ID)


@pytest.fixture
def client(sidecar, dapr_client) -> DaprClient:
    return dapr_client(sidecar)


def test_state_store_not_found(client):
    with pytest.raises(DaprGrpcError) as caught:
        client.get_state("no-such-store", "k")
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "state store no-such-store is not found"
    assert error.error_code() == "DAPR_STATE_NOT_FOUND"
    info = error.status_details().error_info
    assert info["domain"] == "dapr.io"
    assert info["reason"] == "DAPR_STATE_NOT_FOUND"
    assert info["metadata"] == {"appID": APP_ID}
    as_json = json.loads(error.json())
    assert as_json["status_code"] == "INVALID_ARGUMENT"
    assert as_json["error_code"] == "DAPR_STATE_NOT_FOUND"
    assert as_json["message"] == "state store no-such-store is not found"


@pytest.mark.parametrize("operation", ["save", "get", "delete"])
def test_illegal_key_with_double_pipe(client, operation):
    bad_key = "ke||y1"
    with pytest.raises(DaprGrpcError) as caught:
        if operation == "save":
            client.save_state(STORE, bad_key, "v")
        elif operation == "get":
            client.get_state(STORE, bad_key)
        else:
            client.delete_state(STORE, bad_key)
    error = caught.value
    message = "input key/keyPrefix 'ke||y1' can't contain '||'"
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()
    assert error.error_code() == "DAPR_STATE_ILLEGAL_KEY"
    details = error.status_details()
    assert details.error_info["domain"] == "dapr.io"
    assert details.resource_info["resource_type"] == "state"
    assert details.resource_info["resource_name"] == STORE
    violations = details.bad_request["field_violations"]
    assert len(violations) == 1
    assert violations[0]["field"] == bad_key
    assert message in violations[0]["description"]


def test_etag_mismatch_status(client):
    client.save_state(STORE, "etag-key", "v1")
    with pytest.raises(DaprGrpcError) as caught:
        client.save_state(STORE, "etag-key", "v2", etag="not-the-etag")
    error = caught.value
    assert error.code() == grpc.StatusCode.ABORTED
    assert error.details().startswith("failed saving state in state store statestore: ")


@pytest.mark.parametrize("operation,code,reason", [
    ("save", grpc.StatusCode.ABORTED, "ERR_STATE_SAVE"),
    ("delete", grpc.StatusCode.ABORTED, "ERR_STATE_DELETE"),
    ("transaction", grpc.StatusCode.INTERNAL, "ERR_STATE_TRANSACTION"),
    ("empty-key", grpc.StatusCode.INVALID_ARGUMENT, "ERR_STATE_SAVE"),
])
def test_state_error_info(client, operation, code, reason):
    from dapr.clients.grpc._request import TransactionalStateOperation

    key = f"error-info-{operation}"
    client.save_state(STORE, key, "v1")
    with pytest.raises(DaprGrpcError) as caught:
        if operation == "save":
            client.save_state(STORE, key, "v2", etag="not-the-etag")
        elif operation == "delete":
            client.delete_state(STORE, key, etag="not-the-etag")
        elif operation == "transaction":
            client.execute_state_transaction(STORE, [TransactionalStateOperation(key=key, data="v2", etag="not-the-etag")])
        else:
            client.save_bulk_state(STORE, [StateItem(key="", value="v")])
    error = caught.value
    assert error.code() == code
    assert error.error_code() == reason
    assert error.status_details().error_info["domain"] == "dapr.io"


def test_pubsub_not_found(client):
    with pytest.raises(DaprGrpcError) as caught:
        client.publish_event("no-such-pubsub", "topic", "x")
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "pubsub no-such-pubsub is not found"
    assert error.error_code() == "DAPR_PUBSUB_NOT_FOUND"
    assert error.status_details().error_info["domain"] == "dapr.io"


def test_secret_store_not_configured(client):
    # The embedded defaults have no secret store: daprd answers FailedPrecondition.
    with pytest.raises(grpc.RpcError) as caught:
        client.get_secret("no-such-store", "k")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "secret store is not configured"


def test_output_binding_not_found(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.invoke_binding("no-such-binding", "create", "x")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "error invoking output binding no-such-binding: couldn't find output binding no-such-binding"


def test_output_binding_not_found_error_info(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.invoke_binding("no-such-binding", "create", "x")
    assert DaprGrpcError(caught.value).error_code() == "ERR_INVOKE_OUTPUT_BINDING"


def test_empty_state_key_is_invalid(client):
    with pytest.raises(DaprGrpcError) as caught:
        client.save_bulk_state(STORE, [StateItem(key="", value="v")])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "state key cannot be empty" in caught.value.details()
