#!/bin/sh
# The driver of `make check`: run each step, go on after one that fails,
# and end with the one line
#
#     check: N passed, N failed
#
# that sums the tests every step ran (the only line that begins with
# "check:"); exit non-zero if anything failed.
#
# Usage: mk/check.sh COUNTS_DIR STEP...
#
# A step is a make target, run as `$MAKE STEP` (the make that runs this
# script, with its flags and variables) with ASHMEM_CHECK_COUNTS set to
# COUNTS_DIR/STEP: the step writes there one line "PASSED FAILED", the
# tests it ran (a step that runs nothing, skipped for a sanitized build,
# writes "0 0"). A step that fails without counting a failure, or that
# ends without writing its counts, counts one failed test.
set -u
dir=${1:?usage: mk/check.sh COUNTS_DIR STEP...}
shift
make=${MAKE:-make}
mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || exit 1

passed=0 failed=0 steps=
for step in "$@"; do
        counts=$dir/$step
        rm -f "$counts" || exit 1
        echo "==> $step"
        ASHMEM_CHECK_COUNTS=$counts $make --no-print-directory "$step"
        rc=$?
        p= f=
        if [ -f "$counts" ]; then
                read -r p f _ <"$counts"
        fi
        case "$p:$f" in
        *[!0-9:]*|:*|*:)
                echo "==> $step (exit $rc) left no counts (PASSED FAILED) in $counts" >&2
                p=0 f=1 ;;
        *)
                if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
                        echo "==> $step exited $rc without a failed test" >&2
                        f=1
                fi ;;
        esac
        passed=$((passed + p)) failed=$((failed + f))
        steps="$steps $step $p/$f"
done

echo "==> by step (passed/failed):$steps"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
