"""Two `mecha control-plane` processes on one PostgreSQL (a real server started here): both serve,
one leads (PostgreSQL advisory lock), and SIGKILLing either — the leader first — changes nothing
for the sidecars, which name both with `--control-plane-address a,b`: invocation goes on without
a failed call, new sidecars join through the survivor, resources applied before the kill are still
there, the survivor takes the lead within seconds and the restarted one follows."""

import http.client
import json
import ssl
import subprocess
import threading
import time

import pytest

from conftest import MECHA_BIN, free_port, start_postgres, wait_until
from test_control_plane import start_control_plane


def control(store, *arguments, env=None):
    return subprocess.run([str(MECHA_BIN), "control-plane", *arguments, "--store", store],
                          check=True, capture_output=True, text=True, env=env).stdout.strip()


def health(port, anchors):
    context = ssl.create_default_context(cafile=str(anchors))
    context.check_hostname = False
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    connection.request("GET", "/healthz")
    return json.loads(connection.getresponse().read())


def leaders(ports, anchors):
    answers = []
    for port in ports:
        try:
            answers.append(health(port, anchors).get("leader"))
        except OSError:
            answers.append(None)
    return answers


def state_component(name, path):
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: state.sqlite\n  version: v1\n"
            f"  metadata:\n  - name: connectionString\n    value: \"{path}\"\n  - name: keyPrefix\n    value: none\n")


@pytest.fixture(scope="module")
def planes(module_launcher):
    _, url = start_postgres(module_launcher, free_port())
    ports = [free_port(), free_port()]
    processes = [start_control_plane(module_launcher, url, port) for port in ports]
    anchors = module_launcher.file("ha-anchors.pem", control(url, "trust-anchors"))
    return {"store": url, "ports": ports, "processes": processes, "anchors": anchors}


def test_two_control_planes_on_postgresql_survive_the_leader_being_killed(module_launcher, planes, dapr_client):
    store, ports, anchors = planes["store"], planes["ports"], planes["anchors"]
    # Exactly one leads; both answer as control planes of one trust domain on PostgreSQL.
    wait_until(lambda: sorted(map(str, leaders(ports, anchors))) == ["False", "True"], timeout=15, what="one leader of two")
    assert all(health(port, anchors)["store"] == "postgresql" for port in ports)

    address = ",".join(f"127.0.0.1:{port}" for port in ports)

    def join(app_id, app_port=None):
        token = control(store, "token", "--app-id", app_id)
        return module_launcher.sidecar(
            app_id, app_port=app_port,
            extra_args=["--control-plane-address", address, "--trust-anchors-file", str(anchors),
                        "--mecha-home", str(module_launcher.root / f"home-{app_id}")],
            env={"MECHA_CONTROL_PLANE_TOKEN": token})

    # A resource applied through the follower is served to the sidecars (one shared store).
    admin = control(store, "token", "--admin")
    follower = ports[leaders(ports, anchors).index(False)]
    pushed = module_launcher.file("ha-store.yaml", state_component("ha-store", module_launcher.root / "ha.db"))
    applied = subprocess.run(
        [str(MECHA_BIN), "control-plane", "apply", "--control-plane-address", f"127.0.0.1:{follower}",
         "--trust-anchors-file", str(anchors), "-f", str(pushed)],
        capture_output=True, text=True, env={"MECHA_CONTROL_PLANE_TOKEN": admin, "PATH": "/usr/bin:/bin"})
    assert applied.returncode == 0, applied.stderr

    app = module_launcher.app("http_app.py", env={"APP_ID": "ha-callee"})
    callee = join("ha-callee", app_port=app.port)
    caller = join("ha-caller")
    client = dapr_client(caller)
    wait_until(lambda: b"ha-callee" in client.invoke_method("ha-callee", "whoami", data=b"", http_verb="GET").data, timeout=15,
               what="the callee in the registry")
    client.save_state("ha-store", "k", "before")

    # Calls run all along; the leader is SIGKILLed.
    failures, calls, stop = [], [0], threading.Event()

    def load():
        while not stop.is_set():
            try:
                assert b"ha-callee" in client.invoke_method("ha-callee", "whoami", data=b"", http_verb="GET").data
                calls[0] += 1
            except Exception as error:  # noqa: BLE001 - every failure is reported
                failures.append(repr(error))
            time.sleep(0.02)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        leader_index = leaders(ports, anchors).index(True)
        planes["processes"][leader_index].kill()
        survivor = ports[1 - leader_index]
        killed_at = time.monotonic()
        wait_until(lambda: health(survivor, anchors).get("leader") is True, timeout=15, what="the survivor to lead")
        takeover = time.monotonic() - killed_at
        # A new sidecar joins through the survivor (the address list fails over), and resolves.
        late = join("ha-late")
        late_client = dapr_client(late)
        wait_until(lambda: b"ha-callee" in late_client.invoke_method("ha-callee", "whoami", data=b"", http_verb="GET").data,
                   timeout=15, what="the late sidecar to resolve through the survivor")
        # What was applied before the kill is still there: the late sidecar got the component.
        assert "ha-store" in {c.name for c in late_client.get_metadata().registered_components}
        assert late_client.get_state("ha-store", "k").data == b"before"
        # The caller never noticed: its registry view stays fresh (heartbeats go to the survivor).
        time.sleep(3)
        detail = json.loads(subprocess.run(["curl", "-s", f"{caller.http_url}/v1.0/healthz?detail"], capture_output=True, text=True).stdout or "{}")
        assert "runningOnLastKnownState" not in detail, detail
    finally:
        stop.set()
        worker.join()
    assert not failures, f"{len(failures)} failed calls of {calls[0]}: {failures[:3]}"
    assert calls[0] > 50
    print(f"leader killed: the survivor led after {takeover:.1f}s; {calls[0]} calls, 0 failed")
    assert takeover < 10

    # The killed one comes back and follows.
    planes["processes"][leader_index] = start_control_plane(module_launcher, store, ports[leader_index])
    wait_until(lambda: health(ports[leader_index], anchors).get("leader") is False, timeout=10, what="the restarted one to follow")
    assert health(survivor, anchors)["leader"] is True

    # Killing the other one now (the new leader) hands the lead back.
    planes["processes"][1 - leader_index].kill()
    wait_until(lambda: health(ports[leader_index], anchors).get("leader") is True, timeout=15, what="the lead to come back")
    assert b"ha-callee" in client.invoke_method("ha-callee", "whoami", data=b"", http_verb="GET").data


def test_a_bad_postgresql_store_is_named(module_launcher):
    result = subprocess.run([str(MECHA_BIN), "control-plane", "--port", str(free_port()), "--store", "postgres://u@127.0.0.1:notaport/db"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "--store" in result.stderr and "port" in result.stderr, result.stderr
