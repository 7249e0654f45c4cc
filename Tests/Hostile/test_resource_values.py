"""Defect 6: out-of-range metadata values in resource files trapped at startup or seconds later
(busyTimeout / cleanupInterval / messageRetention huge), or made the poller spin a core
(pollInterval 0 or negative). After the fix `mecha sidecar` exits on its own within 10 s with a
non-zero status (not a signal) and an error naming the file, the resource and the field.

Every case's sidecar is started at once by a module fixture (they run concurrently, so the module
takes ~10 s at most); each test checks its own case."""

import threading
import time

import pytest

from conftest import Launcher, assert_refused_at_startup, metadata_item, sqlite_pubsub, sqlite_state, start_expecting_failure

STARTUP_LIMIT_S = 10.0

# case id -> (component kind, field, value)
CASES = {
    "state-busyTimeout-int64max": ("state", "busyTimeout", "9223372036854775807"),
    "state-busyTimeout-2562048h": ("state", "busyTimeout", "2562048h"),
    "state-cleanupInterval-int64max": ("state", "cleanupInterval", "9223372036854775807"),
    "pubsub-busyTimeout-int64max": ("pubsub", "busyTimeout", "9223372036854775807"),
    "pubsub-messageRetention-int64max": ("pubsub", "messageRetention", "9223372036854775807"),
    # found while probing: traps at startup
    "pubsub-processingTimeout-int64max": ("pubsub", "processingTimeout", "9223372036854775807"),
    "pubsub-pollInterval-0": ("pubsub", "pollInterval", "0"),
    "pubsub-pollInterval-negative": ("pubsub", "pollInterval", "-1s"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("resource-values"))
    results = {}

    def start(case, kind, field, value):
        make = sqlite_state if kind == "state" else sqlite_pubsub
        directory = launcher.resources(case, {f"{case}.yaml": make(f"comp-{case}", launcher.root / f"{case}.db", metadata_item(field, value))})
        results[case] = start_expecting_failure(launcher, f"app-{case}", directory, timeout=STARTUP_LIMIT_S)

    threads = [threading.Thread(target=start, args=(case, *spec)) for case, spec in CASES.items()]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        yield results
    finally:
        launcher.stop_all()


@pytest.mark.parametrize("case", list(CASES))
def test_out_of_range_value_is_refused_at_startup(outcomes, case):
    """Defect 6: an out-of-range duration (trap) or a zero/negative pollInterval (spinning core)
    must be refused at startup naming the file, the component and the field."""
    kind, field, value = CASES[case]
    assert_refused_at_startup(outcomes[case], f"{case}.yaml", f"comp-{case}", field, timeout=STARTUP_LIMIT_S)


def test_huge_redelivery_delays_are_refused_or_survive_a_retry(launcher):
    """Found while probing (defect 6's class): pubsub.sqlite with redeliveryDelay and
    maxRedeliveryDelay "9223372036854775807" started, then trapped as soon as the app answered RETRY.
    Either startup refuses the values (exit > 0 naming the file, component and field) or the sidecar
    survives retried deliveries."""
    import json

    from conftest import http, wait_records

    metadata = (metadata_item("redeliveryDelay", "9223372036854775807")
                + metadata_item("maxRedeliveryDelay", "9223372036854775807")
                + metadata_item("pollInterval", "50ms"))
    directory = launcher.resources("redelivery", {"redelivery.yaml": sqlite_pubsub("comp-redelivery", launcher.root / "redelivery.db", metadata)})
    app = launcher.app("record_app.py", env={
        "SUBSCRIPTIONS": json.dumps([{"pubsubname": "comp-redelivery", "topic": "retried", "route": "/retried"}]),
        "TOPIC_REPLY": '{"status":"RETRY"}'})
    sidecar = launcher.sidecar("redelivery", resources=[directory], app_port=app.port, wait=False)
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline and sidecar.alive() and sidecar.healthz("/v1.0/healthz") != 204:
        time.sleep(0.1)
    if not sidecar.alive() and sidecar.popen.returncode > 0:
        log = sidecar.log_text()
        missing = [needle for needle in ("redelivery.yaml", "comp-redelivery", "edeliveryDelay") if needle.lower() not in log.lower()]
        assert not missing, f"refused at startup, but the error does not name {missing}: {log[-1500:]}"
        return
    if not sidecar.alive():
        sidecar.fail(f"exited with status {sidecar.popen.returncode} at startup")
    assert sidecar.healthz("/v1.0/healthz") == 204, "not healthy"
    status, _, body = http("POST", f"{sidecar.http_url}/v1.0/publish/comp-redelivery/retried", b'{"n":1}', {"Content-Type": "application/json"})
    assert status == 204, body
    wait_records(app, lambda records: [r for r in records if r["path"] == "/retried"], timeout=10, what="the first delivery")
    time.sleep(3)
    sidecar.assert_alive("a RETRY answer with huge redelivery delays")
