#!/usr/bin/env bash
# Starts (or reuses) the throwaway ClickHouse the test suite runs against and
# prints its native-protocol URL on stdout. Idempotent: a running server is
# reused. Debian ships only ClickHouse 18.16; the code keeps to the schema
# subset that works there (see /work/shared/design/INFRA.md and
# services/audit/internal/clickhouse).
#   deploy/test/clickhouse.sh start   (default)
#   deploy/test/clickhouse.sh stop
# Environment: INFRAPILOT_TEST_CH_PORT      (native, default 59000),
#              INFRAPILOT_TEST_CH_HTTP_PORT (default 58123),
#              INFRAPILOT_TEST_CH_DIR       (default ${TMPDIR:-/tmp}/infrapilot-test-ch).
# Use: export INFRAPILOT_TEST_CLICKHOUSE_URL=$(deploy/test/clickhouse.sh start)
set -euo pipefail

port=${INFRAPILOT_TEST_CH_PORT:-59000}
http_port=${INFRAPILOT_TEST_CH_HTTP_PORT:-58123}
dir=${INFRAPILOT_TEST_CH_DIR:-${TMPDIR:-/tmp}/infrapilot-test-ch}
url="clickhouse://default@127.0.0.1:${port}/default"

ping_server() {
  clickhouse-client --host 127.0.0.1 --port "$port" -q 'SELECT 1' >/dev/null 2>&1
}

case "${1:-start}" in
stop)
  if [ -f "$dir/server.pid" ]; then
    pid=$(cat "$dir/server.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/server.pid"
  fi
  exit 0 ;;
start) ;;
*) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

if ! command -v clickhouse-server >/dev/null 2>&1 || ! command -v clickhouse-client >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing clickhouse-server from Debian…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >&2
  fi
  command -v clickhouse-server >/dev/null 2>&1 || { echo "clickhouse-server not found: install it (apt-get install clickhouse-server clickhouse-client)" >&2; exit 1; }
fi

if ping_server; then
  echo "$url"
  exit 0
fi

mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
# Debian's users.xml (the default user, no password, loopback only here
# because the server listens on 127.0.0.1 alone).
if [ -f /etc/clickhouse-server/users.xml ]; then
  cp /etc/clickhouse-server/users.xml "$dir/users.xml"
else
  cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>10000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
fi
cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$dir/log/server.log</log>
    <errorlog>$dir/log/error.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <http_port>$http_port</http_port>
  <tcp_port>$port</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>512</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
XML

# A server killed with the machine's previous session leaves its pid file.
if [ -f "$dir/server.pid" ] && ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
  rm -f "$dir/server.pid"
fi
if [ ! -f "$dir/server.pid" ]; then
  # setsid: the server outlives this script and the shell that ran it.
  setsid clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 < /dev/null &
  echo $! >"$dir/server.pid"
fi
for _ in $(seq 1 300); do
  if ping_server; then
    echo "$url"
    exit 0
  fi
  if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then break; fi
  sleep 0.1
done
echo "clickhouse-server did not become ready; logs in $dir/log" >&2
tail -n 30 "$dir/log/stdout.log" "$dir/log/error.log" >&2 2>/dev/null || true
exit 1
