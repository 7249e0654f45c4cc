"""Defect 3: `POST /v1.0/publish/scoped/orders%00x` published to the protected topic `orders`. After
the fix a topic with a NUL is refused with 400 and a Dapr error body, and nothing lands on `orders`."""

import json
import time

from conftest import dapr_error, http, metadata_item, read_records, sqlite_pubsub, wait_records


def test_nul_suffix_does_not_bypass_protected_topics(launcher):
    """Defect 3: protectedTopics bypass with a NUL in the topic (`orders%00x` landed on `orders`)."""
    metadata = (metadata_item("protectedTopics", "orders")
                + metadata_item("publishingScopes", "sub=orders")
                + metadata_item("subscriptionScopes", "sub=orders")
                + metadata_item("pollInterval", "50ms"))
    resources = launcher.resources("resources", {"scoped.yaml": sqlite_pubsub("scoped", launcher.root / "scoped.db", metadata)})
    # `sub` may publish and subscribe to `orders`; `pub` may not.
    app = launcher.app("record_app.py", env={"SUBSCRIPTIONS": json.dumps([{"pubsubname": "scoped", "topic": "orders", "route": "/orders"}])})
    sub = launcher.sidecar("sub", resources=[resources], app_port=app.port)
    pub = launcher.sidecar("pub", resources=[resources])

    status, _, body = http("POST", f"{pub.http_url}/v1.0/publish/scoped/orders", b'{"n":"direct"}', {"Content-Type": "application/json"})
    assert status == 403, f"a publish to the protected topic by an app without scope: {status} {body[:300]!r}"

    status, _, body = http("POST", f"{pub.http_url}/v1.0/publish/scoped/orders%00x", b'{"n":"attack"}', {"Content-Type": "application/json"})

    # A control event through the allowed sidecar proves the subscriber receives what lands on `orders`.
    control_status, _, control_body = http("POST", f"{sub.http_url}/v1.0/publish/scoped/orders", b'{"n":"control"}', {"Content-Type": "application/json"})
    assert control_status == 204, f"control publish: {control_status} {control_body[:300]!r}"

    def deliveries(records):
        return [json.loads(r["body"]).get("data") for r in records if r["path"] == "/orders"]

    wait_records(app, lambda records: {"n": "control"} in deliveries(records), timeout=10, what="the control event on orders")
    time.sleep(2)
    landed = deliveries(read_records(app.record_file))
    assert {"n": "attack"} not in landed, f"the event published to 'orders%00x' was delivered on 'orders': {landed}"
    assert status == 400, f"publish to 'orders%00x': {status} {body[:300]!r}"
    dapr_error(body)
