"""Defect 13: the sidecar had no idle or read timeout: 2 000 slow connections were held forever.
After the fix it has `--connection-idle-timeout` (default 60s: an HTTP connection with no request
in progress, or a gRPC connection with no call, is closed) and `--connection-read-timeout` (default
30s: an HTTP request head must be complete within this time of its first byte and its body may not
stall longer; a gRPC connection whose peer sends nothing at all is closed after 3x this).

Every test runs a sidecar with `--connection-idle-timeout 2s --connection-read-timeout 2s`."""

import socket
import time

import pytest

from conftest import connect, closed_by_peer, http, ResponseReader

TIMEOUT_FLAGS = ["--connection-idle-timeout", "2s", "--connection-read-timeout", "2s"]
SLOW_CONNECTIONS = 300


@pytest.fixture
def sidecar(launcher):
    """Started by the test itself (not at setup), so a binary without the flags FAILS the test."""
    return lambda: launcher.sidecar("timeouts", extra_args=TIMEOUT_FLAGS)


def test_slowloris_heads_are_closed(sidecar):
    """Defect 13: 300 connections sending a request head one byte per second must all be closed by
    the server within 8 s (read timeout 2 s from the head's first byte)."""
    sidecar = sidecar()
    sockets = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            sock = connect(sidecar.http_port, timeout=5)
            sock.sendall(b"GET /v1.0/healthz HTTP/1.1\r\nHo")
            sockets.append(sock)
        started = time.monotonic()
        trickle = b"st: 127.0.0.1\r\nX-Slow: " + b"a" * 100
        open_sockets = set(range(len(sockets)))
        step = 0
        while open_sockets and time.monotonic() - started < 8.0:
            time.sleep(1.0)
            for index in list(open_sockets):
                sock = sockets[index]
                if closed_by_peer(sock):
                    open_sockets.discard(index)
                    continue
                try:
                    sock.send(trickle[step % len(trickle):step % len(trickle) + 1])
                except OSError:
                    open_sockets.discard(index)
            step += 1
        for index in list(open_sockets):
            time.sleep(0)
            if closed_by_peer(sockets[index]):
                open_sockets.discard(index)
        elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    assert not open_sockets, f"{len(open_sockets)} of {SLOW_CONNECTIONS} slow connections still open after {elapsed:.1f}s"
    sidecar.assert_alive("the slow connections")


def test_idle_keep_alive_connection_is_closed(sidecar):
    """Defect 13: a keep-alive connection idle after one full request must be closed within 5 s."""
    sidecar = sidecar()
    with connect(sidecar.http_port, timeout=5) as sock:
        sock.sendall(f"GET /v1.0/healthz/outbound HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.http_port}\r\n\r\n".encode())
        response = ResponseReader(sock).next()
        assert response is not None and response.status == 204, response
        started = time.monotonic()
        while not closed_by_peer(sock):
            if time.monotonic() - started > 5.0:
                pytest.fail("an idle keep-alive connection is still open 5 s after its request")
            time.sleep(0.1)


def test_silent_grpc_connection_is_closed(sidecar):
    """Defect 13: a raw TCP connection to the gRPC port that sends nothing must be closed within 10 s."""
    sidecar = sidecar()
    with socket.create_connection(("127.0.0.1", sidecar.grpc_port), timeout=5) as sock:
        started = time.monotonic()
        while not closed_by_peer(sock):
            if time.monotonic() - started > 10.0:
                pytest.fail("a silent connection to the gRPC port is still open after 10 s")
            time.sleep(0.2)


def test_stalled_body_is_closed(sidecar):
    """Defect 13: a request body that stops arriving must not hold the connection past the read timeout."""
    sidecar = sidecar()
    with connect(sidecar.http_port, timeout=5) as sock:
        sock.sendall(f"POST /v1.0/state/statestore HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.http_port}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{{\"key\"".encode())
        started = time.monotonic()
        while not closed_by_peer(sock):
            if time.monotonic() - started > 8.0:
                pytest.fail("a connection whose body stalled is still open after 8 s")
            time.sleep(0.1)


def test_slow_but_steady_body_completes(sidecar):
    """Defect 13 (regression side): a body arriving a couple of bytes every 0.5 s (6 s in all, longer
    than both timeouts, no stall longer than either) must not be cut off."""
    sidecar = sidecar()
    body = b'[{"key":"slow","value":1}]'
    with connect(sidecar.http_port, timeout=10) as sock:
        sock.sendall(f"POST /v1.0/state/statestore HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.http_port}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for offset in range(0, len(body), 2):
            time.sleep(0.5)
            try:
                sock.sendall(body[offset:offset + 2])
            except OSError as error:
                pytest.fail(f"the connection was closed after {offset} of {len(body)} body bytes: {error!r}")
        sock.setblocking(True)
        sock.settimeout(5)
        response = ResponseReader(sock).next()
    assert response is not None and response.status == 204, f"slow save: {response!r}"
    assert http("GET", f"{sidecar.http_url}/v1.0/state/statestore/slow")[2] == b"1"
