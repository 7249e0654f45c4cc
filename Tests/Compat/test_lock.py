"""Distributed lock through the SDK's `try_lock`/`unlock` (TryLockAlpha1/UnlockAlpha1) on the
embedded `lockstore` (`lock.sqlite`), which every sidecar on the machine shares."""

import uuid

import grpc
import pytest

from dapr.clients.grpc._response import UnlockResponseStatus


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    return module_launcher.sidecar("lock-app")


def resource() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


def test_try_lock_and_unlock(sidecar, dapr_client):
    client = dapr_client(sidecar)
    r = resource()
    assert client.try_lock("lockstore", r, "owner-a", 30).success
    assert not client.try_lock("lockstore", r, "owner-b", 30).success
    assert client.unlock("lockstore", r, "owner-b").status == UnlockResponseStatus.lock_belongs_to_others
    assert client.unlock("lockstore", r, "owner-a").status == UnlockResponseStatus.success
    assert client.unlock("lockstore", r, "owner-a").status == UnlockResponseStatus.lock_does_not_exist


def test_lock_as_a_context_manager_releases_it(sidecar, dapr_client):
    client = dapr_client(sidecar)
    r = resource()
    with client.try_lock("lockstore", r, "owner-a", 30) as lock:
        assert lock.success
        assert not client.try_lock("lockstore", r, "owner-b", 30)
    assert client.try_lock("lockstore", r, "owner-b", 30).success


def test_lock_expires(sidecar, dapr_client):
    import time

    client = dapr_client(sidecar)
    r = resource()
    assert client.try_lock("lockstore", r, "owner-a", 1).success
    deadline = time.monotonic() + 5
    while not client.try_lock("lockstore", r, "owner-b", 30).success:
        assert time.monotonic() < deadline, "a 1 s lock was still held after 5 s"
        time.sleep(0.1)
    assert client.unlock("lockstore", r, "owner-a").status == UnlockResponseStatus.lock_belongs_to_others


def test_errors_have_daprds_codes(sidecar, dapr_client):
    client = dapr_client(sidecar)
    # The SDK raises the RpcError itself here (no DaprGrpcError wrapping for the lock API).
    with pytest.raises(grpc.RpcError) as caught:
        client.try_lock("nope", resource(), "owner-a", 30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "lock store nope not found"
    with pytest.raises(grpc.RpcError) as caught:
        client.try_lock("lockstore", "a||b", "owner-a", 30)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "failed to try acquiring lock: input key/keyPrefix 'a||b' can't contain '||'"
    # The SDK checks blank arguments itself before calling.
    with pytest.raises(ValueError):
        client.try_lock("lockstore", " ", "owner-a", 30)


def test_two_sidecars_contend_for_the_embedded_lock(module_launcher, dapr_client):
    """With keyPrefix `name` apps with different ids lock the same resource; the embedded store is one
    file for every sidecar on the machine."""
    resources = module_launcher.resources("shared-lock", {
        "lock.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: sharedlock
            spec:
              type: lock.sqlite
              version: v1
              metadata:
              - name: keyPrefix
                value: name
            """,
    })
    a = dapr_client(module_launcher.sidecar("lock-a", resources=[resources]))
    r = resource()
    assert a.try_lock("sharedlock", r, "owner-a", 30).success
    b = dapr_client(module_launcher.sidecar("lock-b", resources=[resources]))
    assert not b.try_lock("sharedlock", r, "owner-b", 30).success
    assert b.unlock("sharedlock", r, "owner-b").status == UnlockResponseStatus.lock_belongs_to_others
    assert a.unlock("sharedlock", r, "owner-a").status == UnlockResponseStatus.success
    assert b.try_lock("sharedlock", r, "owner-b", 30).success
