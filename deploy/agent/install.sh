#!/bin/sh
# Installs the InfraPilot agent on a Linux server with systemd and Docker:
#
#   curl -fsSL https://infrapilot.example.com/install.sh | sudo sh -s -- \
#       --server https://infrapilot.example.com --token ipe_...
#
# Steps: detect the architecture (amd64, arm64); download the agent
# (--binary-url, default SERVER/downloads/infrapilot-agent-linux-ARCH, or
# SERVER/downloads/VERSION/... with --version) or take a local file
# (--binary); check it against the .sha256 beside it when there is one;
# create the infrapilot-agent system user; install the binary to
# /usr/local/bin; create /var/lib/infrapilot-agent (0700); stop a running
# agent; enroll the machine; install the systemd unit; start it.
#
# Run it again to upgrade or re-enroll: every step is idempotent.
# --dry-run downloads and checks the binary but only prints the steps that
# change the system. The token never appears in the output, and reaches
# `infrapilot-agent enroll` through its environment, not its arguments.
#
# Everything is in functions and main runs on the last line, so a download
# cut short runs nothing.

set -eu

BIN_DIR=/usr/local/bin
STATE_DIR=/var/lib/infrapilot-agent
UNIT_DIR=/etc/systemd/system
SERVICE=infrapilot-agent
AGENT_USER=infrapilot-agent

usage() {
	cat <<'EOF'
Usage: install.sh --server URL --token TOKEN [options]

Installs the InfraPilot agent as a systemd service and enrolls this machine.

  --server URL        the InfraPilot control plane (https://...)
  --token TOKEN       an enrollment token (or $INFRAPILOT_ENROLL_TOKEN)
  --version V         install version V (SERVER/downloads/V/infrapilot-agent-linux-ARCH)
  --binary-url URL    download the agent from URL (a URL.sha256 is checked if present)
  --binary PATH       install this local file instead of downloading (PATH.sha256 checked if present)
  --docker-host HOST  the container engine's API for the agent (DOCKER_HOST), e.g. unix:///run/docker.sock
  --insecure-http     allow plain http:// URLs for hosts other than this machine
  --force             enroll even if this machine is enrolled as another agent or with another server
  --dry-run           download and check, then print the privileged steps without running them
  -h, --help          show this help
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

# run runs a command that changes the system, or prints it under --dry-run.
run() {
	if [ "$DRY_RUN" = 1 ]; then
		printf '+ %s\n' "$*"
	else
		"$@"
	fi
}

# write_file PATH MODE [show] writes standard input to PATH atomically, or
# prints the step under --dry-run (with the content when show is given).
write_file() {
	if [ "$DRY_RUN" = 1 ]; then
		printf '+ write %s (mode %s)\n' "$1" "$2"
		if [ $# -gt 2 ]; then
			sed 's/^/  | /'
		else
			cat >/dev/null
		fi
		return 0
	fi
	cat >"$1.new.$$"
	chmod "$2" "$1.new.$$"
	mv -f "$1.new.$$" "$1"
}

# check_url NAME URL refuses a URL that is not https, except for this
# machine or with --insecure-http: the binary and the token travel on it.
check_url() {
	case $2 in
	https://?*) ;;
	http://127.0.0.1 | http://127.0.0.1[:/]* | http://localhost | http://localhost[:/]* | http://\[::1\]*) ;;
	http://?*)
		[ "$INSECURE" = 1 ] || die "$1 $2 is plain http: use https (or --insecure-http on a network you trust)"
		;;
	*) die "$1 must be an https:// URL, not '$2'" ;;
	esac
}

detect_arch() {
	os=$(uname -s)
	[ "$os" = Linux ] || die "the agent runs on Linux, not $os"
	m=$(uname -m)
	case $m in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) die "unsupported architecture $m: the agent is built for amd64 and arm64" ;;
	esac
}

# fetch URL FILE downloads URL. Redirects may not leave https.
fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --proto-redir '=https' -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		die "curl or wget is needed to download the agent"
	fi
}

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | awk '{print $1}'
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | awk '{print $1}'
	else
		die "sha256sum or shasum is needed to check the agent's checksum"
	fi
}

# verify FILE SUMFILE checks FILE against the first word of SUMFILE (the
# format of sha256sum's output).
verify() {
	want=$(awk 'NR == 1 {print tolower($1)}' "$2")
	case $want in
	*[!0-9a-f]* | '') die "$3 is not a SHA-256 checksum" ;;
	esac
	[ ${#want} -eq 64 ] || die "$3 is not a SHA-256 checksum"
	got=$(sha256 "$1")
	[ "$got" = "$want" ] || die "checksum mismatch: the agent binary has SHA-256 $got, $3 says $want"
	say "Checksum verified ($3)."
}

has_group() {
	if command -v getent >/dev/null 2>&1; then
		getent group "$1" >/dev/null 2>&1
	else
		grep -q "^$1:" /etc/group
	fi
}

parse_args() {
	SERVER=
	TOKEN=${INFRAPILOT_ENROLL_TOKEN:-}
	VERSION=
	BINARY_URL=
	BINARY=
	ENGINE=
	INSECURE=0
	FORCE=0
	DRY_RUN=0
	while [ $# -gt 0 ]; do
		case $1 in
		--dry-run) DRY_RUN=1 && shift && continue ;;
		--insecure-http) INSECURE=1 && shift && continue ;;
		--force) FORCE=1 && shift && continue ;;
		-h | --help) usage && exit 0 ;;
		--*=*)
			opt=${1%%=*}
			val=${1#*=}
			shift
			;;
		--server | --token | --version | --binary-url | --binary | --docker-host)
			[ $# -ge 2 ] || die "$1 needs a value (see --help)"
			opt=$1
			val=$2
			shift 2
			;;
		*) die "unknown argument '$1' (see --help)" ;;
		esac
		case $opt in
		--server) SERVER=$val ;;
		--token) TOKEN=$val ;;
		--version) VERSION=$val ;;
		--binary-url) BINARY_URL=$val ;;
		--binary) BINARY=$val ;;
		--docker-host) ENGINE=$val ;;
		*) die "unknown option $opt (see --help)" ;;
		esac
	done
	[ -n "$SERVER" ] || die "--server is required (see --help)"
	[ -n "$TOKEN" ] || die "--token is required (see --help)"
	SERVER=${SERVER%/}
	SERVER=${SERVER%/api/v1}
	SERVER=${SERVER%/}
	check_url --server "$SERVER"
	case $ENGINE in
	*[[:space:]\"\\]*) die "--docker-host must not contain spaces, quotes or backslashes" ;;
	esac
}

# get_binary leaves the agent in $TMP/infrapilot-agent, checked.
get_binary() {
	if [ -n "$BINARY" ]; then
		[ -f "$BINARY" ] || die "--binary $BINARY: no such file"
		say "Using $BINARY"
		cp "$BINARY" "$TMP/infrapilot-agent"
		if [ -f "$BINARY.sha256" ]; then
			verify "$TMP/infrapilot-agent" "$BINARY.sha256" "$BINARY.sha256"
		fi
	else
		if [ -z "$BINARY_URL" ]; then
			if [ -n "$VERSION" ]; then
				BINARY_URL=$SERVER/downloads/$VERSION/infrapilot-agent-linux-$ARCH
			else
				BINARY_URL=$SERVER/downloads/infrapilot-agent-linux-$ARCH
			fi
		fi
		check_url --binary-url "$BINARY_URL"
		say "Downloading $BINARY_URL"
		fetch "$BINARY_URL" "$TMP/infrapilot-agent" || die "cannot download $BINARY_URL"
		if fetch "$BINARY_URL.sha256" "$TMP/infrapilot-agent.sha256" 2>/dev/null; then
			verify "$TMP/infrapilot-agent" "$TMP/infrapilot-agent.sha256" "$BINARY_URL.sha256"
		else
			warn "no checksum at $BINARY_URL.sha256: the download is not verified"
		fi
	fi
	chmod 0755 "$TMP/infrapilot-agent"
	# Running it proves it is an agent for this machine's architecture.
	if ! AGENT_VERSION=$("$TMP/infrapilot-agent" version 2>&1); then
		die "the agent binary does not run here (is $TMP on a noexec file system? set TMPDIR): $AGENT_VERSION"
	fi
	case $AGENT_VERSION in
	"infrapilot-agent "*) ;;
	*) die "the binary is not the InfraPilot agent (its version says: $AGENT_VERSION)" ;;
	esac
	if [ -n "$VERSION" ]; then
		v=${VERSION#v}
		case $AGENT_VERSION in
		"infrapilot-agent $v "* | "infrapilot-agent v$v "*) ;;
		*) die "asked for version $VERSION, but the binary says: $AGENT_VERSION" ;;
		esac
	fi
	say "Agent: $AGENT_VERSION"
}

install_agent() {
	if ! id -u "$AGENT_USER" >/dev/null 2>&1; then
		nologin=/usr/sbin/nologin
		[ -x "$nologin" ] || nologin=/bin/false
		run useradd --system --user-group --no-create-home --home-dir "$STATE_DIR" --shell "$nologin" "$AGENT_USER"
	fi
	# enroll needs the state directory's lock, which a running agent holds;
	# `enable --now` below starts it again, on the new binary.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$SERVICE" 2>/dev/null; then
		run systemctl stop "$SERVICE"
	fi
	run install -m 0755 "$TMP/infrapilot-agent" "$BIN_DIR/.infrapilot-agent.new"
	run mv -f "$BIN_DIR/.infrapilot-agent.new" "$BIN_DIR/infrapilot-agent"
	run mkdir -p "$STATE_DIR"
	run chown "$AGENT_USER:$AGENT_USER" "$STATE_DIR"
	run chmod 0700 "$STATE_DIR"
}

enroll() {
	set -- enroll --server "$SERVER" --state-dir "$STATE_DIR"
	if [ "$INSECURE" = 1 ]; then set -- "$@" --insecure-http; fi
	if [ "$FORCE" = 1 ]; then set -- "$@" --force; fi
	if [ "$DRY_RUN" = 1 ]; then
		printf '+ INFRAPILOT_ENROLL_TOKEN=<token> %s %s\n' "$BIN_DIR/infrapilot-agent" "$*"
		return 0
	fi
	INFRAPILOT_ENROLL_TOKEN=$TOKEN "$BIN_DIR/infrapilot-agent" "$@" ||
		die "enrollment failed (see above); the agent is installed but not started"
}

install_unit() {
	write_file "$UNIT_DIR/$SERVICE.service" 0644 <<'UNIT'
# The InfraPilot agent's unit, as deploy/agent/install.sh installs it (the
# script carries a copy of deploy/agent/infrapilot-agent.service; a test keeps
# them equal). See docs/agent.md.
[Unit]
Description=InfraPilot agent
# The agent waits for neither: it reports an unreachable engine or hub and
# retries, so it must not fail or stop with them; the ordering only spares
# the first minutes' noise.
After=network-online.target docker.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=/usr/local/bin/infrapilot-agent run --state-dir /var/lib/infrapilot-agent --log-format json
Restart=always
RestartSec=5
# SIGTERM stops it in order (collectors, then the outbox's last forwards).
TimeoutStopSec=30

User=infrapilot-agent
Group=infrapilot-agent
# The Docker socket (root:docker 0660). Access to it is root-equivalent on
# the host, which is why the rest of the unit takes away all it can.
SupplementaryGroups=docker
# Closing an exec session signals the exec'd process by its host PID
# (neither engine can hang it up), which belongs to another user.
AmbientCapabilities=CAP_KILL
CapabilityBoundingSet=CAP_KILL
NoNewPrivileges=yes

# systemd creates the directory 0700 and hands it (and what root's enroll
# wrote in it) to the service's user.
StateDirectory=infrapilot-agent
StateDirectoryMode=0700
UMask=0077
ProtectSystem=strict
ReadWritePaths=/var/lib/infrapilot-agent
# Read-only rather than hidden: a separate /home file system stays visible
# to the host metrics' disk usage.
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
# The engine's socket, the hub, and the kernel's interface list.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
UNIT
	# Local settings go in a drop-in, so that the unit above stays the
	# shipped one; a rerun without them removes it.
	dropin=$UNIT_DIR/$SERVICE.service.d
	conf=
	if [ -n "$ENGINE" ]; then
		conf="Environment=\"DOCKER_HOST=$ENGINE\""
	fi
	if ! has_group docker; then
		warn "there is no docker group: the service runs without it; give the $AGENT_USER user access to the engine's socket (see --docker-host)"
		conf="${conf:+$conf
}SupplementaryGroups="
	fi
	if [ -n "$conf" ]; then
		run mkdir -p "$dropin"
		printf '# Written by install.sh.\n[Service]\n%s\n' "$conf" | write_file "$dropin/install.conf" 0644 show
	elif [ -f "$dropin/install.conf" ]; then
		run rm -f "$dropin/install.conf"
	fi
	run systemctl daemon-reload
	run systemctl enable --now "$SERVICE"
}

main() {
	parse_args "$@"
	if [ "$DRY_RUN" = 0 ]; then
		[ "$(id -u)" = 0 ] || die "run it as root: curl -fsSL .../install.sh | sudo sh -s -- --server ... --token ..."
		[ -d /run/systemd/system ] || die "systemd is not running here: start the agent another way (docs/agent.md)"
	fi
	ARCH=$(detect_arch) || exit 1
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/infrapilot-agent.XXXXXX")
	trap 'rm -rf "$TMP"' EXIT
	trap 'exit 1' INT TERM
	get_binary
	install_agent
	enroll
	install_unit
	if [ "$DRY_RUN" = 1 ]; then
		say "Dry run: nothing was changed."
	else
		say "The agent runs. Check it with: infrapilot-agent status    (logs: journalctl -u $SERVICE)"
	fi
}

main "$@"
