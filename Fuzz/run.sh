#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan and runs each for a bounded time.
#
#   Fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 seconds, all four targets)
#
# Environment: FUZZ_CONFIG (debug, the default, or release: optimised + ASan, faster),
#              FUZZ_JOBS (parallel libFuzzer workers per target, default 1),
#              FUZZ_ARGS (extra libFuzzer flags), FUZZ_KEEP=1 (keep the working directory).
# Each target starts from a copy of Corpus/<Target>/ plus Regressions/<Target>/ in a temp
# directory, so the repository is never written to. A crash, leak, timeout or OOM makes the
# script exit non-zero; the reproducer is copied to Fuzz/artifacts/ (git-ignored): minimise it
# with `<binary> -minimize_crash=1 -runs=10000 <file>`, then commit it under Regressions/<Target>/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-60}"
shift || true
all_targets=(FuzzFilterParser FuzzFileReaders FuzzRecordDecoders FuzzOperations)
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
scratch="$here/.build/sanitized"

config="${FUZZ_CONFIG:-debug}"
build=(swift build -c "$config" --scratch-path "$scratch" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
echo "== building fuzz targets ($config, -sanitize=fuzzer,address)"
# (gold warns about every ASan-internal symbol it cannot export; that noise is dropped.)
(cd "$here" && "${build[@]}" 2>&1) | { grep -v "Cannot export local symbol" || true; }
[[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "fuzz build failed" >&2; exit 2; }
bin="$(cd "$here" && "${build[@]}" --show-bin-path)"

work="$(mktemp -d "${TMPDIR:-/tmp}/sextant-fuzz.XXXXXX")"
if [[ "${FUZZ_KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi

failed=()
summary=()
for t in "${targets[@]}"; do
    exe="$bin/$t"
    [[ -x "$exe" ]] || { echo "no such fuzz target: $t" >&2; exit 2; }
    corpus="$work/$t/corpus"
    mkdir -p "$corpus" "$work/$t/artifacts"
    for d in "$here/Corpus/$t" "$here/Regressions/$t"; do
        # (open-* regressions are known, unfixed failures: seeding with them would stop at once.)
        [[ -d "$d" ]] && find "$d" -maxdepth 1 -type f ! -name 'README*' ! -name 'open-*' -exec cp {} "$corpus/" \;
    done
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
          -artifact_prefix="$work/$t/artifacts/")
    [[ -f "$here/$t.dict" ]] && args+=(-dict="$here/$t.dict")
    jobs="${FUZZ_JOBS:-1}"
    [[ "$jobs" -gt 1 ]] && args+=(-jobs="$jobs" -workers="$jobs")
    # shellcheck disable=SC2206
    extra=(${FUZZ_ARGS:-})
    echo "== $t for ${seconds}s"
    log="$work/$t/log"
    status=0
    (cd "$work/$t" && "$exe" "${args[@]}" "${extra[@]}" "$corpus") >"$log" 2>&1 || status=$?
    execs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)"
    if [[ -z "$execs" ]]; then execs="$(grep -Eo '^#[0-9]+' "$log" | tr -d '#' | tail -1 || true)"; fi
    execs="${execs:-0}"
    rate=$(( execs / (seconds > 0 ? seconds : 1) ))
    if [[ $status -ne 0 ]] || ls "$work/$t/artifacts/"* >/dev/null 2>&1; then
        echo "!! $t FAILED (exit $status) after $execs executions"
        grep -E 'ERROR: |Fatal error|invariant violated|SUMMARY' "$log" | head -20 || true
        mkdir -p "$here/artifacts/$t"
        cp "$work/$t/artifacts/"* "$here/artifacts/$t/" 2>/dev/null || true
        cp "$log" "$here/artifacts/$t/log"
        echo "   reproducer and log: $here/artifacts/$t/"
        failed+=("$t")
        summary+=("$(printf '%-20s FAILED  %10s execs  ~%s/s' "$t" "$execs" "$rate")")
    else
        summary+=("$(printf '%-20s ok      %10s execs  ~%s/s  (corpus %s files)' "$t" "$execs" "$rate" "$(ls "$corpus" | wc -l)")")
    fi
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
