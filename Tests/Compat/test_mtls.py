"""Mutual TLS between sidecars (on by default): SVIDs from the CA in the Mecha home, the caller's
identity taken from its certificate, refusals counted, and `--enable-mtls=false` /
`spec.mtls.enabled: false` for plaintext sidecars.

Certificates for the hostile clients are made with the `openssl` command (the home's CA key
signs the ones that should pass the handshake)."""

import http.client
import json
import socket
import ssl
import subprocess
import urllib.request

import pytest

from conftest import http as fetch


@pytest.fixture(scope="module")
def target(module_launcher):
    app = module_launcher.app("http_app.py", env={"APP_ID": "mtls-target"})
    return module_launcher.sidecar("mtls-target", app_port=app.port)


@pytest.fixture(scope="module")
def caller(module_launcher, target):
    return module_launcher.sidecar("mtls-caller")


def openssl(*arguments, cwd):
    subprocess.run(["openssl", *arguments], cwd=cwd, check=True, capture_output=True)


def certificate(directory, name, spiffe_id, ca_cert=None, ca_key=None):
    """A P-256 key and a certificate carrying `spiffe_id`, signed by the CA (self-signed without one)."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=directory)
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName=URI:{spiffe_id}\nextendedKeyUsage=clientAuth,serverAuth\n")
    if ca_cert is None:
        openssl("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "1", "-out", str(cert),
                "-addext", f"subjectAltName=URI:{spiffe_id}", cwd=directory)
    else:
        csr = directory / f"{name}.csr"
        openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr), cwd=directory)
        openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "1",
                "-extfile", str(extensions), "-out", str(cert), cwd=directory)
    return cert, key


def tls_context(target, cert=None, key=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(target.home / "ca" / "public" / "ca.crt.pem"))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


def internal_request(target, context, headers):
    """GET /whoami on the target sidecar's internal port over TLS with `context`."""
    connection = http.client.HTTPSConnection("127.0.0.1", target.internal_port, context=context, timeout=10)
    try:
        connection.request("GET", "/whoami", headers={"x-mecha-target-app": target.app_id, **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def refused(attempt):
    """True when `attempt` fails at the connection (handshake refused, connection reset or closed)."""
    try:
        attempt()
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, socket.timeout, OSError):
        return True
    return False


def refusals(sidecar):
    status, _, body = fetch("GET", f"http://127.0.0.1:{sidecar.metrics_port}/metrics")
    assert status == 200
    counts = {}
    for line in body.decode().splitlines():
        if line.startswith("mecha_mtls_refused_handshakes_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


def test_sidecars_call_each_other_over_mtls(caller, target, dapr_client):
    client = dapr_client(caller)
    reply = json.loads(client.invoke_method("mtls-target", "whoami", data=b"", http_verb="GET").data)
    assert reply["app"] == "mtls-target"
    assert reply["headers"].get("dapr-caller-app-id") == "mtls-caller"
    # The general path (a body over the fast path's limit) as well.
    big = b"p" * (2 << 20)
    request = urllib.request.Request(f"{caller.http_url}/v1.0/invoke/mtls-target/method/echo", data=big, method="POST")
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.read() == big
    # Each sidecar's identity is an SVID of the home's CA, named in its log.
    assert "spiffe://public/ns/default/mtls-target" in target.log_text()


def test_a_plain_or_anonymous_or_foreign_client_is_refused_and_counted(target, tmp_path):
    before = refusals(target)

    def plain():
        connection = http.client.HTTPConnection("127.0.0.1", target.internal_port, timeout=10)
        connection.request("GET", "/whoami", headers={"x-mecha-target-app": target.app_id})
        connection.getresponse().read()

    assert refused(plain)
    assert refused(lambda: internal_request(target, tls_context(target), {}))
    cert, key = certificate(tmp_path, "foreign", "spiffe://public/ns/default/mtls-caller")
    assert refused(lambda: internal_request(target, tls_context(target, cert, key), {}))

    after = refusals(target)
    for reason in ("not_tls", "no_certificate", "untrusted_certificate"):
        assert after.get(reason, 0) >= before.get(reason, 0) + 1, (reason, before, after)
    target.assert_alive("refused handshakes")


def test_the_caller_is_who_its_certificate_says(target, tmp_path):
    """A certificate of the home's CA for `intruder`, claiming to be `mtls-caller` in the headers:
    the app is told `intruder`."""
    ca = target.home / "ca" / "public"
    cert, key = certificate(tmp_path, "intruder", "spiffe://public/ns/default/intruder", ca / "ca.crt.pem", ca / "ca.key.pem")
    status, body = internal_request(
        target, tls_context(target, cert, key), {"dapr-caller-app-id": "mtls-caller", "dapr-caller-namespace": "other"})
    assert status == 200, body
    headers = json.loads(body)["headers"]
    assert headers.get("dapr-caller-app-id") == "intruder"
    assert headers.get("dapr-caller-namespace") == "default"
    # No peer token was needed: the certificate authenticates the sidecar.


MTLS_OFF = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: no-mtls
spec:
  mtls:
    enabled: false
"""


@pytest.mark.parametrize("how", ["flag", "configuration"])
def test_a_sidecar_with_mtls_off_listens_in_plaintext(module_launcher, caller, target, how):
    app_id = f"plain-{how}"
    app = module_launcher.app("http_app.py", env={"APP_ID": app_id})
    if how == "flag":
        plain = module_launcher.sidecar(app_id, app_port=app.port, extra_args=["--enable-mtls=false"])
    else:
        plain = module_launcher.sidecar(app_id, app_port=app.port, config=module_launcher.file("no-mtls.yaml", MTLS_OFF))
    assert "mTLS is off" in plain.log_text()
    # An mTLS sidecar calls it in plaintext (with the home's peer token).
    status, _, body = fetch("GET", f"{caller.http_url}/v1.0/invoke/{app_id}/method/whoami")
    assert status == 200, body
    assert json.loads(body)["headers"].get("dapr-caller-app-id") == "mtls-caller"
    # It cannot call an mTLS sidecar, and says why.
    status, _, body = fetch("GET", f"{plain.http_url}/v1.0/invoke/mtls-target/method/whoami")
    error = json.loads(body)
    assert status == 500 and error["errorCode"] == "ERR_DIRECT_INVOKE", body
    assert "mTLS" in error["message"], body


SHORT_LIVED = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: short-lived
spec:
  mtls:
    enabled: true
    workloadCertTTL: 5s
    allowedClockSkew: 1m
"""


def test_certificates_rotate_under_load_without_a_failed_request(module_launcher):
    """SVIDs living 5 s (the shortest allowed) are renewed at 70 % while calls run, in waves of 1 to 8 concurrent
    callers (wider waves open more pooled connections, which handshake with the certificates of the moment)."""
    import concurrent.futures
    import time as clock

    config = module_launcher.file("short-lived.yaml", SHORT_LIVED)
    app = module_launcher.app("http_app.py", env={"APP_ID": "rotating-callee"})
    callee = module_launcher.sidecar("rotating-callee", app_port=app.port, config=config)
    caller = module_launcher.sidecar("rotating-caller", config=config)
    failures, calls = [], 0

    def call(index):
        body = b"r" * (100 if index % 2 else 70_000)   # the fast path and the general path
        status, _, answer = fetch("POST", f"{caller.http_url}/v1.0/invoke/rotating-callee/method/echo", body,
                                  {"Content-Type": "application/octet-stream"}, timeout=10)
        return status, len(answer) == len(body)

    deadline = clock.monotonic() + 12
    wave = 0
    while clock.monotonic() < deadline:
        wave += 1
        width = 1 + (wave % 8)
        with concurrent.futures.ThreadPoolExecutor(width) as pool:
            for status, intact in pool.map(call, range(width * 10)):
                calls += 1
                if status != 200 or not intact:
                    failures.append(status)
    assert failures == [], f"{len(failures)} failed of {calls}: {failures[:10]}"
    renewals = callee.log_text().count("renewed the workload certificate")
    assert renewals >= 2, callee.log_tail(20)
    assert caller.log_text().count("renewed the workload certificate") >= 2


def test_a_sidecar_answering_for_another_app_is_refused_by_the_caller(caller, target, dapr_client):
    """Secure naming: a registry entry naming app `mtls-ghost` at the address of `mtls-target`'s
    sidecar (a stale or forged entry; with mDNS anyone on the LAN can announce one) is refused in
    the caller's handshake — the server's certificate says mtls-target — before the request is
    sent, on the general and the fast path alike, and counted."""
    import sqlite3
    import time
    import uuid

    database = sqlite3.connect(str(target.home / "mecha.db"), timeout=10)
    columns = [row[1] for row in database.execute("PRAGMA table_info(nameresolution_instances)")]
    row = database.execute("SELECT * FROM nameresolution_instances WHERE app_id = 'mtls-target' ORDER BY last_heartbeat DESC").fetchone()
    forged = dict(zip(columns, row))
    forged.update(instance_id=str(uuid.uuid4()), app_id="mtls-ghost")
    database.execute(f"INSERT INTO nameresolution_instances ({', '.join(forged)}) VALUES ({', '.join('?' * len(forged))})",
                     list(forged.values()))
    database.commit()
    try:
        for _ in range(3):
            status, _, body = fetch("GET", f"{caller.http_url}/v1.0/invoke/mtls-ghost/method/whoami")
            assert status == 500, body
            assert b"not app mtls-ghost" in body, body
        # The SDK over gRPC (the general path).
        with pytest.raises(Exception) as refused_call:
            dapr_client(caller).invoke_method("mtls-ghost", "whoami", data=b"", http_verb="GET")
        assert "not app mtls-ghost" in str(refused_call.value)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{caller.metrics_port}/metrics", timeout=5).read().decode()
        refused = [line for line in metrics.splitlines() if 'reason="wrong_server_identity"' in line and not line.startswith("#")]
        assert refused and float(refused[0].split()[-1]) >= 1, refused
        # The real app id at the same address still works.
        status, _, body = fetch("GET", f"{caller.http_url}/v1.0/invoke/mtls-target/method/whoami")
        assert status == 200, body
    finally:
        database.execute("DELETE FROM nameresolution_instances WHERE app_id = 'mtls-ghost'")
        database.commit()
        database.close()
