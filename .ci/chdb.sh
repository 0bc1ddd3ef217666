#!/usr/bin/env bash
# Installs chdb (ClickHouse embedded in Python, a current release) into a venv at
# target/chdb-venv, for tests/chdb_modern.rs, which runs the ClickHouse engine's SQL on it
# through tests/chdb/check.py. The versions are pinned whole in tests/chdb/requirements.txt.
# Idempotent: skipped when the venv was made from the same requirements. Progress goes to
# stderr; stdout is only the env var the test reads, for `eval "$(bash .ci/chdb.sh)"`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

requirements=$root/tests/chdb/requirements.txt
venv=$root/target/chdb-venv
stamp=$venv/.installed
want=$(cat "$requirements")
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "chdb: python venv up to date ($venv)" >&2
else
  python=${PYTHON:-python3}
  echo "chdb: creating $venv with $($python --version 2>&1)" >&2
  mkdir -p "$root/target"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  echo "chdb: pip install -r $requirements: $(grep -v '^#' "$requirements" | tr '\n' ' ')" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  printf '%s\n' "$want" >"$stamp"
fi
echo "chdb: $("$venv/bin/python" -c 'import chdb; print("chdb", chdb.__version__, "engine", chdb.engine_version)')" >&2

echo "export TRACESTORE_CHDB_PYTHON=$venv/bin/python"
