"""`nameresolution.mdns` across hosts without a control plane, as daprd's self-hosted default:
three hosts made of network namespaces on a bridge (created here, nothing else touched), each
sidecar configured with `spec.nameResolution.component: mdns`. The hosts share one trust domain's
CA by copying `<home>/ca/public` (how hosts without a control plane trust each other). Proves,
with the official SDK inside the caller's host: the callee's two instances on two other hosts are
found by multicast and both answer over mTLS; a sidecar that stops says goodbye and drops out of
the callers' view at once; a new one is found when it announces itself."""

import json
import os
import shutil
import time

import pytest

from conftest import APPS_DIR, MECHA_BIN, PYTHON, Process
from test_multi_host import Hosts

CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: mdns
spec:
  nameResolution:
    component: mdns
    configuration:
      announceInterval: 1s
      recordTTL: 5s
"""


def apps_answering(hosts, calls=12):
    return hosts.python("a", f"""
        import json
        from dapr.clients import DaprClient
        seen = set()
        with DaprClient() as client:
            for _ in range({calls}):
                reply = json.loads(client.invoke_method("shipping", "whoami", data=b"", http_verb="GET").data)
                assert reply["headers"]["dapr-caller-app-id"] == "orders", reply
                seen.add(reply["app"])
        print(",".join(sorted(seen)))
    """, env={"DAPR_HTTP_PORT": "3500", "DAPR_GRPC_PORT": "50001"}).strip()


@pytest.fixture(scope="module")
def lan(module_launcher):
    if os.geteuid() != 0:
        pytest.fail("the mDNS tests create network namespaces: run them as root (CI does)")
    hosts = Hosts(["a", "b", "c", "d"], prefix="md")
    root = module_launcher.root / "mdns"
    root.mkdir()
    (root / "config.yaml").write_text(CONFIG)
    processes = []

    def start(name, host, argv, env=None):
        process = Process(name=name, argv=hosts.run(host, argv), log_path=root / f"{name}.log", env={**os.environ, **(env or {})})
        module_launcher.processes.append(process)
        processes.append(process)
        return process

    def sidecar(host, app_id, app_port=None):
        home = root / f"home-{host}"
        if host != "b":
            # The CA the first host made, copied: one trust domain across the hosts.
            shutil.copytree(root / "home-b" / "ca", home / "ca", dirs_exist_ok=True)
        argv = [str(MECHA_BIN), "sidecar", "--app-id", app_id, "--dapr-http-port", "3500", "--dapr-grpc-port", "50001",
                "--dapr-internal-grpc-port", "50002", "--dapr-internal-grpc-listen-address", hosts.addresses[host],
                "--metrics-port", "9090", "--mecha-home", str(home), "--config", str(root / "config.yaml")]
        if app_port:
            argv += ["--app-port", str(app_port)]
        process = start(f"sidecar-{app_id}-{host}", host, argv)
        deadline = time.monotonic() + 30
        while "dapr initialized" not in process.log_text():
            assert process.alive(), f"{process.name} exited:\n{process.log_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{process.name} did not start:\n{process.log_text()[-3000:]}"
            time.sleep(0.1)
        return process

    try:
        for host in ("b", "c", "d"):
            start(f"app-{host}", host, [PYTHON, str(APPS_DIR / "http_app.py")],
                  env={"APP_PORT": "8080", "APP_ID": f"shipping@{host}", "RECORD_FILE": str(root / f"records-{host}.jsonl")})
        time.sleep(0.5)
        shipping = {"b": sidecar("b", "shipping", 8080), "c": sidecar("c", "shipping", 8080)}
        orders = sidecar("a", "orders")
        yield {"hosts": hosts, "shipping": shipping, "orders": orders, "sidecar": sidecar, "root": root}
    finally:
        for process in processes:
            process.stop()
        hosts.remove()


def test_instances_on_other_hosts_are_found_by_multicast_and_called_over_mtls(lan):
    hosts = lan["hosts"]
    assert "nameresolution.mdns: listening on 224.0.0.251:5353" in lan["orders"].log_text()
    deadline = time.monotonic() + 20
    while apps_answering(hosts) != "shipping@b,shipping@c":
        assert time.monotonic() < deadline, "both instances were not found"
        time.sleep(0.5)
    assert "mTLS is on" in lan["orders"].log_text()


def test_a_stopped_sidecar_says_goodbye_and_a_new_one_is_found(lan):
    hosts = lan["hosts"]
    lan["shipping"]["c"].stop()
    stopped = time.monotonic()
    # The goodbye removes it from the caller's view at once (no waiting for the 5 s TTL).
    assert apps_answering(hosts, calls=20) == "shipping@b"
    print(f"after the goodbye, only b answered within {time.monotonic() - stopped:.1f}s")
    lan["shipping"]["d"] = lan["sidecar"]("d", "shipping", 8080)
    deadline = time.monotonic() + 15
    while apps_answering(hosts) != "shipping@b,shipping@d":
        assert time.monotonic() < deadline, "the new instance was not found"
        time.sleep(0.3)
