"""Configuration `spec.accessControl` on the callee, with daprd's decisions and errors: the
official SDK's `invoke_method` (HTTP invocation) from two calling apps to a third app's sidecar,
through the fast path and the general path.

The callers are identified by their sidecars' mTLS certificates (SPIFFE ids from the home's CA),
so the `dapr-caller-app-id` an app sends is never believed."""

import json
import urllib.error
import urllib.request

import pytest

from dapr.clients.exceptions import DaprHttpError

CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: shipping-acl
spec:
  accessControl:
    defaultAction: deny
    trustDomain: public
    policies:
    - appId: orders
      defaultAction: deny
      trustDomain: public
      namespace: default
      operations:
      - name: /echo/ship
        httpVerb: ["POST"]
        action: allow
      - name: /whoami
        httpVerb: ["*"]
        action: allow
"""


@pytest.fixture(scope="module")
def shipping(module_launcher):
    config = module_launcher.file("shipping-acl.yaml", CONFIG)
    app = module_launcher.app("http_app.py", env={"APP_ID": "shipping"})
    return module_launcher.sidecar("shipping", config=config, app_port=app.port)


@pytest.fixture(scope="module")
def orders(module_launcher, shipping):
    return module_launcher.sidecar("orders")


@pytest.fixture(scope="module")
def billing(module_launcher, shipping):
    return module_launcher.sidecar("billing")


def call(sidecar, method, verb="POST", body=b"x", headers=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{sidecar.http_port}/v1.0/invoke/shipping/method/{method}", data=body if verb != "GET" else None,
        method=verb, headers={"Content-Type": "text/plain", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def denied(caller, operation, verb):
    return {
        "errorCode": "ERR_DIRECT_INVOKE",
        "message": f"failed to invoke, id: shipping, err: rpc error: code = PermissionDenied desc = access control policy has denied "
                   f"access to id: spiffe://public/ns/default/{caller} operation: {operation} verb: {verb}",
    }


def test_the_allowed_operation_goes_through_with_the_sdk(orders, dapr_client):
    client = dapr_client(orders)
    response = client.invoke_method("shipping", "echo/ship", data="parcel", http_verb="POST", content_type="text/plain")
    assert response.data == b"parcel"
    # Both paths: a body over the fast path's limit goes through the general path.
    big = b"p" * (2 << 20)
    status, body = call(orders, "echo/ship", body=big)
    assert (status, len(body)) == (200, len(big))


def test_another_verb_or_operation_is_denied(orders):
    status, body = call(orders, "echo/ship", verb="PUT")
    assert (status, json.loads(body)) == (403, denied("orders", "/echo/ship", "PUT"))
    status, body = call(orders, "echo/other")
    assert (status, json.loads(body)) == (403, denied("orders", "/echo/other", "POST"))
    # Over the general path too.
    status, body = call(orders, "echo/other", body=b"p" * (2 << 20))
    assert (status, json.loads(body)) == (403, denied("orders", "/echo/other", "POST"))
    # Names compare case-insensitively for an HTTP app, as in daprd: the ACL lets `WhoAmI` through
    # (the app itself only knows `/whoami`, and answers 404).
    status, body = call(orders, "WhoAmI", verb="GET")
    assert (status, body) == (404, b"not found")


def test_an_app_without_a_policy_gets_the_global_default(billing, dapr_client):
    status, body = call(billing, "echo/ship")
    assert (status, json.loads(body)) == (403, denied("billing", "/echo/ship", "POST"))
    with pytest.raises(DaprHttpError) as raised:
        dapr_client(billing).invoke_method("shipping", "echo/ship", data="parcel", http_verb="POST", content_type="text/plain")
    assert raised.value.status_code == 403
    assert raised.value.error_code == "ERR_DIRECT_INVOKE"


def test_a_caller_header_from_the_app_is_not_believed(billing):
    status, body = call(billing, "echo/ship", headers={"dapr-caller-app-id": "orders"})
    assert (status, json.loads(body)) == (403, denied("billing", "/echo/ship", "POST"))


def test_a_bad_action_is_refused_at_startup(module_launcher):
    config = module_launcher.file("bad-acl.yaml", CONFIG.replace("action: allow", "action: alow", 1))
    sidecar = module_launcher.sidecar("bad-acl", config=config, wait=False)
    returncode = sidecar.wait_exit(20)
    log = sidecar.log_text()
    assert returncode is not None and returncode > 0, sidecar.log_tail(30)
    for needle in ("bad-acl.yaml", "Configuration/shipping-acl", "spec.accessControl.policies[0].operations[0].action", "alow"):
        assert needle in log, f"the startup error does not name {needle!r}:\n{sidecar.log_tail(30)}"


GRPC_CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: echo-acl
spec:
  accessControl:
    defaultAction: deny
    policies:
    - appId: orders
      trustDomain: public
      namespace: default
      operations:
      - name: /compat.Echo/Say
        action: allow
"""


@pytest.fixture(scope="module")
def grpc_echo(module_launcher):
    config = module_launcher.file("echo-acl.yaml", GRPC_CONFIG)
    app = module_launcher.app("grpc_app.py", env={"APP_ID": "grpc-echo"})
    return module_launcher.sidecar("grpc-echo", config=config, app_port=app.port, app_protocol="grpc")


@pytest.mark.grpc_app
def test_grpc_proxying_follows_the_acl(grpc_echo, orders, billing):
    """daprd's proxy checks the full method with no verb and answers PermissionDenied itself."""
    import grpc

    with grpc.insecure_channel(orders.grpc_address) as channel:
        reply = channel.unary_unary("/compat.Echo/Say")(b"parcel", metadata=(("dapr-app-id", "grpc-echo"),), timeout=10)
    assert reply == b"grpc-echo:parcel"
    with grpc.insecure_channel(billing.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary("/compat.Echo/Say")(b"parcel", metadata=(("dapr-app-id", "grpc-echo"),), timeout=10)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == (
        "access control policy has denied access to id: spiffe://public/ns/default/billing operation: /compat.Echo/Say verb: NONE")
