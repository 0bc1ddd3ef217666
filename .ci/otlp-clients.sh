#!/usr/bin/env bash
# Installs the real OTLP clients that server/tests/otlp_clients.rs drives, into target/ only:
#   - a Python venv at target/otlp-venv with the OpenTelemetry SDK, its OTLP/HTTP (protobuf)
#     exporter, OpenInference's OpenAI instrumentation and the openai client;
#   - node modules at target/otlp-node with the OTLP/HTTP (JSON) trace exporter and the SDK.
# Idempotent: a part already installed at the pinned versions is skipped. Prints the env vars
# the tests read; export them before `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Tested together (Python 3.11, Node 20). The Python side is pinned whole, dependencies too, in
# requirements.txt: opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http 1.45.2,
# openinference-instrumentation-openai 0.1.66, openai 2.54.0.
requirements=$root/server/tests/otlp_clients/requirements.txt
node_pkgs=(
  "@opentelemetry/api@1.9.1"
  "@opentelemetry/sdk-trace-base@2.12.1"
  "@opentelemetry/resources@2.12.1"
  "@opentelemetry/exporter-trace-otlp-http@0.223.1"
)

venv=$root/target/otlp-venv
py_stamp=$venv/.installed
py_want=$(cat "$requirements")
if [ -x "$venv/bin/python" ] && [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ]; then
  echo "otlp-clients: python venv up to date ($venv)"
else
  python=${PYTHON:-python3}
  echo "otlp-clients: creating $venv with $($python --version 2>&1)"
  mkdir -p "$root/target"
  "$python" -m venv "$venv"
  echo "otlp-clients: pip install -r $requirements:"
  grep -v '^#' "$requirements" | tr '\n' ' '
  echo
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  printf '%s\n' "$py_want" >"$py_stamp"
fi

node_dir=$root/target/otlp-node
node_stamp=$node_dir/.installed
node_want=$(printf '%s\n' "${node_pkgs[@]}")
if [ -d "$node_dir/node_modules" ] && [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ]; then
  echo "otlp-clients: node modules up to date ($node_dir)"
else
  echo "otlp-clients: npm install (node $(node --version)) ${node_pkgs[*]}"
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"name":"tracestore-otlp-clients","private":true}' >"$node_dir/package.json"
  (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error --save-exact "${node_pkgs[@]}")
  printf '%s\n' "$node_want" >"$node_stamp"
fi

echo "otlp-clients: set these for cargo test (server/tests/otlp_clients.rs):"
echo "TRACESTORE_OTLP_PYTHON=$venv/bin/python"
echo "TRACESTORE_OTLP_NODE_MODULES=$node_dir/node_modules"
