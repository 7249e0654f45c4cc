"""Metadata API round trip: get_metadata / set_metadata (sync and aio), and the raw gRPC message."""

import json

import pytest

from conftest import http, sqlite_state
from dapr.clients import DaprClient
from dapr.proto import api_v1

APP_ID = "metadata-app"


@pytest.fixture(scope="module")
def app(module_launcher):
    subscriptions = [{"pubsubname": "pubsub", "topic": "meta-topic", "route": "/meta-topic", "deadLetterTopic": "meta-dlq"}]
    return module_launcher.app("http_app.py", env={"SUBSCRIPTIONS": json.dumps(subscriptions), "APP_ID": APP_ID})


@pytest.fixture(scope="module")
def sidecar(module_launcher, app):
    home = module_launcher.home
    resources = module_launcher.resources("metadata-resources", {
        "statestore.yaml": sqlite_state("statestore", home / "meta-state.db"),
        "pubsub.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: pubsub
            spec:
              type: pubsub.sqlite
              version: v1
              metadata:
              - name: connectionString
                value: "{home / 'meta-pubsub.db'}"
            """,
        "binding.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: files
            spec:
              type: bindings.localstorage
              version: v1
              metadata:
              - name: rootPath
                value: "{home / 'files'}"
            """,
    })
    return module_launcher.sidecar(APP_ID, resources=[resources], app_port=app.port)


@pytest.fixture
def client(sidecar, dapr_client) -> DaprClient:
    return dapr_client(sidecar)


def test_get_metadata(client):
    metadata = client.get_metadata()
    assert metadata.application_id == APP_ID
    assert metadata.active_actors_count == {}
    components = {c.name: c for c in metadata.registered_components}
    assert set(components) >= {"statestore", "pubsub", "files"}
    assert components["statestore"].type == "state.sqlite"
    assert components["statestore"].version == "v1"
    assert {"ETAG", "TRANSACTIONAL", "TTL", "ACTOR"} <= set(components["statestore"].capabilities)
    assert components["pubsub"].type == "pubsub.sqlite"
    assert components["files"].type == "bindings.localstorage"
    assert "OUTPUT_BINDING" in components["files"].capabilities
    assert "daprRuntimeVersion" in metadata.extended_metadata


def test_set_metadata_round_trip(client, sidecar):
    client.set_metadata("team", "compat")
    client.set_metadata("note", "multi word value: ok")
    extended = client.get_metadata().extended_metadata
    assert extended["team"] == "compat"
    assert extended["note"] == "multi word value: ok"
    # The HTTP API shows what the gRPC API set, and the other way round.
    assert sidecar.metadata()["extended"]["team"] == "compat"
    status, _, _ = http("PUT", f"{sidecar.http_url}/v1.0/metadata/fromhttp", body=b"http-value")
    assert status == 204
    assert client.get_metadata().extended_metadata["fromhttp"] == "http-value"
    client.set_metadata("team", "overwritten")
    assert client.get_metadata().extended_metadata["team"] == "overwritten"


def test_raw_metadata_message(client):
    """Fields the SDK's GetMetadataResponse does not surface, read from the generated stub."""
    raw = client._stub.GetMetadata(api_v1.GetMetadataRequest())
    assert raw.id == APP_ID
    assert raw.runtime_version
    connection = raw.app_connection_properties
    assert connection.protocol == "http"
    assert connection.channel_address == "127.0.0.1"
    assert connection.port > 0
    subscriptions = {(s.pubsub_name, s.topic): s for s in raw.subscriptions}
    subscription = subscriptions[("pubsub", "meta-topic")]
    assert subscription.dead_letter_topic == "meta-dlq"
    assert [rule.path for rule in subscription.rules.rules] == ["/meta-topic"]
    assert subscription.type == api_v1.PubsubSubscriptionType.PROGRAMMATIC


def test_async_metadata(sidecar, use_sidecar):
    import asyncio

    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(sidecar)

    async def scenario():
        async with AsyncDaprClient() as client:
            await client.set_metadata("async-key", "async-value")
            metadata = await client.get_metadata()
            assert metadata.application_id == APP_ID
            assert metadata.extended_metadata["async-key"] == "async-value"

    asyncio.run(scenario())
