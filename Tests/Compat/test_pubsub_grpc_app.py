"""A gRPC subscriber app (`dapr.ext.grpc.App` with `@app.subscribe`, routing rules, a dead-letter
topic and an input binding) behind a sidecar started with `--app-protocol grpc`. Every test here
needs the gRPC app channel: marker `grpc_app`."""

import json
import time
import uuid

import pytest

from conftest import read_records, sqlite_pubsub, sqlite_state, wait_until
from dapr.clients import DaprClient

pytestmark = pytest.mark.grpc_app


@pytest.fixture(scope="module")
def resources(module_launcher):
    home = module_launcher.home
    return module_launcher.resources("grpc-app-resources", {
        "statestore.yaml": sqlite_state("statestore", home / "state.db"),
        "pubsub.yaml": sqlite_pubsub("pubsub", home / "pubsub.db"),
        "cron.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: grpc-binding
            spec:
              type: bindings.cron
              version: v1
              metadata:
              - name: schedule
                value: "@every 1s"
            scopes:
            - grpc-subscriber
            """,
    })


@pytest.fixture(scope="module")
def subscriber(module_launcher, resources):
    app = module_launcher.app("grpc_app.py", env={"APP_ID": "grpc-subscriber"})
    module_launcher.sidecar("grpc-subscriber", resources=[resources], app_port=app.port, app_protocol="grpc")
    return app


@pytest.fixture(scope="module")
def publisher(module_launcher, resources, subscriber):
    return module_launcher.sidecar("grpc-publisher", resources=[resources])


@pytest.fixture
def client(publisher, dapr_client) -> DaprClient:
    return dapr_client(publisher)


def events(app, kind, tag):
    return [r for r in read_records(app.record_file)
            if r.get("kind") == kind and isinstance(r.get("data"), dict) and r["data"].get("tag") == tag]


def test_event_reaches_grpc_subscriber(client, subscriber):
    tag = uuid.uuid4().hex
    client.publish_event("pubsub", "grpc-orders", json.dumps({"tag": tag, "n": 1}), data_content_type="application/json")
    wait_until(lambda: events(subscriber, "grpc-orders", tag), timeout=20, what="the gRPC delivery")
    event = events(subscriber, "grpc-orders", tag)[0]
    assert event["topic"] == "grpc-orders"
    assert event["pubsub"] == "pubsub"
    assert event["type"] == "com.dapr.event.sent"
    assert event["data_content_type"] == "application/json"
    assert event["data"] == {"tag": tag, "n": 1}
    assert event["id"]


def test_routing_rules(client, subscriber):
    tag = uuid.uuid4().hex
    client.publish_event("pubsub", "grpc-routed", json.dumps({"tag": tag, "kind": "x"}), data_content_type="application/json",
                         publish_metadata={"cloudevent.type": "important"})
    client.publish_event("pubsub", "grpc-routed", json.dumps({"tag": tag, "kind": "audit"}), data_content_type="application/json")
    client.publish_event("pubsub", "grpc-routed", json.dumps({"tag": tag, "kind": "unmatched"}), data_content_type="application/json")
    wait_until(lambda: events(subscriber, "important", tag) and events(subscriber, "audit", tag), timeout=20, what="both routed events")
    time.sleep(1.0)
    assert [e["data"]["kind"] for e in events(subscriber, "important", tag)] == ["x"]
    assert [e["data"]["kind"] for e in events(subscriber, "audit", tag)] == ["audit"]


def test_retry_goes_to_dead_letter_topic(client, subscriber):
    tag = uuid.uuid4().hex
    client.publish_event("pubsub", "grpc-retry", json.dumps({"tag": tag}), data_content_type="application/json")
    wait_until(lambda: events(subscriber, "grpc-retry-dlq", tag), timeout=30, what="the dead-lettered event")
    original = events(subscriber, "grpc-retry", tag)[0]
    dead = events(subscriber, "grpc-retry-dlq", tag)[0]
    assert dead["id"] == original["id"]
    assert dead["topic"] == "grpc-retry-dlq"


def test_bulk_publish_to_grpc_subscriber(client, subscriber):
    tag = uuid.uuid4().hex
    response = client.publish_events("pubsub", "grpc-orders", [json.dumps({"tag": tag, "n": i}) for i in range(4)], data_content_type="application/json")
    assert response.failed_entries == []
    wait_until(lambda: len(events(subscriber, "grpc-orders", tag)) >= 4, timeout=20, what="4 bulk events")
    assert sorted(e["data"]["n"] for e in events(subscriber, "grpc-orders", tag)) == [0, 1, 2, 3]


def test_input_binding_reaches_grpc_app(subscriber):
    wait_until(lambda: [r for r in read_records(subscriber.record_file) if r.get("kind") == "binding"], timeout=20, what="a cron binding event")
