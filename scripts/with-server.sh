#!/usr/bin/env bash
# with-server.sh COMMAND...: builds, migrates and starts the server on a free loopback port, runs
# COMMAND with TASKER_URL set to it, then stops the server (make example-ts, make examples-go).
# The database is DATABASE_URL, or the private PostgreSQL of scripts/devdb.sh (its own database,
# tasker_example). Webhooks are on, with loopback receivers allowed, as the examples need.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}

$GO build -o bin/tasker ./cmd/server
url=$(DEVDB_NAME=tasker_example scripts/devdb.sh url)
log=$(mktemp)
pid=
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -f "$log"' EXIT

DATABASE_URL="$url" bin/tasker migrate >/dev/null
DATABASE_URL="$url" LISTEN_ADDR=127.0.0.1:0 WEBHOOK_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
  WEBHOOK_ALLOW_PRIVATE=true WEBHOOK_RETRY_BASE=1s ARGON2_MEMORY_KIB=8192 ARGON2_TIME=1 \
  bin/tasker serve >"$log" 2>&1 &
pid=$!
base=""
for _ in $(seq 1 100); do
  base=$(sed -n 's/.*"msg":"listening","api":"\(http:[^"]*\)\/v1".*/\1/p' "$log" | head -1)
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "the server exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { cat "$log" >&2; echo "the server did not start" >&2; exit 1; }

if ! TASKER_URL="$base" "$@"; then
  echo "--- the server's log" >&2
  tail -50 "$log" >&2
  exit 1
fi
