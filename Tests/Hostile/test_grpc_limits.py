"""Defects 10 and 11 on the gRPC API.

10: a message over the limit (SaveState with a 5 MiB value; the default limit is 4 MiB) ended as
    CANCELLED. After the fix it is RESOURCE_EXHAUSTED with a message, and the channel still works.
11: InvokeService with method `../../../etc/passwd` reached the app as `/../../../etc/passwd`. After
    the fix the method is cleaned as the HTTP API does (daprd's path.Clean rule): `/etc/passwd`."""

import time

import grpc
import pytest

from conftest import read_records, wait_records


def test_oversized_message_is_resource_exhausted(launcher):
    """Defect 10: SaveState with a 5 MiB value got CANCELLED; it must be RESOURCE_EXHAUSTED with
    details, and a small call on the same channel must still work."""
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2

    sidecar = launcher.sidecar("grpc-limit")
    with grpc.insecure_channel(sidecar.grpc_address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=[
                common_pb2.StateItem(key="big", value=b"x" * (5 * 1024 * 1024))]), timeout=20)
        code, details = caught.value.code(), caught.value.details()
        stub.SaveState(state_pb2.SaveStateRequest(store_name="statestore", states=[
            common_pb2.StateItem(key="small", value=b'"ok"')]), timeout=10)
        assert stub.GetState(state_pb2.GetStateRequest(store_name="statestore", key="small"), timeout=10).data == b'"ok"'
    sidecar.assert_alive("an oversized gRPC message")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"5 MiB SaveState: {code} {details!r}"
    assert details, "RESOURCE_EXHAUSTED without a message"


@pytest.fixture(scope="module")
def invoked(module_launcher):
    app = module_launcher.app("record_app.py")
    sidecar = module_launcher.sidecar("grpc-clean", app_port=app.port)
    return sidecar, app


@pytest.mark.parametrize("method,expected", [("../../../etc/passwd", "/etc/passwd"), ("a/../../b", "/b")])
def test_invoke_service_method_is_cleaned(invoked, method, expected):
    """Defect 11: gRPC InvokeService method with `..` segments reached the app uncleaned."""
    from dapr.proto.common.v1 import common_pb2
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, invoke_pb2

    sidecar, app = invoked
    before = len(read_records(app.record_file))
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        stub.InvokeService(invoke_pb2.InvokeServiceRequest(id="grpc-clean", message=common_pb2.InvokeRequest(
            method=method, http_extension=common_pb2.HTTPExtension(verb=common_pb2.HTTPExtension.GET))), timeout=10)
    records = wait_records(app, lambda records: records[before:], timeout=5, what="the invocation")
    time.sleep(0.1)
    paths = [r["raw_path"] for r in read_records(app.record_file)[before:]]
    assert paths == [expected], f"method {method!r} reached the app as {paths}"


def test_proxied_call_carries_messages_up_to_the_configured_limit(launcher):
    """gRPC proxying forwarded with the client's default 4 MiB limit, so with `--max-body-size
    16Mi` a 6 MiB request was accepted by the sidecar and then failed upstream (INTERNAL /
    RESOURCE_EXHAUSTED). The upstream call now has the served side's limit both ways."""
    app = launcher.app("grpc_record_app.py")
    sidecar = launcher.sidecar("grpc-proxy-big", app_port=app.port,
                               extra_args=["--app-protocol", "grpc", "--max-body-size", "16Mi"])
    payload = b"y" * (6 * 1024 * 1024)
    limit = 64 * 1024 * 1024
    with grpc.insecure_channel(sidecar.grpc_address, options=[
            ("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]) as channel:
        echo = channel.unary_unary("/example.Echo/Big", request_serializer=None, response_deserializer=None)
        answer = echo(payload, metadata=(("dapr-app-id", "grpc-proxy-big"),), timeout=30)
    sidecar.assert_alive("a large proxied call")
    assert answer == payload, f"the echo came back with {len(answer)} bytes"
