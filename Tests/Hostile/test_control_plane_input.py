"""Hostile input to `mecha control-plane`: requests without or with forged tokens, malformed JSON,
CSRs that are not CSRs or ask for another identity, oversized bodies, plaintext on the TLS port and
raw garbage. Each gets a clear JSON error (errorCode, message, status) and the control plane stays
up and keeps signing for legitimate requests."""

import http.client
import json
import socket
import ssl
import subprocess
import time

import pytest

from conftest import MECHA_BIN, Process, free_port, port_open


@pytest.fixture
def plane(launcher):
    store = launcher.root / "cp" / "control-plane.db"
    port = free_port()
    process = Process(name=f"control-plane:{port}", argv=[str(MECHA_BIN), "control-plane", "--port", str(port), "--store", str(store)],
                      log_path=launcher.root / "control-plane.log")
    launcher.processes.append(process)
    deadline = time.monotonic() + 20
    while not port_open(port):
        assert process.alive() and time.monotonic() < deadline, process.log_tail(20)
        time.sleep(0.05)
    anchors = launcher.root / "anchors.pem"
    anchors.write_text(control("trust-anchors", "--store", str(store)))
    return {"store": store, "port": port, "process": process, "anchors": anchors, "root": launcher.root}


def control(*arguments):
    return subprocess.run([str(MECHA_BIN), "control-plane", *arguments], check=True, capture_output=True, text=True).stdout.strip()


def request(plane, body, token=None, path="/v1/svid", method="POST"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(plane["anchors"]))
    connection = http.client.HTTPSConnection("127.0.0.1", plane["port"], context=context, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def csr(plane, name, san=None):
    directory = plane["root"] / f"csr-{name}"
    directory.mkdir(exist_ok=True)
    key = directory / "key.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True, capture_output=True)
    argv = ["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(directory / "csr.pem")]
    if san:
        argv += ["-addext", f"subjectAltName=URI:{san}"]
    subprocess.run(argv, check=True, capture_output=True)
    return (directory / "csr.pem").read_text()


def error_of(status, body, expected_status, code):
    assert status == expected_status, (status, body)
    error = json.loads(body)
    assert error["errorCode"] == code and error["message"], error
    return error["message"]


def test_bad_requests_get_clear_errors_and_the_control_plane_stays_up(plane):
    token = control("token", "--app-id", "orders", "--store", str(plane["store"]))
    good = json.dumps({"csr": csr(plane, "orders"), "appId": "orders", "namespace": "default"})
    error_of(*request(plane, good), 401, "ERR_UNAUTHENTICATED")
    assert "unknown join token" in error_of(*request(plane, good, token="f" * 64), 401, "ERR_UNAUTHENTICATED")
    error_of(*request(plane, b"{not json", token=token), 400, "ERR_MALFORMED_REQUEST")
    error_of(*request(plane, json.dumps({"csr": 5, "appId": "orders"}), token=token), 400, "ERR_MALFORMED_REQUEST")
    assert "not a PEM certificate signing request" in error_of(
        *request(plane, json.dumps({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                    "appId": "orders", "namespace": "default"}), token=token), 400, "ERR_MALFORMED_REQUEST")
    # The token's app, but a CSR asking for another identity in its SAN.
    forged = json.dumps({"csr": csr(plane, "admin", san="spiffe://public/ns/default/admin"), "appId": "orders", "namespace": "default"})
    assert "may only have spiffe://public/ns/default/orders" in error_of(*request(plane, forged, token=token), 403, "ERR_PERMISSION_DENIED")
    # Another app id or namespace than the token's.
    other = json.dumps({"csr": csr(plane, "billing"), "appId": "billing", "namespace": "default"})
    assert "this join token is for app orders" in error_of(*request(plane, other, token=token), 403, "ERR_PERMISSION_DENIED")
    elsewhere = json.dumps({"csr": csr(plane, "orders2"), "appId": "orders", "namespace": "prod"})
    error_of(*request(plane, elsewhere, token=token), 403, "ERR_PERMISSION_DENIED")
    error_of(*request(plane, "x" * (100 * 1024), token=token), 413, "ERR_REQUEST_TOO_LARGE")
    error_of(*request(plane, good, token=token, path="/v1/nothing"), 404, "ERR_NOT_FOUND")
    error_of(*request(plane, good, token=token, method="GET"), 405, "ERR_METHOD_NOT_ALLOWED")
    # The registry wants an SVID.
    error_of(*request(plane, b"{}", path="/v1/instances?appId=orders", method="GET"), 401, "ERR_UNAUTHENTICATED")
    # Plaintext HTTP and raw garbage on the TLS port: refused, nothing answered in clear.
    for garbage in (b"POST /v1/svid HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", bytes(range(256)) * 64):
        with socket.create_connection(("127.0.0.1", plane["port"]), timeout=5) as sock:
            sock.sendall(garbage)
            try:
                answer = sock.recv(4096)
            except (ConnectionResetError, socket.timeout):
                answer = b""
            assert b"HTTP/1.1" not in answer
    # Still up, and still signing.
    assert plane["process"].alive()
    status, body = request(plane, good, token=token)
    assert status == 200, body
    assert "BEGIN CERTIFICATE" in json.loads(body)["certificateChain"]
