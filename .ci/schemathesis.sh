#!/usr/bin/env bash
# API fuzzing: schemathesis against the running server's own /openapi.json.
#
# 1. Installs the pinned schemathesis (server/tests/schemathesis/requirements.txt) into its own
#    virtualenv, reused across runs while the pins are unchanged.
# 2. Builds the `tracestore` binary (cargo profile `test` by default: the workspace's test
#    profile, opt-level 1, so the demo loads in about a second and the build shares most of its
#    dependencies with `cargo test`), starts `tracestore serve --demo` on a free loopback port
#    over a fresh database in a scratch directory, reads the demo key it prints, waits for
#    /healthz.
# 3. Runs `st run` with that key against http://127.0.0.1:PORT/openapi.json: every phase
#    (examples, coverage, fuzzing, stateful), every check except the two that test how precise
#    the document's constraints are (positive_data_acceptance, negative_data_rejection: the
#    document cannot express "a cursor this store issued" or "endDate >= startDate"). So every
#    response must be a documented status with a documented body, headers and content type,
#    never a 5xx; a DELETEd trace must be gone; a request without the key must be a 401.
#    server/tests/schemathesis/hooks.py mixes real demo trace ids and real cursors into the
#    generated requests so that the 200 paths of /api/v1/traces/{id} and of cursor
#    continuation are exercised too.
# 4. Prints the number of operations and requests (from the HAR report), the statuses seen,
#    and fails if schemathesis failed, if the server logged any 5xx, or if it died.
#
# Exits non-zero on any failure and keeps the scratch directory (server log, schemathesis
# output, HAR and JUnit reports) for inspection; stops the server on every exit.
#
# Env:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 100: about 20 s)
#   SCHEMATHESIS_MAX_TIME      optional time budget in seconds; fuzzing repeats until it is spent
#   SCHEMATHESIS_SEED          Hypothesis seed (default fixed, so CI is reproducible; "random"
#                              for a new one each run, printed in the output)
#   SCHEMATHESIS_WORKERS       concurrent schemathesis workers (default 1; 2 crashed schemathesis
#                              itself with a Python AST recursion error)
#   SCHEMATHESIS_SCHEMA        schema to test instead of the server's /openapi.json: a file path
#                              or URL (to try a document change before rebuilding the server)
#   SCHEMATHESIS_CARGO_PROFILE cargo profile for the server build (default test; release works)
#   SCHEMATHESIS_VENV          virtualenv location (default ~/.cache/tracestore/schemathesis)
#   SCHEMATHESIS_WORK          scratch directory (default: a new mktemp -d)
#   SCHEMATHESIS_DEMO_TRACES   demo dataset size (default 20000, the demo's own default)
# CARGO_TARGET_DIR is honoured.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/server/tests/schemathesis"
requirements="$here/requirements.txt"
hooks="$here/hooks.py"

max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
max_time="${SCHEMATHESIS_MAX_TIME:-}"
seed="${SCHEMATHESIS_SEED:-20260314}"
workers="${SCHEMATHESIS_WORKERS:-1}"
profile="${SCHEMATHESIS_CARGO_PROFILE:-test}"
demo_traces="${SCHEMATHESIS_DEMO_TRACES:-20000}"
venv="${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tracestore/schemathesis}"
work="${SCHEMATHESIS_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/tracestore-schemathesis.XXXXXX")}"
mkdir -p "$work"

say() { echo "schemathesis: $*"; }
fail() {
    echo "schemathesis: FAILED: $*" >&2
    exit 1
}

server_pid=""
ok=0
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$ok" = 1 ] && [ -z "${SCHEMATHESIS_WORK:-}" ]; then
        rm -rf "$work"
    elif [ "$ok" != 1 ]; then
        echo "schemathesis: scratch directory kept: $work" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. schemathesis -------------------------------------------------------------------------

python="$(command -v python3 || true)"
if [ -z "$python" ] && command -v apt-get >/dev/null 2>&1; then
    say "installing python3 (apt)"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    python="$(command -v python3)"
fi
[ -n "$python" ] || fail "python3 is needed"

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/st" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing schemathesis into $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv" 2>"$work/venv.err"; then
        # Debian's python3 ships venv (ensurepip) separately.
        if command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$venv"
            "$python" -m venv "$venv"
        else
            cat "$work/venv.err" >&2
            fail "python3 -m venv failed"
        fi
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi
st="$venv/bin/st"
say "$("$st" --version)"

# --- 2. the server ---------------------------------------------------------------------------

say "building tracestore (cargo profile: $profile)"
cargo build --profile "$profile" -p tracestore-server --bin tracestore \
    --message-format=json-render-diagnostics >"$work/build.json"
bin="$("$python" - "$work/build.json" <<'EOF'
import json, sys
exe = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tracestore" \
            and m.get("executable"):
        exe = m["executable"]
print(exe or "")
EOF
)"
[ -x "$bin" ] || fail "could not find the built tracestore binary"

"$bin" serve --demo --demo-traces "$demo_traces" --db "$work/db.redb" \
    --addr 127.0.0.1:0 --rate-limit 1000000 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

key="" port=""
for _ in $(seq 1 1800); do
    kill -0 "$server_pid" 2>/dev/null || {
        cat "$work/server.log" >&2
        fail "the server exited during startup"
    }
    key="$(sed -n 's/^Demo API key for project "demo"[^:]*: \([^ ]*\)$/\1/p' "$work/server.out")"
    port="$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$work/server.out" | head -1 | sed 's/.*:\([0-9]*\)\//\1/' || true)"
    [ -n "$key" ] && [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$key" ] && [ -n "$port" ] || fail "no demo key or port in the server's output after 180 s"
base="http://127.0.0.1:$port"

"$python" - "$base/healthz" <<'EOF' || fail "/healthz did not answer"
import json, sys, time, urllib.request
for _ in range(300):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
            if json.load(r)["data"]["status"] == "ok":
                sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(1)
EOF
say "server up at $base (pid $server_pid, demo traces: $demo_traces)"

# --- 3. schemathesis run ---------------------------------------------------------------------

schema="${SCHEMATHESIS_SCHEMA:-$base/openapi.json}"
args=(run "$schema" --url "$base/"
    -H "Authorization: Bearer $key"
    --checks all
    --exclude-checks positive_data_acceptance,negative_data_rejection
    --max-examples "$max_examples"
    --workers "$workers"
    --request-timeout 30
    --generation-database none
    --no-color
    --report har,junit
    --report-har-path "$work/requests.har"
    --report-junit-path "$work/junit.xml")
[ "$seed" = random ] || args+=(--seed "$seed")
[ -z "$max_time" ] || args+=(--max-time "$max_time")

say "st ${args[*]/Bearer */Bearer ***}"
started=$(date +%s)
set +e
(cd "$work" && SCHEMATHESIS_HOOKS="$hooks" TRACESTORE_URL="$base" TRACESTORE_KEY="$key" \
    "$st" "${args[@]}") >"$work/st.log" 2>&1
st_rc=$?
set -e
elapsed=$(($(date +%s) - started))
# Reproduction commands can hold 70 KB URLs: cut long lines (the full text is in st.log).
cut -c1-1500 "$work/st.log"

# --- 4. figures and verdict ------------------------------------------------------------------

"$python" - "$work/requests.har" "$elapsed" <<'EOF' || true
import collections, json, re, sys
entries = json.load(open(sys.argv[1]))["log"]["entries"]
by_op = collections.defaultdict(collections.Counter)
for e in entries:
    path = re.sub(r"^https?://[^/]+", "", e["request"]["url"]).split("?")[0]
    path = re.sub(r"^/api/v1/traces/.+$", "/api/v1/traces/{id}", path)
    by_op[e["request"]["method"] + " " + path][e["response"]["status"]] += 1
print(f"schemathesis: {len(entries)} requests to {len(by_op)} method+path pairs in {sys.argv[2]} s")
for op in sorted(by_op):
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(by_op[op].items()))
    print(f"  {op}: {sum(by_op[op].values())} ({statuses})")
EOF

served=$(grep -c 'request method=' "$work/server.log" || true)
errors=$(grep -E 'request method=.* status=5[0-9][0-9]' "$work/server.log" || true)
say "the server logged $served requests"
status=0
if [ -n "$errors" ]; then
    echo "$errors" | head -20 >&2
    echo "schemathesis: the server answered $(echo "$errors" | wc -l) request(s) with a 5xx" >&2
    status=1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -20 "$work/server.log" >&2
    echo "schemathesis: the server died during the run" >&2
    status=1
fi
if [ "$st_rc" != 0 ]; then
    echo "schemathesis: st run failed (exit $st_rc); full output: $work/st.log" >&2
    status=1
fi
[ "$status" = 0 ] || exit 1
say "passed (max examples $max_examples, seed $seed, ${elapsed}s)"
ok=1
