"""Defect 12: the sidecar-to-sidecar port accepted any local client: a raw `POST /echo` with
`x-mecha-target-app: <appid>` and a spoofed `dapr-caller-app-id: admin` reached the app with the
spoofed caller id and the app token (APP_API_TOKEN). After the fix such a request is refused: with
mTLS (the default) at the TLS handshake, with no HTTP answer at all; with mTLS off, with 401 or 403
and a Dapr error body. A legitimate call from another sidecar still works in both modes."""

import time

import pytest

from conftest import dapr_error, free_port, http, listening_ports, raw_request, read_records, wait_records

APP_ID = "internal-target"
CALLER_ID = "internal-caller"
APP_TOKEN = "apptoken"


@pytest.mark.parametrize("mtls", [True, False], ids=["mtls", "plaintext"])
def test_raw_request_to_internal_port_is_refused(launcher, mtls):
    """Defect 12: a forged sidecar-to-sidecar request (spoofed caller id) must be refused and must not
    reach the app; a real second sidecar's invocation still reaches it with its id and the app token."""
    app = launcher.app("record_app.py")
    internal_port = free_port()
    extra = [] if mtls else ["--enable-mtls=false"]
    target = launcher.sidecar(APP_ID, app_port=app.port, internal_port=internal_port, env={"APP_API_TOKEN": APP_TOKEN},
                              extra_args=extra)

    def echo_calls():
        return [r for r in read_records(app.record_file) if r["path"].startswith("/echo")]

    body = b'{"forged":true}'
    request = (f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:{internal_port}\r\nx-mecha-target-app: {APP_ID}\r\n"
               f"dapr-caller-app-id: admin\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               f"Connection: close\r\n\r\n").encode() + body
    response = raw_request(internal_port, request)
    time.sleep(0.5)
    forged = echo_calls()
    assert not forged, f"the forged request reached the app: {forged}"
    if mtls:
        assert response is None or response.status == 0, f"a plaintext request got an HTTP answer over mTLS: {response!r}"
    else:
        assert response is not None and response.status in (401, 403), f"forged sidecar-to-sidecar request: {response!r}"
        dapr_error(response.body)

    caller = launcher.sidecar(CALLER_ID)
    status, _, answer = http("POST", f"{caller.http_url}/v1.0/invoke/{APP_ID}/method/echo", b'{"legit":true}',
                             {"Content-Type": "application/json"}, timeout=10)
    assert status == 200, f"invocation through a second sidecar: {status} {answer[:300]!r}"
    calls = wait_records(app, lambda records: [r for r in records if r["path"].startswith("/echo")], timeout=5,
                         what="the legitimate invocation")
    legit = [r for r in calls if r["path"].startswith("/echo")][-1]
    assert legit["headers"].get("dapr-caller-app-id") == CALLER_ID, legit["headers"]
    assert legit["headers"].get("dapr-api-token") == APP_TOKEN, legit["headers"]
    target.assert_alive("the forged request")


def test_raw_grpc_call_to_internal_proxy_port_is_refused(launcher):
    """Found while probing (same class as defect 12): the sidecar's second internal listener (proxied
    gRPC calls, on a port it picks itself) forwarded a raw gRPC call with metadata
    `x-mecha-target-app: <appid>` and a spoofed `dapr-caller-app-id: admin` to the gRPC app, with
    the app token. Every listener of the sidecar other than its public APIs must refuse such a call
    (the app receives nothing); proxying through a second sidecar's gRPC API still works."""
    import grpc

    app = launcher.app("grpc_record_app.py")
    target = launcher.sidecar(APP_ID, app_port=app.port, extra_args=["--app-protocol", "grpc"],
                              env={"APP_API_TOKEN": APP_TOKEN})
    time.sleep(0.3)
    public = {target.http_port, target.grpc_port}
    others = sorted(listening_ports(target.pid) - public)
    assert others, "found no internal listener of the sidecar"

    def proxied_calls():
        return [r for r in read_records(app.record_file) if r["method"] == "/hostile.Probe/Call"]

    outcomes = {}
    for port in others:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/hostile.Probe/Call")
            try:
                call(b"forged", metadata=[("x-mecha-target-app", APP_ID), ("dapr-app-id", APP_ID),
                                          ("dapr-caller-app-id", "admin")], timeout=5)
                outcomes[port] = "OK"
            except grpc.RpcError as error:
                outcomes[port] = f"{error.code()} {error.details()}"
    time.sleep(0.5)
    forged = proxied_calls()
    assert not forged, f"a forged gRPC call to an internal port reached the app: {forged} (outcomes {outcomes})"
    assert "OK" not in outcomes.values(), outcomes

    caller = launcher.sidecar(CALLER_ID)
    with grpc.insecure_channel(caller.grpc_address) as channel:
        answer = channel.unary_unary("/hostile.Probe/Call")(b"legit", metadata=[("dapr-app-id", APP_ID)], timeout=10)
    assert answer == b"legit"
    legit = wait_records(app, lambda records: [r for r in records if r["method"] == "/hostile.Probe/Call"], timeout=5,
                         what="the proxied call")
    headers = [r for r in legit if r["method"] == "/hostile.Probe/Call"][-1]["headers"]
    assert headers.get("dapr-api-token") == APP_TOKEN, headers
