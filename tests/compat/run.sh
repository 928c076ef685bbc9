#!/usr/bin/env bash
# Drives a running tuisong server with the real wechatpy SDK (2.0.0a26).
#
#   TUISONG_BIN   the tuisong binary (default: <repo>/target/release/tuisong)
#   COMPAT_VENV   the virtualenv to use/create (default: <repo>/.venv)
#
# Extra arguments go to pytest. Exits with pytest's status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bin="${TUISONG_BIN:-$root/target/release/tuisong}"
case "$bin" in
    /*) ;;
    *) bin="$PWD/$bin" ;;
esac
if [[ ! -x "$bin" ]]; then
    echo "compat: tuisong binary not found or not executable: $bin" >&2
    echo "compat: build it (cargo build --release) or set TUISONG_BIN" >&2
    exit 2
fi
export TUISONG_BIN="$bin"

venv="${COMPAT_VENV:-$root/.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"

# Install only when something is missing or wechatpy is not exactly 2.0.0a26.
if ! "$py" - <<'EOF' >/dev/null 2>&1
import importlib.metadata as m
assert m.version("wechatpy") == "2.0.0a26"
import pytest, requests, wechatpy  # noqa: F401
EOF
then
    "$py" -m pip install -q --disable-pip-version-check --pre "wechatpy==2.0.0a26" pytest requests
fi

cd "$root"
set +e
"$py" -m pytest -q -p no:cacheprovider "$here" "$@"
status=$?
set -e
exit "$status"
