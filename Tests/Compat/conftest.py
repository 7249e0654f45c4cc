"""Fixtures of the Python SDK compatibility suite.

Every test starts real processes: `mecha sidecar` (or `mecha run`) on free 127.0.0.1 ports with
a temporary `--mecha-home`, and small app processes from `apps/`, then drives them with the
official Dapr Python SDK exactly as Dapr users do (`DaprClient()` configured by the environment
variables `DAPR_HTTP_PORT` / `DAPR_GRPC_PORT`).

Every process a fixture starts is stopped by its PID when the fixture ends (SIGTERM, then SIGKILL
of the process group it leads). A sidecar that does not become healthy fails the test with its log
attached; the logs of the processes of a failed test are attached to the report.

Environment: MECHA_BIN (the binary, default .build/debug/mecha), MECHA_SKIP_GRPC_APP=1 (deselect
the tests marked grpc_app), MECHA_COMPAT_LOG_LEVEL (the sidecars' --log-level, default info),
MECHA_COMPAT_STARTUP_TIMEOUT (seconds a sidecar or app may take to come up, default 30).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "PyHarness"))

# The hooks and fixtures register by being here; the tests import the rest from here
# (`from conftest import …`).
from mecha_harness import (  # noqa: E402,F401 - after the path entry that finds it; re-exported
    MECHA_BIN,
    PYTHON,
    REPO,
    STARTUP_TIMEOUT,
    Process,
    Sidecar,
    free_port,
    http,
    launcher_fixtures,
    port_open,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_sessionstart,
    read_records,
    suite_launcher,
    wait_records,
    wait_until,
)

COMPAT_DIR = Path(__file__).resolve().parent
APPS_DIR = COMPAT_DIR / "apps"

Launcher = suite_launcher(APPS_DIR, "MECHA_COMPAT_LOG_LEVEL")
launcher, module_launcher = launcher_fixtures(Launcher, "compat")


# --------------------------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------------------------

def pytest_collection_modifyitems(config, items):
    """MECHA_SKIP_GRPC_APP=1 deselects the tests that need the gRPC app channel."""
    if os.environ.get("MECHA_SKIP_GRPC_APP") != "1":
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("grpc_app") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture
def use_sidecar(monkeypatch):
    """use_sidecar(sidecar): points the SDK at `sidecar` through DAPR_HTTP_PORT / DAPR_GRPC_PORT,
    as `dapr run` does for an app, for the rest of the test."""

    def use(sidecar: Sidecar) -> Sidecar:
        for key in ("DAPR_HTTP_ENDPOINT", "DAPR_GRPC_ENDPOINT", "DAPR_API_TOKEN", "DAPR_API_METHOD_INVOCATION_PROTOCOL"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.http_port))
        monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
        monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "20")
        return sidecar

    return use


@pytest.fixture
def dapr_client(use_sidecar):
    """dapr_client(sidecar) -> a `DaprClient()` built with the defaults against that sidecar; closed at the end."""
    from dapr.clients import DaprClient

    clients = []

    def make(sidecar: Sidecar):
        use_sidecar(sidecar)
        client = DaprClient()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --------------------------------------------------------------------------------------------
# Component YAML used by several modules
# --------------------------------------------------------------------------------------------

def sqlite_state(name: str, path: Path, extra: str = "") -> str:
    return f"""
    apiVersion: dapr.io/v1alpha1
    kind: Component
    metadata:
      name: {name}
    spec:
      type: state.sqlite
      version: v1
      metadata:
      - name: connectionString
        value: "{path}"
    {extra}"""


def sqlite_pubsub(name: str, path: Path, extra_metadata: str = "") -> str:
    return f"""
    apiVersion: dapr.io/v1alpha1
    kind: Component
    metadata:
      name: {name}
    spec:
      type: pubsub.sqlite
      version: v1
      metadata:
      - name: connectionString
        value: "{path}"
      - name: pollInterval
        value: "50ms"
      - name: redeliveryDelay
        value: "100ms"
      - name: maxRedeliveryDelay
        value: "200ms"
    {extra_metadata}"""


# --------------------------------------------------------------------------------------------
# Real servers
# --------------------------------------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def start_redis(launcher, port: int) -> Process:
    """A redis-server on 127.0.0.1:`port` (no persistence), stopped with the launcher's processes."""
    if not shutil.which("redis-server") and not os.path.exists(REDIS_SERVER):
        pytest.fail("redis-server is missing: install it (apt-get install redis-server)")
    data = launcher.root / "redis"
    data.mkdir(exist_ok=True)
    server = Process(
        name=f"redis-server:{port}",
        argv=[REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(data)],
        log_path=launcher.root / f"redis-{port}.log",
    )
    launcher.processes.append(server)
    deadline = time.monotonic() + 20
    while not port_open(port):
        if not server.alive():
            server.fail("redis-server exited before listening (is the redis-server package installed?)")
        if time.monotonic() > deadline:
            server.fail("redis-server did not listen within 20s")
        time.sleep(0.05)
    return server


def postgres_bin() -> Path:
    """The directory holding initdb and postgres: PATH first, then Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not candidates:
        pytest.fail("PostgreSQL server binaries are missing: install them (apt-get install postgresql)")
    return candidates[-1].parent


def start_postgres(launcher, port: int, host: str = "127.0.0.1", wrap=lambda argv: argv) -> tuple[Process, str]:
    """A throwaway PostgreSQL server on `host`:`port` (trust authentication, user postgres),
    stopped with the launcher's processes; returns it and a connection URL for database
    `postgres`. As root, the server runs as `nobody` (PostgreSQL refuses to run as root). `wrap`
    prefixes the server's command (`ip netns exec <ns>` to run it on a test host)."""
    import pwd
    import subprocess
    import tempfile

    bin_dir = postgres_bin()
    directory = Path(tempfile.mkdtemp(prefix="mecha-pg-"))
    data = directory / "data"
    prefix = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
        prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True, cwd=directory, timeout=120)
    if host != "127.0.0.1":
        # Other test hosts (network namespaces) connect over their bridge.
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
    server = Process(
        name=f"postgres:{port}",
        argv=wrap([*prefix, str(bin_dir / "postgres"), "-D", str(data), "-k", str(directory), "-p", str(port),
                   "-c", f"listen_addresses={host}", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
        log_path=launcher.root / f"postgres-{port}.log", cwd=directory,
    )
    launcher.processes.append(server)
    deadline = time.monotonic() + 30
    while "ready to accept connections" not in server.log_text():
        if not server.alive():
            server.fail("postgres exited before listening")
        if time.monotonic() > deadline:
            server.fail("postgres did not accept connections within 30s")
        time.sleep(0.05)
    return server, f"postgres://postgres@{host}:{port}/postgres?sslmode=disable"

