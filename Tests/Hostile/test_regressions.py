"""Hostile inputs the sidecar already handles; these keep it that way (they pass before and after
the fixes of the other modules): request smuggling shapes, an oversized header line, a deeply
nested JSON body, and a malformed resource file."""

import pytest

from conftest import assert_refused_at_startup, raw_request, start_expecting_failure


@pytest.fixture(scope="module")
def sidecar(module_launcher):
    return module_launcher.sidecar("regressions")


SMUGGLING = {
    "content-length-and-transfer-encoding": (
        "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1.0/metadata HTTP/1.1\r\nHost: x\r\n\r\n"),
    "two-content-lengths": (
        "POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\nContent-Length: 40\r\n\r\n[]GET /v1.0/metadata HTTP/1.1\r\nHost: x\r\n\r\n"),
}


@pytest.mark.parametrize("shape", list(SMUGGLING))
def test_smuggling_shapes_are_refused(sidecar, shape):
    """Regression: Content-Length with Transfer-Encoding, or two Content-Lengths, get 400 and the
    sidecar stays alive."""
    response = raw_request(sidecar.http_port, SMUGGLING[shape].encode())
    assert response is not None and response.status == 400, f"{shape}: {response!r}"
    sidecar.assert_alive(shape)


def test_100kb_header_line_is_refused(sidecar):
    """Regression: a 100 KB header line gets 431 or 400."""
    request = (f"GET /v1.0/healthz/outbound HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 100_000}\r\n"
               f"Connection: close\r\n\r\n").encode()
    try:
        response = raw_request(sidecar.http_port, request)
    except ConnectionResetError:
        response = None
    assert response is not None and response.status in (400, 431), f"100 KB header: {response!r}"
    sidecar.assert_alive("a 100 KB header")


def test_deeply_nested_json_is_refused(sidecar):
    """Regression: a 100 000-deep JSON array as a state save body gets 400, not a crash."""
    body = b"[" * 100_000 + b"]" * 100_000
    request = (f"POST /v1.0/state/statestore HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    response = raw_request(sidecar.http_port, request, timeout=10)
    sidecar.assert_alive("a 100 000-deep JSON body")
    assert response is not None and response.status == 400, f"deep JSON: {response!r}"


def test_malformed_resource_names_file_resource_and_field(launcher):
    """Regression: `spec.metadata` that is not a list is refused at startup naming the file, the
    resource and the field."""
    text = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: crooked
spec:
  type: state.in-memory
  version: v1
  metadata:
    name: notalist
"""
    resources = launcher.resources("malformed", {"crooked.yaml": text}, dedent=False)
    result = start_expecting_failure(launcher, "malformed", resources, timeout=10)
    assert_refused_at_startup(result, "crooked.yaml", "crooked", "spec.metadata")
