"""The process harness shared by the Python suites (Tests/Compat, Tests/Hostile): free ports,
polling, a small HTTP client, and the processes a test starts — `mecha sidecar`, `mecha run`, small
apps — each in its own session, its output in a log file, stopped by its PID (SIGTERM, then SIGKILL
of the process group it leads).

Environment: MECHA_BIN (the binary, default .build/debug/mecha, relative to the repository),
MECHA_STARTUP_TIMEOUT (seconds a sidecar or app may take to come up, default 30; the suites'
older names MECHA_COMPAT_STARTUP_TIMEOUT and MECHA_HOSTILE_STARTUP_TIMEOUT also work).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
STARTUP_TIMEOUT = float(
    os.environ.get("MECHA_STARTUP_TIMEOUT")
    or os.environ.get("MECHA_COMPAT_STARTUP_TIMEOUT")
    or os.environ.get("MECHA_HOSTILE_STARTUP_TIMEOUT")
    or "30"
)


def mecha_binary() -> Path:
    path = Path(os.environ.get("MECHA_BIN", ".build/debug/mecha"))
    if not path.is_absolute():
        path = (REPO / path) if not path.exists() else path.resolve()
    return path


MECHA_BIN = mecha_binary()


# --------------------------------------------------------------------------------------------
# pytest hooks and fixtures (a suite's conftest imports them, which registers them)
# --------------------------------------------------------------------------------------------

def pytest_sessionstart(session):
    """A missing binary stops the session with the command that builds it."""
    if not MECHA_BIN.is_file():
        raise pytest.UsageError(
            f"mecha binary not found at {MECHA_BIN}: build it (swift build --product mecha) "
            "or point MECHA_BIN at it"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._mecha_start_index = len(Process.registry)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The logs of the processes a failed test started, and of earlier ones still running, become
    sections of its report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    started_at = getattr(item, "_mecha_start_index", 0)
    for process in Process.registry[started_at:] + [p for p in Process.registry[:started_at] if p.alive()]:
        report.sections.append((f"log of {process.name} (pid {process.pid})", process.log_tail(120)))


def suite_launcher(apps_dir: Path, log_level_variable: str) -> type:
    """The `Launcher` of a suite: its `apps/` directory, the sidecars' --log-level from the
    environment variable `log_level_variable` (default info)."""

    class SuiteLauncher(Launcher):
        def __init__(self, root: Path):
            super().__init__(root, apps_dir, os.environ.get(log_level_variable, "info"))

    return SuiteLauncher


def launcher_fixtures(launcher_class: type, name: str):
    """The fixtures `launcher` (one test) and `module_launcher` (one module): a launcher in a
    temporary directory whose processes are all stopped at the end."""

    @pytest.fixture
    def launcher(tmp_path):
        launcher = launcher_class(tmp_path)
        try:
            yield launcher
        finally:
            launcher.stop_all()

    @pytest.fixture(scope="module")
    def module_launcher(tmp_path_factory):
        launcher = launcher_class(tmp_path_factory.mktemp(name))
        try:
            yield launcher
        finally:
            launcher.stop_all()

    return launcher, module_launcher


# --------------------------------------------------------------------------------------------
# Ports, waiting, HTTP
# --------------------------------------------------------------------------------------------

_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(part) for part in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port nothing listens on, never one this process handed out before, and outside the
    kernel's ephemeral range: a port found free by binding to 0 is an ephemeral one, which any
    outgoing connection (a sidecar's to Redis, a client's to a sidecar) may take before the server
    it was meant for binds it — a test once failed to start on that. Below the range, only other
    listeners can take a port, and the bind here checks for them."""
    low, _ = _ephemeral_range()
    floor = 10000
    if low - floor >= 2000:
        rng = random.Random()
        for _ in range(200):
            port = rng.randrange(floor, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(condition: Callable[[], object], timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    """Polls `condition` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - polled conditions may fail until ready
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def http(method: str, url: str, body: Optional[bytes] = None, headers: Optional[dict] = None, timeout: float = 5.0):
    """A small HTTP client: returns (status, headers, body bytes); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

class Process:
    """A process this suite started: its own session (so it leads a process group), output to a log file."""

    registry: list["Process"] = []

    def __init__(self, name: str, argv: list[str], log_path: Path, env: Optional[dict] = None, cwd: Optional[Path] = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        Process.registry.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_text().splitlines()
        return "\n".join(line[:2000] for line in text[-lines:]) or "(empty log)"

    def fail(self, message: str):
        pytest.fail(f"{message}\n--- {self.name} (pid {self.pid}, {' '.join(map(str, self.argv))[:600]}) ---\n{self.log_tail(150)}", pytrace=False)

    def wait_exit(self, timeout: float) -> Optional[int]:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to our PID, SIGKILL after `timeout`, then SIGKILL to whatever is left of the
        process group it leads (children such as the app under `mecha run`)."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait_exit(5)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if not self._log.closed:
            self._log.close()

    def kill(self) -> None:
        """SIGKILL to our PID at once (a runaway process)."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait_exit(5)


class Sidecar(Process):
    def __init__(self, app_id: str, http_port: int, grpc_port: int, internal_port: int, home: Path, **kwargs):
        self.app_id = app_id
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.internal_port = internal_port
        self.home = home
        super().__init__(**kwargs)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def healthz(self, path: str = "/v1.0/healthz/outbound") -> int:
        try:
            return http("GET", self.http_url + path, timeout=2)[0]
        except OSError:
            return 0

    def wait_healthy(self, app: bool = False, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        paths = ["/v1.0/healthz/outbound"] + (["/v1.0/healthz"] if app else [])
        for path in paths:
            while True:
                if not self.alive():
                    self.fail(f"{self.name} exited with status {self.popen.returncode} before {path} answered 204")
                if self.healthz(path) == 204 and port_open(self.grpc_port):
                    break
                if time.monotonic() >= deadline:
                    self.fail(f"{self.name} did not answer 204 on {path} within {timeout}s")
                time.sleep(0.1)

    def env(self) -> dict:
        """The variables an app (or `DaprClient()`) uses to find this sidecar."""
        return {"DAPR_HTTP_PORT": str(self.http_port), "DAPR_GRPC_PORT": str(self.grpc_port), "APP_ID": self.app_id}

    def metadata(self) -> dict:
        status, _, body = http("GET", self.http_url + "/v1.0/metadata")
        assert status == 200, body
        return json.loads(body)

    def assert_alive(self, what: str = "the attack") -> None:
        """The process still runs and answers 204 on /v1.0/healthz/outbound."""
        time.sleep(0.2)
        if not self.alive():
            self.fail(f"{self.name} died after {what}: exit status {self.popen.returncode}")
        status = self.healthz()
        if status != 204:
            self.fail(f"{self.name} answers {status} on /v1.0/healthz/outbound after {what}")


class Launcher:
    """Starts sidecars, apps and `mecha run` processes in one temporary directory and stops them all."""

    def __init__(self, root: Path, apps_dir: Path, log_level: str = "info"):
        self.root = root
        self.apps_dir = apps_dir
        self.log_level = log_level
        self.home = root / "mecha-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []

    # -- resources ---------------------------------------------------------------------------

    def resources(self, name: str, documents: dict[str, str], dedent: bool = True) -> Path:
        """Writes YAML files (file name -> text) into a fresh directory and returns it."""
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, text in documents.items():
            (directory / file_name).write_text(textwrap.dedent(text).lstrip() if dedent else text)
        return directory

    def file(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    # -- processes ---------------------------------------------------------------------------

    def sidecar_argv(
        self,
        app_id: str,
        *,
        resources: Optional[Iterable[Path]] = None,
        config: Optional[Path] = None,
        app_port: Optional[int] = None,
        app_protocol: Optional[str] = None,
        extra_args: Iterable[str] = (),
        internal_port: Optional[int] = None,
    ):
        """`mecha sidecar` arguments on free ports: (argv, http port, gRPC port, internal port)."""
        http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
        internal_port = internal_port or free_port()
        argv = [
            str(MECHA_BIN), "sidecar",
            "--app-id", app_id,
            "--dapr-http-port", str(http_port),
            "--dapr-grpc-port", str(grpc_port),
            "--dapr-internal-grpc-port", str(internal_port),
            "--metrics-port", str(metrics_port),
            "--mecha-home", str(self.home),
            "--log-level", self.log_level,
        ]
        for path in resources or ():
            argv += ["--resources-path", str(path)]
        if config:
            argv += ["--config", str(config)]
        if app_port:
            argv += ["--app-port", str(app_port)]
        if app_protocol:
            argv += ["--app-protocol", app_protocol]
        argv += list(extra_args)
        return argv, http_port, grpc_port, internal_port

    def sidecar(
        self,
        app_id: str,
        *,
        resources: Optional[Iterable[Path]] = None,
        config: Optional[Path] = None,
        app_port: Optional[int] = None,
        app_protocol: Optional[str] = None,
        extra_args: Iterable[str] = (),
        env: Optional[dict] = None,
        internal_port: Optional[int] = None,
        wait: bool = True,
        wait_app: Optional[bool] = None,
    ) -> Sidecar:
        argv, http_port, grpc_port, internal_port = self.sidecar_argv(
            app_id, resources=resources, config=config, app_port=app_port, app_protocol=app_protocol,
            extra_args=extra_args, internal_port=internal_port,
        )
        sidecar = Sidecar(
            app_id, http_port, grpc_port, internal_port, self.home,
            name=f"sidecar {app_id}", argv=argv, log_path=self.root / f"sidecar-{app_id}-{http_port}.log",
            env=self._env(env),
        )
        sidecar.metrics_port = int(argv[argv.index("--metrics-port") + 1])
        self.processes.append(sidecar)
        if wait:
            sidecar.wait_healthy(app=bool(app_port) if wait_app is None else wait_app)
        return sidecar

    def app(self, script: str = "record_app.py", *, port: Optional[int] = None, env: Optional[dict] = None, wait: bool = True) -> Process:
        """Starts `apps/<script>` with this interpreter; APP_PORT is its port; waits until it listens."""
        port = port or free_port()
        app_env = {"APP_PORT": str(port), "RECORD_FILE": str(self.root / f"{Path(script).stem}-{port}.jsonl"), **(env or {})}
        process = Process(
            name=f"app {script}:{port}", argv=[PYTHON, "-u", str(self.apps_dir / script)],
            log_path=self.root / f"app-{Path(script).stem}-{port}.log", env=self._env(app_env),
        )
        process.port = port
        process.record_file = Path(app_env["RECORD_FILE"])
        self.processes.append(process)
        if wait:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not port_open(port):
                if not process.alive():
                    process.fail(f"{process.name} exited with status {process.popen.returncode} before listening")
                if time.monotonic() >= deadline:
                    process.fail(f"{process.name} did not listen on {port} within {STARTUP_TIMEOUT}s")
                time.sleep(0.05)
        return process

    def run(self, app_id: str, command: list[str], *, args: Iterable[str] = (), env: Optional[dict] = None) -> Process:
        """`mecha run --app-id … -- command`, with free ports and this launcher's home."""
        http_port, grpc_port = free_port(), free_port()
        argv = [
            str(MECHA_BIN), "run", "--app-id", app_id,
            "--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port),
            "--mecha-home", str(self.home), *args, "--", *command,
        ]
        process = Process(name=f"mecha run {app_id}", argv=argv, log_path=self.root / f"run-{app_id}-{http_port}.log", env=self._env(env))
        process.http_port, process.grpc_port = http_port, grpc_port
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    @staticmethod
    def _env(extra: Optional[dict]) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAPR_") and k not in ("APP_ID", "APP_PORT", "APP_API_TOKEN")}
        env.update(extra or {})
        return env


def read_records(path: Path) -> list[dict]:
    """The JSON lines an app under `apps/` recorded."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_records(app: Process, predicate: Callable[[list[dict]], object] = bool, timeout: float = 20.0, what: str = "the app to record"):
    """Polls the app's record file until `predicate(records)` is truthy; returns the records."""
    result = {}

    def check():
        records = read_records(app.record_file)
        result["records"] = records
        return predicate(records)

    try:
        wait_until(check, timeout=timeout, interval=0.05, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}; records so far: {json.dumps(result.get('records'), indent=1)[:4000]}") from None
    return result["records"]
