#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other.
#
#   fuzz/run-all.sh [SECONDS_PER_TARGET]      (default 300)
#
# New inputs found while fuzzing go to target/corpus/<target>/ (ignored by git); after each run,
# the ones that add coverage are merged into the committed corpus/<target>/ (libFuzzer -merge=1),
# which is then capped at MAX_CORPUS_FILES files (hand-written seed-* files first). Crashes are
# saved under artifacts/<target>/ and make the script exit with status 1 after all targets have
# run.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-300}"
# Cap on files kept in the committed corpus/<target>/ (hand-written seed-* files are kept first).
max_files="${MAX_CORPUS_FILES:-100}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi
# libFuzzer and sanitizers need nightly; without a nightly toolchain, unlock stable's.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

# Keeps at most $max_files files in a committed corpus directory, seeds first.
prune() {
    local dir="$1" keep=0 f
    while IFS= read -r f; do
        keep=$((keep + 1))
        if [ "$keep" -gt "$max_files" ]; then rm -f -- "$dir/$f"; fi
    done < <(ls -1 "$dir" | grep '^seed-'; ls -1t "$dir" | grep -v '^seed-' || true)
}

"${fuzz[@]}" build
status=0
for target in $("${fuzz[@]}" list); do
    mkdir -p "target/corpus/$target" "corpus/$target"
    echo "=== $target: ${secs}s"
    if ! "${fuzz[@]}" run "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1; then
        echo "=== $target FAILED: reproducer in artifacts/$target/" >&2
        status=1
    fi
    # Keep what adds coverage, in the committed corpus.
    "${fuzz[@]}" run "$target" "corpus/$target" "target/corpus/$target" -- -merge=1 >/dev/null 2>&1 || true
    prune "corpus/$target"
done
exit "$status"
