"""Fixtures of the hostile-input suite.

Black-box tests of the built binary against malformed, oversized and adversarial input: every test
starts its own `mecha sidecar` on free 127.0.0.1 ports with a temporary `--mecha-home` (and, where
needed, a small recording app from `apps/`), attacks it, and checks that it stays alive, refuses
what it must refuse, and does not let the attack through.

The process helpers are those of Tests/Compat/conftest.py: every process a fixture starts is
stopped by its PID when the test ends (SIGTERM, then SIGKILL of the process group it leads), and
the logs of the processes of a failed test are attached to the report.

Environment: MECHA_BIN (the binary, default .build/debug/mecha), MECHA_HOSTILE_LOG_LEVEL (the
sidecars' --log-level, default info), MECHA_HOSTILE_STARTUP_TIMEOUT (seconds, default 30).
"""

from __future__ import annotations

import json
import os
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

HOSTILE_DIR = Path(__file__).resolve().parent
REPO = HOSTILE_DIR.parents[1]
APPS_DIR = HOSTILE_DIR / "apps"
PYTHON = sys.executable
STARTUP_TIMEOUT = float(os.environ.get("MECHA_HOSTILE_STARTUP_TIMEOUT", "30"))


def mecha_binary() -> Path:
    path = Path(os.environ.get("MECHA_BIN", ".build/debug/mecha"))
    if not path.is_absolute():
        path = (REPO / path) if not path.exists() else path.resolve()
    return path


MECHA_BIN = mecha_binary()


# --------------------------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------------------------

def pytest_sessionstart(session):
    if not MECHA_BIN.is_file():
        raise pytest.UsageError(
            f"mecha binary not found at {MECHA_BIN}: build it (swift build --product mecha) "
            "or point MECHA_BIN at it"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    started_at = getattr(item, "_hostile_start_index", 0)
    for process in Process.registry[started_at:]:
        report.sections.append((f"log of {process.name} (pid {process.pid})", process.log_tail(60)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._hostile_start_index = len(Process.registry)


# --------------------------------------------------------------------------------------------
# Ports, waiting, HTTP
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def dapr_error(body: bytes) -> dict:
    """Asserts `body` is a Dapr error body ({"errorCode": "...", "message": "..."}) and returns it."""
    try:
        document = json.loads(body)
    except ValueError:
        raise AssertionError(f"not a Dapr error body (not JSON): {body[:300]!r}") from None
    assert isinstance(document, dict) and document.get("errorCode") and "message" in document, (
        f"not a Dapr error body: {body[:300]!r}"
    )
    return document


# --------------------------------------------------------------------------------------------
# Raw HTTP/1.1 over sockets (urllib normalizes request lines and refuses odd shapes)
# --------------------------------------------------------------------------------------------

class RawResponse:
    def __init__(self, status: int, reason: str, headers: dict, body: bytes):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def __repr__(self):
        return f"<{self.status} {self.reason} {self.body[:120]!r}>"


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ResponseReader:
    """Reads HTTP/1.1 responses one after another from a socket (Content-Length, chunked, or
    until close)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def _fill(self) -> bool:
        if self.closed:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.buffer += data
        return True

    def _read_line(self) -> Optional[bytes]:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                return None
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._fill():
                break
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def next(self) -> Optional[RawResponse]:
        """The next response, or None when the connection closed before one began."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                if self.buffer.strip():
                    raise AssertionError(f"connection closed inside a response head: {self.buffer[:300]!r}")
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size_line = self._read_line()
                if size_line is None:
                    break
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while True:  # trailers
                        trailer = self._read_line()
                        if not trailer:
                            break
                    break
                body += self._read_exact(size)
                self._read_line()
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            while self._fill():
                pass
            body, self.buffer = self.buffer, b""
        return RawResponse(status, reason, headers, body)


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> Optional[RawResponse]:
    """Sends `data` on a fresh connection and returns the first response (None: closed without one)."""
    with connect(port, timeout) as sock:
        sock.sendall(data)
        return ResponseReader(sock).next()


def raw_responses(port: int, data: bytes, timeout: float = 5.0, limit: int = 10) -> list[RawResponse]:
    """Sends `data` in one write and returns every response until the server closes or goes quiet."""
    responses = []
    with connect(port, timeout) as sock:
        sock.sendall(data)
        reader = ResponseReader(sock)
        try:
            while len(responses) < limit:
                response = reader.next()
                if response is None:
                    break
                responses.append(response)
        except socket.timeout:
            pass
    return responses


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the peer closed (EOF or reset); data that arrives is discarded. Non-blocking."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (BlockingIOError, InterruptedError):
        return False
    except (ConnectionResetError, BrokenPipeError, OSError):
        return True


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return 0.0


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
        pytest.fail(f"{message}\n--- {self.name} (pid {self.pid}, {' '.join(map(str, self.argv))[:600]}) ---\n{self.log_tail(60)}", pytrace=False)

    def wait_exit(self, timeout: float) -> Optional[int]:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to our PID, SIGKILL after `timeout`, then SIGKILL to whatever is left of the
        process group it leads."""
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

    def assert_alive(self, what: str = "the attack") -> None:
        """The process still runs and answers 204 on /v1.0/healthz/outbound."""
        time.sleep(0.2)
        if not self.alive():
            self.fail(f"{self.name} died after {what}: exit status {self.popen.returncode}")
        status = self.healthz()
        if status != 204:
            self.fail(f"{self.name} answers {status} on /v1.0/healthz/outbound after {what}")


class Launcher:
    """Starts sidecars and apps in one temporary directory and stops them all."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "mecha-home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []

    def resources(self, name: str, documents: dict[str, str], dedent: bool = True) -> Path:
        """Writes YAML files (file name -> text) into a fresh directory and returns it."""
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, text in documents.items():
            (directory / file_name).write_text(textwrap.dedent(text).lstrip() if dedent else text)
        return directory

    def sidecar_argv(
        self,
        app_id: str,
        *,
        resources: Optional[Iterable[Path]] = None,
        app_port: Optional[int] = None,
        extra_args: Iterable[str] = (),
        internal_port: Optional[int] = None,
    ):
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
            "--log-level", os.environ.get("MECHA_HOSTILE_LOG_LEVEL", "info"),
        ]
        for path in resources or ():
            argv += ["--resources-path", str(path)]
        if app_port:
            argv += ["--app-port", str(app_port)]
        argv += list(extra_args)
        return argv, http_port, grpc_port, internal_port

    def sidecar(
        self,
        app_id: str,
        *,
        resources: Optional[Iterable[Path]] = None,
        app_port: Optional[int] = None,
        extra_args: Iterable[str] = (),
        env: Optional[dict] = None,
        internal_port: Optional[int] = None,
        wait: bool = True,
        wait_app: Optional[bool] = None,
    ) -> Sidecar:
        argv, http_port, grpc_port, internal_port = self.sidecar_argv(
            app_id, resources=resources, app_port=app_port, extra_args=extra_args, internal_port=internal_port,
        )
        sidecar = Sidecar(
            app_id, http_port, grpc_port, internal_port, self.home,
            name=f"sidecar {app_id}", argv=argv, log_path=self.root / f"sidecar-{app_id}-{http_port}.log",
            env=self._env(env),
        )
        self.processes.append(sidecar)
        if wait:
            sidecar.wait_healthy(app=bool(app_port) if wait_app is None else wait_app)
        return sidecar

    def app(self, script: str = "record_app.py", *, port: Optional[int] = None, env: Optional[dict] = None) -> Process:
        """Starts `apps/<script>` with this interpreter; APP_PORT is its port; waits until it listens."""
        port = port or free_port()
        app_env = {"APP_PORT": str(port), "RECORD_FILE": str(self.root / f"{Path(script).stem}-{port}.jsonl"), **(env or {})}
        process = Process(
            name=f"app {script}:{port}", argv=[PYTHON, "-u", str(APPS_DIR / script)],
            log_path=self.root / f"app-{Path(script).stem}-{port}.log", env=self._env(app_env),
        )
        process.port = port
        process.record_file = Path(app_env["RECORD_FILE"])
        self.processes.append(process)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not port_open(port):
            if not process.alive():
                process.fail(f"{process.name} exited with status {process.popen.returncode} before listening")
            if time.monotonic() >= deadline:
                process.fail(f"{process.name} did not listen on {port} within {STARTUP_TIMEOUT}s")
            time.sleep(0.05)
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


def wait_records(app: Process, predicate: Callable[[list[dict]], object] = bool, timeout: float = 10.0, what: str = "the app to record"):
    """Polls the app's record file until `predicate(records)` is truthy; returns the records."""
    result = {}

    def check():
        records = read_records(app.record_file)
        result["records"] = records
        return predicate(records)

    try:
        wait_until(check, timeout=timeout, interval=0.05, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}; records so far: {json.dumps(result.get('records'), indent=1)[:3000]}") from None
    return result["records"]


def start_expecting_failure(launcher: Launcher, app_id: str, resources: Path, *, timeout: float = 10.0,
                            rss_limit_mb: float = 500.0, kill_above_mb: float = 1024.0):
    """Starts `mecha sidecar` with `resources`, which must refuse them: returns (returncode, log,
    peak RSS MB, seconds). Polls VmRSS while it runs; kills it above `kill_above_mb` or after
    `timeout` (returncode None then)."""
    argv, http_port, *_ = launcher.sidecar_argv(app_id, resources=[resources])
    # No Swift backtracer here: a trap then ends the process at once (a signal exit) instead of
    # spending seconds symbolicating while the test's clock runs.
    process = Process(name=f"sidecar {app_id}", argv=argv, log_path=launcher.root / f"sidecar-{app_id}-{http_port}.log",
                      env=Launcher._env({"SWIFT_BACKTRACE": "enable=no"}))
    launcher.processes.append(process)
    started = time.monotonic()
    peak = 0.0
    returncode = None
    while time.monotonic() - started < timeout:
        returncode = process.popen.poll()
        if returncode is not None:
            break
        peak = max(peak, rss_mb(process.pid))
        if peak > kill_above_mb:
            process.kill()
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    if returncode is None:
        returncode = process.popen.poll()
    if returncode is None:
        process.kill()
        returncode = None
    return returncode, process.log_text(), peak, elapsed


def assert_refused_at_startup(result, *needles: str, timeout: float = 10.0, rss_limit_mb: float = 500.0):
    """The sidecar exited on its own within `timeout` with a non-zero status that is not a signal,
    its RSS stayed under `rss_limit_mb`, and its output contains every one of `needles`."""
    returncode, log, peak, elapsed = result
    tail = "\n".join(log.splitlines()[-30:])[:4000]
    crashed = "fatal error" in log.lower() or "*** signal" in log.lower()
    assert returncode is not None, (f"still running after {timeout}s{' (it trapped and is backtracing)' if crashed else ''}"
                                    f" (peak RSS {peak:.0f} MB); log:\n{tail}")
    assert returncode > 0, f"exit status {returncode} (negative: killed by signal {-returncode}) after {elapsed:.1f}s, peak RSS {peak:.0f} MB; log:\n{tail}"
    assert peak <= rss_limit_mb, f"RSS reached {peak:.0f} MB (limit {rss_limit_mb}) before it exited; log:\n{tail}"
    missing = [needle for needle in needles if needle.lower() not in log.lower()]
    assert not missing, f"the startup error does not name {missing}; log:\n{tail}"


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture
def launcher(tmp_path):
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("hostile"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


# --------------------------------------------------------------------------------------------
# Component YAML
# --------------------------------------------------------------------------------------------

def sqlite_state(name: str, path: Path, extra_metadata: str = "") -> str:
    return f"""\
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
{extra_metadata}"""


def sqlite_pubsub(name: str, path: Path, extra_metadata: str = "") -> str:
    return f"""\
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
{extra_metadata}"""


def metadata_item(name: str, value: str) -> str:
    return f"  - name: {name}\n    value: {json.dumps(value)}\n"


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (from /proc: its socket inodes in LISTEN state)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except FileNotFoundError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            continue
    return ports
