"""Several hosts, made of network namespaces this test creates (`ip netns`, veth pairs on a bridge
inside a namespace of its own — nothing touches the machine's network): a control plane host and
three sidecar hosts. Proves, with the official SDK run inside the caller's host:

- invocation across hosts over mTLS with SVIDs from the control plane and its registry;
- a plain client and a client with its own CA refused by another host's sidecar;
- a host cut off (its link down): calls fail over to the remaining instance within a bounded time
  (printed, and kept under 15 s); the host rejoins when its link is back.

Needs root (network namespaces); CI runs as root."""

import json
import os
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import APPS_DIR, MECHA_BIN, PYTHON, Process

SUBNET = "10.213.{}.{}"


def sh(*argv, check=True):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


class Hosts:
    """Namespaces `<prefix>-<name>` on one bridge (in `<prefix>-sw`), addresses 10.213.x.n/24."""

    def __init__(self, names, prefix="mh"):
        self.prefix = f"{prefix}{os.getpid() % 10000}"
        self.third = os.getpid() % 200 + 20
        self.switch = f"{self.prefix}-sw"
        self.addresses = {}
        sh("ip", "netns", "add", self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        # Multicast (mDNS) floods the bridge: no IGMP snooping to learn members first.
        sh("ip", "-n", self.switch, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for index, name in enumerate(names, start=1):
            namespace = self.ns(name)
            sh("ip", "netns", "add", namespace)
            sh("ip", "-n", namespace, "link", "set", "lo", "up")
            sh("ip", "-n", namespace, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{name}", "netns", self.switch)
            address = SUBNET.format(self.third, index)
            sh("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            sh("ip", "-n", namespace, "link", "set", "eth0", "up")
            sh("ip", "-n", self.switch, "link", "set", f"v{name}", "master", "br0")
            sh("ip", "-n", self.switch, "link", "set", f"v{name}", "up")
            self.addresses[name] = address

    def ns(self, name):
        return f"{self.prefix}-{name}"

    def link(self, name, up):
        sh("ip", "-n", self.switch, "link", "set", f"v{name}", "up" if up else "down")

    def run(self, name, argv, **kwargs):
        return ["ip", "netns", "exec", self.ns(name), *argv]

    def python(self, name, code, env=None, timeout=60):
        """Runs Python `code` inside host `name`; returns its stdout (fails the test on error)."""
        result = subprocess.run(self.run(name, [PYTHON, "-c", textwrap.dedent(code)]), capture_output=True, text=True,
                                env={**os.environ, **(env or {})}, timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    def remove(self):
        for namespace in sh("ip", "netns", "list").stdout.split():
            if namespace.startswith(self.prefix + "-"):
                sh("ip", "netns", "del", namespace, check=False)


def answering(hosts, timeout):
    """The shipping instances that answer 12 calls from host a, as "shipping@b,shipping@c"."""
    return hosts.python("a", f"""
        import json, urllib.request
        apps = set()
        for _ in range(12):
            with urllib.request.urlopen("http://127.0.0.1:3500/v1.0/invoke/shipping/method/whoami", timeout={timeout}) as r:
                apps.add(json.loads(r.read())["app"])
        print(",".join(sorted(apps)))
    """, timeout=120).strip()


@pytest.fixture(scope="module")
def world(module_launcher):
    if os.geteuid() != 0:
        pytest.fail("the multi-host tests create network namespaces: run them as root (CI does)")
    hosts = Hosts(["cp", "a", "b", "c"])
    root = module_launcher.root / "multi-host"
    root.mkdir()
    processes = []

    def start(name, host, argv, env=None):
        process = Process(name=name, argv=hosts.run(host, argv), log_path=root / f"{name}.log", env={**os.environ, **(env or {})})
        module_launcher.processes.append(process)
        processes.append(process)
        return process

    try:
        store = root / "control-plane.db"
        cp_address = hosts.addresses["cp"]
        # The CA is made (and its root read) before the control plane starts on the same store.
        anchors = root / "anchors.pem"
        anchors.write_text(sh(str(MECHA_BIN), "control-plane", "trust-anchors", "--store", str(store)).stdout)
        plane = start("control-plane", "cp", [str(MECHA_BIN), "control-plane", "--listen-address", cp_address, "--port", "50100",
                                              "--store", str(store)])

        def token(app_id):
            return sh(str(MECHA_BIN), "control-plane", "token", "--app-id", app_id, "--store", str(store)).stdout.strip()

        # The caller balances round robin over shipping's instances, ejects one after 2 failures,
        # and gives each call 1 s (a cut-off host does not answer at all) and 3 retries.
        governance = root / "governance"
        governance.mkdir()
        (governance / "traffic.yaml").write_text(GOVERNANCE)

        def sidecar(host, app_id, app_port=None, resources=None):
            argv = [str(MECHA_BIN), "sidecar", "--app-id", app_id, "--dapr-http-port", "3500", "--dapr-grpc-port", "50001",
                    "--dapr-internal-grpc-port", "50002", "--dapr-internal-grpc-listen-address", hosts.addresses[host],
                    "--metrics-port", "9090", "--mecha-home", str(root / f"home-{host}"),
                    "--control-plane-address", f"{cp_address}:50100", "--trust-anchors-file", str(anchors)]
            if app_port:
                argv += ["--app-port", str(app_port)]
            if resources:
                argv += ["--resources-path", str(resources)]
            return start(f"sidecar-{app_id}-{host}", host, argv, env={"MECHA_CONTROL_PLANE_TOKEN": token(app_id)})

        for host in ("b", "c"):
            start(f"app-{host}", host, [PYTHON, str(APPS_DIR / "http_app.py")],
                  env={"APP_PORT": "8080", "APP_ID": f"shipping@{host}", "RECORD_FILE": str(root / f"records-{host}.jsonl")})
        time.sleep(0.5)
        shipping = [sidecar("b", "shipping", 8080), sidecar("c", "shipping", 8080)]
        orders = sidecar("a", "orders", resources=governance)
        # Ready when the caller's sidecar answers and both shipping instances are registered.
        deadline = time.monotonic() + 40
        while True:
            for process in processes:
                assert process.alive(), f"{process.name} exited:\n{process.log_text()[-3000:]}"
            try:
                if answering(hosts, timeout=5) == "shipping@b,shipping@c":
                    break
            except AssertionError:
                pass
            assert time.monotonic() < deadline, "the hosts did not come up:\n" + "\n".join(p.log_text()[-1500:] for p in processes)
            time.sleep(0.5)
        yield {"hosts": hosts, "plane": plane, "orders": orders, "shipping": shipping, "root": root, "anchors": anchors}
    finally:
        for process in processes:
            process.stop()
        hosts.remove()


GOVERNANCE = """\
apiVersion: mecha.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: shipping
spec:
  target: shipping
  loadBalancer: {policy: roundRobin}
  outlierDetection: {consecutiveFailures: 2, baseEjectionTime: 30s, maxEjectionPercent: 50}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: shipping
spec:
  policies:
    timeouts:
      short: 1s
    retries:
      again:
        policy: constant
        duration: 10ms
        maxRetries: 3
  targets:
    apps:
      shipping:
        timeout: short
        retry: again
"""


def test_invocation_across_hosts_over_mtls_with_the_sdk(world):
    out = world["hosts"].python("a", """
        import json
        from dapr.clients import DaprClient
        with DaprClient() as client:
            seen = set()
            for _ in range(20):
                reply = json.loads(client.invoke_method("shipping", "whoami", data=b"", http_verb="GET").data)
                seen.add(reply["app"])
                assert reply["headers"]["dapr-caller-app-id"] == "orders", reply
            print(",".join(sorted(seen)))
    """, env={"DAPR_HTTP_PORT": "3500", "DAPR_GRPC_PORT": "50001"})
    # Round robin: both hosts answer.
    assert out.strip() == "shipping@b,shipping@c", out


def test_another_host_refuses_a_plain_client_and_a_foreign_ca(world):
    hosts = world["hosts"]
    target = hosts.addresses["b"]
    foreign = world["root"] / "foreign"
    foreign.mkdir(exist_ok=True)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(foreign / "k.pem"),
       "-out", str(foreign / "c.pem"), "-subj", "/CN=x", "-days", "1", "-addext", "subjectAltName=URI:spiffe://public/ns/default/orders")
    out = hosts.python("a", f"""
        import http.client, ssl
        def attempt(context):
            try:
                if context is None:
                    c = http.client.HTTPConnection("{target}", 50002, timeout=5)
                else:
                    c = http.client.HTTPSConnection("{target}", 50002, context=context, timeout=5)
                c.request("GET", "/whoami", headers={{"x-mecha-target-app": "shipping"}})
                return str(c.getresponse().status)
            except Exception as error:
                return "refused"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations("{world['anchors']}")
        context.load_cert_chain("{foreign / 'c.pem'}", "{foreign / 'k.pem'}")
        print(attempt(None), attempt(context))
    """)
    assert out.split() == ["refused", "refused"]


def test_a_host_cut_off_fails_over_and_rejoins(world):
    hosts = world["hosts"]
    hosts.link("b", up=False)
    try:
        out = hosts.python("a", """
            import json, time, urllib.request
            start = time.monotonic()
            streak, failures, calls = 0, 0, 0
            # Failed over: 20 calls in a row answered by c, each within 1 s (the first calls that
            # picked b waited for their 1 s timeout, then went to c).
            while streak < 20 and time.monotonic() - start < 60:
                began = time.monotonic()
                try:
                    with urllib.request.urlopen("http://127.0.0.1:3500/v1.0/invoke/shipping/method/whoami", timeout=10) as r:
                        app = json.loads(r.read())["app"]
                    fast = time.monotonic() - began < 1
                    streak = streak + 1 if (app == "shipping@c" and fast) else 0
                except Exception:
                    failures += 1
                    streak = 0
                calls += 1
            print(json.dumps({"seconds": time.monotonic() - start, "failures": failures, "calls": calls, "streak": streak}))
        """, timeout=120)
        result = json.loads(out)
        print(f"failover after a host was cut off: {result}")
        assert result["streak"] >= 20 and result["seconds"] < 15, result
    finally:
        hosts.link("b", up=True)
    # Back: b registers again and answers calls.
    deadline = time.monotonic() + 30
    while True:
        seen = answering(hosts, timeout=10)
        if seen == "shipping@b,shipping@c":
            break
        assert time.monotonic() < deadline, f"host b did not rejoin: {seen}"
        time.sleep(1)
