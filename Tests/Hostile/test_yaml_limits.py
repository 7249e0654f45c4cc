"""Defect 7: resource YAML had no limits: a billion-laughs alias bomb grew past 3 GB and was never
refused, and a 50 MB resource file took 99 s and 2.4 GB. After the fix both are refused within 10 s
with an error naming the file, and the process's RSS stays under 500 MB (the test kills it above
1 GB). A small legitimate use of an anchor and an alias still loads (Dapr accepts aliases).

The two hostile sidecars are started at once by a module fixture (the module takes ~10 s at most)."""

import json
import threading

import pytest

from conftest import Launcher, assert_refused_at_startup, http, start_expecting_failure

STARTUP_LIMIT_S = 10.0
RSS_LIMIT_MB = 500.0
KILL_ABOVE_MB = 1024.0
BIG_FILE_MB = 50


def alias_bomb() -> str:
    """9 levels of 9 aliases each: 9^9 (387 million) strings once expanded."""
    lines = [
        "apiVersion: dapr.io/v1alpha1", "kind: Component", "metadata:", "  name: laughs", "spec:",
        "  type: state.in-memory", "  version: v1", "  metadata:",
        '  - name: a\n    value: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    letters = "abcdefghi"
    for previous, current in zip(letters, letters[1:]):
        lines.append(f"  - name: {current}\n    value: &{current} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def write_big_file(path, megabytes: int) -> None:
    """A syntactically valid component whose metadata list makes the file `megabytes` MB."""
    head = ("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: huge\nspec:\n"
            "  type: state.in-memory\n  version: v1\n  metadata:\n")
    filler = "x" * 40
    with open(path, "w") as f:
        f.write(head)
        written, i = len(head), 0
        chunk = []
        while written < megabytes * 1024 * 1024:
            line = f"  - name: k{i}\n    value: \"{filler}\"\n"
            chunk.append(line)
            written += len(line)
            i += 1
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("yaml-limits"))
    bomb_dir = launcher.resources("bomb", {"laughs.yaml": alias_bomb()}, dedent=False)
    big_dir = launcher.root / "big"
    big_dir.mkdir()
    write_big_file(big_dir / "huge.yaml", BIG_FILE_MB)
    results = {}

    def start(case, directory):
        results[case] = start_expecting_failure(launcher, f"app-{case}", directory, timeout=STARTUP_LIMIT_S,
                                                rss_limit_mb=RSS_LIMIT_MB, kill_above_mb=KILL_ABOVE_MB)

    threads = [threading.Thread(target=start, args=("bomb", bomb_dir)), threading.Thread(target=start, args=("big", big_dir))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        yield results
    finally:
        launcher.stop_all()


def test_alias_bomb_is_refused(outcomes):
    """Defect 7: a billion-laughs alias bomb (9 levels x 9 aliases) grew past 3 GB; it must be
    refused within 10 s naming the file, under 500 MB RSS."""
    returncode, log, peak, elapsed = outcomes["bomb"]
    print(f"alias bomb: exit {returncode} after {elapsed:.1f}s, peak RSS {peak:.0f} MB")
    assert peak < KILL_ABOVE_MB, f"RSS passed {KILL_ABOVE_MB:.0f} MB within {elapsed:.1f}s (killed)"
    assert_refused_at_startup(outcomes["bomb"], "laughs.yaml", timeout=STARTUP_LIMIT_S, rss_limit_mb=RSS_LIMIT_MB)
    if not any(word in log.lower() for word in ("alias", "limit")):
        print("note: the error does not mention 'alias' or 'limit'")


def test_50mb_resource_file_is_refused(outcomes):
    """Defect 7: a 50 MB resource file took 99 s and 2.4 GB to load; it must be refused within 10 s
    naming the file and a size limit."""
    returncode, log, peak, elapsed = outcomes["big"]
    print(f"{BIG_FILE_MB} MB file: exit {returncode} after {elapsed:.1f}s, peak RSS {peak:.0f} MB")
    assert peak < KILL_ABOVE_MB, f"RSS passed {KILL_ABOVE_MB:.0f} MB within {elapsed:.1f}s (killed)"
    assert_refused_at_startup(outcomes["big"], "huge.yaml", timeout=STARTUP_LIMIT_S, rss_limit_mb=RSS_LIMIT_MB)
    lowered = log.lower()
    assert any(word in lowered for word in ("limit", "too large", "too big", "size", "exceeds")), (
        f"the error does not mention a size limit: {log[-1500:]}")


def test_anchor_and_single_alias_still_load(launcher):
    """Defect 7 (regression side): an anchor reused once by an alias, as Dapr accepts, still loads."""
    db = launcher.root / "anchored.db"
    text = f"""\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: anchored
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: "{db}"
  - name: busyTimeout
    value: &duration "5s"
  - name: cleanupInterval
    value: *duration
"""
    resources = launcher.resources("anchored", {"anchored.yaml": text}, dedent=False)
    sidecar = launcher.sidecar("anchored-app", resources=[resources])
    url = f"{sidecar.http_url}/v1.0/state/anchored"
    status, _, body = http("POST", url, json.dumps([{"key": "k", "value": "v"}]).encode(), {"Content-Type": "application/json"})
    assert status == 204, body
    assert http("GET", f"{url}/k")[2] == b'"v"'
