#!/usr/bin/env bash
# The Python SDK compatibility suite: the official Dapr Python SDK from PyPI, unchanged, against
# the built mecha binary.
#
#   Tests/Compat/run.sh [pytest arguments]
#
# 1. creates (or reuses) the venv .venv with dapr[grpc,fastapi,workflow]==1.19.0, pytest, uvicorn;
# 2. runs Tests/Compat/check_protos.py (our Protos/ against the SDK wheel's descriptors);
# 3. runs pytest -q Tests/Compat against $MECHA_BIN (default .build/debug/mecha).
#
# MECHA_SKIP_GRPC_APP=1 deselects the tests marked grpc_app (they need the gRPC app channel).
# Exits non-zero when either step fails.
set -uo pipefail
cd "$(dirname "$0")/../.."

SDK_VERSION=1.19.0
REQUIREMENTS=("dapr[grpc,fastapi,workflow]==${SDK_VERSION}" pytest uvicorn opentelemetry-proto)
VENV=.venv
STAMP="$VENV/.compat-requirements"
export MECHA_BIN="${MECHA_BIN:-.build/debug/mecha}"

ensure_venv() {
    local python="${PYTHON:-python3}"
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$VENV"
        echo "creating the venv $VENV with $python"
        "$python" -m venv "$VENV" || return 1
    fi
    if [ "$(cat "$STAMP" 2>/dev/null)" = "${REQUIREMENTS[*]}" ] \
        && "$VENV/bin/python" -c 'import dapr.clients, dapr.ext.grpc, dapr.ext.fastapi, pytest, uvicorn' >/dev/null 2>&1; then
        return 0
    fi
    echo "installing ${REQUIREMENTS[*]} into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${REQUIREMENTS[@]}" || return 1
    echo "${REQUIREMENTS[*]}" > "$STAMP"
}

if ! ensure_venv; then
    echo "Tests/Compat/run.sh: could not prepare the venv $VENV" >&2
    exit 1
fi
if [ ! -x "$MECHA_BIN" ]; then
    echo "Tests/Compat/run.sh: no mecha binary at $MECHA_BIN (swift build --product mecha, or set MECHA_BIN)" >&2
    exit 1
fi

status=0
echo "== check_protos: Protos/ against the dapr ${SDK_VERSION} wheel"
"$VENV/bin/python" Tests/Compat/check_protos.py || status=1

echo "== Python SDK compatibility suite against $MECHA_BIN"
"$VENV/bin/python" -m pytest -q Tests/Compat "$@" || status=1

exit $status
