"""DAPR_API_TOKEN: the SDK sends the token (gRPC metadata and the health check's header) when the
variable is set; without it the sidecar refuses gRPC calls with UNAUTHENTICATED. As daprd
(`invokev1.ErrorFromHTTPResponseCode(401, reason)`), the status message is Go's status text and the
reason travels in the ErrorInfo detail (`http.error_message`)."""

import grpc
import pytest

from dapr.clients import DaprClient

TOKEN = "compat-secret-token"


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    return module_launcher.sidecar("token-app", env={"DAPR_API_TOKEN": TOKEN})


def test_sdk_with_token(sidecar, use_sidecar, monkeypatch):
    use_sidecar(sidecar)
    monkeypatch.setenv("DAPR_API_TOKEN", TOKEN)
    with DaprClient() as client:
        client.save_state("statestore", "with-token", "ok")
        assert client.get_state("statestore", "with-token").data == b"ok"
        assert client.get_metadata().application_id == "token-app"


def test_sdk_without_token_is_unauthenticated(sidecar, use_sidecar):
    use_sidecar(sidecar)  # the health check needs no token
    with DaprClient() as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.get_state("statestore", "with-token")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "Unauthorized"


def test_sdk_with_wrong_token(sidecar, use_sidecar, monkeypatch):
    use_sidecar(sidecar)
    monkeypatch.setenv("DAPR_API_TOKEN", "wrong")
    with DaprClient() as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.get_metadata()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "Unauthorized"
