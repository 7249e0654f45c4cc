"""Defect 5: more than 100 concurrent streams on one gRPC channel ended the connection with GOAWAY
PROTOCOL_ERROR (0 of 150 concurrent GetState calls succeeded). After the fix the sidecar advertises
its stream limit (or has none) so a client queues the extra calls: all of them succeed."""

import asyncio

import grpc
import pytest

UNARY_CALLS = 150
SUBSCRIPTIONS = 200


@pytest.fixture
def sidecar(launcher):
    return launcher.sidecar("grpc-streams")


def test_150_concurrent_unary_calls_on_one_channel(sidecar):
    """Defect 5: 150 concurrent GetState calls on one channel: GOAWAY PROTOCOL_ERROR at the 101st stream."""
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2

    async def run():
        async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)
            await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="warm-up"), timeout=10)
            calls = [stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key=f"k{i}"), timeout=20)
                     for i in range(UNARY_CALLS)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            # the channel still works afterwards
            await stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="after"), timeout=10)
            return results

    try:
        results = asyncio.run(asyncio.wait_for(run(), 60))
    except grpc.RpcError as error:
        pytest.fail(f"the channel broke: {error.code()} {error.details()}")
    failures = [r for r in results if isinstance(r, BaseException)]
    summary = {}
    for failure in failures:
        key = f"{failure.code()} {failure.details()}" if isinstance(failure, grpc.RpcError) else repr(failure)
        summary[key] = summary.get(key, 0) + 1
    assert not failures, f"{len(failures)} of {UNARY_CALLS} concurrent GetState calls failed: {summary}"


def test_200_concurrent_streaming_subscriptions_on_one_channel(sidecar):
    """Defect 5: 200 concurrent SubscribeTopicEventsAlpha1 streams on one channel: each must get its
    initial response."""
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, pubsub_pb2

    async def subscribe(stub, topic):
        call = stub.SubscribeTopicEventsAlpha1(timeout=30)
        try:
            await call.write(pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
                initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(pubsub_name="pubsub", topic=topic)))
            response = await call.read()
            if response is grpc.aio.EOF:
                return "EOF before the initial response"
            if not response.HasField("initial_response"):
                return f"first message is not the initial response: {response}"
            return None
        except grpc.RpcError as error:
            return f"{error.code()} {error.details()}"
        finally:
            call.cancel()

    async def run():
        async with grpc.aio.insecure_channel(sidecar.grpc_address) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel)
            return await asyncio.gather(*(subscribe(stub, f"stream-topic-{i}") for i in range(SUBSCRIPTIONS)))

    results = asyncio.run(asyncio.wait_for(run(), 60))
    failures = [r for r in results if r]
    summary = {}
    for failure in failures:
        summary[failure] = summary.get(failure, 0) + 1
    assert not failures, f"{len(failures)} of {SUBSCRIPTIONS} subscriptions got no initial response: {summary}"
