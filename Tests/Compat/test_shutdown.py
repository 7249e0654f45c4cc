"""The shutdown API: `DaprClient().shutdown()` stops the sidecar gracefully."""

import asyncio
import sys

from conftest import port_open


def test_shutdown_stops_the_sidecar(launcher, dapr_client):
    sidecar = launcher.sidecar("shutdown-app")
    client = dapr_client(sidecar)
    client.save_state("statestore", "before-shutdown", "kept")
    client.shutdown()
    status = sidecar.wait_exit(20)
    assert status == 0, f"sidecar exit status {status}"
    assert not port_open(sidecar.http_port)
    assert not port_open(sidecar.grpc_port)

    # The data survives in the embedded database: a new sidecar on the same home sees it.
    again = launcher.sidecar("shutdown-app")
    assert dapr_client(again).get_state("statestore", "before-shutdown").data == b"kept"


def test_async_shutdown(launcher, use_sidecar):
    from dapr.aio.clients import DaprClient as AsyncDaprClient

    sidecar = use_sidecar(launcher.sidecar("shutdown-aio"))

    async def scenario():
        async with AsyncDaprClient() as client:
            await client.shutdown()

    asyncio.run(scenario())
    assert sidecar.wait_exit(20) == 0


def test_shutdown_with_app_under_mecha_run(launcher):
    """`mecha run` ends when its sidecar is shut down through the API by the app itself."""
    script = launcher.file("shutdown_self.py", "\n".join([
        "from dapr.clients import DaprClient",
        "with DaprClient() as client:",
        "    client.save_state('statestore', 'from-app', 'hello')",
        "    print('saved', client.get_state('statestore', 'from-app').text(), flush=True)",
        "    client.shutdown()",
        "import time",
        "time.sleep(30)",
    ]))
    run = launcher.run("self-stopper", [sys.executable, str(script)])
    status = run.wait_exit(40)
    log = run.log_text()
    assert "saved hello" in log, log
    assert status is not None, "mecha run did not end after the sidecar shut down\n" + log
