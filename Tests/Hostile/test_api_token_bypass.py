"""Defect 2: with DAPR_API_TOKEN set, health paths with extra slashes (and the absolute-form
request line) plus `dapr-app-id: <own app id>` were invoked on the app without a token. After the
fix they answer 401 and the app receives none of them; the exact health paths still answer 204."""

import time

import pytest

from conftest import raw_request, read_records

TOKEN = "secret"
APP_ID = "token-bypass"


@pytest.fixture(scope="module")
def protected(module_launcher):
    app = module_launcher.app("record_app.py")
    sidecar = module_launcher.sidecar(APP_ID, app_port=app.port, env={"DAPR_API_TOKEN": TOKEN})
    return sidecar, app


def healthz_records(app):
    return [r for r in read_records(app.record_file) if "healthz" in r["raw_path"]]


BYPASS_TARGETS = [
    "/v1.0/healthz//",
    "/v1.0/healthz/outbound//",
    "///v1.0/healthz///?q=1",
    "ABSOLUTE",
]


@pytest.mark.parametrize("target", BYPASS_TARGETS)
def test_health_path_variants_need_the_token(protected, target):
    """Defect 2: `GET <health path variant>` with dapr-app-id of the sidecar itself and no token
    reached the app; it must be 401 and the app must receive nothing."""
    sidecar, app = protected
    if target == "ABSOLUTE":
        target = f"http://127.0.0.1:{sidecar.http_port}/v1.0/healthz//"
    before = len(healthz_records(app))
    request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.http_port}\r\n"
               f"dapr-app-id: {APP_ID}\r\nConnection: close\r\n\r\n").encode()
    response = raw_request(sidecar.http_port, request)
    time.sleep(0.3)
    reached = healthz_records(app)[before:]
    assert not reached, f"GET {target} without a token reached the app: {reached}"
    assert response is not None and response.status == 401, f"GET {target} without a token: {response!r}"


@pytest.mark.parametrize("path", ["/v1.0/healthz", "/v1.0/healthz/outbound"])
def test_exact_health_paths_need_no_token(protected, path):
    """Defect 2 (regression side): the exact health paths still answer 204 without a token."""
    sidecar, app = protected
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    response = raw_request(sidecar.http_port, request)
    assert response is not None and response.status == 204, f"GET {path}: {response!r}"


@pytest.mark.parametrize("metadata", [(), (("dapr-app-id", "elsewhere"),)])
def test_grpc_unknown_method_without_token_is_unauthenticated(protected, metadata):
    """A gRPC call to a service the sidecar does not serve, without the token, is refused as
    daprd refuses it (its interceptors run before the unknown-service handler): UNAUTHENTICATED,
    not UNIMPLEMENTED (which told an unauthenticated caller what is served) nor proxied."""
    import grpc

    sidecar, _ = protected
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        call = channel.unary_unary("/example.Unknown/Method", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", metadata=metadata, timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, raised.value
    # daprd's words: the status text, with the reason in the error details (ErrorInfo).
    assert raised.value.details() == "Unauthorized"
    details = dict(raised.value.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
    assert b"api token" in details, details
