#!/bin/sh
# Run every unit-test binary given; print the total as "N passed, N failed".
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
        passed=$((passed + p)); failed=$((failed + f))
        [ "$rc" -eq 0 ] || status=1
done
echo "unit: $passed passed, $failed failed"
exit $status
