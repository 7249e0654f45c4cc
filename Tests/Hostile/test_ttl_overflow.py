"""Defect 1: a huge `ttlInSeconds` (publish, bulk publish, gRPC PublishEvent, state save) ended the
process with an arithmetic-overflow trap. After the fix the sidecar stays alive; a publish answers
2xx (Dapr clamps a huge TTL to its maximum duration); a state save answers 204 or 400 with a Dapr
error body and the key can be read afterwards."""

import json

import grpc
import pytest

from conftest import dapr_error, http

HUGE_TTLS = ["9223372036854775807", "9223372036854775"]


@pytest.mark.parametrize("query", [f"metadata.ttlInSeconds={ttl}" for ttl in HUGE_TTLS]
                         + ["metadata.rawPayload=true&metadata.ttlInSeconds=9223372036854775807"])
def test_publish_huge_ttl_does_not_crash(launcher, query):
    """Defect 1: POST /v1.0/publish/pubsub/<topic>?metadata.ttlInSeconds=<huge> trapped (overflow);
    the rawPayload variant was found while probing."""
    sidecar = launcher.sidecar("ttl-publish")
    try:
        status, _, body = http("POST", f"{sidecar.http_url}/v1.0/publish/pubsub/ttl-topic?{query}",
                               b'{"a":1}', {"Content-Type": "application/json"})
    except OSError as error:
        status, body = None, repr(error).encode()
    sidecar.assert_alive(f"a publish with {query}")
    assert status is not None and 200 <= status < 300, f"publish with {query}: {status} {body[:300]!r}"


def test_bulk_publish_huge_ttl_does_not_crash(launcher):
    """Defect 1: bulk publish with an entry's metadata ttlInSeconds=9223372036854775807 trapped."""
    sidecar = launcher.sidecar("ttl-bulk")
    entries = [
        {"entryId": "1", "event": {"a": 1}, "contentType": "application/json",
         "metadata": {"ttlInSeconds": "9223372036854775807"}},
        {"entryId": "2", "event": {"a": 2}, "contentType": "application/json"},
    ]
    try:
        status, _, body = http("POST", f"{sidecar.http_url}/v1.0-alpha1/publish/bulk/pubsub/ttl-bulk-topic",
                               json.dumps(entries).encode(), {"Content-Type": "application/json"})
    except OSError as error:
        status, body = None, repr(error).encode()
    sidecar.assert_alive("a bulk publish with a huge ttlInSeconds")
    assert status is not None and 200 <= status < 300, f"bulk publish: {status} {body[:300]!r}"
    if body.strip():
        assert not json.loads(body).get("failedEntries"), body


def test_grpc_publish_huge_ttl_does_not_crash(launcher):
    """Defect 1: gRPC PublishEvent with metadata ttlInSeconds=9223372036854775807 trapped."""
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, pubsub_pb2

    sidecar = launcher.sidecar("ttl-grpc")
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        error = None
        try:
            stub.PublishEvent(pubsub_pb2.PublishEventRequest(
                pubsub_name="pubsub", topic="ttl-grpc-topic", data=b'{"a":1}', data_content_type="application/json",
                metadata={"ttlInSeconds": "9223372036854775807"}), timeout=10)
        except grpc.RpcError as caught:
            error = caught
    sidecar.assert_alive("a gRPC PublishEvent with a huge ttlInSeconds")
    assert error is None, f"PublishEvent: {error.code()} {error.details()}"


@pytest.mark.parametrize("ttl", HUGE_TTLS)
def test_state_save_huge_ttl_does_not_crash(launcher, ttl):
    """Defect 1: POST /v1.0/state/statestore with metadata ttlInSeconds=<huge> trapped (or 500)."""
    sidecar = launcher.sidecar("ttl-state")
    body = json.dumps([{"key": "k", "value": 1, "metadata": {"ttlInSeconds": ttl}}]).encode()
    try:
        status, _, answer = http("POST", f"{sidecar.http_url}/v1.0/state/statestore", body, {"Content-Type": "application/json"})
    except OSError as error:
        status, answer = None, repr(error).encode()
    sidecar.assert_alive("a state save with a huge ttlInSeconds")
    assert status in (204, 400), f"state save with a huge TTL: {status} {answer[:300]!r}"
    if status == 400:
        dapr_error(answer)
    got, _, value = http("GET", f"{sidecar.http_url}/v1.0/state/statestore/k")
    if status == 204:
        assert (got, value) == (200, b"1"), f"GET k after the save: {got} {value[:200]!r}"
    else:
        assert got in (200, 204), f"GET k after the refused save: {got} {value[:200]!r}"
