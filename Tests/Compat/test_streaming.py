"""Streaming subscriptions (SubscribeTopicEventsAlpha1): `client.subscribe(...)` and
`subscribe_with_handler`, with the sync `DaprClient` and `dapr.aio.clients.DaprClient`.
The sidecar has no app: the subscriber is the SDK client itself."""

import asyncio
import concurrent.futures
import json
import threading
import uuid

import pytest

from conftest import wait_until
from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse
from dapr.proto import api_v1

PUBSUB = "pubsub"


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    return module_launcher.sidecar("streaming-app")


@pytest.fixture
def client(sidecar, dapr_client) -> DaprClient:
    return dapr_client(sidecar)


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def next_message(subscription, timeout: float = 15.0):
    """subscription.next_message() with a deadline: closes the subscription when it passes."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(subscription.next_message)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            subscription.close()
            raise AssertionError(f"no message within {timeout}s") from None


def streaming_topics(client):
    raw = client._stub.GetMetadata(api_v1.GetMetadataRequest())
    return {(s.pubsub_name, s.topic): s for s in raw.subscriptions if s.type == api_v1.PubsubSubscriptionType.STREAMING}


def test_subscribe_next_message_and_respond(client):
    topic = topic_name("stream")
    subscription = client.subscribe(PUBSUB, topic)
    try:
        wait_until(lambda: (PUBSUB, topic) in streaming_topics(client), what="the streaming subscription in metadata")
        client.publish_event(PUBSUB, topic, json.dumps({"n": 1}), data_content_type="application/json")
        client.publish_event(PUBSUB, topic, "second", data_content_type="text/plain")

        first = next_message(subscription)
        assert first.data() == {"n": 1}
        assert first.topic() == topic
        assert first.pubsub_name() == PUBSUB
        assert first.data_content_type() == "application/json"
        assert first.source() == "streaming-app"
        assert first.type() == "com.dapr.event.sent"
        assert first.id()
        subscription.respond_success(first)

        second = next_message(subscription)
        assert second.data() == "second"
        assert second.raw_data() == b"second"
        subscription.respond_success(second)
    finally:
        subscription.close()
    wait_until(lambda: (PUBSUB, topic) not in streaming_topics(client), what="the subscription to leave metadata after close")


def test_retry_redelivers_to_the_stream(client):
    topic = topic_name("stream-retry")
    subscription = client.subscribe(PUBSUB, topic)
    try:
        client.publish_event(PUBSUB, topic, "again", data_content_type="text/plain")
        first = next_message(subscription)
        subscription.respond_retry(first)
        second = next_message(subscription, timeout=30)
        assert second.id() == first.id()
        assert second.data() == "again"
        subscription.respond_success(second)
    finally:
        subscription.close()


def test_subscribe_with_handler(client):
    topic = topic_name("stream-handler")
    received = []
    done = threading.Event()

    def handler(message):
        received.append(message.data())
        if len(received) == 3:
            done.set()
        return TopicEventResponse("success")

    close = client.subscribe_with_handler(PUBSUB, topic, handler)
    try:
        for i in range(3):
            client.publish_event(PUBSUB, topic, json.dumps({"i": i}), data_content_type="application/json")
        assert done.wait(20), f"handler saw {received}"
        assert sorted(item["i"] for item in received) == [0, 1, 2]
    finally:
        close()


def test_dead_letter_topic_of_a_streaming_subscription(client):
    topic = topic_name("stream-poison")
    dead_letter = topic + "-dlq"
    dead = []
    got_dead = threading.Event()

    def poison_handler(message):
        return TopicEventResponse("retry")

    def dead_letter_handler(message):
        dead.append((message.topic(), message.data()))
        got_dead.set()
        return TopicEventResponse("success")

    close_dead = client.subscribe_with_handler(PUBSUB, dead_letter, dead_letter_handler)
    close_poison = client.subscribe_with_handler(PUBSUB, topic, poison_handler, dead_letter_topic=dead_letter)
    try:
        client.publish_event(PUBSUB, topic, json.dumps({"bad": True}), data_content_type="application/json")
        assert got_dead.wait(20), "nothing reached the dead-letter topic"
        # gRPC deliveries name the subscribed topic (daprd's TopicEventRequest.topic = msg.Topic).
        assert dead[0] == (dead_letter, {"bad": True})
    finally:
        close_poison()
        close_dead()


def test_bulk_published_events_reach_the_stream(client):
    topic = topic_name("stream-bulk")
    received = []
    done = threading.Event()

    def handler(message):
        received.append(message.data())
        if len(received) >= 4:
            done.set()
        return TopicEventResponse("success")

    close = client.subscribe_with_handler(PUBSUB, topic, handler)
    try:
        response = client.publish_events(PUBSUB, topic, ["a", "b", "c", "d"], data_content_type="text/plain")
        assert response.failed_entries == []
        assert done.wait(20), f"handler saw {received}"
        assert sorted(received) == ["a", "b", "c", "d"]
    finally:
        close()


def test_async_subscribe_and_handler(sidecar, use_sidecar):
    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(sidecar)
    topic = topic_name("aio-stream")
    handler_topic = topic_name("aio-handler")

    async def scenario():
        async with AsyncDaprClient() as client:
            subscription = await client.subscribe(PUBSUB, topic)
            try:
                await client.publish_event(PUBSUB, topic, json.dumps({"aio": 1}), data_content_type="application/json")
                message = await asyncio.wait_for(subscription.next_message(), 15)
                assert message.data() == {"aio": 1}
                assert message.topic() == topic
                await subscription.respond_success(message)
            finally:
                await subscription.close()

            seen = asyncio.Queue()

            async def handler(message):
                await seen.put(message.data())
                return TopicEventResponse("success")

            close = await client.subscribe_with_handler(PUBSUB, handler_topic, handler)
            try:
                await client.publish_event(PUBSUB, handler_topic, "via handler", data_content_type="text/plain")
                assert await asyncio.wait_for(seen.get(), 15) == "via handler"
            finally:
                await close()

    asyncio.run(scenario())


def test_two_streams_of_one_app_share_the_messages(client):
    """Like two instances of an app: each message goes to one of the app's streams."""
    topic = topic_name("stream-shared")
    seen = {"a": [], "b": []}
    total = threading.Event()
    lock = threading.Lock()

    def handler_for(name):
        def handler(message):
            with lock:
                seen[name].append(message.data())
                if len(seen["a"]) + len(seen["b"]) >= 6:
                    total.set()
            return TopicEventResponse("success")
        return handler

    close_a = client.subscribe_with_handler(PUBSUB, topic, handler_for("a"))
    close_b = client.subscribe_with_handler(PUBSUB, topic, handler_for("b"))
    try:
        for i in range(6):
            client.publish_event(PUBSUB, topic, str(i), data_content_type="text/plain")
        assert total.wait(20), f"saw {seen}"
        assert sorted(seen["a"] + seen["b"]) == [str(i) for i in range(6)]
    finally:
        close_a()
        close_b()
