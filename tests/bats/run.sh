#!/bin/sh
# Run every bats file of tests/bats against the build in BUILD_DIR, keep
# the TAP report in BUILD_DIR/bats/report.tap, and print the total as
# "bats: N passed, N failed": one per test the plan announced, passed for
# its "ok" line (a skipped test too), failed for its "not ok" line or for
# no line at all. When ASHMEM_CHECK_COUNTS names a file (make check), the
# two numbers go there too.
#
# Usage: tests/bats/run.sh BUILD_DIR          (make bats)
set -u
build=$(cd "${1:?usage: tests/bats/run.sh BUILD_DIR}" && pwd) || exit 1
here=$(cd "$(dirname "$0")" && pwd) || exit 1
out=$build/bats
report=$out/report.tap

mkdir -p "$out" || exit 1
rm -f "$report"
ASHMEM_BUILD=$build bats --report-formatter tap --output "$out" "$here"
rc=$?

# The plan's numbers 1..N each count once, by the first line that reports
# it (a test's own output to descriptor 3 cannot add to the count).
counts=$(awk '
        /^1\.\.[0-9]+$/ && !plan { plan = substr($0, 4) + 0; next }
        /^ok [0-9]+( |$)/        { n = $2 + 0; if (!(n in seen)) seen[n] = "ok" }
        /^not ok [0-9]+( |$)/    { n = $3 + 0; if (!(n in seen)) seen[n] = "not" }
        END {
                for (i = 1; i <= plan; i++)
                        if (seen[i] == "ok") p++; else f++
                printf "%d %d\n", p, f
        }' "$report" 2>/dev/null) || counts="0 0"
passed=${counts% *} failed=${counts#* }
# bats failing without a failed test (a file that does not load, no
# report at all) is a failure too
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "bats: exited $rc with no failed test reported" >&2
        failed=1
fi
echo "bats: $passed passed, $failed failed"
if [ -n "${ASHMEM_CHECK_COUNTS:-}" ]; then
        echo "$passed $failed" >"$ASHMEM_CHECK_COUNTS" || exit 1
fi
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
