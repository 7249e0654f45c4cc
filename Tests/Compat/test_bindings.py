"""The `bindings.localstorage` output binding through `invoke_binding` (sync and aio)."""

import base64
import json

import grpc
import pytest

from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError


@pytest.fixture(scope="module")
def root(module_launcher):
    path = module_launcher.root / "binding-files"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def sidecar(module_launcher, root):
    resources = module_launcher.resources("binding-resources", {
        "localstorage.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: files
            spec:
              type: bindings.localstorage
              version: v1
              metadata:
              - name: rootPath
                value: "{root}"
            """,
    })
    return module_launcher.sidecar("bindings-app", resources=[resources])


@pytest.fixture
def client(sidecar, dapr_client) -> DaprClient:
    return dapr_client(sidecar)


def test_create_get_delete(client, root):
    created = client.invoke_binding("files", "create", "hello world", binding_metadata={"fileName": "greeting.txt"})
    assert json.loads(created.data) == {"fileName": "greeting.txt"}
    assert (root / "greeting.txt").read_bytes() == b"hello world"

    got = client.invoke_binding("files", "get", binding_metadata={"fileName": "greeting.txt"})
    assert got.data == b"hello world"
    assert got.text() == "hello world"

    client.invoke_binding("files", "delete", binding_metadata={"fileName": "greeting.txt"})
    assert not (root / "greeting.txt").exists()


def test_create_without_file_name_uses_a_random_name(client, root):
    created = json.loads(client.invoke_binding("files", "create", "anonymous content").data)
    name = created["fileName"]
    assert name
    assert (root / name).read_bytes() == b"anonymous content"


def test_base64_data_is_decoded_as_dapr_does(client, root):
    payload = bytes([0, 1, 2, 250, 251, 252])
    client.invoke_binding("files", "create", base64.b64encode(payload).decode(), binding_metadata={"fileName": "binary.bin"})
    assert (root / "binary.bin").read_bytes() == payload


def test_list(client, root):
    sub = root / "listing"
    for name in ("a.txt", "b.txt"):
        client.invoke_binding("files", "create", f"content {name}", binding_metadata={"fileName": f"listing/{name}"})
    listed = json.loads(client.invoke_binding("files", "list", binding_metadata={"fileName": "listing"}).data)
    assert sorted(listed) == sorted(str(sub / name) for name in ("a.txt", "b.txt"))


def test_get_missing_file_is_an_error(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.invoke_binding("files", "get", binding_metadata={"fileName": "missing.txt"})
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details().startswith("error invoking output binding files: ")


def test_unsupported_operation(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.invoke_binding("files", "explode", "x")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "files" in error.details()
    assert "explode" in error.details()


def test_async_invoke_binding(sidecar, use_sidecar, root):
    import asyncio

    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(sidecar)

    async def scenario():
        async with AsyncDaprClient() as client:
            await client.invoke_binding("files", "create", "from aio", binding_metadata={"fileName": "aio.txt"})
            got = await client.invoke_binding("files", "get", binding_metadata={"fileName": "aio.txt"})
            assert got.data == b"from aio"

    asyncio.run(scenario())
