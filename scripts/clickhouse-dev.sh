#!/usr/bin/env bash
# A local ClickHouse-backed tracestore server in one command:
#
#   scripts/clickhouse-dev.sh
#
# Installs Debian's clickhouse-server if it is missing (needs root; otherwise it says what to
# run), starts it on 127.0.0.1:8123 with its config and data under target/clickhouse-dev (or
# uses the ClickHouse already answering there), then runs
# `tracestore serve --engine clickhouse --demo`, which creates the `tracestore` database, loads
# the demo traces and prints curl commands that work as printed. Ctrl-C stops both.
# Environment: CLICKHOUSE_HTTP_PORT (8123), CLICKHOUSE_TCP_PORT (9000), ADDR (127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
http=${CLICKHOUSE_HTTP_PORT:-8123}
tcp=${CLICKHOUSE_TCP_PORT:-9000}
addr=${ADDR:-127.0.0.1:8080}
dir=$PWD/target/clickhouse-dev

if ! command -v clickhouse-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's clickhouse-server" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clickhouse-server >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clickhouse-server >&2; }
  else
    echo "clickhouse-server is not installed: run 'sudo apt-get install clickhouse-server', then this script again" >&2
    exit 1
  fi
fi

started=""
if curl -sf "http://127.0.0.1:$http/ping" >/dev/null 2>&1; then
  echo "using the ClickHouse already answering on port $http" >&2
else
  scripts/clickhouse-server.sh "$dir" "$http" "$tcp" >/dev/null
  started=$dir/pid
  echo "ClickHouse $(curl -s "http://127.0.0.1:$http/" --data-binary 'SELECT version()') on 127.0.0.1:$http (data in $dir)" >&2
fi
stop() {
  if [ -n "$started" ] && [ -f "$started" ]; then
    kill "$(cat "$started")" 2>/dev/null || true
  fi
}
trap stop EXIT INT TERM

cargo run --release -p tracestore-server -- serve --engine clickhouse \
  --clickhouse-url "http://127.0.0.1:$http" --addr "$addr" --demo
