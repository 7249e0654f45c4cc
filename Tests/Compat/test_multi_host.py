"""Several hosts, made of network namespaces this test creates (`ip netns`, veth pairs on a bridge
inside a namespace of its own — nothing touches the machine's network): two control plane hosts
sharing a PostgreSQL server (on the first one) and three sidecar hosts. Proves, with the official
SDK run inside the caller's host:

- invocation across hosts over mTLS with SVIDs from the control planes and their registry;
- pub/sub across hosts through a Redis on the control plane host, with the pubsub component
  pushed by the control plane (`apply`), each message delivered once to one of the two instances;
- an access-control policy on shipping allowing orders `POST /ship` (and `GET /whoami`) and
  denying the rest;
- a plain client and a client with its own CA refused by another host's sidecar;
- a host cut off (its link down): calls fail over to the remaining instance within a bounded time
  (printed, and kept under 15 s); the host rejoins when its link is back;
- the leading control plane killed: nothing changes for the sidecars (the other one leads);
  both control planes down: the sidecars keep working on their last-known state; back: they catch
  up.

Needs root (network namespaces); CI runs as root."""

import json
import os
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import APPS_DIR, MECHA_BIN, PYTHON, REDIS_SERVER, Process, start_postgres

SUBNET = "10.213.{}.{}"


def sh(*argv, check=True):
    result = subprocess.run(list(argv), capture_output=True, text=True)
    assert not check or result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-2000:]}"
    return result


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
    hosts = Hosts(["cp", "cp2", "a", "b", "c"])
    root = module_launcher.root / "multi-host"
    root.mkdir()
    processes = []

    def start(name, host, argv, env=None):
        process = Process(name=name, argv=hosts.run(host, argv), log_path=root / f"{name}.log", env={**os.environ, **(env or {})})
        module_launcher.processes.append(process)
        processes.append(process)
        return process

    try:
        # PostgreSQL on the first control plane host; both control planes use it.
        _, store = start_postgres(module_launcher, 5432, host=hosts.addresses["cp"], wrap=lambda argv: hosts.run("cp", argv))

        def control(*arguments):
            return sh(*hosts.run("cp", [str(MECHA_BIN), "control-plane", *arguments, "--store", store])).stdout.strip()

        # The CA is made (and its root read) before the control planes start on the same store.
        anchors = root / "anchors.pem"
        anchors.write_text(control("trust-anchors"))

        def plane(host):
            return start(f"control-plane-{host}-{time.monotonic_ns()}", host,
                         [str(MECHA_BIN), "control-plane", "--listen-address", hosts.addresses[host], "--port", "50100", "--store", store])

        planes = {"cp": plane("cp"), "cp2": plane("cp2")}
        cp_address = ",".join(f"{hosts.addresses[h]}:50100" for h in ("cp", "cp2"))
        # A Redis on the first control plane host carries pub/sub between the hosts; its pubsub
        # component is pushed to orders and shipping by the control plane.
        redis_address = f"{hosts.addresses['cp']}:6379"
        start("redis", "cp", [REDIS_SERVER, "--port", "6379", "--bind", hosts.addresses["cp"], "--save", "", "--appendonly", "no",
                              "--protected-mode", "no", "--dir", str(root)])
        pushed = root / "pushed"
        pushed.mkdir()
        (pushed / "pubsub.yaml").write_text(PUBSUB.format(redis=redis_address))
        admin = control("token", "--admin")
        deadline = time.monotonic() + 20
        while True:
            applied = subprocess.run(
                hosts.run("a", [str(MECHA_BIN), "control-plane", "apply", "--control-plane-address", cp_address,
                                "--trust-anchors-file", str(anchors), "-f", str(pushed)]),
                capture_output=True, text=True, env={**os.environ, "MECHA_CONTROL_PLANE_TOKEN": admin})
            if applied.returncode == 0:
                break
            assert time.monotonic() < deadline, applied.stderr
            time.sleep(0.5)
        acl = root / "shipping-config.yaml"
        acl.write_text(ACL)

        def token(app_id):
            return control("token", "--app-id", app_id)

        # The caller balances round robin over shipping's instances, ejects one after 2 failures,
        # and gives each call 1 s (a cut-off host does not answer at all) and 3 retries.
        governance = root / "governance"
        governance.mkdir()
        (governance / "traffic.yaml").write_text(GOVERNANCE)

        def sidecar(host, app_id, app_port=None, resources=None, config=None):
            argv = [str(MECHA_BIN), "sidecar", "--app-id", app_id, "--dapr-http-port", "3500", "--dapr-grpc-port", "50001",
                    "--dapr-internal-grpc-port", "50002", "--dapr-internal-grpc-listen-address", hosts.addresses[host],
                    "--metrics-port", "9090", "--mecha-home", str(root / f"home-{host}"),
                    "--control-plane-address", cp_address, "--trust-anchors-file", str(anchors)]
            if app_port:
                argv += ["--app-port", str(app_port)]
            if resources:
                argv += ["--resources-path", str(resources)]
            if config:
                argv += ["--config", str(config)]
            return start(f"sidecar-{app_id}-{host}", host, argv, env={"MECHA_CONTROL_PLANE_TOKEN": token(app_id)})

        for host in ("b", "c"):
            start(f"app-{host}", host, [PYTHON, str(APPS_DIR / "http_app.py")],
                  env={"APP_PORT": "8080", "APP_ID": f"shipping@{host}", "RECORD_FILE": str(root / f"records-{host}.jsonl"),
                       "SUBSCRIPTIONS": json.dumps([{"pubsubname": "orders-pubsub", "topic": "shipments", "route": "/shipments"}])})
        time.sleep(0.5)
        shipping = [sidecar("b", "shipping", 8080, config=acl), sidecar("c", "shipping", 8080, config=acl)]
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
        yield {"hosts": hosts, "planes": planes, "plane": plane, "orders": orders, "shipping": shipping, "root": root, "anchors": anchors}
    finally:
        for process in processes:
            process.stop()
        hosts.remove()


PUBSUB = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders-pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: "{redis}"
scopes:
- orders
- shipping
"""

ACL = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: shipping
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: orders
      namespace: default
      trustDomain: public
      defaultAction: deny
      operations:
      - name: /ship
        httpVerb: ["POST"]
        action: allow
      - name: /whoami
        httpVerb: ["GET"]
        action: allow
"""

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


def test_pubsub_and_access_control_across_hosts_with_the_sdk(world):
    """The SDK on host a publishes through the pushed Redis pubsub: every message reaches one of
    shipping's instances on hosts b and c, once; shipping's access control lets orders POST /ship
    and refuses POST /refund with daprd's error."""
    root = world["root"]
    tag = uuid.uuid4().hex[:8]
    out = world["hosts"].python("a", f"""
        import json
        from dapr.clients import DaprClient
        from dapr.clients.exceptions import DaprInternalError
        with DaprClient() as client:
            names = {{c.name for c in client.get_metadata().registered_components}}
            assert "orders-pubsub" in names, names
            for n in range(10):
                client.publish_event("orders-pubsub", "shipments", json.dumps({{"tag": "{tag}", "n": n}}), data_content_type="application/json")
            shipped = client.invoke_method("shipping", "ship", data=b"{{}}", http_verb="POST")
            try:
                client.invoke_method("shipping", "refund", data=b"{{}}", http_verb="POST")
                refund = "allowed"
            except Exception as error:
                refund = str(error)
        print(json.dumps({{"refund": refund}}))
    """, env={"DAPR_HTTP_PORT": "3500", "DAPR_GRPC_PORT": "50001"})
    result = json.loads(out.strip().splitlines()[-1])
    assert "PermissionDenied" in result["refund"] and "access control policy has denied access" in result["refund"], result

    def delivered():
        numbers = []
        for host in ("b", "c"):
            path = root / f"records-{host}.jsonl"
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                data = ((entry.get("json") or {}).get("data")) if entry["path"] == "/shipments" else None
                if isinstance(data, dict) and data.get("tag") == tag:
                    numbers.append(data["n"])
        return numbers

    deadline = time.monotonic() + 20
    while len(delivered()) < 10:
        assert time.monotonic() < deadline, f"delivered: {sorted(delivered())}"
        time.sleep(0.2)
    time.sleep(1)
    assert sorted(delivered()) == list(range(10)), sorted(delivered())


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


def plane_health(world, host):
    """The control plane on `host`'s /healthz, asked from host a (None when it does not answer)."""
    out = world["hosts"].python("a", f"""
        import http.client, json, ssl
        context = ssl.create_default_context(cafile="{world['anchors']}")
        context.check_hostname = False
        try:
            c = http.client.HTTPSConnection("{world['hosts'].addresses[host]}", 50100, context=context, timeout=3)
            c.request("GET", "/healthz")
            print(c.getresponse().read().decode())
        except OSError:
            print("null")
    """)
    return json.loads(out)


def calls_during(hosts, seconds):
    """Calls shipping from host a for `seconds`: {"calls": n, "failures": [...], "apps": [...]}."""
    return json.loads(hosts.python("a", f"""
        import json, time, urllib.request
        calls, failures, apps = 0, [], set()
        end = time.monotonic() + {seconds}
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen("http://127.0.0.1:3500/v1.0/invoke/shipping/method/whoami", timeout=5) as r:
                    apps.add(json.loads(r.read())["app"])
            except Exception as error:
                failures.append(repr(error))
            calls += 1
            time.sleep(0.02)
        print(json.dumps({{"calls": calls, "failures": failures, "apps": sorted(apps)}}))
    """, timeout=seconds + 60))


def sidecar_detail(hosts):
    return json.loads(hosts.python("a", """
        import urllib.request
        print(urllib.request.urlopen("http://127.0.0.1:3500/v1.0/healthz?detail", timeout=5).read().decode())
    """))


def test_control_planes_killed_change_nothing_for_the_sidecars(world):
    import threading

    hosts, planes = world["hosts"], world["planes"]
    deadline = time.monotonic() + 15
    while sorted(str(plane_health(world, h).get("leader")) for h in ("cp", "cp2")) != ["False", "True"]:
        assert time.monotonic() < deadline, "no single leader"
        time.sleep(0.5)
    leader = next(h for h in ("cp", "cp2") if plane_health(world, h)["leader"])
    other = "cp2" if leader == "cp" else "cp"

    # The leader killed during calls: nothing fails; the other one leads.
    result = {}
    worker = threading.Thread(target=lambda: result.update(calls_during(hosts, 8)))
    worker.start()
    time.sleep(2)
    planes[leader].kill()
    killed = time.monotonic()
    while plane_health(world, other).get("leader") is not True:
        assert time.monotonic() - killed < 15, "the other control plane did not take the lead"
        time.sleep(0.2)
    takeover = time.monotonic() - killed
    worker.join()
    print(f"leader control plane killed on another host: the other led after {takeover:.1f}s; {result['calls']} calls, "
          f"{len(result['failures'])} failed")
    assert not result["failures"], result["failures"][:3]
    assert result["apps"] == ["shipping@b", "shipping@c"]
    assert "runningOnLastKnownState" not in sidecar_detail(hosts)

    # Both down: the sidecars keep working on their last-known state and say so.
    planes[other].kill()
    result = calls_during(hosts, 4)
    assert not result["failures"], result["failures"][:3]
    assert result["apps"] == ["shipping@b", "shipping@c"]
    deadline = time.monotonic() + 15
    while sidecar_detail(hosts).get("runningOnLastKnownState") is not True:
        assert time.monotonic() < deadline, "the health detail did not say so"
        time.sleep(0.5)

    # Back: the sidecars catch up.
    planes[leader] = world["plane"](leader)
    planes[other] = world["plane"](other)
    deadline = time.monotonic() + 30
    while "runningOnLastKnownState" in sidecar_detail(hosts):
        assert time.monotonic() < deadline, f"the sidecars did not catch up: {sidecar_detail(hosts).get('lastKnownStateReasons')}"
        time.sleep(0.5)
    assert not calls_during(hosts, 2)["failures"]
