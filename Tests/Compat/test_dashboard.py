"""`mecha dashboard` with the demo's two apps running (demo/orders.py placing orders continuously,
demo/shipping.py subscribing and answering), each under `mecha run`, read by headless Chromium
(Debian's `chromium`): the graph page shows both apps and the invocation edge between them with a
non-zero rate; the sidecar page lists the app's components. The screenshots are kept in
.build/artifacts/."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MECHA_BIN, PYTHON, REPO, Process, free_port, http, wait_until

ARTIFACTS = REPO / ".build" / "artifacts"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("the dashboard test needs Chromium: apt-get install chromium")


def browse(url: str, *, screenshot: Path | None = None, budget_ms: int = 4000) -> str:
    """The page's DOM after its scripts ran (and a screenshot when asked), from headless Chromium."""
    base = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--window-size=1400,900", f"--virtual-time-budget={budget_ms}"]
    if screenshot:
        subprocess.run(base + [f"--screenshot={screenshot}", url], capture_output=True, timeout=90)
    result = subprocess.run(base + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
    return result.stdout


def graph(port: int) -> dict:
    status, _, body = http("GET", f"http://127.0.0.1:{port}/api/graph")
    assert status == 200, body
    return json.loads(body)


def test_the_dashboard_shows_the_demo_apps_and_their_live_edge(module_launcher):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shipping_port = free_port()
    module_launcher.run("shipping", [PYTHON, "-u", str(REPO / "demo" / "shipping.py")], args=["--app-port", str(shipping_port)])
    module_launcher.run("orders", [PYTHON, "-u", str(REPO / "demo" / "orders.py")], env={"ORDERS_KEEP_GOING": "1"})

    port = free_port()
    dashboard = Process(name="mecha dashboard", argv=[str(MECHA_BIN), "dashboard", "--port", str(port), "--mecha-home", str(module_launcher.home),
                                                      "--interval", "1"], log_path=module_launcher.root / "dashboard.log")
    module_launcher.processes.append(dashboard)

    def live_edge():
        document = graph(port)
        edges = [edge for edge in document["edges"] if edge["from"] == "app:orders" and edge["to"] == "app:shipping" and edge["kind"] == "invoke"]
        return edges and float(edges[0]["rps"]) > 0 and document

    document = wait_until(live_edge, timeout=90, interval=0.5, what="a live orders → shipping edge in /api/graph")
    apps = {node["label"] for node in document["nodes"] if node["kind"] == "app"}
    assert {"orders", "shipping"} <= apps
    # The publish and the delivery of the `orders` topic appear too.
    kinds = {(edge["from"], edge["to"], edge["kind"]) for edge in document["edges"]}
    assert ("app:orders", "topic:pubsub/orders", "publish") in kinds
    assert ("topic:pubsub/orders", "app:shipping", "deliver") in kinds

    dom = browse(f"http://127.0.0.1:{port}/", screenshot=ARTIFACTS / "dashboard-graph.png")
    assert 'data-ready="true"' in dom, dom[:2000]
    assert 'data-id="app:orders"' in dom and 'data-id="app:shipping"' in dom
    edge = next((line for line in dom.split("<g ") if 'data-from="app:orders"' in line and 'data-to="app:shipping"' in line), None)
    assert edge is not None, "no orders → shipping edge in the page"
    rps = float(edge.split('data-rps="', 1)[1].split('"', 1)[0])
    assert rps > 0, edge[:300]
    assert (ARTIFACTS / "dashboard-graph.png").stat().st_size > 10_000

    page = browse(f"http://127.0.0.1:{port}/sidecar?app=shipping", screenshot=ARTIFACTS / "dashboard-sidecar.png")
    assert 'data-ready="true"' in page
    assert "statestore" in page and "orders" in page


def test_the_dashboard_survives_sidecars_that_answer_garbage(module_launcher):
    """A registered instance whose ports answer nothing useful shows as unhealthy, not as an error."""
    port = free_port()
    dashboard = Process(name="mecha dashboard", argv=[str(MECHA_BIN), "dashboard", "--port", str(port), "--mecha-home", str(module_launcher.home),
                                                      "--interval", "1"], log_path=module_launcher.root / "dashboard-2.log")
    module_launcher.processes.append(dashboard)
    sidecar = module_launcher.sidecar("dash-alone")
    document = wait_until(lambda: any(node["id"] == "app:dash-alone" for node in graph(port)["nodes"]) and graph(port),
                          timeout=30, what="the sidecar in the graph")
    assert next(node for node in document["nodes"] if node["id"] == "app:dash-alone")["health"] == "healthy"
    sidecar.stop()
    time.sleep(1)
    assert http("GET", f"http://127.0.0.1:{port}/api/graph")[0] == 200
    assert http("GET", f"http://127.0.0.1:{port}/api/sidecar?app=nobody")[0] == 200
