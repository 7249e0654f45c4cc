"""Defect 8: connections that pipeline requests for large responses and never read them made the
sidecar buffer every answer: 100–200 such connections grew RSS to 0.5–1.2 GB, which stayed after
they closed. After the fix the server applies back-pressure (stops reading a connection whose
answers are not being read) and gives the memory back.

The thresholds are module-level constants; the test prints what it measured (idle, peak, after)."""

import json
import socket
import time

from conftest import http, rss_mb

VALUE_MB = 2
CONNECTIONS = 150
PIPELINED_PER_CONNECTION = 20
HOLD_S = 10.0
SETTLE_S = 10.0
PEAK_ABOVE_IDLE_MB = 400.0     # during the attack
AFTER_ABOVE_IDLE_MB = 100.0    # SETTLE_S after the connections closed
ABORT_ABOVE_MB = 3000.0        # protects the machine: the attack stops when RSS passes this


def test_unread_pipelined_large_responses_are_bounded(launcher):
    """Defect 8: 150 connections x 20 pipelined GETs of a 2 MB value, never read: RSS must stay under
    idle + 400 MB during the attack and return to idle + 100 MB 10 s after the connections closed."""
    sidecar = launcher.sidecar("memory")
    url = f"{sidecar.http_url}/v1.0/state/statestore"
    value = "x" * (VALUE_MB * 1024 * 1024)
    status, _, body = http("POST", url, json.dumps([{"key": "big", "value": value}]).encode(),
                           {"Content-Type": "application/json"}, timeout=30)
    assert status == 204, body
    status, _, body = http("GET", f"{url}/big", timeout=30)
    assert status == 200 and len(body) > VALUE_MB * 1024 * 1024
    time.sleep(1)
    idle = rss_mb(sidecar.pid)

    request = f"GET /v1.0/state/statestore/big HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.http_port}\r\n\r\n".encode()
    payload = request * PIPELINED_PER_CONNECTION
    sockets = []
    peak = idle
    aborted = False
    try:
        for _ in range(CONNECTIONS):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small window: unread answers stay in the server
            sock.settimeout(5)
            sock.connect(("127.0.0.1", sidecar.http_port))
            sock.sendall(payload)
            sockets.append(sock)
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            if not sidecar.alive():
                break
            peak = max(peak, rss_mb(sidecar.pid))
            if peak > ABORT_ABOVE_MB:
                aborted = True
                break
            time.sleep(0.2)
    finally:
        for sock in sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            except OSError:
                pass
            sock.close()
    if not sidecar.alive():
        sidecar.fail(f"the sidecar died during the attack (exit {sidecar.popen.returncode}); idle {idle:.0f} MB, peak {peak:.0f} MB")
    time.sleep(SETTLE_S)
    after = rss_mb(sidecar.pid)
    print(f"\nRSS idle {idle:.0f} MB, peak {peak:.0f} MB during the attack, {after:.0f} MB {SETTLE_S:.0f}s after closing "
          f"({CONNECTIONS} connections x {PIPELINED_PER_CONNECTION} pipelined GETs of {VALUE_MB} MB)")
    sidecar.assert_alive("the pipelining attack")
    assert not aborted, f"RSS passed {ABORT_ABOVE_MB:.0f} MB (idle {idle:.0f} MB): the attack was stopped"
    assert peak <= idle + PEAK_ABOVE_IDLE_MB, f"peak RSS {peak:.0f} MB > idle {idle:.0f} + {PEAK_ABOVE_IDLE_MB:.0f} MB"
    assert after <= idle + AFTER_ABOVE_IDLE_MB, f"RSS {after:.0f} MB {SETTLE_S:.0f}s after closing > idle {idle:.0f} + {AFTER_ABOVE_IDLE_MB:.0f} MB"
