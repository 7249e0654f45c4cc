"""`mecha run` (and the binary started as `dapr`) with SDK apps: the app finds its sidecar through
the DAPR_* variables `mecha run` sets, as under `dapr run`."""

import sys

import pytest

from conftest import APPS_DIR, MECHA_BIN, Process, free_port, wait_until
from dapr.clients import DaprClient

SCRIPT = """
import json, os, sys
from dapr.clients import DaprClient
with DaprClient() as client:
    client.save_state("statestore", "run-key", "run-value")
    print("state:", client.get_state("statestore", "run-key").text(), flush=True)
    print("app id:", client.get_metadata().application_id, flush=True)
    print("ports:", os.environ["DAPR_HTTP_PORT"], os.environ["DAPR_GRPC_PORT"], flush=True)
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


def test_mecha_run_gives_the_app_its_sidecar(launcher):
    script = launcher.file("app.py", SCRIPT)
    run = launcher.run("runner", [sys.executable, str(script)], env={"EXIT_WITH": "3"})
    status = run.wait_exit(60)
    log = run.log_text()
    assert status == 3, f"mecha run exits with the app's status\n{log}"
    assert "== APP == state: run-value" in log
    assert "== APP == app id: runner" in log
    assert f"== APP == ports: {run.http_port} {run.grpc_port}" in log


def test_started_as_dapr(launcher):
    bin_dir = launcher.root / "bin"
    bin_dir.mkdir()
    (bin_dir / "dapr").symlink_to(MECHA_BIN)
    script = launcher.file("app.py", SCRIPT)
    http_port, grpc_port = free_port(), free_port()
    run = Process(
        "dapr run", [str(bin_dir / "dapr"), "run", "--app-id", "as-dapr", "--dapr-http-port", str(http_port),
                     "--dapr-grpc-port", str(grpc_port), "--mecha-home", str(launcher.home), "--", sys.executable, str(script)],
        launcher.root / "dapr-run.log", env=launcher._env({}),
    )
    launcher.processes.append(run)
    assert run.wait_exit(60) == 0, run.log_text()
    assert "== APP == app id: as-dapr" in run.log_text()
    assert "You're up and running!" in run.log_text()


@pytest.mark.grpc_app
def test_mecha_run_with_grpc_app(launcher, use_sidecar, monkeypatch):
    app_port = free_port()
    run = launcher.run(
        "run-grpc-app", [sys.executable, "-u", str(APPS_DIR / "grpc_app.py")],
        args=["--app-port", str(app_port), "--app-protocol", "grpc"],
        env={"APP_PORT": str(app_port), "RECORD_FILE": str(launcher.root / "grpc.jsonl")},
    )

    def up():
        if not run.alive():
            run.fail("mecha run exited")
        return "You're up and running!" in run.log_text()

    wait_until(up, timeout=30, what="mecha run to report the sidecar healthy")

    class Running:
        http_port, grpc_port = run.http_port, run.grpc_port

    use_sidecar(Running)
    monkeypatch.setenv("DAPR_API_METHOD_INVOCATION_PROTOCOL", "grpc")
    with DaprClient() as client:
        response = client.invoke_method("run-grpc-app", "echo", data="hi", content_type="text/plain")
        assert response.data == b"hi"
        assert client.get_metadata().application_id == "run-grpc-app"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_run_help_prints_usage_without_starting(flag):
    import subprocess
    result = subprocess.run([str(MECHA_BIN), "run", flag], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "USAGE: mecha run" in result.stdout
    assert "--app-id" in result.stdout
    assert "You're up and running" not in result.stdout
