"""Fixtures of the hostile-input suite.

Black-box tests of the built binary against malformed, oversized and adversarial input: every test
starts its own `mecha sidecar` on free 127.0.0.1 ports with a temporary `--mecha-home` (and, where
needed, a small recording app from `apps/`), attacks it, and checks that it stays alive, refuses
what it must refuse, and does not let the attack through.

The process helpers come from Tests/PyHarness/mecha_harness.py (shared with Tests/Compat): every process a fixture starts is
stopped by its PID when the test ends (SIGTERM, then SIGKILL of the process group it leads), and
the logs of the processes of a failed test are attached to the report.

Environment: MECHA_BIN (the binary, default .build/debug/mecha), MECHA_HOSTILE_LOG_LEVEL (the
sidecars' --log-level, default info), MECHA_HOSTILE_STARTUP_TIMEOUT (seconds, default 30).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

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

HOSTILE_DIR = Path(__file__).resolve().parent
APPS_DIR = HOSTILE_DIR / "apps"

Launcher = suite_launcher(APPS_DIR, "MECHA_HOSTILE_LOG_LEVEL")
launcher, module_launcher = launcher_fixtures(Launcher, "hostile")


# --------------------------------------------------------------------------------------------
# Dapr error bodies
# --------------------------------------------------------------------------------------------

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
