"""Service invocation with `invoke_method`: to an HTTP app (plain http.server) through its own
sidecar and across two sidecars, over the SDK's default HTTP invocation and over gRPC
(DAPR_API_METHOD_INVOCATION_PROTOCOL=grpc); to a gRPC app (`dapr.ext.grpc.App`, sidecar with
`--app-protocol grpc`)."""

import json

import grpc
import pytest

from conftest import sqlite_pubsub, sqlite_state
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError, DaprHttpError


@pytest.fixture(scope="module")
def resources(module_launcher):
    home = module_launcher.home
    return module_launcher.resources("invoke-resources", {
        "statestore.yaml": sqlite_state("statestore", home / "state.db"),
        "pubsub.yaml": sqlite_pubsub("pubsub", home / "pubsub.db"),
    })


@pytest.fixture(scope="module")
def callee(module_launcher, resources):
    app = module_launcher.app("http_app.py", env={"APP_ID": "http-callee"})
    return module_launcher.sidecar("http-callee", resources=[resources], app_port=app.port)


@pytest.fixture(scope="module")
def caller(module_launcher, resources, callee):
    """A second sidecar without an app, on the same machine (same mecha home: name resolution)."""
    return module_launcher.sidecar("caller", resources=[resources])


@pytest.fixture(params=["same-sidecar", "other-sidecar"])
def via(request, callee, caller):
    return callee if request.param == "same-sidecar" else caller


@pytest.fixture
def client(via, dapr_client) -> DaprClient:
    return dapr_client(via)


@pytest.fixture
def grpc_protocol_client(via, use_sidecar, monkeypatch):
    use_sidecar(via)
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    client = DaprClient()
    yield client
    client.close()


# -- HTTP app, SDK default (HTTP invocation) --------------------------------------------------

def test_post_echo(client):
    response = client.invoke_method("http-callee", "echo", data="hello", http_verb="POST", content_type="text/plain")
    assert response.data == b"hello"
    assert response.text() == "hello"
    assert response.content_type.startswith("text/plain")
    assert response.status_code == 200
    assert response.headers["x-echo-method"] == ["POST"]
    assert response.headers["x-echo-app"] == ["http-callee"]


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PATCH"])
def test_verbs(client, verb):
    response = client.invoke_method("http-callee", "whoami", data=b"" if verb in ("GET", "DELETE") else b"{}", http_verb=verb)
    answer = response.json()
    assert answer["method"] == verb
    assert answer["path"] == "/whoami"


def test_query_string_and_caller_headers(client, via):
    response = client.invoke_method("http-callee", "whoami", http_verb="GET", http_querystring=(("a", "1"), ("b", "x y")))
    answer = json.loads(response.data)
    assert answer["query"] in ("a=1&b=x+y", "a=1&b=x%20y")
    assert answer["headers"]["dapr-caller-app-id"] == via.app_id
    assert answer["headers"]["dapr-callee-app-id"] == "http-callee"


def test_json_body(client):
    body = json.dumps({"order": 1, "items": ["a", "b"]})
    response = client.invoke_method("http-callee", "echo/json", data=body, http_verb="POST", content_type="application/json")
    assert response.json() == {"order": 1, "items": ["a", "b"]}
    assert response.content_type.startswith("application/json")


def test_binary_body(client):
    payload = bytes(range(256)) * 64
    response = client.invoke_method("http-callee", "echo/bin", data=payload, http_verb="POST", content_type="application/octet-stream")
    assert response.data == payload


def test_app_error_status_is_passed_through(client):
    with pytest.raises(DaprHttpError) as caught:
        client.invoke_method("http-callee", "status/404", http_verb="GET")
    assert caught.value.status_code == 404
    with pytest.raises(DaprHttpError) as caught:
        client.invoke_method("http-callee", "status/503", http_verb="POST", data="x")
    assert caught.value.status_code == 503


def test_unknown_app_id(client):
    with pytest.raises(DaprHttpError) as caught:
        client.invoke_method("no-such-app", "echo", http_verb="POST", data="x")
    assert caught.value.status_code == 500
    assert caught.value.error_code == "ERR_DIRECT_INVOKE"
    assert "no-such-app" in caught.value.message


def test_async_invoke(via, use_sidecar):
    import asyncio

    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(via)

    async def scenario():
        async with AsyncDaprClient() as client:
            response = await client.invoke_method("http-callee", "echo", data="aio", http_verb="POST", content_type="text/plain")
            assert response.data == b"aio"

    asyncio.run(scenario())


# -- HTTP app, gRPC InvokeService ------------------------------------------------------------

def test_grpc_invoke_service_to_http_app(grpc_protocol_client):
    response = grpc_protocol_client.invoke_method("http-callee", "echo", data="over grpc", content_type="text/plain", http_verb="POST")
    assert response.data == b"over grpc"
    assert response.content_type.startswith("text/plain")


def test_grpc_invoke_service_query_string(grpc_protocol_client):
    response = grpc_protocol_client.invoke_method("http-callee", "whoami", http_verb="GET", http_querystring=(("q", "1"),))
    assert json.loads(response.data)["query"] == "q=1"


def test_grpc_invoke_service_app_error_status(grpc_protocol_client):
    """daprd: an HTTP app's non-2xx answer becomes the matching gRPC code with message = status text
    and ErrorInfo{reason: status text, domain dapr.io, metadata http.code / http.error_message}."""
    with pytest.raises(grpc.RpcError) as caught:
        grpc_protocol_client.invoke_method("http-callee", "status/404", http_verb="GET")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Not Found"
    info = error.status_details().error_info
    assert info["reason"] == "Not Found"
    assert info["domain"] == "dapr.io"
    assert info["metadata"]["http.code"] == "404"
    assert info["metadata"]["http.error_message"] == '{"status": 404}'


def test_grpc_invoke_service_app_error_is_an_error(grpc_protocol_client):
    """Whatever the exact status, a non-2xx answer of the app is a failed RPC for gRPC callers."""
    with pytest.raises(grpc.RpcError) as caught:
        grpc_protocol_client.invoke_method("http-callee", "status/503", http_verb="POST", data="x")
    assert DaprGrpcError(caught.value).code() != grpc.StatusCode.OK


def test_grpc_invoke_service_unknown_app(grpc_protocol_client):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_protocol_client.invoke_method("no-such-app", "echo", data="x", http_verb="POST")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details().startswith("failed to invoke, id: no-such-app, err: ")


# -- gRPC app (dapr.ext.grpc.App) ------------------------------------------------------------

@pytest.fixture(scope="module")
def grpc_callee(module_launcher, resources):
    app = module_launcher.app("grpc_app.py", env={"APP_ID": "grpc-callee"})
    return module_launcher.sidecar("grpc-callee", resources=[resources], app_port=app.port, app_protocol="grpc")


@pytest.fixture(params=["same-sidecar", "other-sidecar"])
def grpc_via(request, grpc_callee, caller):
    return grpc_callee if request.param == "same-sidecar" else caller


@pytest.mark.grpc_app
def test_invoke_grpc_app_over_http(grpc_via, dapr_client):
    client = dapr_client(grpc_via)
    response = client.invoke_method("grpc-callee", "echo", data="to grpc app", content_type="text/plain", http_verb="POST")
    assert response.data == b"to grpc app"
    assert response.content_type.startswith("text/plain")


@pytest.mark.grpc_app
def test_invoke_grpc_app_over_grpc(grpc_via, use_sidecar, monkeypatch):
    use_sidecar(grpc_via)
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        response = client.invoke_method("grpc-callee", "echo", data="grpc to grpc", content_type="text/plain")
        assert response.data == b"grpc to grpc"
        assert response.content_type == "text/plain"

        answer = client.invoke_method("grpc-callee", "whoami", data=json.dumps({"q": 1}), content_type="application/json").json()
        assert answer["app"] == "grpc-callee"
        assert answer["data"] == json.dumps({"q": 1})
        assert answer["metadata"]["dapr-callee-app-id"] == ["grpc-callee"]


@pytest.mark.grpc_app
def test_grpc_app_response_headers_over_http(grpc_callee, dapr_client):
    response = dapr_client(grpc_callee).invoke_method("grpc-callee", "echo", data="h", content_type="text/plain", http_verb="POST")
    assert response.headers["x-echo-app"] == ["grpc-callee"]


@pytest.mark.grpc_app
def test_grpc_app_response_headers_over_grpc(grpc_callee, use_sidecar, monkeypatch):
    use_sidecar(grpc_callee)
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        response = client.invoke_method("grpc-callee", "echo", data="h", content_type="text/plain")
        assert dict(response.headers).get("x-echo-app") in ("grpc-callee", ["grpc-callee"])


@pytest.mark.grpc_app
def test_invoke_grpc_app_unknown_method(grpc_callee, use_sidecar, monkeypatch):
    use_sidecar(grpc_callee)
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.invoke_method("grpc-callee", "no-such-method", data="x")
        assert DaprGrpcError(caught.value).code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.grpc_app
def test_invoke_grpc_app_error_status_passes_through(grpc_callee, use_sidecar, monkeypatch):
    use_sidecar(grpc_callee)
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        with pytest.raises(grpc.RpcError) as caught:
            client.invoke_method("grpc-callee", "no-such-method", data="x")
        error = DaprGrpcError(caught.value)
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        assert error.details() == "Exception calling application: no-such-method method not implemented!"


@pytest.mark.grpc_app
def test_invoke_grpc_app_unknown_method_over_http(grpc_callee, dapr_client):
    with pytest.raises(DaprHttpError) as caught:
        dapr_client(grpc_callee).invoke_method("grpc-callee", "no-such-method", data="x", http_verb="POST")
    assert caught.value.status_code == 501


@pytest.fixture(params=["same-sidecar", "other-sidecar"])
def proxy_via(request, grpc_callee, caller):
    return grpc_callee if request.param == "same-sidecar" else caller


@pytest.mark.grpc_app
def test_grpc_proxying_to_custom_service(proxy_via):
    """What the SDK now recommends instead of InvokeService: the app's own gRPC service, reached
    through the sidecar with `dapr-app-id` metadata (grpc_app.py serves /compat.Echo/Say)."""
    with grpc.insecure_channel(proxy_via.grpc_address) as channel:
        say = channel.unary_unary("/compat.Echo/Say")
        reply = say(b"proxied", metadata=(("dapr-app-id", "grpc-callee"),), timeout=10)
    assert reply == b"grpc-callee:proxied"


@pytest.mark.grpc_app
def test_grpc_app_metadata(grpc_callee, dapr_client):
    from dapr.proto import api_v1

    client = dapr_client(grpc_callee)
    raw = client._stub.GetMetadata(api_v1.GetMetadataRequest())
    assert raw.app_connection_properties.protocol == "grpc"
    topics = {s.topic for s in raw.subscriptions}
    assert {"grpc-orders", "grpc-routed", "grpc-retry", "grpc-retry-dlq"} <= topics
