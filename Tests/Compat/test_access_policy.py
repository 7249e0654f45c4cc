"""Mecha `AccessPolicy`: the accessControl language for state keys, topics and secrets, enforced
by each sidecar for its own app's SPIFFE id — driven with the official SDK over gRPC (its default
for state, secrets and publish) and with plain HTTP."""

import json
import time
import uuid

import grpc
import pytest

from conftest import http, read_records, sqlite_pubsub, sqlite_state, wait_until

POLICY = """\
apiVersion: mecha.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: data
spec:
  defaultAction: allow          # apps no policy names
  policies:
  - appId: ap-orders
    defaultAction: deny         # ap-orders may only do what is listed
    operations:
    - name: /state/store/orders-*
      verbs: [get, save]
      action: allow
    - name: /state/store/shared/**
      action: allow
    - name: /pubsub/bus/orders
      verbs: [publish, subscribe]
      action: allow
    - name: /pubsub/bus/audit
      verbs: [publish]
      action: allow
    - name: /secrets/vault/db-*
      verbs: [get]
      action: allow
"""


@pytest.fixture(scope="module")
def setup(module_launcher):
    home = module_launcher.home
    secrets_file = module_launcher.file("ap-secrets.json", json.dumps({"db-password": "s3cret", "api-key": "nope"}))
    directory = module_launcher.resources("ap-resources", {
        "store.yaml": sqlite_state("store", home / "ap-state.db"),
        "bus.yaml": sqlite_pubsub("bus", home / "ap-bus.db"),
        "vault.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: vault
            spec:
              type: secretstores.local.file
              version: v1
              metadata:
              - name: secretsFile
                value: "{secrets_file}"
            """,
        "policy.yaml": POLICY,
    })
    subscriptions = [{"pubsubname": "bus", "topic": "orders", "route": "/orders"},
                     {"pubsubname": "bus", "topic": "audit", "route": "/audit"}]
    app = module_launcher.app("http_app.py", env={"APP_ID": "ap-orders", "SUBSCRIPTIONS": json.dumps(subscriptions)})
    orders = module_launcher.sidecar("ap-orders", resources=[directory], app_port=app.port)
    other = module_launcher.sidecar("ap-other", resources=[directory])
    return orders, other, app


def denied_grpc(call):
    """The SDK's gRPC error (DaprGrpcError for most calls, the raw RpcError for secrets)."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_state_keys_follow_the_policy(setup, dapr_client):
    orders, other, _ = setup
    client = dapr_client(orders)
    client.save_state("store", "orders-1", "a")
    assert client.get_state("store", "orders-1").data == b"a"
    client.save_state("store", "shared/x/y", "b")
    client.delete_state("store", "shared/x/y")
    error = denied_grpc(lambda: client.save_state("store", "invoices-1", "c"))
    assert error.code().name == "PERMISSION_DENIED"
    assert "access policy data denies spiffe://public/ns/default/ap-orders to save /state/store/invoices-1" in error.details()
    # Delete is not among the verbs of orders-*; keys are case-sensitive.
    assert denied_grpc(lambda: client.delete_state("store", "orders-1")).code().name == "PERMISSION_DENIED"
    assert denied_grpc(lambda: client.get_state("store", "ORDERS-1")).code().name == "PERMISSION_DENIED"
    # A bulk read with one forbidden key is refused as a whole; over HTTP the same answer.
    status, _, body = http("POST", f"{orders.http_url}/v1.0/state/store/bulk", json.dumps({"keys": ["orders-1", "invoices-1"]}).encode(),
                           {"Content-Type": "application/json"})
    assert status == 403 and json.loads(body)["errorCode"] == "ERR_PERMISSION_DENIED", body
    # Transactions are checked per operation.
    status, _, body = http("POST", f"{orders.http_url}/v1.0/state/store/transaction", json.dumps({"operations": [
        {"operation": "upsert", "request": {"key": "orders-2", "value": "x"}},
        {"operation": "delete", "request": {"key": "orders-1"}}]}).encode(), {"Content-Type": "application/json"})
    assert status == 403, body
    assert client.get_state("store", "orders-2").data == b""   # nothing of the refused transaction was written
    # Another app gets the policy's default: allow.
    dapr_client(other).save_state("store", "invoices-1", "fine")


def test_topics_follow_the_policy(setup, dapr_client):
    orders, _, app = setup
    client = dapr_client(orders)
    tag = uuid.uuid4().hex
    client.publish_event("bus", "orders", json.dumps({"tag": tag}), data_content_type="application/json")
    wait_until(lambda: [r for r in read_records(app.record_file) if r.get("path") == "/orders" and tag in json.dumps(r.get("json"))],
               timeout=15, what="the allowed delivery")
    error = denied_grpc(lambda: client.publish_event("bus", "invoices", "x"))
    assert error.code().name == "PERMISSION_DENIED"
    status, _, body = http("POST", f"{orders.http_url}/v1.0/publish/bus/invoices", b"{}", {"Content-Type": "application/json"})
    assert status == 403 and json.loads(body)["errorCode"] == "ERR_PUBSUB_FORBIDDEN", body
    # `audit` may be published to but not subscribed to: its subscription was not started.
    client.publish_event("bus", "audit", json.dumps({"tag": tag}), data_content_type="application/json")
    time.sleep(1.5)
    assert not [r for r in read_records(app.record_file) if r.get("path") == "/audit"]
    assert "subscription to topic 'audit' on pubsub 'bus' is not allowed" in orders.log_text()


def test_secrets_follow_the_policy(setup, dapr_client):
    orders, _, _ = setup
    client = dapr_client(orders)
    assert client.get_secret("vault", "db-password").secret == {"db-password": "s3cret"}
    error = denied_grpc(lambda: client.get_secret("vault", "api-key"))
    assert error.code().name == "PERMISSION_DENIED"
    # The bulk read leaves the forbidden secret out, as secret scopes do.
    assert set(client.get_bulk_secret("vault").secrets) == {"db-password"}
