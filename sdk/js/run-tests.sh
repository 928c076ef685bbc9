#!/usr/bin/env bash
# The JS device SDK's tests, against the real server binary: $TUISONG_BIN, default
# target/debug/tuisong of this checkout (build it first: cargo build -p tuisong). The
# tests skip with a printed reason when the binary is missing, unless TUISONG_TEST_SDK=1.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
exec node --test test/*.test.js
