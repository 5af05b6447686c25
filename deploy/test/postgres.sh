#!/usr/bin/env bash
# Starts (or reuses) the throwaway PostgreSQL the test suite runs against and
# prints its superuser URL on stdout. Idempotent: a running server is reused.
#   deploy/test/postgres.sh start   (default)
#   deploy/test/postgres.sh stop
# Environment: INFRAPILOT_TEST_PG_PORT (default 55432),
#              INFRAPILOT_TEST_PG_DIR  (default ${TMPDIR:-/tmp}/infrapilot-test-pg).
set -euo pipefail

port=${INFRAPILOT_TEST_PG_PORT:-55432}
dir=${INFRAPILOT_TEST_PG_DIR:-${TMPDIR:-/tmp}/infrapilot-test-pg}
url="postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable"

find_bin() {
  if [ -n "${INFRAPILOT_PG_BIN:-}" ]; then echo "$INFRAPILOT_PG_BIN"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
}

bin=$(find_bin)
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing postgresql from Debian…" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(find_bin)
  fi
  [ -n "$bin" ] || { echo "no PostgreSQL server binaries found: install postgresql or set INFRAPILOT_PG_BIN" >&2; exit 1; }
fi

# initdb refuses to run as root: run the server as the postgres user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
stop)
  [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

if [ "$(id -u)" = 0 ]; then
  install -d -o postgres -g postgres -m 700 "$dir"
else
  install -d -m 700 "$dir"
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi
if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  # A server killed with the machine's previous session leaves its pid file;
  # pg_ctl says nothing runs there, so the file is stale.
  rm -f "$dir/data/postmaster.pid"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
fi
echo "$url"
