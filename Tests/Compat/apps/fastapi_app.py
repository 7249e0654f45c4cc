"""A FastAPI app using the SDK's `dapr.ext.fastapi.DaprApp` for its subscriptions, served by uvicorn.

Environment: APP_PORT, RECORD_FILE (events received, one JSON line each), PUBSUB (default
`pubsub`), TOPIC (default `orders`), APP_ID. It also answers `POST /hello` (invocation) and, when
asked through invocation, saves state through its own sidecar with `DaprClient()` (`POST /save`).
"""

import json
import os

import uvicorn
from fastapi import Body, FastAPI, Request

from dapr.ext.fastapi import DaprApp

PORT = int(os.environ["APP_PORT"])
RECORD_FILE = os.environ["RECORD_FILE"]
PUBSUB = os.environ.get("PUBSUB", "pubsub")
TOPIC = os.environ.get("TOPIC", "orders")

app = FastAPI()
dapr_app = DaprApp(app)


def record(entry):
    with open(RECORD_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


@dapr_app.subscribe(pubsub=PUBSUB, topic=TOPIC)
def on_order(event_data=Body()):
    record({"kind": "event", "event": event_data})
    return {"status": "SUCCESS"}


@app.post("/hello")
async def hello(request: Request):
    body = await request.body()
    record({"kind": "invoke", "body": body.decode(), "headers": dict(request.headers)})
    return {"hello": body.decode(), "app": os.environ.get("APP_ID", "")}


@app.post("/save")
async def save(request: Request):
    from dapr.clients import DaprClient

    payload = await request.json()
    with DaprClient() as client:
        client.save_state("statestore", payload["key"], payload["value"])
    return {"saved": payload["key"]}


if __name__ == "__main__":
    print(f"fastapi_app starting on {PORT}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
