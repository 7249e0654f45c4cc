"""An actor host written with the official SDK's actor runtime (dapr.ext.fastapi.DaprActor).

Types:
- `Counter` (no reentrancy): `Increment` reads `count`, yields, writes count+1 and returns it.
  The process records a violation when two turns of one actor overlap. `StartReminder` /
  `StopReminder` register and remove the reminder `tick` (every second) whose firings add to the
  state `reminded`; `Reminded` reads it. `Ping` calls another actor's `PingBack`, which calls the
  first one back (A → B → A).
- `Reentrant`: the same `Ping`/`PingBack`, with reentrancy on (per type).

Environment: APP_PORT, DAPR_HTTP_PORT (its sidecar), RECORD_FILE (violations and activations as
JSON lines).
"""

import asyncio
import datetime
import json
import os

import uvicorn
from fastapi import FastAPI

from dapr.actor import Actor, ActorId, ActorInterface, ActorProxy, Remindable, actormethod
from dapr.actor.runtime.config import ActorReentrancyConfig, ActorRuntimeConfig, ActorTypeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor

RECORD_FILE = os.environ.get("RECORD_FILE") or "/dev/null"
IN_TURN: set = set()


def record(**fields):
    with open(RECORD_FILE, "a") as file:
        file.write(json.dumps(fields) + "\n")


class CounterInterface(ActorInterface):
    @actormethod(name="Increment")
    async def increment(self) -> int: ...

    @actormethod(name="Get")
    async def get(self) -> int: ...

    @actormethod(name="StartReminder")
    async def start_reminder(self) -> None: ...

    @actormethod(name="StopReminder")
    async def stop_reminder(self) -> None: ...

    @actormethod(name="Reminded")
    async def reminded(self) -> int: ...

    @actormethod(name="Ping")
    async def ping(self, other: str) -> str: ...

    @actormethod(name="PingBack")
    async def ping_back(self, origin: str) -> str: ...


class Base(Actor, CounterInterface):
    async def _on_activate(self) -> None:
        record(event="activate", type=self.__class__.__name__, id=self.id.id, pid=os.getpid())

    async def increment(self) -> int:
        key = (self.__class__.__name__, self.id.id)
        if key in IN_TURN:
            record(event="overlap", type=key[0], id=key[1])
        IN_TURN.add(key)
        try:
            _, count = await self._state_manager.try_get_state("count")
            await asyncio.sleep(0.002)
            count = (count or 0) + 1
            await self._state_manager.set_state("count", count)
            await self._state_manager.save_state()
            return count
        finally:
            IN_TURN.discard(key)

    async def get(self) -> int:
        _, count = await self._state_manager.try_get_state("count")
        return count or 0

    async def start_reminder(self) -> None:
        await self.register_reminder(
            "tick", b"tock", datetime.timedelta(seconds=1), datetime.timedelta(seconds=1))

    async def stop_reminder(self) -> None:
        await self.unregister_reminder("tick")

    async def reminded(self) -> int:
        _, count = await self._state_manager.try_get_state("reminded")
        return count or 0

    async def receive_reminder(self, name, state, due_time, period, ttl=None) -> None:
        _, count = await self._state_manager.try_get_state("reminded")
        await self._state_manager.set_state("reminded", (count or 0) + 1)
        await self._state_manager.save_state()
        record(event="reminder", type=self.__class__.__name__, id=self.id.id, name=name, state=state.decode())

    async def ping(self, other: str) -> str:
        proxy = ActorProxy.create(self.__class__.__name__, ActorId(other), CounterInterface)
        answer = await proxy.PingBack(self.id.id)
        return f"{self.id.id}<-{answer}"

    async def ping_back(self, origin: str) -> str:
        proxy = ActorProxy.create(self.__class__.__name__, ActorId(origin), CounterInterface)
        count = await proxy.Get()
        return f"{self.id.id}:{count}"


class Counter(Base, Remindable):
    pass


class Reentrant(Base, Remindable):
    pass


app = FastAPI(title="actor-app")
ActorRuntime.set_actor_config(
    ActorRuntimeConfig(
        actor_idle_timeout=datetime.timedelta(seconds=int(os.environ.get("IDLE_SECONDS", "3600"))),
        actor_scan_interval=datetime.timedelta(seconds=1),
        actor_type_configs=[ActorTypeConfig("Reentrant", reentrancy=ActorReentrancyConfig(enabled=True))],
    )
)
actor = DaprActor(app)


async def main():
    await actor.register_actor(Counter)
    await actor.register_actor(Reentrant)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), log_level="warning"))
    await server.serve()


if __name__ == "__main__":
    asyncio.run(main())
