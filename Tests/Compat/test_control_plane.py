"""`mecha control-plane` as the certificate authority: sidecars started with
`--control-plane-address`, `--trust-anchors-file` and a join token get their SVIDs from it
(not from the Mecha home's CA), call each other over mTLS with them (official SDK), keep working
when the control plane is gone, and are refused a certificate for an app id their token is not
for."""

import json
import subprocess
import time

import pytest

from conftest import MECHA_BIN, Process, free_port, http, port_open, wait_until


def start_control_plane(launcher, store, port):
    process = Process(
        name=f"control-plane:{port}",
        argv=[str(MECHA_BIN), "control-plane", "--port", str(port), "--store", str(store)],
        log_path=launcher.root / f"control-plane-{port}-{time.monotonic_ns()}.log",
    )
    launcher.processes.append(process)
    deadline = time.monotonic() + 20
    while not port_open(port):
        if not process.alive():
            process.fail("mecha control-plane exited before listening")
        if time.monotonic() > deadline:
            process.fail("mecha control-plane did not listen within 20s")
        time.sleep(0.05)
    return process


def control(*arguments):
    return subprocess.run([str(MECHA_BIN), "control-plane", *arguments], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def plane(module_launcher):
    store = module_launcher.root / "cp" / "control-plane.db"
    port = free_port()
    process = start_control_plane(module_launcher, store, port)
    anchors = module_launcher.file("anchors.pem", control("trust-anchors", "--store", str(store)))
    return {"store": store, "port": port, "process": process, "anchors": anchors}


def joined(launcher, plane, app_id, token=None, app_port=None, wait=True, extra=()):
    token = token or control("token", "--app-id", app_id, "--store", str(plane["store"]))
    return launcher.sidecar(
        app_id, app_port=app_port, wait=wait,
        extra_args=["--control-plane-address", f"127.0.0.1:{plane['port']}", "--trust-anchors-file", str(plane["anchors"]), *extra],
        env={"MECHA_CONTROL_PLANE_TOKEN": token})


def test_sidecars_get_their_certificates_from_the_control_plane(module_launcher, plane, dapr_client):
    app = module_launcher.app("http_app.py", env={"APP_ID": "cp-callee"})
    callee = joined(module_launcher, plane, "cp-callee", app_port=app.port)
    caller = joined(module_launcher, plane, "cp-caller")
    for sidecar in (callee, caller):
        assert f"workload identity spiffe://public/ns/default/{sidecar.app_id} from the control plane" in sidecar.log_text()
    # The home's own CA was never needed.
    assert not (module_launcher.home / "ca").exists()
    reply = dapr_client(caller).invoke_method("cp-callee", "whoami", data=b"", http_verb="GET")
    assert b'"dapr-caller-app-id": "cp-caller"' in reply.data
    # The control plane goes away: calls keep working on the certificates the sidecars hold.
    plane["process"].stop()
    assert not port_open(plane["port"])
    reply = dapr_client(caller).invoke_method("cp-callee", "whoami", data=b"", http_verb="GET")
    assert b"cp-callee" in reply.data
    # Back on the same store: same root, and it signs again.
    plane["process"] = start_control_plane(module_launcher, plane["store"], plane["port"])
    assert control("trust-anchors", "--store", str(plane["store"])) == plane["anchors"].read_text().strip()
    late = joined(module_launcher, plane, "cp-late")
    assert "from the control plane" in late.log_text()


def test_a_token_is_for_one_app(module_launcher, plane):
    token = control("token", "--app-id", "cp-orders", "--store", str(plane["store"]))
    sidecar = joined(module_launcher, plane, "cp-impostor", token=token, wait=False)
    assert sidecar.wait_exit(20) not in (None, 0), sidecar.log_tail(20)
    assert "this join token is for app cp-orders in namespace default, not cp-impostor in default" in sidecar.log_text()
    unknown = joined(module_launcher, plane, "cp-unknown", token="0" * 64, wait=False)
    assert unknown.wait_exit(20) not in (None, 0)
    assert "unknown join token" in unknown.log_text()


def test_the_control_plane_must_prove_it_is_the_one_the_anchors_name(module_launcher, plane):
    other_store = module_launcher.root / "cp-other" / "control-plane.db"
    foreign = module_launcher.file("foreign.pem", control("trust-anchors", "--store", str(other_store)))
    token = control("token", "--app-id", "cp-misled", "--store", str(plane["store"]))
    sidecar = module_launcher.sidecar(
        "cp-misled", wait=False,
        extra_args=["--control-plane-address", f"127.0.0.1:{plane['port']}", "--trust-anchors-file", str(foreign)],
        env={"MECHA_CONTROL_PLANE_TOKEN": token})
    assert sidecar.wait_exit(30) not in (None, 0)
    assert "cannot get a certificate from the control plane" in sidecar.log_text(), sidecar.log_tail(10)


def test_missing_anchors_or_token_are_named(module_launcher, plane):
    no_anchors = module_launcher.sidecar(
        "cp-bare", wait=False, extra_args=["--control-plane-address", f"127.0.0.1:{plane['port']}"],
        env={"MECHA_CONTROL_PLANE_TOKEN": "x"})
    assert no_anchors.wait_exit(20) not in (None, 0)
    assert "--trust-anchors-file" in no_anchors.log_text()
    no_token = module_launcher.sidecar(
        "cp-tokenless", wait=False,
        extra_args=["--sentry-address", f"127.0.0.1:{plane['port']}", "--trust-anchors-file", str(plane["anchors"])])
    assert no_token.wait_exit(20) not in (None, 0)
    assert "MECHA_CONTROL_PLANE_TOKEN" in no_token.log_text()


def test_sidecars_of_different_homes_find_each_other_through_the_registry(module_launcher, plane, dapr_client):
    """Two Mecha homes stand for two hosts: nothing is shared but the control plane. Its registry
    resolves the app ids; the last answer keeps serving while it is away."""
    homes = [module_launcher.root / "host-a", module_launcher.root / "host-b"]
    app = module_launcher.app("http_app.py", env={"APP_ID": "reg-callee"})
    callee = joined(module_launcher, plane, "reg-callee", app_port=app.port, extra=["--mecha-home", str(homes[0])])
    caller = joined(module_launcher, plane, "reg-caller", extra=["--mecha-home", str(homes[1])])
    assert "the control plane's registry" in caller.log_text()
    client = dapr_client(caller)
    wait_until(lambda: b"reg-callee" in client.invoke_method("reg-callee", "whoami", data=b"", http_verb="GET").data, timeout=15,
               what="the callee to be registered")
    reply = json.loads(client.invoke_method("reg-callee", "whoami", data=b"", http_verb="GET").data)
    assert reply["headers"]["dapr-caller-app-id"] == "reg-caller"
    # Control plane away: the caller keeps resolving from its last answer.
    plane["process"].stop()
    for _ in range(5):
        assert b"reg-callee" in client.invoke_method("reg-callee", "whoami", data=b"", http_verb="GET").data
        time.sleep(0.3)

    def detail():
        return json.loads(http("GET", f"{caller.http_url}/v1.0/healthz?detail")[2])

    wait_until(lambda: detail().get("runningOnLastKnownState") is True, timeout=10, what="the health detail to say so")
    assert "is unreachable" in " ".join(detail()["lastKnownStateReasons"])
    plane["process"] = start_control_plane(module_launcher, plane["store"], plane["port"])
    wait_until(lambda: "runningOnLastKnownState" not in detail(), timeout=10, what="the sidecar to catch up")
    # A registration for another app id is refused: the registry knows callers by certificate.
    status, body = registry_post_as(module_launcher, plane, "reg-caller", {"instanceId": "x", "appId": "reg-callee", "namespace": "default"})
    assert status == 403 and b"may only register instances of its own app" in body


def registry_post_as(launcher, plane, app_id, document):
    """POSTs `document` to the registry with an SVID of `app_id` signed by the control plane's CA
    (made with openssl from a CSR the control plane signs for a fresh token)."""
    import http.client
    import ssl

    directory = launcher.root / f"svid-{app_id}"
    directory.mkdir(exist_ok=True)
    key, csr = directory / "key.pem", directory / "csr.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={app_id}", "-out", str(csr)], check=True, capture_output=True)
    token = control("token", "--app-id", app_id, "--store", str(plane["store"]))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(plane["anchors"]))
    connection = http.client.HTTPSConnection("127.0.0.1", plane["port"], context=context, timeout=10)
    connection.request("POST", "/v1/svid", body=json.dumps({"csr": csr.read_text(), "appId": app_id, "namespace": "default"}),
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    certificate = directory / "cert.pem"
    certificate.write_text(answer["certificateChain"])
    context.load_cert_chain(str(certificate), str(key))
    connection = http.client.HTTPSConnection("127.0.0.1", plane["port"], context=context, timeout=10)
    connection.request("POST", "/v1/instances", body=json.dumps(document), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def test_malformed_trust_anchors_name_the_file(module_launcher, plane):
    garbage = module_launcher.file("garbage-anchors.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    sidecar = module_launcher.sidecar(
        "cp-garbage", wait=False,
        extra_args=["--control-plane-address", f"127.0.0.1:{plane['port']}", "--trust-anchors-file", str(garbage)],
        env={"MECHA_CONTROL_PLANE_TOKEN": "x"})
    assert sidecar.wait_exit(20) not in (None, 0)
    log = sidecar.log_text()
    assert str(garbage) in log and "certificate" in log, sidecar.log_tail(10)


def component(name, path, scopes=None):
    scope_lines = "" if not scopes else "scopes:\n" + "".join(f"- {s}\n" for s in scopes)
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: state.sqlite\n  version: v1\n"
            f"  metadata:\n  - name: connectionString\n    value: \"{path}\"\n{scope_lines}")


def remote(plane, command, path, token):
    return subprocess.run(
        [str(MECHA_BIN), "control-plane", command, "--control-plane-address", f"127.0.0.1:{plane['port']}",
         "--trust-anchors-file", str(plane["anchors"]), "-f", str(path)],
        capture_output=True, text=True, env={"MECHA_CONTROL_PLANE_TOKEN": token, "PATH": "/usr/bin:/bin"})


def test_resources_applied_to_the_control_plane_reach_the_sidecars_in_scope(module_launcher, plane, dapr_client):
    admin = control("token", "--admin", "--store", str(plane["store"]))
    directory = module_launcher.root / "pushed"
    directory.mkdir()
    home = module_launcher.root
    (directory / "stores.yaml").write_text(
        component("pushed-store", home / "pushed.db", ["res-app"]) + "---\n" + component("not-mine", home / "other.db", ["someone-else"]))
    applied = remote(plane, "apply", directory, admin)
    assert applied.returncode == 0, applied.stderr
    assert "Component/pushed-store applied" in applied.stdout and "Component/not-mine applied" in applied.stdout
    # Only an administrator may apply.
    refused = remote(plane, "apply", directory, control("token", "--app-id", "res-app", "--store", str(plane["store"])))
    assert refused.returncode != 0 and "administrator token" in refused.stderr

    sidecar = joined(module_launcher, plane, "res-app", extra=["--mecha-home", str(module_launcher.root / "res-home")])
    client = dapr_client(sidecar)
    names = {c.name for c in client.get_metadata().registered_components}
    assert "pushed-store" in names and "not-mine" not in names and "statestore" not in names, names
    client.save_state("pushed-store", "k", "v")
    assert client.get_state("pushed-store", "k").data == b"v"

    # A new resource arrives without a restart; a bad one is refused by the control plane, naming the field.
    extra = module_launcher.root / "extra.yaml"
    extra.write_text(component("pushed-extra", home / "extra.db"))
    assert remote(plane, "apply", extra, admin).returncode == 0
    applied_at = time.monotonic()
    wait_until(lambda: "pushed-extra" in {c.name for c in client.get_metadata().registered_components}, timeout=15,
               what="the pushed component")
    # The sidecar watches (long poll): the change arrives within about a second.
    assert time.monotonic() - applied_at < 3
    bad = module_launcher.root / "bad.yaml"
    bad.write_text(component("pushed-extra", home / "extra.db").replace("state.sqlite", "state.nope"))
    result = remote(plane, "apply", bad, admin)
    assert result.returncode != 0 and "bad.yaml" in result.stderr and "spec.type" in result.stderr, result.stderr
    assert remote(plane, "delete", extra, admin).returncode == 0
    wait_until(lambda: "pushed-extra" not in {c.name for c in client.get_metadata().registered_components}, timeout=15,
               what="the deleted component to go")
    # The control plane away: what was pushed keeps serving.
    plane["process"].stop()
    time.sleep(2.5)
    assert client.get_state("pushed-store", "k").data == b"v"
    plane["process"] = start_control_plane(module_launcher, plane["store"], plane["port"])


def test_a_sidecar_restarted_while_the_control_plane_is_away_starts_on_its_last_known_state(module_launcher, plane, dapr_client):
    """Self-healing across a restart: the caller's certificate, the resources pushed to it and the
    registry's answers are kept in its Mecha home; restarted while the control plane is down, it
    starts on them, serves (invocation over mTLS to a callee of another home, state in a pushed
    store) and says so in its health detail; when the control plane is back it catches up."""
    admin = control("token", "--admin", "--store", str(plane["store"]))
    pushed = module_launcher.root / "lk-store.yaml"
    pushed.write_text(component("lk-store", module_launcher.root / "lk.db", ["lk-caller"]))
    assert remote(plane, "apply", pushed, admin).returncode == 0

    app = module_launcher.app("http_app.py", env={"APP_ID": "lk-callee"})
    joined(module_launcher, plane, "lk-callee", app_port=app.port, extra=["--mecha-home", str(module_launcher.root / "lk-a")])
    token = control("token", "--app-id", "lk-caller", "--store", str(plane["store"]))
    caller_home = ["--mecha-home", str(module_launcher.root / "lk-b")]
    caller = joined(module_launcher, plane, "lk-caller", token=token, extra=caller_home)
    client = dapr_client(caller)
    wait_until(lambda: b"lk-callee" in client.invoke_method("lk-callee", "whoami", data=b"", http_verb="GET").data, timeout=15,
               what="the callee in the registry")
    client.save_state("lk-store", "k", "kept")

    plane["process"].stop()
    caller.stop()
    started = time.monotonic()
    caller = joined(module_launcher, plane, "lk-caller", token=token, extra=caller_home)
    print(f"restarted without the control plane in {time.monotonic() - started:.1f}s")
    assert "mTLS is on with the certificate kept in" in caller.log_text()
    client = dapr_client(caller)
    assert "lk-store" in {c.name for c in client.get_metadata().registered_components}
    assert client.get_state("lk-store", "k").data == b"kept"
    reply = json.loads(client.invoke_method("lk-callee", "whoami", data=b"", http_verb="GET").data)
    assert reply["headers"]["dapr-caller-app-id"] == "lk-caller"

    def detail():
        return json.loads(http("GET", f"{caller.http_url}/v1.0/healthz?detail")[2])

    wait_until(lambda: detail().get("runningOnLastKnownState") is True, timeout=10, what="the health detail to say so")
    reasons = " ".join(detail()["lastKnownStateReasons"])
    assert "resources it last gave" in reasons and "certificate could not be renewed" in reasons, reasons

    plane["process"] = start_control_plane(module_launcher, plane["store"], plane["port"])
    wait_until(lambda: "runningOnLastKnownState" not in detail(), timeout=60, what="the sidecar to catch up (a fresh certificate)")
    assert "renewed the workload certificate" in caller.log_text()


def test_a_root_rollover_keeps_every_call_working(module_launcher, plane, dapr_client):
    """`mecha control-plane root prepare|activate|retire`: the new root is trusted before it signs,
    the old one after it stops signing, and sidecars follow each step within seconds (their
    certificates renewed when the trusted roots change) — invocation between two sidecars of
    different homes runs all along without a failed call."""
    import threading

    store = str(plane["store"])
    app = module_launcher.app("http_app.py", env={"APP_ID": "rot-callee"})
    callee = joined(module_launcher, plane, "rot-callee", app_port=app.port, extra=["--mecha-home", str(module_launcher.root / "rot-a")])
    caller = joined(module_launcher, plane, "rot-caller", extra=["--mecha-home", str(module_launcher.root / "rot-b")])
    client = dapr_client(caller)
    wait_until(lambda: b"rot-callee" in client.invoke_method("rot-callee", "whoami", data=b"", http_verb="GET").data, timeout=15,
               what="the callee in the registry")

    def mtls(sidecar):
        return json.loads(http("GET", f"{sidecar.http_url}/v1.0/healthz?detail")[2])["mtls"]

    old_root = mtls(callee)["issuingRoot"]
    assert mtls(callee)["trustedRoots"] == [old_root]

    failures, calls, stop = [], [0], threading.Event()

    def load():
        while not stop.is_set():
            try:
                assert b"rot-callee" in client.invoke_method("rot-callee", "whoami", data=b"", http_verb="GET").data
                calls[0] += 1
            except Exception as error:  # noqa: BLE001
                failures.append(repr(error))
            time.sleep(0.02)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        assert "new root is trusted" in control("root", "prepare", "--store", store)
        assert len(control("trust-anchors", "--store", store).split("BEGIN CERTIFICATE")) == 3
        # Both sidecars trust both roots; certificates still come from the old one.
        wait_until(lambda: all(len(mtls(s)["trustedRoots"]) == 2 for s in (callee, caller)), timeout=15, what="both roots trusted")
        assert mtls(callee)["issuingRoot"] == old_root
        new_root = next(r for r in mtls(callee)["trustedRoots"] if r != old_root)

        prepared = calls[0]
        control("root", "activate", "--store", store)
        wait_until(lambda: all(mtls(s)["issuingRoot"] == new_root for s in (callee, caller)), timeout=15,
                   what="certificates of the new root")
        wait_until(lambda: calls[0] > prepared + 5, timeout=15, what="calls under the new root's certificates")
        activated = calls[0]
        assert len(mtls(caller)["trustedRoots"]) == 2

        control("root", "retire", "--store", store)
        wait_until(lambda: all(mtls(s)["trustedRoots"] == [new_root] for s in (callee, caller)), timeout=15,
                   what="the old root dropped")
        wait_until(lambda: calls[0] > activated + 5, timeout=15, what="calls with the old root retired")
    finally:
        stop.set()
        worker.join()
    # Calls went on through every step (how many depends on how fast the steps apply).
    assert not failures, f"{len(failures)} failed calls of {calls[0]}: {failures[:3]}"
    assert prepared > 0
    print(f"root rollover: {calls[0]} calls, 0 failed")
    # Steps out of order are refused with the reason.
    refused = subprocess.run([str(MECHA_BIN), "control-plane", "root", "retire", "--store", store], capture_output=True, text=True)
    assert refused.returncode != 0 and "no previous root" in refused.stderr
    # A sidecar joining now (anchors file: the new root only) works.
    plane["anchors"].write_text(control("trust-anchors", "--store", store))
    late = joined(module_launcher, plane, "rot-late", extra=["--mecha-home", str(module_launcher.root / "rot-c")])
    assert mtls(late)["issuingRoot"] == new_root
