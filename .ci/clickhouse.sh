#!/usr/bin/env bash
# Installs Debian's clickhouse-server when it is missing and starts, on loopback, with config
# and data under target/clickhouse-ci:
#   - one server (HTTP 18123) for the engine's tests and the HTTP suite on ClickHouse;
#   - two servers (HTTP 18124 and 18125) declaring cluster `ts_two_shards`, one shard each.
# Prints the env vars the tests read; `.ci/run` evals them. Servers a previous run left are
# stopped first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/target/clickhouse-ci

if ! command -v clickhouse-server >/dev/null 2>&1; then
  echo "clickhouse: installing Debian's clickhouse-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends clickhouse-server >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends clickhouse-server >&2
  fi
fi

for d in "$root"/*/; do
  if [ -f "$d/pid" ]; then
    kill "$(cat "$d/pid")" 2>/dev/null || true
  fi
done
sleep 1
rm -rf "$root"
mkdir -p "$root"

scripts/clickhouse-server.sh "$root/single" 18123 19000 >&2
scripts/clickhouse-server.sh "$root/shard1" 18124 19001 ts_two_shards 19001 19002 >&2
scripts/clickhouse-server.sh "$root/shard2" 18125 19002 ts_two_shards 19001 19002 >&2
echo "clickhouse: $(curl -s http://127.0.0.1:18123/ --data-binary 'SELECT version()') on 18123, two shards on 18124 and 18125" >&2

echo "export TRACESTORE_CLICKHOUSE_URL=http://127.0.0.1:18123"
echo "export TRACESTORE_CLICKHOUSE_SHARDS=http://127.0.0.1:18124,http://127.0.0.1:18125"
echo "export TRACESTORE_CLICKHOUSE_CLUSTER=ts_two_shards"
echo "export TRACESTORE_REQUIRE_CLICKHOUSE=1"
