#!/bin/sh
# Run every unit-test binary given; print the total as "N passed, N failed".
# A binary that exits non-zero without counting a failure counts one; when
# ASHMEM_CHECK_COUNTS names a file (make check), the two numbers go there.
passed=0 failed=0 status=0
for t in "$@"; do
        out=$("$t" 2>&1); rc=$?
        printf '%s\n' "$out"
        line=$(printf '%s\n' "$out" | tail -n 1)
        p=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
        f=$(printf '%s\n' "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
        if [ -z "$p" ]; then
                echo "FAIL $t exited $rc without a summary"; failed=$((failed + 1)); status=1; continue
        fi
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
                echo "FAIL $t exited $rc"; f=1
        fi
        passed=$((passed + p)); failed=$((failed + f))
        [ "$rc" -eq 0 ] || status=1
done
echo "unit: $passed passed, $failed failed"
if [ -n "${ASHMEM_CHECK_COUNTS:-}" ]; then
        echo "$passed $failed" >"$ASHMEM_CHECK_COUNTS" || status=1
fi
exit $status
