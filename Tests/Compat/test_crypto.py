"""Cryptography API through the official Python SDK (`encrypt`/`decrypt`, i.e. the EncryptAlpha1 /
DecryptAlpha1 streams), the HTTP routes `/v1.0-alpha1/crypto/{name}/encrypt|decrypt`, and the
Subtle* methods through the generated gRPC stub.

Mirrors what the SDK's `examples/crypto` (crypto.py, crypto-async.py) and
`tests/integration/test_crypto*.py` do, with the key files its `tests/crypto_utils.py` writes
(`rsa-private-key.pem`: 4096-bit RSA, PKCS#8 PEM; `symmetric-key-256`: 32 random bytes), made
here with `openssl` and `os.urandom`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server as http_server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from conftest import Sidecar, free_port, http
from dapr.clients.grpc._crypto import DecryptOptions, EncryptOptions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CRYPTO = "cryptostore"
RSA_KEY = "rsa-private-key.pem"
SYMMETRIC_KEY = "symmetric-key-256"
SEGMENT = 64 * 1024
HEADER_PREFIX = b"dapr.io/enc/v1\n"


def openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("these tests generate keys with `openssl`: install it (apt-get install openssl)")
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def keys(module_launcher) -> Path:
    """The SDK suite's two key files, plus a PKCS#1 RSA key, an EC key and a JWK."""
    directory = module_launcher.root / "keys"
    directory.mkdir(exist_ok=True)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096", "-out", str(directory / RSA_KEY))
    (directory / SYMMETRIC_KEY).write_bytes(os.urandom(32))
    openssl("genrsa", "-traditional", "-out", str(directory / "rsa-pkcs1.pem"), "2048")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(directory / "ec-p256.pem"))
    (directory / "aes.json").write_text(json.dumps({"kty": "oct", "k": b64url(os.urandom(32)), "kid": "aes"}))
    return directory


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def localstorage(name: str, path: Path) -> str:
    return f"""
        apiVersion: dapr.io/v1alpha1
        kind: Component
        metadata:
          name: {name}
        spec:
          type: crypto.dapr.localstorage
          version: v1
          metadata:
          - name: path
            value: "{path}"
        """


JWKS_KEY = os.urandom(32)
JWKS_DOCUMENT = json.dumps({"keys": [{"kty": "oct", "kid": "jwks-aes", "k": b64url(JWKS_KEY), "alg": "A256KW"}]})


@pytest.fixture(scope="module")
def jwks_server():
    """A local HTTP server answering the JWKS document."""

    class Handler(http_server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = JWKS_DOCUMENT.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()


@pytest.fixture(scope="module")
def resources(module_launcher, keys, jwks_server) -> Path:
    return module_launcher.resources("crypto-resources", {
        "cryptostore.yaml": localstorage(CRYPTO, keys),
        "jwks-inline.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: jwks-inline
            spec:
              type: crypto.dapr.jwks
              version: v1
              metadata:
              - name: jwks
                value: '{JWKS_DOCUMENT}'
            """,
        "jwks-url.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: jwks-url
            spec:
              type: crypto.dapr.jwks
              version: v1
              metadata:
              - name: jwks
                value: "{jwks_server}"
              - name: requestTimeout
                value: "5s"
            """,
    })


@pytest.fixture(scope="module")
def sidecar(module_launcher, resources) -> Sidecar:
    return module_launcher.sidecar("crypto-app", resources=[resources])


@pytest.fixture
def client(sidecar, dapr_client):
    return dapr_client(sidecar)


def encrypt(client, data, key=RSA_KEY, algorithm="RSA", component=CRYPTO, **options) -> bytes:
    return client.encrypt(
        data=data,
        options=EncryptOptions(component_name=component, key_name=key, key_wrap_algorithm=algorithm, **options),
    ).read()


def decrypt(client, data: bytes, key: str = "", component=CRYPTO) -> bytes:
    return client.decrypt(data=data, options=DecryptOptions(component_name=component, key_name=key)).read()


# --------------------------------------------------------------------------------------------
# The SDK's example and integration tests
# --------------------------------------------------------------------------------------------

def test_rsa_round_trip(client):
    message = 'The secret is "passw0rd"'
    encrypted = encrypt(client, message.encode())
    assert encrypted.startswith(HEADER_PREFIX)
    assert decrypt(client, encrypted, RSA_KEY).decode() == message


def test_aes_round_trip(client):
    plaintext = b"A" * (32 * 1024)
    encrypted = encrypt(client, plaintext, key=SYMMETRIC_KEY, algorithm="AES")
    assert decrypt(client, encrypted, SYMMETRIC_KEY) == plaintext


def test_string_input_round_trip(client):
    encrypted = encrypt(client, "hello dapr crypto")
    assert decrypt(client, encrypted, RSA_KEY).decode() == "hello dapr crypto"


def test_the_manifest_names_the_key_so_decrypt_needs_no_key_name(client):
    encrypted = encrypt(client, b"no key name on decrypt", key=SYMMETRIC_KEY, algorithm="AES")
    manifest = json.loads(encrypted.split(b"\n")[1])
    assert manifest["k"] == SYMMETRIC_KEY and manifest["kw"] == 1 and manifest["cph"] == 1
    assert decrypt(client, encrypted) == b"no key name on decrypt"


def test_large_input_across_many_segments(client):
    plaintext = os.urandom(3 * SEGMENT + 12345)
    encrypted = encrypt(client, plaintext, key=SYMMETRIC_KEY, algorithm="AES")
    header_length = len(b"\n".join(encrypted.split(b"\n", 3)[:3])) + 1
    assert len(encrypted) == header_length + len(plaintext) + 4 * 16
    assert decrypt(client, encrypted, SYMMETRIC_KEY) == plaintext


@pytest.mark.parametrize("size", [1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT])
def test_segment_boundaries(client, size):
    plaintext = os.urandom(size)
    assert decrypt(client, encrypt(client, plaintext, key=SYMMETRIC_KEY, algorithm="AES")) == plaintext


def test_empty_message(sidecar, client):
    """The SDK sends no message at all for empty data, which daprd answers with an EOF error;
    options without a payload encrypt the empty message (a header and no segment)."""
    assert rpc_error(lambda: encrypt(client, b"", key=SYMMETRIC_KEY, algorithm="AES")) == (
        grpc.StatusCode.INTERNAL, "failed to perform operation: error receiving the first message: EOF")
    from dapr.proto import api_v1, api_service_v1

    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = api_service_v1.DaprStub(channel)
        options = api_v1.EncryptRequestOptions(component_name=CRYPTO, key_name=SYMMETRIC_KEY, key_wrap_algorithm="AES")
        chunks = list(stub.EncryptAlpha1(iter([api_v1.EncryptRequest(options=options)])))
        encrypted = b"".join(chunk.payload.data for chunk in chunks)
        assert [chunk.payload.seq for chunk in chunks] == list(range(len(chunks)))
        assert encrypted.startswith(HEADER_PREFIX) and encrypted.count(b"\n") == 3 and encrypted.endswith(b"\n")
        decrypted = list(stub.DecryptAlpha1(iter([api_v1.DecryptRequest(
            options=api_v1.DecryptRequestOptions(component_name=CRYPTO), payload={"data": encrypted, "seq": 0})])))
        assert b"".join(chunk.payload.data for chunk in decrypted) == b""


def test_chacha20_and_key_name_options(client):
    encrypted = encrypt(
        client, b"chacha", key=SYMMETRIC_KEY, algorithm="A256KW",
        data_encryption_cipher="chacha20-poly1305", decryption_key_name="other-name",
    )
    manifest = json.loads(encrypted.split(b"\n")[1])
    assert manifest["cph"] == 2 and manifest["k"] == "other-name"
    assert decrypt(client, encrypted, SYMMETRIC_KEY) == b"chacha"

    omitted = encrypt(client, b"omitted", key=SYMMETRIC_KEY, algorithm="AES", omit_decryption_key_name=True)
    assert "k" not in json.loads(omitted.split(b"\n")[1])
    with pytest.raises(grpc.RpcError) as caught:
        decrypt(client, omitted)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "document's manifest does not contain a key name" in caught.value.details()
    assert decrypt(client, omitted, SYMMETRIC_KEY) == b"omitted"


def test_other_key_files(client):
    assert decrypt(client, encrypt(client, b"pkcs1", key="rsa-pkcs1.pem", algorithm="RSA-OAEP-256")) == b"pkcs1"
    assert decrypt(client, encrypt(client, b"jwk file", key="aes.json", algorithm="AES")) == b"jwk file"


def test_async_client_round_trip(sidecar, use_sidecar):
    """crypto-async.py: the same round trips through `dapr.aio.clients.DaprClient`."""
    use_sidecar(sidecar)
    from dapr.aio.clients import DaprClient

    async def run():
        async with DaprClient() as client:
            response = await client.encrypt(
                data=b"async secret",
                options=EncryptOptions(component_name=CRYPTO, key_name=RSA_KEY, key_wrap_algorithm="RSA"),
            )
            encrypted = await response.read()
            response = await client.decrypt(data=encrypted, options=DecryptOptions(component_name=CRYPTO, key_name=RSA_KEY))
            return await response.read()

    assert asyncio.run(run()) == b"async secret"


def test_blank_component_is_refused_by_the_sdk(client):
    with pytest.raises(ValueError):
        client.encrypt(data=b"x", options=EncryptOptions(component_name="", key_name=RSA_KEY, key_wrap_algorithm="RSA"))
    with pytest.raises(ValueError):
        client.decrypt(data=b"x", options=DecryptOptions(component_name="", key_name=RSA_KEY))


def test_jwks_components(client):
    for component in ("jwks-inline", "jwks-url"):
        encrypted = encrypt(client, b"from a JWKS", key="jwks-aes", algorithm="AES", component=component)
        assert decrypt(client, encrypted, component=component) == b"from a JWKS"
    # The same key in both sets: one decrypts what the other encrypted.
    encrypted = encrypt(client, b"shared", key="jwks-aes", algorithm="AES", component="jwks-inline")
    assert decrypt(client, encrypted, component="jwks-url") == b"shared"


# --------------------------------------------------------------------------------------------
# Errors, as daprd reports them
# --------------------------------------------------------------------------------------------

def rpc_error(call):
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_grpc_errors(client, keys):
    assert rpc_error(lambda: encrypt(client, b"x", component="nope")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "crypto provider nope not found")
    assert rpc_error(lambda: encrypt(client, b"x", algorithm="FOO")) == (
        grpc.StatusCode.INTERNAL, "failed to perform operation: option Algorithm is not valid: algorithm FOO is not supported")
    assert rpc_error(lambda: encrypt(client, b"x", key="missing-key")) == (
        grpc.StatusCode.INTERNAL,
        "failed to perform operation: failed to wrap the file key: failed to retrieve the key encryption key: "
        f"failed to load key 'missing-key': open {keys}/missing-key: no such file or directory")
    assert rpc_error(lambda: encrypt(client, b"x", key="../escape")) == (
        grpc.StatusCode.INTERNAL,
        "failed to perform operation: failed to wrap the file key: failed to retrieve the key encryption key: "
        "invalid key path: cannot contain '..'")
    assert rpc_error(lambda: encrypt(client, b"x", key=SYMMETRIC_KEY, algorithm="RSA"))[0] == grpc.StatusCode.INTERNAL
    assert rpc_error(lambda: decrypt(client, b"not encrypted", SYMMETRIC_KEY)) == (
        grpc.StatusCode.INTERNAL, "failed to perform operation: invalid header: scheme name not found")
    assert rpc_error(lambda: decrypt(client, b"other/scheme\n{}\n", SYMMETRIC_KEY)) == (
        grpc.StatusCode.INTERNAL, "failed to perform operation: invalid header: unsupported scheme")


def test_tampered_and_truncated_ciphertexts_are_refused(client):
    encrypted = bytearray(encrypt(client, os.urandom(2 * SEGMENT + 10), key=SYMMETRIC_KEY, algorithm="AES"))
    truncated = bytes(encrypted[: len(encrypted) - 26])
    assert rpc_error(lambda: decrypt(client, truncated))[1].startswith("failed to perform operation: error processing segment 1")
    encrypted[-1] ^= 1
    assert rpc_error(lambda: decrypt(client, bytes(encrypted))) == (
        grpc.StatusCode.INTERNAL, "failed to perform operation: error processing segment 2: failed to decrypt segment")
    # Another key: the header's MAC does not verify.
    other = encrypt(client, b"x", key="aes.json", algorithm="AES")
    assert rpc_error(lambda: decrypt(client, other, SYMMETRIC_KEY)) == (
        grpc.StatusCode.INTERNAL, "failed to perform operation: failed to validate the document's signature")


def test_stream_sequence_numbers_are_checked(sidecar):
    from dapr.proto import api_v1, api_service_v1, common_v1

    def messages():
        first = api_v1.EncryptRequest(options=api_v1.EncryptRequestOptions(
            component_name=CRYPTO, key_name=SYMMETRIC_KEY, key_wrap_algorithm="AES"))
        first.payload.CopyFrom(common_v1.StreamPayload(data=b"a", seq=0))
        yield first
        yield api_v1.EncryptRequest(payload=common_v1.StreamPayload(data=b"b", seq=2))

    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = api_service_v1.DaprStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.EncryptAlpha1(messages()))
    assert caught.value.details() == "failed to perform operation: invalid sequence number received: 2 (expected: 1)"


def test_providers_not_configured(module_launcher, dapr_client):
    bare = module_launcher.sidecar("crypto-bare")
    client = dapr_client(bare)
    assert rpc_error(lambda: encrypt(client, b"x")) == (grpc.StatusCode.INTERNAL, "crypto providers not configured")
    status, _, body = http("PUT", f"http://127.0.0.1:{bare.http_port}/v1.0-alpha1/crypto/{CRYPTO}/encrypt", b"x",
                           {"dapr-key-name": RSA_KEY, "dapr-key-wrap-algorithm": "RSA"})
    assert status == 500
    assert json.loads(body) == {"errorCode": "ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED", "message": "crypto providers not configured"}


# --------------------------------------------------------------------------------------------
# Two sidecars, HTTP, metadata
# --------------------------------------------------------------------------------------------

def test_file_encrypted_by_one_sidecar_decrypts_on_another(module_launcher, resources, sidecar, dapr_client, tmp_path):
    plaintext = os.urandom(300 * 1024)
    encrypted_file = tmp_path / "encrypted.out"
    encrypted_file.write_bytes(encrypt(dapr_client(sidecar), plaintext, key=SYMMETRIC_KEY, algorithm="AES"))
    second = module_launcher.sidecar("crypto-second", resources=[resources])
    assert decrypt(dapr_client(second), encrypted_file.read_bytes(), SYMMETRIC_KEY) == plaintext


def test_relative_path_resolves_against_the_working_directory(module_launcher, keys, dapr_client):
    workdir = module_launcher.root / "workdir"
    shutil.copytree(keys, workdir / "keys", dirs_exist_ok=True)
    resources = module_launcher.resources("relative-resources", {"crypto.yaml": localstorage("relative", Path("./keys"))})
    argv, http_port, grpc_port, internal_port = module_launcher.sidecar_argv("crypto-relative", resources=[resources])
    relative = Sidecar(
        "crypto-relative", http_port, grpc_port, internal_port, module_launcher.home,
        name="sidecar crypto-relative", argv=argv, log_path=module_launcher.root / "sidecar-crypto-relative.log",
        env=module_launcher._env(None), cwd=workdir,
    )
    module_launcher.processes.append(relative)
    relative.wait_healthy(app=False)
    client = dapr_client(relative)
    encrypted = encrypt(client, b"relative", key=SYMMETRIC_KEY, algorithm="AES", component="relative")
    assert decrypt(client, encrypted, component="relative") == b"relative"


def test_http_routes(sidecar, client):
    base = f"http://127.0.0.1:{sidecar.http_port}/v1.0-alpha1/crypto/{CRYPTO}"
    plaintext = os.urandom(SEGMENT + 100)
    status, headers, encrypted = http("PUT", f"{base}/encrypt", plaintext,
                                      {"dapr-key-name": SYMMETRIC_KEY, "dapr-key-wrap-algorithm": "aes"})
    assert status == 200, encrypted
    assert headers["Content-Type"] == "application/octet-stream"
    assert encrypted.startswith(HEADER_PREFIX)
    # HTTP-encrypted data decrypts through gRPC and through HTTP, and the other way round.
    assert decrypt(client, encrypted) == plaintext
    status, _, decrypted = http("PUT", f"{base}/decrypt", encrypted)
    assert (status, decrypted) == (200, plaintext)
    from_grpc = encrypt(client, b"grpc to http")
    status, _, decrypted = http("PUT", f"{base}/decrypt", from_grpc, {"dapr-key-name": RSA_KEY})
    assert (status, decrypted) == (200, b"grpc to http")

    status, _, body = http("PUT", f"{base}/encrypt", b"x",
                           {"dapr-key-name": SYMMETRIC_KEY, "dapr-key-wrap-algorithm": "AES", "dapr-omit-decryption-key-name": "true"})
    assert status == 200 and "k" not in json.loads(body.split(b"\n")[1])

    status, _, body = http("PUT", f"{base}/encrypt", b"x", {"dapr-key-wrap-algorithm": "AES"})
    assert (status, json.loads(body)) == (400, {"errorCode": "ERR_BAD_REQUEST", "message": "invalid request: missing header 'dapr-key-name'"})
    status, _, body = http("PUT", f"{base}/encrypt", b"x", {"dapr-key-name": SYMMETRIC_KEY})
    assert (status, json.loads(body)) == (400, {"errorCode": "ERR_BAD_REQUEST", "message": "invalid request: missing header 'dapr-key-wrap-algorithm'"})
    status, _, body = http("PUT", f"http://127.0.0.1:{sidecar.http_port}/v1.0-alpha1/crypto/nope/decrypt", b"x")
    assert (status, json.loads(body)) == (400, {"errorCode": "ERR_CRYPTO_PROVIDER_NOT_FOUND", "message": "crypto provider nope not found"})
    status, _, body = http("PUT", f"{base}/decrypt", encrypted[:-1])
    assert status == 500 and json.loads(body)["errorCode"] == "ERR_CRYPTO"


def test_components_in_metadata(sidecar):
    status, _, body = http("GET", f"http://127.0.0.1:{sidecar.http_port}/v1.0/metadata")
    assert status == 200
    components = {c["name"]: c for c in json.loads(body)["components"]}
    assert components[CRYPTO]["type"] == "crypto.dapr.localstorage"
    assert components["jwks-inline"]["type"] == "crypto.dapr.jwks"
    assert components["jwks-url"]["version"] == "v1"


# --------------------------------------------------------------------------------------------
# Subtle API (daprd built with the `subtlecrypto` tag offers these; the SDK has no wrapper)
# --------------------------------------------------------------------------------------------

def test_subtle_methods(sidecar, keys):
    from dapr.proto import api_v1, api_service_v1

    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = api_service_v1.DaprStub(channel)
        pem = stub.SubtleGetKeyAlpha1(api_v1.SubtleGetKeyRequest(component_name=CRYPTO, name="ec-p256.pem"))
        assert pem.name == "ec-p256.pem" and pem.public_key.startswith("-----BEGIN PUBLIC KEY-----\n")
        expected = subprocess.run(["openssl", "ec", "-in", str(keys / "ec-p256.pem"), "-pubout"], check=True, capture_output=True).stdout
        assert pem.public_key == expected.decode()
        jwk = stub.SubtleGetKeyAlpha1(api_v1.SubtleGetKeyRequest(
            component_name=CRYPTO, name=RSA_KEY, format=api_v1.SubtleGetKeyRequest.JSON))
        assert json.loads(jwk.public_key)["kty"] == "RSA" and json.loads(jwk.public_key)["e"] == "AQAB"

        digest = hashlib.sha256(b"sign me").digest()
        for key, algorithm in (("ec-p256.pem", "ES256"), (RSA_KEY, "RS256"), (RSA_KEY, "PS256")):
            signature = stub.SubtleSignAlpha1(api_v1.SubtleSignRequest(
                component_name=CRYPTO, digest=digest, algorithm=algorithm, key_name=key)).signature
            assert stub.SubtleVerifyAlpha1(api_v1.SubtleVerifyRequest(
                component_name=CRYPTO, digest=digest, signature=signature, algorithm=algorithm, key_name=key)).valid
            assert not stub.SubtleVerifyAlpha1(api_v1.SubtleVerifyRequest(
                component_name=CRYPTO, digest=hashlib.sha256(b"other").digest(), signature=signature,
                algorithm=algorithm, key_name=key)).valid

        sealed = stub.SubtleEncryptAlpha1(api_v1.SubtleEncryptRequest(
            component_name=CRYPTO, plaintext=b"subtle", algorithm="A256GCM", key_name=SYMMETRIC_KEY, nonce=b"\x01" * 12))
        assert len(sealed.tag) == 16
        opened = stub.SubtleDecryptAlpha1(api_v1.SubtleDecryptRequest(
            component_name=CRYPTO, ciphertext=sealed.ciphertext, tag=sealed.tag, algorithm="A256GCM",
            key_name=SYMMETRIC_KEY, nonce=b"\x01" * 12))
        assert opened.plaintext == b"subtle"

        key = os.urandom(32)
        wrapped = stub.SubtleWrapKeyAlpha1(api_v1.SubtleWrapKeyRequest(
            component_name=CRYPTO, plaintext_key=key, algorithm="RSA-OAEP-256", key_name=RSA_KEY))
        unwrapped = stub.SubtleUnwrapKeyAlpha1(api_v1.SubtleUnwrapKeyRequest(
            component_name=CRYPTO, wrapped_key=wrapped.wrapped_key, algorithm="RSA-OAEP-256", key_name=RSA_KEY))
        assert unwrapped.plaintext_key == key

        with pytest.raises(grpc.RpcError) as caught:
            stub.SubtleGetKeyAlpha1(api_v1.SubtleGetKeyRequest(component_name=CRYPTO, name=SYMMETRIC_KEY))
        assert caught.value.details() == f"failed to retrieve key {SYMMETRIC_KEY}: key not found"
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubtleSignAlpha1(api_v1.SubtleSignRequest(component_name=CRYPTO, digest=digest, algorithm="ES256", key_name=SYMMETRIC_KEY))
        assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INTERNAL, "failed to perform operation: failed to sign")


def test_first_message_deadline(sidecar):
    """daprd waits 5 seconds for the first message of a stream."""
    import time

    from dapr.proto import api_v1, api_service_v1

    def late():
        time.sleep(6)
        yield api_v1.DecryptRequest(options=api_v1.DecryptRequestOptions(component_name=CRYPTO))

    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list(api_service_v1.DaprStub(channel).DecryptAlpha1(late()))
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "invalid request: error waiting for first message: context deadline exceeded")


def test_subtle_http_routes(sidecar):
    base = f"http://127.0.0.1:{sidecar.http_port}/v1.0-alpha1/subtlecrypto/{CRYPTO}"
    nonce = base64.b64encode(b"\x02" * 12).decode()
    status, _, body = http("POST", f"{base}/encrypt", json.dumps({
        "plaintext": base64.b64encode(b"over http").decode(), "algorithm": "A256GCM", "keyName": SYMMETRIC_KEY, "nonce": nonce,
    }).encode())
    assert status == 200, body
    sealed = json.loads(body)
    status, _, body = http("POST", f"{base}/decrypt", json.dumps({
        "ciphertext": sealed["ciphertext"], "tag": sealed["tag"], "algorithm": "A256GCM", "key_name": SYMMETRIC_KEY, "nonce": nonce,
    }).encode())
    assert status == 200 and base64.b64decode(json.loads(body)["plaintext"]) == b"over http"
    status, _, body = http("POST", f"{base}/getkey", json.dumps({"name": RSA_KEY, "format": "JSON"}).encode())
    assert status == 200 and json.loads(json.loads(body)["publicKey"])["kty"] == "RSA"
    status, _, body = http("POST", f"{base}/getkey", json.dumps({"name": SYMMETRIC_KEY}).encode())
    assert (status, json.loads(body)) == (500, {"errorCode": "ERR_CRYPTO_KEY", "message": f"failed to retrieve key {SYMMETRIC_KEY}: key not found"})
    status, _, body = http("POST", f"http://127.0.0.1:{sidecar.http_port}/v1.0-alpha1/subtlecrypto/nope/sign", b"{}")
    assert (status, json.loads(body)["errorCode"]) == (400, "ERR_CRYPTO_PROVIDER_NOT_FOUND")


def test_rsa_oaep_256_interoperates_with_openssl(sidecar, keys, tmp_path):
    """A key wrapped by OpenSSL with RSA-OAEP (SHA-256, MGF1-SHA-256), as Go's rsa.EncryptOAEP
    does, unwraps here; one wrapped here unwraps in OpenSSL."""
    from dapr.proto import api_v1, api_service_v1

    key = os.urandom(32)
    (tmp_path / "key.bin").write_bytes(key)
    oaep = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]
    openssl("pkeyutl", "-encrypt", "-inkey", str(keys / RSA_KEY), "-in", str(tmp_path / "key.bin"),
            "-out", str(tmp_path / "wrapped.bin"), *oaep)
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = api_service_v1.DaprStub(channel)
        unwrapped = stub.SubtleUnwrapKeyAlpha1(api_v1.SubtleUnwrapKeyRequest(
            component_name=CRYPTO, wrapped_key=(tmp_path / "wrapped.bin").read_bytes(), algorithm="RSA-OAEP-256", key_name=RSA_KEY))
        assert unwrapped.plaintext_key == key
        wrapped = stub.SubtleWrapKeyAlpha1(api_v1.SubtleWrapKeyRequest(
            component_name=CRYPTO, plaintext_key=key, algorithm="RSA-OAEP-256", key_name=RSA_KEY)).wrapped_key
    (tmp_path / "ours.bin").write_bytes(wrapped)
    openssl("pkeyutl", "-decrypt", "-inkey", str(keys / RSA_KEY), "-in", str(tmp_path / "ours.bin"),
            "-out", str(tmp_path / "back.bin"), *oaep)
    assert (tmp_path / "back.bin").read_bytes() == key
