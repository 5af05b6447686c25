#!/usr/bin/env bash
# Installs nginx and pebble (Let's Encrypt's test ACME server) for the proxy
# tests, and prints the variables the tests read, one per line:
#   INFRAPILOT_TEST_NGINX=/usr/sbin/nginx
#   INFRAPILOT_TEST_PEBBLE=/usr/bin/pebble
#   INFRAPILOT_TEST_PEBBLE_CHALLTESTSRV=/usr/bin/pebble-challtestsrv
#   INFRAPILOT_TEST_PEBBLE_CERTS=/tmp/infrapilot-test-acme/certs
# so `export $(deploy/test/acme.sh start | tr '\n' ' ')`.
#   deploy/test/acme.sh start   (default) install when missing, print the variables
#   deploy/test/acme.sh stop    nothing to stop: tests start their own nginx and
#                               pebble processes (each needs its own ports)
# Debian's pebble package lacks pebble's test certificates (the CA that signs
# its HTTPS listener, pebble.minica.pem, and the listener's own pair): they are
# taken from the pebble Go module of the same version through the module proxy.
# Environment: INFRAPILOT_TEST_ACME_DIR (default ${TMPDIR:-/tmp}/infrapilot-test-acme).
set -euo pipefail

dir=${INFRAPILOT_TEST_ACME_DIR:-${TMPDIR:-/tmp}/infrapilot-test-acme}
pebble_module=github.com/letsencrypt/pebble/v2@v2.4.0

install_pkgs() {
  local missing=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v pebble >/dev/null 2>&1 || missing+=(pebble)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} from Debian…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
  { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || { echo "nginx is not installed (and we cannot install it)" >&2; exit 1; }
  command -v pebble >/dev/null 2>&1 || { echo "pebble is not installed (and we cannot install it)" >&2; exit 1; }
}

fetch_certs() {
  [ -f "$dir/certs/pebble.minica.pem" ] && [ -f "$dir/certs/localhost/cert.pem" ] && return 0
  local mod
  mod=$(cd "$(dirname "$0")/../../services" && go mod download -json "$pebble_module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$mod" ] && [ -f "$mod/test/certs/pebble.minica.pem" ] || { echo "cannot fetch pebble's test certificates ($pebble_module)" >&2; exit 1; }
  mkdir -p "$dir/certs/localhost"
  cp "$mod/test/certs/pebble.minica.pem" "$dir/certs/"
  cp "$mod/test/certs/localhost/cert.pem" "$mod/test/certs/localhost/key.pem" "$dir/certs/localhost/"
  chmod -R u+w "$dir/certs"
}

case "${1:-start}" in
start)
  install_pkgs
  fetch_certs
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  echo "INFRAPILOT_TEST_NGINX=$nginx_bin"
  echo "INFRAPILOT_TEST_PEBBLE=$(command -v pebble)"
  echo "INFRAPILOT_TEST_PEBBLE_CHALLTESTSRV=$(command -v pebble-challtestsrv)"
  echo "INFRAPILOT_TEST_PEBBLE_CERTS=$dir/certs"
  ;;
nginx) install_pkgs; command -v nginx || echo /usr/sbin/nginx ;;
pebble) install_pkgs; command -v pebble ;;
challtestsrv) install_pkgs; command -v pebble-challtestsrv ;;
certs) install_pkgs; fetch_certs; echo "$dir/certs" ;;
stop) ;;
*) echo "usage: $0 [start|stop|nginx|pebble|challtestsrv|certs]" >&2; exit 2 ;;
esac
