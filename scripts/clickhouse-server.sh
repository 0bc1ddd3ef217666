#!/usr/bin/env bash
# Starts one ClickHouse server on loopback with its whole config, data and logs in DIR, and
# waits until it answers. Used by scripts/clickhouse-dev.sh and by CI.
#
#   scripts/clickhouse-server.sh DIR HTTP_PORT TCP_PORT [CLUSTER_NAME TCP_PORT_1 TCP_PORT_2 ...]
#
# With a cluster name, the config declares that cluster: one shard per TCP port listed, all on
# 127.0.0.1 (the engine's two-shard test). Prints the server's PID file path. Needs the
# `clickhouse-server` binary (Debian: `apt-get install clickhouse-server`).
set -euo pipefail
dir=$1; http=$2; tcp=$3; shift 3
cluster=""
if [ $# -gt 0 ]; then
  cluster=$1; shift
fi
bin=$(command -v clickhouse-server || true)
if [ -z "$bin" ]; then
  echo "clickhouse-server is not installed (Debian: apt-get install clickhouse-server)" >&2
  exit 1
fi
mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
dir=$(cd "$dir" && pwd)

remote=""
if [ -n "$cluster" ]; then
  shards=""
  for port in "$@"; do
    shards="$shards<shard><replica><host>127.0.0.1</host><port>$port</port></replica></shard>"
  done
  remote="<remote_servers><$cluster>$shards</$cluster></remote_servers>"
fi

cat > "$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
XML
cat > "$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log>
    <errorlog>$dir/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  $remote
</yandex>
XML

if curl -sf "http://127.0.0.1:$http/ping" >/dev/null 2>&1; then
  echo "clickhouse-server: something already answers on port $http" >&2
  exit 1
fi
setsid "$bin" --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 < /dev/null &
echo $! > "$dir/pid"
for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$http/ping" >/dev/null 2>&1; then
    echo "$dir/pid"
    exit 0
  fi
  sleep 0.5
done
echo "clickhouse-server did not answer on port $http within 60 s; see $dir/log" >&2
tail -20 "$dir/log/error.log" "$dir/log/stdout.log" >&2 || true
exit 1
