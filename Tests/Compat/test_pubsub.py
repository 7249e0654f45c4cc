"""Publish/subscribe: publish_event / publish_events from one sidecar, delivered through another
sidecar to an HTTP subscriber (plain http.server with programmatic subscriptions), and to a
FastAPI app using `dapr.ext.fastapi.DaprApp` under `mecha run`."""

import json
import sys
import time
import uuid

import pytest

from conftest import APPS_DIR, read_records, sqlite_pubsub, sqlite_state, wait_records, wait_until
from dapr.clients import DaprClient
from dapr.clients.grpc._request import BulkPublishEntry
from dapr.proto import api_v1

SUBSCRIPTIONS = [
    {"pubsubname": "pubsub", "topic": "orders", "route": "/orders"},
    {"pubsubname": "pubsub", "topic": "bulk", "route": "/bulk"},
    {"pubsubname": "pubsub", "topic": "flaky", "route": "/flaky"},
    {"pubsubname": "pubsub", "topic": "poison", "route": "/poison", "deadLetterTopic": "poison-dlq"},
    {"pubsubname": "pubsub", "topic": "poison-dlq", "route": "/poison-dlq"},
    {"pubsubname": "pubsub", "topic": "dropped", "route": "/dropped"},
    {
        "pubsubname": "pubsub",
        "topic": "routed",
        "routes": {"rules": [{"match": 'event.type == "urgent"', "path": "/routed-urgent"}], "default": "/routed-default"},
    },
]
TOPIC_STATUS = {"/flaky": "RETRY:2", "/poison": "RETRY", "/dropped": "DROP"}


@pytest.fixture(scope="module")
def resources(module_launcher):
    home = module_launcher.home
    return module_launcher.resources("pubsub-resources", {
        "statestore.yaml": sqlite_state("statestore", home / "state.db"),
        "pubsub.yaml": sqlite_pubsub("pubsub", home / "pubsub.db"),
    })


@pytest.fixture(scope="module")
def subscriber(module_launcher, resources):
    app = module_launcher.app("http_app.py", env={
        "SUBSCRIPTIONS": json.dumps(SUBSCRIPTIONS), "TOPIC_STATUS": json.dumps(TOPIC_STATUS), "APP_ID": "subscriber",
    })
    module_launcher.sidecar("subscriber", resources=[resources], app_port=app.port)
    return app


@pytest.fixture(scope="module")
def publisher_sidecar(module_launcher, resources, subscriber):
    return module_launcher.sidecar("publisher", resources=[resources])


@pytest.fixture
def client(publisher_sidecar, dapr_client) -> DaprClient:
    return dapr_client(publisher_sidecar)


def deliveries(app, path, predicate=lambda e: True):
    return [r for r in read_records(app.record_file) if r["path"] == path and predicate(r)]


def data_of(record):
    return (record.get("json") or {}).get("data") if isinstance(record.get("json"), dict) else None


def tag_of(record):
    data = data_of(record)
    return data.get("tag") if isinstance(data, dict) else None


def marker() -> str:
    return uuid.uuid4().hex


def test_publish_json_event_is_delivered_as_cloudevent(client, subscriber):
    tag = marker()
    client.publish_event("pubsub", "orders", json.dumps({"orderId": 1, "tag": tag}), data_content_type="application/json")
    records = wait_records(subscriber, lambda rs: [r for r in rs if r["path"] == "/orders" and tag_of(r) == tag], what="the order event")
    event = [r for r in records if r["path"] == "/orders" and tag_of(r) == tag][0]
    ce = event["json"]
    assert event["method"] == "POST"
    assert event["headers"]["content-type"].startswith("application/cloudevents+json")
    assert ce["data"] == {"orderId": 1, "tag": tag}
    assert ce["datacontenttype"] == "application/json"
    assert ce["topic"] == "orders"
    assert ce["pubsubname"] == "pubsub"
    assert ce["source"] == "publisher"
    assert ce["type"] == "com.dapr.event.sent"
    assert ce["specversion"] == "1.0"
    assert ce["id"]


def test_publish_text_event(client, subscriber):
    tag = marker()
    client.publish_event("pubsub", "orders", f"plain {tag}", data_content_type="text/plain")
    wait_records(subscriber, lambda rs: deliveries(subscriber, "/orders", lambda r: data_of(r) == f"plain {tag}"), what="the text event")
    event = deliveries(subscriber, "/orders", lambda r: data_of(r) == f"plain {tag}")[0]["json"]
    assert event["datacontenttype"] == "text/plain"


def test_cloudevent_overrides_and_routing_rules(client, subscriber):
    tag = marker()
    client.publish_event("pubsub", "routed", json.dumps({"tag": tag, "n": "urgent"}), data_content_type="application/json",
                         publish_metadata={"cloudevent.type": "urgent"})
    client.publish_event("pubsub", "routed", json.dumps({"tag": tag, "n": "normal"}), data_content_type="application/json")

    def tagged(path):
        return deliveries(subscriber, path, lambda r: tag_of(r) == tag)

    wait_until(lambda: tagged("/routed-urgent") and tagged("/routed-default"), what="both routed events")
    assert [r["json"]["data"]["n"] for r in tagged("/routed-urgent")] == ["urgent"]
    assert [r["json"]["data"]["n"] for r in tagged("/routed-default")] == ["normal"]
    assert tagged("/routed-urgent")[0]["json"]["type"] == "urgent"


def test_bulk_publish(client, subscriber):
    tag = marker()
    texts = [f"{tag}-{i}" for i in range(5)]
    response = client.publish_events("pubsub", "bulk", texts, data_content_type="text/plain")
    assert response.failed_entries == []
    wait_records(subscriber, lambda rs: len(deliveries(subscriber, "/bulk", lambda r: str(data_of(r)).startswith(tag))) >= 5, what="5 bulk events")
    got = sorted(r["json"]["data"] for r in deliveries(subscriber, "/bulk", lambda r: str(data_of(r)).startswith(tag)))
    assert got == texts


def test_bulk_publish_entries_with_metadata(client, subscriber):
    tag = marker()
    entries = [
        BulkPublishEntry(entry_id="e1", event=json.dumps({"tag": tag, "n": 1}), content_type="application/json"),
        BulkPublishEntry(entry_id="e2", event=json.dumps({"tag": tag, "n": 2}), content_type="application/json", metadata={"cloudevent.type": "custom"}),
    ]
    response = client.publish_events("pubsub", "bulk", entries)
    assert response.failed_entries == []

    def tagged():
        return deliveries(subscriber, "/bulk", lambda r: tag_of(r) == tag)

    wait_until(lambda: len(tagged()) >= 2, what="2 bulk entries")
    by_n = {r["json"]["data"]["n"]: r["json"] for r in tagged()}
    assert by_n[2]["type"] == "custom"
    assert by_n[1]["datacontenttype"] == "application/json"


def test_retry_is_redelivered_until_success(client, subscriber):
    tag = marker()
    client.publish_event("pubsub", "flaky", json.dumps({"tag": tag}), data_content_type="application/json")

    def tagged():
        return deliveries(subscriber, "/flaky", lambda r: tag_of(r) == tag)

    wait_until(lambda: len(tagged()) >= 3, timeout=30, what="2 RETRY answers and a SUCCESS")
    time.sleep(1.0)
    attempts = tagged()
    assert len(attempts) == 3, "redelivered until SUCCESS, then not again"
    assert len({r["json"]["id"] for r in attempts}) == 1, "the same event every time"


def test_retry_goes_to_dead_letter_topic(client, subscriber):
    tag = marker()
    client.publish_event("pubsub", "poison", json.dumps({"tag": tag}), data_content_type="application/json")

    def tagged(path):
        return deliveries(subscriber, path, lambda r: tag_of(r) == tag)

    wait_until(lambda: tagged("/poison-dlq"), timeout=30, what="the dead-lettered event")
    original = tagged("/poison")[0]["json"]
    dead = tagged("/poison-dlq")[0]["json"]
    assert dead["id"] == original["id"]
    assert dead["data"] == {"tag": tag}
    # daprd republishes the original message: its CloudEvent still names the original topic.
    assert dead["topic"] == "poison"
    time.sleep(0.5)
    assert len(tagged("/poison-dlq")) == 1


def test_drop_is_not_redelivered(client, subscriber):
    tag = marker()
    client.publish_event("pubsub", "dropped", json.dumps({"tag": tag}), data_content_type="application/json")

    def tagged():
        return deliveries(subscriber, "/dropped", lambda r: tag_of(r) == tag)

    wait_until(tagged, what="the dropped event")
    time.sleep(1.0)
    assert len(tagged()) == 1


def test_async_publish(publisher_sidecar, subscriber, use_sidecar):
    import asyncio

    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(publisher_sidecar)
    tag = marker()

    async def scenario():
        async with AsyncDaprClient() as client:
            await client.publish_event("pubsub", "orders", json.dumps({"tag": tag, "via": "aio"}), data_content_type="application/json")

    asyncio.run(scenario())
    wait_until(lambda: deliveries(subscriber, "/orders", lambda r: tag_of(r) == tag), what="the aio event")


def test_fastapi_subscriber_under_mecha_run(launcher, use_sidecar):
    """A FastAPI app with dapr.ext.fastapi subscriptions, started by `mecha run` as Dapr users do."""
    from conftest import free_port

    app_port = free_port()
    record_file = launcher.root / "fastapi.jsonl"
    run = launcher.run(
        "fastapi-app",
        [sys.executable, "-u", str(APPS_DIR / "fastapi_app.py")],
        args=["--app-port", str(app_port)],
        env={"RECORD_FILE": str(record_file), "TOPIC": "fastapi-orders"},
    )

    def up():
        if not run.alive():
            run.fail("mecha run exited")
        return "You're up and running!" in run.log_text()

    wait_until(up, timeout=30, what="mecha run to report the sidecar healthy")
    run.record_file = record_file

    class Running:  # what use_sidecar needs
        http_port, grpc_port = run.http_port, run.grpc_port

    use_sidecar(Running)
    with DaprClient() as client:
        wait_until(lambda: any(s.topic == "fastapi-orders" for s in client._stub.GetMetadata(api_v1.GetMetadataRequest()).subscriptions), what="the FastAPI subscription")
        client.publish_event("pubsub", "fastapi-orders", json.dumps({"id": 7}), data_content_type="application/json")
        records = wait_records(run, lambda rs: [r for r in rs if r["kind"] == "event"], what="the FastAPI event")
        event = [r for r in records if r["kind"] == "event"][0]["event"]
        assert event["data"] == {"id": 7}
        assert event["topic"] == "fastapi-orders"
        assert event["source"] == "fastapi-app"

        # Invocation of the same app through its own sidecar; the app answers through FastAPI.
        response = client.invoke_method("fastapi-app", "hello", data="world", http_verb="POST", content_type="text/plain")
        assert json.loads(response.data) == {"hello": "world", "app": "fastapi-app"}

        # The app uses DaprClient() itself with the variables `mecha run` gave it.
        client.invoke_method("fastapi-app", "save", data=json.dumps({"key": "from-fastapi", "value": "v"}), http_verb="POST", content_type="application/json")
        assert client.get_state("statestore", "from-fastapi").data == b'v'
    assert "== APP == fastapi_app starting" in run.log_text()
