"""Defect 9: on the invocation fast path, a valid invocation followed in the same write by garbage
bytes ran the call on the app but the client got only `400`. After the fix the client first gets
the app's answer, then a 400 (or the connection closes); the app got exactly one call."""

import time

from conftest import connect, read_records, ResponseReader, wait_records


def test_invocation_answer_is_not_dropped_before_garbage(launcher):
    """Defect 9: `POST /v1.0/invoke/<appid>/method/echo` + `\\x00\\x01GARBAGE\\r\\n\\r\\n` in one write:
    the 200 answer must come first, with its body."""
    app = launcher.app("record_app.py")
    sidecar = launcher.sidecar("fast-path", app_port=app.port)
    body = b"hello fast path"
    request = (f"POST /v1.0/invoke/fast-path/method/echo HTTP/1.1\r\nHost: 127.0.0.1:{sidecar.http_port}\r\n"
               f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode() + body
    responses = []
    with connect(sidecar.http_port, timeout=5) as sock:
        sock.sendall(request + b"\x00\x01GARBAGE\r\n\r\n")
        reader = ResponseReader(sock)
        try:
            while len(responses) < 3:
                response = reader.next()
                if response is None:
                    break
                responses.append(response)
        except OSError:
            pass
    assert responses, "no response at all"
    first = responses[0]
    assert (first.status, first.body) == (200, body), f"first response {first!r} (all: {responses!r}); the app's answer was dropped"
    wait_records(app, lambda records: [r for r in records if r["path"] == "/echo"], timeout=5,
                 what="the app to receive the invocation")
    time.sleep(0.3)
    calls = [r for r in read_records(app.record_file) if r["path"] == "/echo"]
    assert len(calls) == 1, f"the app got {len(calls)} calls"
    assert all(r.status == 400 for r in responses[1:]), f"after the answer: {responses[1:]!r}"
    sidecar.assert_alive("the garbage")
