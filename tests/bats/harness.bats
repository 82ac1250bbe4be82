#!/usr/bin/env bats
# The test harness itself: mk/check.sh, the driver of `make check` (every
# step's counts summed into the one line "check: N passed, N failed"), and
# the helpers that run something as another user (stage_for_others,
# as_user, as_nobody, unstage in helpers.bash).

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
        # the make that runs these tests is no part of the fake ones
        unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
        counts=$BATS_TEST_TMPDIR/counts
        mk=$BATS_TEST_TMPDIR/steps.mk
        # fake steps: each one records what its name says
        cat >"$mk" <<'EOF'
rec = echo "$(1)" >"$$ASHMEM_CHECK_COUNTS"
three:   ; @$(call rec,3 0)
four:    ; @$(call rec,4 0)
skipped: ; @$(call rec,0 0)
failing: ; @$(call rec,2 1); exit 1
silent:  ; @true
broken:  ; @exit 2
liar:    ; @$(call rec,5 0); exit 1
garbage: ; @$(call rec,many none)
EOF
}

teardown() {
        unstage
}

# check STEP...: the driver on the fake steps.
check() {
        MAKE="make -f $mk" sh "$ROOT/mk/check.sh" "$counts" "$@"
}

# summary_is "N passed, N failed": the output ends with that line, and it
# is the only line that begins with "check:".
summary_is() {
        local last n
        last=$(printf '%s\n' "$output" | tail -n 1)
        n=$(printf '%s\n' "$output" | grep -c '^check:')
        if [ "$last" != "check: $1" ] || [ "$n" != 1 ]; then
                echo "wanted one last line 'check: $1', got $n summary lines:" >&2
                printf '%s\n' "$output" >&2
                return 1
        fi
}

@test "check.sh: every step's counts summed into one last line; exit 0 when nothing failed" {
        run -0 check three skipped four
        summary_is "7 passed, 0 failed"
        [ "$(cat "$counts/three")" = "3 0" ]
        [ "$(cat "$counts/skipped")" = "0 0" ]
}

@test "check.sh: a failing step counts its failures, the next steps still run, exit 1" {
        run -1 check failing three
        summary_is "5 passed, 1 failed"
        [ "$(cat "$counts/three")" = "3 0" ]
}

@test "check.sh: a step without counts, or failing without a failure, counts one failed test" {
        run -1 check silent three
        summary_is "3 passed, 1 failed"
        run -1 check broken
        summary_is "0 passed, 1 failed"
        run -1 check liar
        summary_is "5 passed, 1 failed"
        run -1 check garbage four
        summary_is "4 passed, 1 failed"
        run -1 check no-such-step
        summary_is "0 passed, 1 failed"
}

@test "check.sh: counts left by an earlier run are not taken again" {
        mkdir -p "$counts"
        echo "3 0" >"$counts/silent"
        run -1 check silent
        summary_is "0 passed, 1 failed"
        [ ! -e "$counts/silent" ]
}

@test "another user runs the build staged in a 0755 directory, not the private build" {
        [ "$(id -u)" = 0 ] || skip "needs root (setpriv to another user)"
        # a build directory below a private one, as in a clone in a home
        # of mode 0700
        local private
        private=$(mktemp -d "$BATS_TEST_TMPDIR/private.XXXXXX")
        chmod 0700 "$private"
        mkdir -p "$private/build/tests/helpers"
        cp "$ASHMEM_BUILD/ashmemctl" "$private/build/"
        cp "$ASHMEM_BUILD/tests/helpers/probe" "$private/build/tests/helpers/"
        # (a program that other user runs cannot run it; setpriv itself
        # still could, as it executes its command before it drops root's
        # capabilities)
        run -126 setpriv --reuid=nobody --regid=nogroup --clear-groups \
                sh -c '"$0" --version' "$private/build/ashmemctl"

        # nothing staged yet: as_user refuses
        run -2 --separate-stderr as_nobody ashmemctl --version
        [[ "$stderr" == *"nothing staged"* ]]

        ASHMEM_BUILD=$private/build stage_for_others ashmemctl tests/helpers/probe
        [[ "$stage_dir" == /tmp/* ]]
        [ "$(stat -c %a "$stage_dir")" = 755 ]
        [ -x "$stage_dir/tests/helpers/probe" ]
        run -0 as_nobody ashmemctl --version
        [[ "$output" == "ashmemctl "* ]]
        run -0 as_nobody sh -c 'ashmemctl --version && [ -x tests/helpers/probe ] && [ -r tests/helpers/probe ]'
        [[ "$output" == "ashmemctl "* ]]
        # the staged one, from the staged directory
        run -0 as_nobody sh -c 'command -v ashmemctl; pwd; id -u'
        [ "$output" = "$stage_dir/ashmemctl"$'\n'"$stage_dir"$'\n'"$(id -u nobody)" ]
        run -0 as_user --reuid=2101 --regid=2101 --groups=2102 -- sh -c 'id -u; id -G'
        [ "$output" = $'2101\n2101 2102' ]

        # what is not built is not staged
        run -1 --separate-stderr stage_for_others no-such-program
        [[ "$stderr" == *"no-such-program is not built"* ]]

        local was=$stage_dir
        unstage
        [ ! -e "$was" ] && [ -z "$stage_dir" ]
}
