#!/usr/bin/env bash
# schemathesis against the spec `annals serve` serves, every check on,
# loopback only, bounded in examples and time: any failure fails CI.
# Usage: .ci/schemathesis.sh path/to/annals
set -euo pipefail
BIN=$(realpath "$1")
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
"$BIN" demo --out "$DIR/demo.db" >/dev/null
TOKEN=schemathesis-token-0123456789
echo "$TOKEN" > "$DIR/token"
"$BIN" --db "$DIR/demo.db" serve --token-file "$DIR/token" --listen 127.0.0.1:0 > "$DIR/out" &
PID=$!
for _ in $(seq 100); do grep -q "http://" "$DIR/out" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -o 'http://[0-9.:]*' "$DIR/out" | head -1)
cd "$(dirname "$0")"
# /subscribe is a stream that never ends: tests/serve.rs and
# tests/serve_hostile.rs cover it. ASCII strings, so that the spec's
# lengths (bytes on the server) are exact.
PYTHONPATH=. SCHEMATHESIS_HOOKS=schemathesis_hooks timeout 900 schemathesis run "$URL/openapi.json" \
  --checks all \
  --exclude-path /subscribe \
  --header "Authorization: Bearer $TOKEN" \
  --generation-codec ascii \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
  --generation-deterministic \
  --request-timeout 30
