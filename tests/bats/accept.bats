#!/usr/bin/env bats
# What a broker accepts (docs/trust-model.md, "what share accepts" and
# "slices"): against a broker running as root with a 0666 socket, users
# share hostile memfds (tests/helpers/sharer): unsealed ones and plain
# memfd_create() ones are refused, a sealed one of mode 0777 has its inode
# mode tightened so that a reader of another user cannot reopen it
# writable, control memfds of any size but the one their geometry needs
# are refused, and a slice may not grant what its region's mode does not.

load helpers

ALICE=2201
BOB=2202

setup() {
        [ "$(id -u)" = 0 ] || skip "needs root (setpriv to other users)"
        stage_for_others ashmemctl tests/helpers/sharer tests/helpers/probe
        sharer=$stage_dir/tests/helpers/sharer
        probe=$stage_dir/tests/helpers/probe
        public_broker --no-psi
        holder=
}

teardown() {
        [ -z "$holder" ] || { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true; }
        broker_teardown
        unstage
}

alice() { as_user --reuid=$ALICE --regid=$ALICE --clear-groups -- "$@"; }
bob() { as_user --reuid=$BOB --regid=$BOB --clear-groups -- "$@"; }

@test "share: unsealed memfds are refused, with how to seal them" {
        for kind in plain unsealed; do
                run -1 alice "$sharer" "$ASHMEM_SOCKET" "x-$kind" "$kind" </dev/null
                [[ "$output" == "EINVAL "*"sealed against resizing"*"F_SEAL_GROW|F_SEAL_SHRINK"* ]]
        done
        run -0 ashmemctl -j broker status
        [ "$(jq -r .stats.regions <<<"$output")" = 0 ]
}

@test "share: a 0777 memfd is tightened, and a reader of another user cannot reopen it writable" {
        local out=$BATS_TEST_TMPDIR/sharer.out
        chmod 0777 "$BATS_TEST_TMPDIR"
        (sleep 30 | alice "$sharer" "$ASHMEM_SOCKET" open-one open 0644 >"$out") &
        holder=$!
        wait_for grep -q '^ok' "$out"
        [ "$(cat "$out")" = "ok 0755" ]
        # bob reads it, and the kernel refuses him a writable reopening (a
        # plain memfd has no pin state: probe's pin-state line fails)
        run bob ashmemctl attach open-one --ro -- "$probe" ro
        grep -E '^open\(/proc/self/fd/[0-9]+, O_RDWR\) +EACCES +\(denied, as expected\)' <<<"$output"
        grep -E '^mmap\(PROT_READ\|PROT_WRITE, MAP_SHARED\) +EACCES' <<<"$output"
        run -0 alice "$sharer" "$ASHMEM_SOCKET" ok-one ok 0644 </dev/null
        [ "$output" = "ok 0600" ]
}

@test "share: the sharer cannot give a reader back a writable reopening" {
        local out=$BATS_TEST_TMPDIR/sharer.out
        chmod 0777 "$BATS_TEST_TMPDIR"
        (sleep 30 | alice "$sharer" "$ASHMEM_SOCKET" back chmodback 0644 >"$out") &
        holder=$!
        wait_for grep -q '^ok' "$out"
        # the broker made the inode its own: alice may no longer chmod it
        [ "$(cat "$out")" = "ok 0755 chmod EPERM 0755" ]
        run bob ashmemctl attach back --ro -- "$probe" ro
        grep -E '^open\(/proc/self/fd/[0-9]+, O_RDWR\) +EACCES +\(denied, as expected\)' <<<"$output"
        grep -E '^mmap\(PROT_READ\|PROT_WRITE, MAP_SHARED\) +EACCES' <<<"$output"
}

@test "share: control memfds must have exactly the size their geometry needs" {
        run -1 alice "$sharer" "$ASHMEM_SOCKET" big bigctl </dev/null
        [[ "$output" == "EINVAL "*"control memfd has 1073741824 bytes"* ]]
        run -1 alice "$sharer" "$ASHMEM_SOCKET" small smallctl </dev/null
        [[ "$output" == "EINVAL "*"control memfd has"*"needs"* ]]
        # many hostile ones cost the broker nothing: others are still served
        for i in $(seq 1 100); do
                alice "$sharer" "$ASHMEM_SOCKET" "big$i" bigctl </dev/null >/dev/null || true
        done
        run -0 bob ashmemctl create bob-region 1M
}

@test "slice: a slice may not grant what its region's mode does not" {
        run -0 alice ashmemctl create base 64K --mode 0640
        run -1 --separate-stderr alice ashmemctl slice --of base -o 0 -l 4K wide --mode 0644
        [ "$stderr" = "ashmemctl: slice: mode 0644 is wider than the mode of base: a slice may only narrow it" ]
        run -1 alice ashmemctl broker call '{"v":1,"op":"slice","name":"w","of":"base","offset":0,"length":4096,"mode":"0604"}'
        [ "$(jq -r .errno <<<"$output")" = EPERM ]
        [[ "$(jq -r .error <<<"$output")" == *"wider than the mode of \"base\" (0640)"* ]]
        run -1 alice ashmemctl slice --of base -o 0 -l 4K wide2 --mode 0660
        run -0 alice ashmemctl slice --of base -o 0 -l 4K narrow --mode 0600
        run -0 alice ashmemctl slice --of base -o 4K -l 4K same --mode 0640
        run -1 bob ashmemctl attach wide --ro -- true
}
