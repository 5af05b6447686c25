#!/usr/bin/env bash
# Starts (or reuses) a private podman engine whose Docker-compatible API the
# agent's tests use, and prints the DOCKER_HOST value on stdout:
#   unix:///tmp/infrapilot-test-podman/podman.sock
# so `export INFRAPILOT_TEST_DOCKER_HOST=$(deploy/test/podman.sh start)`.
#   deploy/test/podman.sh start   (default)
#   deploy/test/podman.sh stop    removes every container, stops the service
#   deploy/test/podman.sh env     prints the CONTAINERS_* variables to run
#                                 the podman CLI against the same store
# Idempotent: a running service answering on the socket is reused, and the
# local images are built once.
#
# What it sets up (docs/agent.md, "Testing against podman"):
#   - podman, runc, fuse-overlayfs, slirp4netns, uidmap and busybox-static
#     from Debian when podman is missing and we are root;
#   - a private containers.conf (runc: crun refuses hybrid cgroups; cgroupfs
#     and file events: no systemd; default ulimits the sandbox allows) and
#     storage.conf (overlay, private graphroot/runroot) under the directory;
#   - localhost/busybox:latest, built from busybox-static with `podman
#     import` (no registry is reachable);
#   - `podman system service --time=0 unix://DIR/podman.sock`.
# Environment: INFRAPILOT_TEST_PODMAN_DIR (default ${TMPDIR:-/tmp}/infrapilot-test-podman).
set -euo pipefail

dir=${INFRAPILOT_TEST_PODMAN_DIR:-${TMPDIR:-/tmp}/infrapilot-test-podman}
sock="$dir/podman.sock"
docker_host="unix://$sock"
image=localhost/busybox:latest

export CONTAINERS_CONF="$dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$dir/storage.conf"

running() {
  [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null
}

# ready reports whether the API answers /_ping on the socket.
ready() {
  [ -S "$sock" ] || return 1
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1
  else
    podman --url "$docker_host" info >/dev/null 2>&1
  fi
}

install_podman() {
  command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && [ -x /bin/busybox ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing podman from Debian…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      podman runc fuse-overlayfs slirp4netns uidmap busybox-static >&2
  fi
  command -v podman >/dev/null 2>&1 || { echo "podman is not installed (and we cannot install it)" >&2; exit 1; }
}

write_config() {
  mkdir -p "$dir/graph" "$dir/run" "$dir/tmp" "$dir/volumes"
  local nofile
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  cat >"$CONTAINERS_CONF" <<EOF
# Written by deploy/test/podman.sh.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"
volume_path = "$dir/volumes"
EOF
  cat >"$CONTAINERS_STORAGE_CONF" <<EOF
# Written by deploy/test/podman.sh.
[storage]
driver = "overlay"
graphroot = "$dir/graph"
runroot = "$dir/run"
EOF
}

build_busybox() {
  podman image exists "$image" 2>/dev/null && return 0
  echo "building $image from /bin/busybox…" >&2
  local root="$dir/busybox-rootfs"
  rm -rf "$root"
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -cf "$dir/busybox.tar" .
  podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
    "$dir/busybox.tar" "$image" >&2
  rm -rf "$root" "$dir/busybox.tar"
}

case "${1:-start}" in
env)
  echo "CONTAINERS_CONF=$CONTAINERS_CONF"
  echo "CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
  exit 0 ;;
stop)
  if [ -f "$CONTAINERS_CONF" ]; then
    podman rm -af -t 0 >/dev/null 2>&1 || true
  fi
  if running; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
  exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop|env]" >&2; exit 2 ;;
esac

install_podman
mkdir -p "$dir"
chmod 700 "$dir"
write_config
build_busybox

if running && ready; then
  echo "$docker_host"
  exit 0
fi

# A service killed with the machine's previous session leaves its pid file
# and socket behind.
if running; then
  kill "$(cat "$dir/pid")" 2>/dev/null || true
fi
rm -f "$dir/pid" "$sock"
nohup podman system service --time=0 "$docker_host" \
  >"$dir/service.log" 2>&1 </dev/null &
echo $! >"$dir/pid"

for _ in $(seq 1 100); do
  if ready; then
    echo "$docker_host"
    exit 0
  fi
  if ! running; then
    cat "$dir/service.log" >&2
    echo "podman system service exited at start" >&2
    exit 1
  fi
  sleep 0.1
done
cat "$dir/service.log" >&2
echo "podman did not answer on $sock" >&2
exit 1
