#!/usr/bin/env bash
# Reliability checks that are not plain `cargo test`: fuzzing every boundary with cargo-fuzz.
#
# For each target in fuzz/: replay the committed seed corpus (fuzz/corpus/<target>/), then fuzz
# for FUZZ_SECONDS (default 30) starting from it. New corpus entries go to a scratch directory,
# never into the committed corpus, so the script is idempotent. Exits non-zero on any crash,
# leaving the crashing input under $FUZZ_WORK/artifacts/<target>/.
#
# Env: FUZZ_SECONDS (per target), FUZZ_TARGETS (space-separated subset), FUZZ_TARGET_DIR (cargo
# target dir for the instrumented build, default fuzz/target), FUZZ_WORK (scratch dir),
# FUZZ_SANITIZER (address by default; "none" is faster).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-query_params cursor ingest_json record_decode ops_model otlp}"
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
work="${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/tracestore-fuzz.XXXXXX")}"
sanitizer="${FUZZ_SANITIZER:-address}"

# cargo-fuzz needs nightly flags; this stable toolchain allows them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "reliability: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "reliability: building fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir"

summary=()
for t in $targets; do
    corpus="$root/fuzz/corpus/$t"
    scratch="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    mkdir -p "$scratch" "$artifacts"
    log="$work/$t.log"

    echo "reliability: $t: replaying $(ls "$corpus" | wc -l) committed corpus files"
    cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" "$corpus" -- \
        -runs=0 -artifact_prefix="$artifacts/" >"$work/$t.replay.log" 2>&1 || {
        tail -40 "$work/$t.replay.log"
        echo "reliability: $t: corpus replay FAILED (log: $work/$t.replay.log)"
        exit 1
    }

    echo "reliability: $t: fuzzing for ${seconds}s"
    # The scratch dir comes first: libFuzzer writes new inputs there, and only reads the rest.
    if ! cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" "$scratch" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1; then
        tail -60 "$log"
        echo "reliability: $t: CRASH (input under $artifacts; log: $log)"
        exit 1
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    summary+=("$t: ${execs:-?} executions in ${seconds}s")
done

echo "reliability: fuzzing done (work dir: $work)"
for line in "${summary[@]}"; do
    echo "  $line"
done
