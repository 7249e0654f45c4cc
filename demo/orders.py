"""Orders: saves orders in the state store (with an ETag check), publishes them to the `orders`
topic, then asks the shipping app through service invocation until every order is shipped.
Exits 0 when the round trip worked, 1 otherwise. With ORDERS_KEEP_GOING=1 it then keeps placing
an order every half second (save, publish, ask shipping) until stopped: live traffic for
`mecha dashboard`."""

import json
import os
import sys
import time
import urllib.error
import urllib.request

DAPR = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}"
ORDERS = [{"id": n, "item": item} for n, item in enumerate(["keyboard", "monitor", "coffee"], start=1)]


def dapr(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(DAPR + path, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def main():
    # State: save, read back with its ETag, then show optimistic concurrency at work.
    for order in ORDERS:
        status, _, _ = dapr("POST", "/v1.0/state/statestore", [{"key": f"order-{order['id']}", "value": order}])
        assert status == 204, status
    status, headers, body = dapr("GET", "/v1.0/state/statestore/order-1")
    etag = headers.get("ETag") or headers.get("Etag")
    print(f"orders: saved 3 orders; order-1 = {body.decode()} (etag {etag})", flush=True)
    status, _, body = dapr("POST", "/v1.0/state/statestore", [{"key": "order-1", "value": {"id": 1, "item": "keyboard", "paid": True}, "etag": "stale"}])
    print(f"orders: a write with a stale ETag is refused: {status} {json.loads(body)['errorCode']}", flush=True)
    status, _, _ = dapr("POST", "/v1.0/state/statestore", [{"key": "order-1", "value": {"id": 1, "item": "keyboard", "paid": True}, "etag": etag}])
    print(f"orders: a write with the current ETag succeeds: {status}", flush=True)

    # Pub/sub: each order goes to the shipping app through the durable embedded broker.
    for order in ORDERS:
        status, _, _ = dapr("POST", "/v1.0/publish/pubsub/orders", order)
        assert status == 204, status
    print("orders: published 3 orders to topic 'orders'", flush=True)

    # Service invocation: ask shipping (another app, another sidecar) until each order shipped.
    deadline = time.time() + 30
    shipped = {}
    while time.time() < deadline and len(shipped) < len(ORDERS):
        for order in ORDERS:
            if order["id"] in shipped:
                continue
            status, _, body = dapr("GET", f"/v1.0/invoke/shipping/method/shipments/{order['id']}")
            if status == 200 and body:
                shipped[order["id"]] = json.loads(body)
        time.sleep(0.2)
    for order_id, shipment in sorted(shipped.items()):
        print(f"orders: order {order_id} shipped by {shipment['carrier']}", flush=True)
    if len(shipped) != len(ORDERS):
        print(f"orders: only {len(shipped)} of {len(ORDERS)} orders shipped", flush=True)
        return 1
    print("orders: demo complete: state, pub/sub and service invocation all worked", flush=True)
    if os.environ.get("ORDERS_KEEP_GOING") == "1":
        keep_going()
    return 0


def keep_going():
    print("orders: placing an order every half second (ORDERS_KEEP_GOING=1)", flush=True)
    number = len(ORDERS)
    while True:
        number += 1
        order = {"id": number, "item": "refill"}
        dapr("POST", "/v1.0/state/statestore", [{"key": f"order-{number}", "value": order}])
        dapr("POST", "/v1.0/publish/pubsub/orders", order)
        # The previous order: delivered by now, so shipping knows it (the current one may still be in flight).
        dapr("GET", f"/v1.0/invoke/shipping/method/shipments/{number - 1}")
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
