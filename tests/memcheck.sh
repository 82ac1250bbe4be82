#!/bin/sh
# A representative session under valgrind memcheck: the broker, and every
# ashmemctl command of the session, each in its own valgrind; the logs must
# show no error and no definite or indirect leak, and no descriptor left
# open at exit that the program opened itself (--track-fds=yes; inherited
# ones are the caller's). Nothing is suppressed.
#
# Usage: tests/memcheck.sh BUILD_DIR          (make memcheck)
set -u

build=$(cd "${1:?usage: tests/memcheck.sh BUILD_DIR}" && pwd)
ctl=$build/ashmemctl
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 1; }
[ -x "$ctl" ] || { echo "memcheck: $ctl is not built" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/ashmem-memcheck.XXXXXX")
sock=$dir/broker.sock
logs=$dir/logs
mkdir "$logs"
broker_pid=
fail=0 ran=0

cleanup() {
        if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
                kill -KILL "$broker_pid" 2>/dev/null
                wait "$broker_pid" 2>/dev/null
        fi
        rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# Errors and definite/indirect leaks exit 99 (ashmemctl's own failures
# are 1 and 2).
vg() {
        valgrind --quiet --tool=memcheck --leak-check=full \
                --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
                --track-fds=yes --log-file="$logs/%p.log" "$@"
}

say() { printf '%s\n' "$*"; }
bad() { say "FAIL $*"; fail=$((fail + 1)); }

# step WANT-STATUS DESCRIPTION ARGS...: ashmemctl ARGS under valgrind.
step() {
        want=$1 what=$2
        shift 2
        ran=$((ran + 1))
        vg "$ctl" --socket "$sock" --no-autostart "$@" >"$dir/out" 2>"$dir/err" </dev/null
        rc=$?
        if [ "$rc" -ne "$want" ]; then
                bad "$what: exit $rc, wanted $want"
                sed 's/^/    /' "$dir/err" | head -n 20
        fi
}

# step_in WANT-STATUS DESCRIPTION INPUT ARGS...: the same, INPUT on stdin.
step_in() {
        want=$1 what=$2 input=$3
        shift 3
        ran=$((ran + 1))
        printf '%s' "$input" | vg "$ctl" --socket "$sock" --no-autostart "$@" \
                >"$dir/out" 2>"$dir/err"
        rc=$?
        [ "$rc" -eq "$want" ] || { bad "$what: exit $rc, wanted $want"; sed 's/^/    /' "$dir/err"; }
}

expect_out() { # expect_out TEXT: the last step printed exactly TEXT
        [ "$(cat "$dir/out")" = "$1" ] || bad "output '$(cat "$dir/out")', wanted '$1'"
}

# ---------------------------------------------------------------- the broker
vg "$ctl" --socket "$sock" broker run >"$dir/broker.out" 2>&1 </dev/null &
broker_pid=$!
i=0
until [ -S "$sock" ] && "$ctl" --socket "$sock" --no-autostart broker status >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$broker_pid" 2>/dev/null; then
                say "FAIL the broker did not start under valgrind:"
                cat "$dir/broker.out"
                exit 1
        fi
        sleep 0.1
done

# ---------------------------------------------------------------- the session
step 0 "create" create -m 0644 frame 64K
step 0 "create a second" create -p rw scratch 3
step 0 "list" list
step 0 "list --json" -j list
step 0 "info --map" info --map frame
step 0 "size" size frame
expect_out 65536
step_in 0 "write" "hello, memcheck" write -o 4K frame -
step 0 "read" read -o 4K -l 15 frame
expect_out "hello, memcheck"
step 0 "dump" dump -l 64 -o 4K frame
step 0 "set" set -t u32 -o 8 frame 41
step 0 "incr" incr -t u32 -o 8 frame
expect_out 42
step 0 "get" get -t u32 -o 8 frame
expect_out 42
step 0 "slice" slice --of frame -o 4K -l 4K view
step 0 "info of a slice" -j info view
step 0 "unpin" unpin frame 8K 16K
step 0 "status" status frame 8K 16K
expect_out unpinned
step 0 "purge" purge frame
step 0 "pin" pin frame 8K 16K
expect_out was-purged
step 0 "prot" prot scratch r
step 0 "attach" attach frame -- true
step 0 "attach --ro" attach --ro view -- true
step 1 "attach to a name that is not there" attach nosuch -- true
step 2 "a usage error" create frame
step 1 "an unknown region" info nosuch
step_in 0 "shell script" "create --local tmp 4K
share tmp
map frame
regions
unmap frame
info tmp
unshare tmp
" shell -e
step 0 "unshare" unshare view frame scratch
step 0 "list, empty" -j list
step 0 "broker status" broker status
step 0 "broker stop" broker stop

# the broker exits after its stop, with valgrind's verdict
wait "$broker_pid"
rc=$?
broker_pid=
[ "$rc" -eq 0 ] || { bad "the broker: exit $rc"; tail -n 20 "$dir/broker.out"; }
ran=$((ran + 1))

# ---------------------------------------------------------------- the logs
nlogs=0
for log in "$logs"/*.log; do
        [ -f "$log" ] || continue
        nlogs=$((nlogs + 1))
        cmd=$(sed -n 's/^==[0-9]*== Command: //p' "$log" | head -n 1)
        if grep -q 'ERROR SUMMARY: [1-9]' "$log" ||
           grep -Eq '(definitely|indirectly) lost: [1-9]' "$log"; then
                bad "valgrind found errors in: $cmd"
                sed 's/^/    /' "$log" | head -n 60
        fi
        # descriptors open at exit that the program opened (not inherited)
        if awk '/^==[0-9]*== Open /{o=1; next}
                o && /<inherited from parent>/{o=0; next}
                o && /at 0x|by 0x/{found=1; o=0}
                END{exit !found}' "$log"; then
                bad "descriptors left open at exit by: $cmd"
                grep -A4 '== Open ' "$log" | sed 's/^/    /' | head -n 40
        fi
done
[ "$nlogs" -ge "$ran" ] || bad "only $nlogs valgrind logs for $ran programs"

if [ "$fail" -ne 0 ]; then
        say "memcheck: $fail problem(s) in $ran programs under valgrind"
        exit 1
fi
say "memcheck: $ran programs under valgrind (the broker and $((ran - 1)) ashmemctl commands): no errors, no leaks, no descriptor left open"
