#!/usr/bin/env bash
# devdb.sh: a private PostgreSQL cluster for development and tests, kept in .pgdata/ of the project.
#
#   scripts/devdb.sh url    start it if needed, create the database, print its connection URL
#   scripts/devdb.sh stop   stop it
#
# When DATABASE_URL is set, `url` prints it and starts nothing. The cluster listens only on a
# Unix socket inside its folder (no TCP port to collide with), with trust auth for local use.
# initdb and postgres refuse to run as root, so as root they run as the postgres system user.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dbname=${DEVDB_NAME:-tasker}
port=5432 # names the socket file only; nothing listens on TCP

find_bindir() {
  local d
  for d in "${PG_BINDIR:-}" "$(command -v pg_config >/dev/null 2>&1 && pg_config --bindir || true)" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) $(ls -d /usr/pgsql-*/bin 2>/dev/null | sort -V -r) \
    /opt/homebrew/bin /usr/local/bin /usr/bin; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" -o -x "$d/postmaster" ]; then
      echo "$d"; return 0
    fi
  done
  local initdb; initdb=$(command -v initdb || true)
  if [ -n "$initdb" ]; then dirname "$(readlink -f "$initdb")"; return 0; fi
  return 1
}

# as_pg runs a command as the cluster's owner: the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The cluster lives in .pgdata unless the postgres user cannot reach the project folder (a root-only
# checkout), in which case it lives in a folder of its own under the temp dir, named for the project.
base_dir() {
  local dir="$root/.pgdata"
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "devdb: running as root needs the 'postgres' system user (it comes with the postgresql package)" >&2
      exit 1
    fi
    if ! runuser -u postgres -- test -x "$root"; then
      dir="${TMPDIR:-/tmp}/tasker-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
    fi
  fi
  echo "$dir"
}

start() {
  local bindir base data run log
  if ! bindir=$(find_bindir); then
    cat >&2 <<'MSG'
devdb: no PostgreSQL server found (initdb, pg_ctl, postgres).
Install it, or set DATABASE_URL to a server you have:
  Debian/Ubuntu: apt-get install postgresql
  Fedora/RHEL:   dnf install postgresql-server
  macOS:         brew install postgresql
MSG
    exit 1
  fi
  base=$(base_dir); data="$base/data"; run="$base/run"; log="$base/postgres.log"
  mkdir -p "$base"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$base"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg mkdir -p "$data" "$run"
    as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$base/initdb.log" 2>&1 \
      || { cat "$base/initdb.log" >&2; exit 1; }
  fi
  if ! as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_pg mkdir -p "$run"
    as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 \
      -o "-c listen_addresses='' -k $run -p $port -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { tail -n 20 "$log" >&2; exit 1; }
  fi
  local psql=("$bindir/psql" -X -q -h "$run" -p "$port" -U postgres -d postgres)
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE \"$dbname\"" >/dev/null
  fi
  echo "postgres://postgres@/$dbname?host=$run&port=$port&sslmode=disable"
}

stop() {
  local bindir base
  bindir=$(find_bindir) || exit 0
  base=$(base_dir)
  if [ -f "$base/data/PG_VERSION" ]; then
    as_pg "$bindir/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-url}" in
  url)
    if [ -n "${DATABASE_URL:-}" ]; then echo "$DATABASE_URL"; else start; fi ;;
  stop) stop ;;
  *) echo "usage: $0 [url|stop]" >&2; exit 2 ;;
esac
