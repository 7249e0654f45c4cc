"""Secrets: `secretstores.local.file` components limited by a Configuration's `spec.secrets.scopes`."""

import json

import grpc
import pytest

from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError

SECRETS = {
    "allowed-key": "allowed-value",
    "denied-key": "denied-value",
    "other-key": "other-value",
    "nested": {"inner": "nested-value"},
}


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    secrets_file = module_launcher.file("secrets.json", json.dumps(SECRETS))
    resources = module_launcher.resources("secret-resources", {
        "secretstores.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: localsecretstore
            spec:
              type: secretstores.local.file
              version: v1
              metadata:
              - name: secretsFile
                value: "{secrets_file}"
              - name: nestedSeparator
                value: ":"
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: strictstore
            spec:
              type: secretstores.local.file
              version: v1
              metadata:
              - name: secretsFile
                value: "{secrets_file}"
            """,
    })
    config = module_launcher.resources("secret-config", {
        "config.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: secretsconfig
            spec:
              secrets:
                scopes:
                - storeName: localsecretstore
                  defaultAccess: allow
                  deniedSecrets: ["denied-key"]
                - storeName: strictstore
                  defaultAccess: deny
                  allowedSecrets: ["allowed-key"]
            """,
    }) / "config.yaml"
    return module_launcher.sidecar("secrets-app", resources=[resources], config=config)


@pytest.fixture
def client(sidecar, dapr_client) -> DaprClient:
    return dapr_client(sidecar)


def test_get_allowed_secret(client):
    assert client.get_secret("localsecretstore", "allowed-key").secret == {"allowed-key": "allowed-value"}
    assert client.get_secret("strictstore", "allowed-key").secret == {"allowed-key": "allowed-value"}


def test_nested_secret_with_separator(client):
    assert client.get_secret("localsecretstore", "nested:inner").secret == {"nested:inner": "nested-value"}


@pytest.mark.parametrize("store,key", [("localsecretstore", "denied-key"), ("strictstore", "other-key")])
def test_denied_secret_is_permission_denied(client, store, key):
    with pytest.raises(grpc.RpcError) as caught:
        client.get_secret(store, key)
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == f'access denied by policy to get "{key}" from "{store}"'


def test_bulk_secrets_are_filtered_by_scopes(client):
    everything_but_denied = client.get_bulk_secret("localsecretstore").secrets
    assert everything_but_denied == {
        "allowed-key": {"allowed-key": "allowed-value"},
        "other-key": {"other-key": "other-value"},
        "nested:inner": {"nested:inner": "nested-value"},
    }
    only_allowed = client.get_bulk_secret("strictstore").secrets
    assert only_allowed == {"allowed-key": {"allowed-key": "allowed-value"}}


def test_missing_secret_is_an_error(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.get_secret("localsecretstore", "no-such-key")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details().startswith("failed getting secret with key no-such-key from secret store localsecretstore")


def test_unknown_secret_store(client):
    with pytest.raises(grpc.RpcError) as caught:
        client.get_secret("no-such-store", "allowed-key")
    error = DaprGrpcError(caught.value)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "failed finding secret store with key no-such-store"


def test_async_client_secrets(sidecar, use_sidecar):
    import asyncio

    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(sidecar)

    async def scenario():
        async with AsyncDaprClient() as client:
            assert (await client.get_secret("localsecretstore", "allowed-key")).secret == {"allowed-key": "allowed-value"}
            bulk = (await client.get_bulk_secret("strictstore")).secrets
            assert bulk == {"allowed-key": {"allowed-key": "allowed-value"}}

    asyncio.run(scenario())
