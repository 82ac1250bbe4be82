#!/bin/sh
# Run every fuzzer in FUZZDIR for SECONDS each, starting from the committed
# seed corpus tests/fuzz/corpus/NAME; new inputs go to a scratch directory,
# crashes to tests/fuzz/crashes/ (turn each into a regression seed); a
# dictionary tests/fuzz/NAME.dict is used when there is one. Each fuzzer
# run is one test; when ASHMEM_CHECK_COUNTS names a file (make check), the
# numbers passed and failed go there.
# Usage: tests/fuzz/run.sh FUZZDIR SECONDS
set -u
dir=$1 secs=$2 status=0 passed=0 failed=0
here=$(dirname "$0")
mkdir -p "$here/crashes"
for f in "$dir"/fuzz_*; do
        [ -x "$f" ] || continue
        name=$(basename "$f")
        work=$(mktemp -d)
        seeds="$here/corpus/$name"
        mkdir -p "$seeds"
        log=$(mktemp)
        set --                  # a dictionary of the input's words, if any
        [ -f "$here/$name.dict" ] && set -- -dict="$here/$name.dict"
        "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
                -artifact_prefix="$here/crashes/$name-" -print_final_stats=1 \
                "$@" "$work" "$seeds" >"$log" 2>&1
        rc=$?
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        if [ $rc -eq 0 ]; then
                passed=$((passed + 1))
                echo "ok   $name: ${runs:-?} executions in ${secs}s"
        else
                failed=$((failed + 1)); status=1
                echo "FAIL $name (exit $rc):"; tail -n 40 "$log"
        fi
        rm -rf "$work" "$log"
done
echo "fuzz: $passed passed, $failed failed"
if [ -n "${ASHMEM_CHECK_COUNTS:-}" ]; then
        echo "$passed $failed" >"$ASHMEM_CHECK_COUNTS" || status=1
fi
exit $status
