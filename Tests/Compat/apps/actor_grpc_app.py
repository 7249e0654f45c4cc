"""The actor types of actor_app.py hosted over the gRPC actor stream (SubscribeActorEventsAlpha1)
by the official SDK's ActorGrpcHost, behind a sidecar started with --app-protocol grpc.

Environment: APP_PORT (the app channel listener ActorGrpcHost opens), DAPR_GRPC_PORT and
DAPR_HTTP_PORT (its sidecar), RECORD_FILE, IDLE_SECONDS.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from actor_app import Counter, Reentrant  # noqa: E402 - after the path entry

from dapr.actor import ActorGrpcHost  # noqa: E402


async def main() -> None:
    host = ActorGrpcHost()
    await host.register_actor(Counter)
    await host.register_actor(Reentrant)
    print("hosted over the gRPC actor stream", flush=True)
    await host.run_forever()


if __name__ == "__main__":
    asyncio.run(main())
