#!/usr/bin/env bash
# Starts (or reuses) the mailpit SMTP sink the test suite sends mail to, and
# prints its addresses on stdout as two shell assignments:
#   INFRAPILOT_TEST_SMTP_ADDR=127.0.0.1:54025
#   INFRAPILOT_TEST_MAILPIT_URL=http://127.0.0.1:54026
# so `eval "$(deploy/test/mailpit.sh start | sed 's/^/export /')"` sets both.
# Idempotent: a running mailpit on the same ports is reused.
#   deploy/test/mailpit.sh start   (default) prints both assignments
#   deploy/test/mailpit.sh smtp    starts it, prints only the SMTP address
#   deploy/test/mailpit.sh api     starts it, prints only the HTTP API URL
#   deploy/test/mailpit.sh stop
# (smtp and api suit a Taskfile `env: {VAR: {sh: …}}` entry.)
# Installs mailpit with `go install github.com/axllent/mailpit@v1.33.1` when
# it is not on PATH or in $(go env GOPATH)/bin.
# Environment: INFRAPILOT_TEST_SMTP_PORT (default 54025),
#              INFRAPILOT_TEST_MAILPIT_PORT (HTTP, default 54026),
#              INFRAPILOT_TEST_MAILPIT_DIR (default ${TMPDIR:-/tmp}/infrapilot-test-mailpit).
set -euo pipefail

version=v1.33.1
smtp_port=${INFRAPILOT_TEST_SMTP_PORT:-54025}
http_port=${INFRAPILOT_TEST_MAILPIT_PORT:-54026}
dir=${INFRAPILOT_TEST_MAILPIT_DIR:-${TMPDIR:-/tmp}/infrapilot-test-mailpit}
smtp_addr="127.0.0.1:${smtp_port}"
http_url="http://127.0.0.1:${http_port}"

mode=${1:-start}
print() {
  case "$mode" in
  smtp) echo "${smtp_addr}" ;;
  api) echo "${http_url}" ;;
  *)
    echo "INFRAPILOT_TEST_SMTP_ADDR=${smtp_addr}"
    echo "INFRAPILOT_TEST_MAILPIT_URL=${http_url}"
    ;;
  esac
}

running() {
  [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

# ready reports whether mailpit's HTTP API answers; bash's /dev/tcp keeps the
# script free of a curl dependency.
ready() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/${http_port}" || exit 1
    printf 'GET /api/v1/info HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    read -r status <&3 || exit 1
    case "$status" in *" 200"*) exit 0 ;; esac
    exit 1
  ) 2>/dev/null
}

case "$mode" in
stop)
  if running; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
  exit 0 ;;
start|smtp|api) ;;
*) echo "usage: $0 [start|smtp|api|stop]" >&2; exit 2 ;;
esac

mkdir -p "$dir"
if running && ready; then
  print
  exit 0
fi

bin=$(command -v mailpit || true)
if [ -z "$bin" ]; then
  gobin=$(go env GOBIN)
  [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
  bin="$gobin/mailpit"
  if [ ! -x "$bin" ]; then
    echo "installing mailpit ${version}…" >&2
    GOWORK=off GOFLAGS= go install "github.com/axllent/mailpit@${version}" >&2
  fi
fi

# A mailpit killed with the machine's previous session leaves its pid file.
rm -f "$dir/pid"
nohup "$bin" --smtp "$smtp_addr" --listen "127.0.0.1:${http_port}" \
  --database "$dir/mailpit.db" --disable-version-check \
  --smtp-auth-accept-any --smtp-auth-allow-insecure \
  >"$dir/mailpit.log" 2>&1 </dev/null &
echo $! >"$dir/pid"

for _ in $(seq 1 100); do
  if ready; then
    print
    exit 0
  fi
  if ! running; then
    cat "$dir/mailpit.log" >&2
    echo "mailpit exited at start" >&2
    exit 1
  fi
  sleep 0.1
done
cat "$dir/mailpit.log" >&2
echo "mailpit did not answer on ${http_url}" >&2
exit 1
