#!/usr/bin/env bash
# Runs schemathesis (pinned below) against the /v1 operations of a fresh tuisong server,
# using the server's own description at GET /v1/openapi.json.
#
#   TUISONG_BIN       the tuisong binary (default: <repo>/target/release/tuisong)
#   OPENAPI_VENV      the virtualenv to use/create (default: <repo>/target/openapi-venv)
#   OPENAPI_EXAMPLES  test cases per operation (default: 100; about a minute on a debug build)
#
# The server gets a temp data dir and a free port on 127.0.0.1; the demo app's appid and
# secret are read from its first-start banner, exchanged for an access token, and sent as
# `Authorization: Bearer`; seed.py gives the run real template ids, an openid with
# grants and msgids to draw from. Checks: no 5xx (not_a_server_error) and every answer matches
# its documented schema (response_schema_conformance). Extra arguments go to
# `schemathesis run`. Exits with schemathesis's status (non-zero on any failure).
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bin="${TUISONG_BIN:-$root/target/release/tuisong}"
case "$bin" in
    /*) ;;
    *) bin="$PWD/$bin" ;;
esac
if [[ ! -x "$bin" ]]; then
    echo "openapi: tuisong binary not found or not executable: $bin" >&2
    echo "openapi: build it (cargo build --release -p tuisong) or set TUISONG_BIN" >&2
    exit 2
fi

venv="${OPENAPI_VENV:-$root/target/openapi-venv}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" - "$SCHEMATHESIS_VERSION" <<'EOF' >/dev/null 2>&1
import importlib.metadata as m, sys
assert m.version("schemathesis") == sys.argv[1]
EOF
then
    "$py" -m pip install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tuisong-openapi.XXXXXX")"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"

# Only our flags configure the server: no TUISONG_* from the caller's environment.
env $(env | sed -n 's/^\(TUISONG_[A-Z0-9_]*\)=.*/-u \1/p') \
    "$bin" serve --data-dir "$tmp/data" --listen "127.0.0.1:$port" \
    >"$tmp/stdout" 2>"$tmp/stderr" </dev/null &
pid=$!

# The banner is printed before the server serves; wait for /healthz and the "Try:" line.
for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "openapi: tuisong exited early" >&2
        cat "$tmp/stdout" "$tmp/stderr" >&2
        exit 1
    fi
    if grep -qs '^Try:' "$tmp/stdout" && "$py" - "$base" <<'EOF' 2>/dev/null
import sys, urllib.request
assert urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1).read().strip() == b"ok"
EOF
    then
        break
    fi
    sleep 0.1
done

banner_field() {
    sed -n "s/^[[:space:]]*$1:[[:space:]]*\([^[:space:]]*\)[[:space:]]*$/\1/p" "$tmp/stdout" | head -n 1
}
appid="$(banner_field appid)"
secret="$(banner_field secret)"
if [[ -z "$appid" || -z "$secret" ]]; then
    echo "openapi: no appid/secret in the first-start banner:" >&2
    cat "$tmp/stdout" >&2
    exit 1
fi

# A device user who accepted every demo template, its openid and two messages; the
# config binds them to the generated ids (seed.py).
token="$("$py" "$here/seed.py" "$base" "$appid" "$secret" "$tmp/schemathesis.toml")"

set +e
"$venv/bin/schemathesis" --config-file "$tmp/schemathesis.toml" run "$base/v1/openapi.json" \
    --url "$base" \
    --include-path-regex '^/v1/' \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "${OPENAPI_EXAMPLES:-100}" \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    "$@"
status=$?
set -e
if [[ $status -ne 0 ]]; then
    echo "openapi: schemathesis failed ($status); the server's log:" >&2
    tail -n 40 "$tmp/stderr" >&2
fi
exit "$status"
