"""Multi-app run templates (`dapr run -f`), `dapr list`, `dapr invoke` and `dapr stop`, driven the
way the Dapr quickstarts' READMEs drive them: a `dapr.yaml` with two Python SDK apps sharing a
resources folder (state, pub/sub, invocation between them, an output binding and a secret store),
the binary started as `dapr`, HOME pointing at an empty folder (no `~/.dapr`)."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import MECHA_BIN, Process, free_port, wait_until

CHECKOUT = r'''
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()

def say(*parts):
    with LOCK:
        sys.stdout.write(" ".join(parts) + "\n")
        sys.stdout.flush()

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/dapr/subscribe":
            self.reply(200, [{"pubsubname": "orderpubsub", "topic": "orders", "route": "/orders"}])
        else:
            self.reply(404, {})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/orders":
            event = json.loads(body)
            say("Subscriber received:", json.dumps(event["data"], sort_keys=True))
            self.reply(200, {"status": "SUCCESS"})
        elif self.path == "/checkout":
            order = json.loads(body)
            say("Order received:", json.dumps(order, sort_keys=True))
            self.reply(200, {"confirmed": order.get("orderId")})
        else:
            self.reply(404, {})

print("checkout listening on", os.environ["APP_PORT"], "env", os.environ.get("SHARED"), flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["APP_PORT"])), Handler).serve_forever()
'''

ORDER_PROCESSOR = '''
import json, os, time
from dapr.clients import DaprClient

print("env:", os.environ.get("SHARED"), os.environ.get("APP_ID"), flush=True)
with DaprClient() as client:
    for order_id in (1, 2):
        order = {"orderId": order_id}
        client.save_state("statestore", f"order_{order_id}", json.dumps(order))
        print("Saving Order:", client.get_state("statestore", f"order_{order_id}").text(), flush=True)
        client.publish_event("orderpubsub", "orders", json.dumps(order), data_content_type="application/json")
        print("Published data:", json.dumps(order), flush=True)
    # checkout may still be starting (apps start in parallel, as under the Dapr CLI): retry a while.
    for attempt in range(100):
        try:
            answer = client.invoke_method("checkout", "checkout", data=json.dumps({"orderId": 7}), http_verb="POST", content_type="application/json")
            break
        except Exception:
            if attempt == 99:
                raise
            time.sleep(0.2)
    print("Invocation answer:", answer.text(), flush=True)
    client.invoke_binding("orderstore", "create", json.dumps({"orderId": 3}), binding_metadata={"fileName": "order-3.json"})
    print("Binding wrote:", open(os.environ["BINDING_DIR"] + "/order-3.json").read(), flush=True)
    print("Secret:", client.get_secret("localsecretstore", "dbPassword").secret["dbPassword"], flush=True)
while True:
    time.sleep(1)
'''


def write_project(root: Path) -> Path:
    """A quickstart-shaped folder: resources/ beside a template folder with one folder per app."""
    resources = root / "resources"
    resources.mkdir(parents=True)
    database = root / "state.db"
    binding_dir = root / "binding-out"
    binding_dir.mkdir()
    (root / "secrets.json").write_text(json.dumps({"dbPassword": "s3cret"}))
    (resources / "statestore.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: statestore
        spec:
          type: state.sqlite
          version: v1
          metadata:
          - name: connectionString
            value: "{database}"
        """))
    (resources / "pubsub.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: orderpubsub
        spec:
          type: pubsub.sqlite
          version: v1
          metadata:
          - name: connectionString
            value: "{database}"
        """))
    (resources / "binding.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: orderstore
        spec:
          type: bindings.localstorage
          version: v1
          metadata:
          - name: rootPath
            value: "{binding_dir}"
        """))
    (resources / "secrets.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: localsecretstore
        spec:
          type: secretstores.local.file
          version: v1
          metadata:
          - name: secretsFile
            value: "{root / 'secrets.json'}"
        """))
    sdk = root / "sdk"
    (sdk / "order-processor").mkdir(parents=True)
    (sdk / "checkout").mkdir()
    (sdk / "order-processor" / "app.py").write_text(ORDER_PROCESSOR)
    (sdk / "checkout" / "app.py").write_text(CHECKOUT)
    checkout_port = free_port()
    (sdk / "dapr.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        common:
          resourcesPath: ../resources/
          env:
            SHARED: from-common
            BINDING_DIR: "{binding_dir}"
        apps:
          - appID: checkout
            appDirPath: ./checkout/
            appPort: {checkout_port}
            command: ["{sys.executable}", "app.py"]
          - appID: order-processor
            appDirPath: ./order-processor/
            command: ["{sys.executable}", "app.py"]
            env:
              SHARED: from-app
        """))
    return sdk


@pytest.fixture
def dapr_cli(tmp_path):
    """`dapr` on a PATH of its own (the binary started as dapr), with HOME and MECHA_HOME in tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dapr").symlink_to(MECHA_BIN)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAPR_") and k not in ("APP_ID", "APP_PORT")}
    env.update({"HOME": str(home), "MECHA_HOME": str(tmp_path / "mecha-home"), "PATH": f"{bin_dir}:{env.get('PATH', '')}"})

    def run(*args, cwd=None, timeout=30):
        return subprocess.run([str(bin_dir / "dapr"), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)

    run.env = env
    run.dapr = str(bin_dir / "dapr")
    return run


def test_run_template_apps_state_pubsub_invoke_binding_secret_list_invoke_stop(tmp_path, dapr_cli):
    project = write_project(tmp_path / "quickstart")
    runner = Process("dapr run -f", [dapr_cli.dapr, "run", "-f", "."], tmp_path / "run.log", env=dapr_cli.env, cwd=project)
    try:
        def seen(text):
            if not runner.alive():
                runner.fail("dapr run -f exited early")
            return text in runner.log_text()

        wait_until(lambda: seen("== APP - order-processor == Secret: s3cret"), timeout=90, what="the order processor to finish its calls")
        log = runner.log_text()
        assert "== APP - order-processor == env: from-app order-processor" in log
        assert "== APP - checkout == checkout listening on" in log and "env from-common" in log
        assert '== APP - order-processor == Saving Order: {"orderId": 1}' in log
        assert '== APP - order-processor == Invocation answer: {"confirmed": 7}' in log
        assert '== APP - checkout == Order received: {"orderId": 7}' in log
        assert '== APP - order-processor == Binding wrote: {"orderId": 3}' in log
        # Delivered concurrently (pubsub.sqlite's concurrency 10), so in either order.
        wait_until(lambda: seen('== APP - checkout == Subscriber received: {"orderId": 2}')
                   and seen('== APP - checkout == Subscriber received: {"orderId": 1}'), timeout=30, what="both orders delivered")
        assert 'Started Dapr with app id "checkout"' in log and 'Started Dapr with app id "order-processor"' in log

        # Sidecar logs go to files by default (daprdLogDestination: file), app logs to both.
        logs = sorted((project / "checkout" / ".dapr" / "logs").iterdir())
        names = [p.name for p in logs]
        assert any(n.startswith("checkout_daprd_") for n in names) and any(n.startswith("checkout_app_") for n in names), names
        daprd_log = next(p for p in logs if "_daprd_" in p.name).read_text()
        assert "You're up and running!" in daprd_log
        app_log = next(p for p in logs if "_app_" in p.name).read_text()
        assert "== APP - checkout == checkout listening on" in app_log

        # dapr list: both apps with their ports and the template path.
        listed = dapr_cli("list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        apps = {entry["appId"]: entry for entry in json.loads(listed.stdout)}
        assert set(apps) == {"checkout", "order-processor"}
        assert apps["checkout"]["runTemplatePath"] == str(project / "dapr.yaml")
        assert apps["checkout"]["appPort"] > 0 and apps["checkout"]["httpPort"] > 0
        assert apps["checkout"]["cliPid"] == runner.pid
        table = dapr_cli("list")
        assert "APP ID" in table.stdout and "order-processor" in table.stdout

        # dapr invoke through the registry.
        invoked = dapr_cli("invoke", "--app-id", "checkout", "--method", "checkout", "--data", '{"orderId": 42}')
        assert invoked.returncode == 0, invoked.stdout + invoked.stderr
        assert '{"confirmed": 42}' in invoked.stdout and "App invoked successfully" in invoked.stdout
        missing = dapr_cli("invoke", "--app-id", "nobody", "--method", "x")
        assert missing.returncode == 1 and "app ID nobody not found" in missing.stdout
        failing = dapr_cli("invoke", "--app-id", "checkout", "--method", "nothing-here")
        assert failing.returncode == 1 and "error invoking app checkout: " in failing.stdout

        # dapr stop --app-id of one app of a multi-app run stops that app's sidecar only.
        stopped = dapr_cli("stop", "--app-id", "order-processor")
        assert stopped.returncode == 0 and "app stopped successfully: order-processor" in stopped.stdout
        wait_until(lambda: {e["appId"] for e in json.loads(dapr_cli("list", "-o", "json").stdout)} == {"checkout"},
                   timeout=20, what="order-processor to leave dapr list")
        assert runner.alive()

        # dapr stop -f stops the rest; the run exits 0.
        stopped = dapr_cli("stop", "-f", ".", cwd=project)
        assert stopped.returncode == 0 and "Dapr and app processes stopped successfully" in stopped.stdout
        assert runner.wait_exit(30) == 0, runner.log_tail()
        assert dapr_cli("list").stdout.strip() == "No Dapr instances found."
    finally:
        runner.stop()


def test_run_template_errors_name_the_file_and_field(tmp_path, dapr_cli):
    (tmp_path / "app").mkdir()
    (tmp_path / "dapr.yaml").write_text("version: 1\napps:\n  - appDirPath: ./app\n    appPort: lots\n")
    result = dapr_cli("run", "-f", str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path}/dapr.yaml" in result.stdout and "apps[0].appPort" in result.stdout and "expected an integer" in result.stdout
    (tmp_path / "dapr.yaml").write_text("apps: []\n")
    result = dapr_cli("run", "-f", str(tmp_path / "dapr.yaml"))
    assert result.returncode == 1 and "required field 'version'" in result.stdout


def test_failing_sidecar_stops_the_run(tmp_path, dapr_cli):
    (tmp_path / "a").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.yaml").write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\nspec:\n  type: state.nosuch\n  version: v1\n")
    (tmp_path / "dapr.yaml").write_text(f"version: 1\napps:\n  - appDirPath: ./a\n    appID: broken\n    resourcesPath: ../bad\n    daprdLogDestination: console\n    command: ['{sys.executable}', '-c', 'import time; time.sleep(60)']\n")
    result = dapr_cli("run", "-f", str(tmp_path), timeout=60)
    assert result.returncode == 1, result.stdout
    assert 'Error starting Dapr and app ("broken")' in result.stdout
    assert "unknown component type state.nosuch" in result.stdout + result.stderr


def test_dapr_run_uses_dot_dapr_components_when_present(tmp_path, dapr_cli):
    """`dapr run` without --resources-path loads ~/.dapr/components and ~/.dapr/config.yaml, as the CLI does."""
    dot_dapr = Path(dapr_cli.env["HOME"]) / ".dapr"
    (dot_dapr / "components").mkdir(parents=True)
    (dot_dapr / "components" / "state.yaml").write_text(textwrap.dedent(f"""\
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: from-dot-dapr
        spec:
          type: state.sqlite
          version: v1
          metadata:
          - name: connectionString
            value: "{tmp_path / 'dot.db'}"
        """))
    (dot_dapr / "config.yaml").write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprConfig\nspec:\n  tracing:\n    samplingRate: \"1\"\n    zipkin:\n      endpointAddress: http://localhost:9411/api/v2/spans\n")
    script = tmp_path / "app.py"
    script.write_text("import json, urllib.request, os\n"
                      "m = json.load(urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/metadata\"))\n"
                      "print('components:', sorted(c['name'] for c in m['components']), flush=True)\n")
    http_port, grpc_port = free_port(), free_port()
    result = dapr_cli("run", "--app-id", "dotdapr", "--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port),
                      "--", sys.executable, str(script), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== APP == components: ['from-dot-dapr']" in result.stdout


def test_sidecars_follow_a_killed_runner(tmp_path, dapr_cli):
    """A `dapr run -f` killed outright (SIGKILL, nothing forwarded) leaves no sidecar behind."""
    import signal
    (tmp_path / "a").mkdir()
    (tmp_path / "dapr.yaml").write_text(f"version: 1\napps:\n  - appDirPath: ./a\n    appID: orphan-check\n")
    runner = Process("dapr run -f", [dapr_cli.dapr, "run", "-f", str(tmp_path)], tmp_path / "run.log", env=dapr_cli.env)
    try:
        wait_until(lambda: [e for e in json.loads(dapr_cli("list", "-o", "json").stdout) if e["appId"] == "orphan-check"],
                   timeout=30, what="the sidecar to be listed")
        sidecar_pid = [e for e in json.loads(dapr_cli("list", "-o", "json").stdout) if e["appId"] == "orphan-check"][0]["daprdPid"]
        assert sidecar_pid != runner.pid
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait_exit(5)

        def gone():
            try:
                os.kill(sidecar_pid, 0)
            except ProcessLookupError:
                return True
            # a zombie of an exited child counts as gone
            with open(f"/proc/{sidecar_pid}/stat") as stat:
                return stat.read().split(") ")[1].startswith("Z")

        wait_until(gone, timeout=15, what="the sidecar to exit after its runner was killed")
    finally:
        runner.stop()
