#!/usr/bin/env bats
# Names on a broker shared by several users (docs/trust-model.md, "fair
# sharing"): the owner is in the attach and info replies, `attach --owner`
# refuses a name another user squatted, a hidden name gets the answer a
# missing one gets, and names with white space around them or holding
# invisible, blank or look-alike characters are refused. Against a broker running
# as root on a 0666 socket, as several users.

load helpers

ALICE=2301
MALLORY=2302

setup() {
        [ "$(id -u)" = 0 ] || skip "needs root (setpriv to other users)"
        stage_for_others ashmemctl examples/shared_buffer_client
        public_broker --no-psi
}

teardown() {
        broker_teardown
        unstage
}

alice() { as_user --reuid=$ALICE --regid=$ALICE --clear-groups -- "$@"; }
mallory() { as_user --reuid=$MALLORY --regid=$MALLORY --clear-groups -- "$@"; }

@test "names: attach --owner refuses a squatted name, takes the owner's" {
        # mallory takes the name first, open to all
        run -0 mallory ashmemctl create shared-buffer 4K --mode 0666
        run -0 alice ashmemctl -j info shared-buffer
        [ "$(jq -r .uid <<<"$output")" = $MALLORY ]
        run -1 --separate-stderr alice ashmemctl attach --owner $ALICE shared-buffer -- true
        [ "$stderr" = "ashmemctl: attach: shared-buffer belongs to another user than uid $ALICE: not attached" ]
        # the example client checks the owner too, and writes nothing
        run -1 --separate-stderr alice "$stage_dir/examples/shared_buffer_client"
        [ "$stderr" = "shared_buffer_client: shared-buffer: \"shared-buffer\" belongs to uid $MALLORY, not uid $ALICE" ]
        [ "$(ashmemctl read shared-buffer --length 4 | od -An -tx1 | tr -d ' ')" = 00000000 ]
        # by the protocol: EPERM, no descriptor
        run -1 alice ashmemctl broker call "{\"v\":1,\"op\":\"attach\",\"name\":\"shared-buffer\",\"access\":\"r\",\"owner\":$ALICE}"
        [ "$(jq -r .errno <<<"$output")" = EPERM ]
        # the owner's own name is attached, by uid or by name
        run -0 mallory ashmemctl attach --owner $MALLORY shared-buffer -- true
        run -1 ashmemctl attach --owner root shared-buffer -- true
        run -2 ashmemctl attach --owner no-such-user-here shared-buffer -- true
}

@test "names: a name the caller may not see gets the answer a missing one gets" {
        run -0 alice ashmemctl create hidden 4K --mode 0600
        local op
        for op in info attach unshare purge; do
                local req='"name":"%s"'
                [ "$op" = attach ] && req+=',"access":"r"'
                # shellcheck disable=SC2059
                run -1 mallory ashmemctl broker call "{\"v\":1,\"op\":\"$op\",$(printf "$req" hidden)}"
                local hidden=$output
                # shellcheck disable=SC2059
                run -1 mallory ashmemctl broker call "{\"v\":1,\"op\":\"$op\",$(printf "$req" missing)}"
                [ "$(jq -c 'del(.error)' <<<"$hidden")" = "$(jq -c 'del(.error)' <<<"$output")" ]
                [ "$(jq -r .errno <<<"$hidden")" = ENOENT ]
                [ "$(jq -r .error <<<"$hidden" | sed s/hidden/X/)" = "$(jq -r .error <<<"$output" | sed s/missing/X/)" ]
        done
        run -1 mallory ashmemctl broker call '{"v":1,"op":"slice","name":"s","of":"hidden","offset":0,"length":1}'
        [ "$(jq -r .errno <<<"$output")" = ENOENT ]
        # one namespace: a hidden name is still taken (EEXIST), by design
        run -1 mallory ashmemctl broker call '{"v":1,"op":"create","name":"hidden","size":4096}'
        [ "$(jq -r .errno <<<"$output")" = EEXIST ]
        run -0 mallory ashmemctl create mine 4K
        run -1 mallory ashmemctl broker call '{"v":1,"op":"slice","name":"hidden","of":"mine","offset":0,"length":1}'
        [ "$(jq -r .errno <<<"$output")" = EEXIST ]
        run -0 alice ashmemctl info hidden              # the owner still sees it
}

@test "names: white space around, invisible, blank and look-alike characters are refused" {
        local bad cp
        # white space alone or around a name
        for bad in ' ' '   ' ' lead' 'trail ' ' both '; do
                run -1 alice ashmemctl broker call "$(jq -cn --arg n "$bad" '{v:1,op:"create",name:$n,size:4096}')"
                [ "$(jq -r .errno <<<"$output")" = EINVAL ]
                [[ "$(jq -r .error <<<"$output")" == *"begin or end with white space"* ]]
        done
        # each class, named in the error: no-break and other Unicode
        # spaces, the braille blank, Hangul fillers, variation selectors,
        # tags, bidirectional controls, zero-width and other
        # default-ignorable characters
        for cp in 00A0 2000 2007 200A 202F 205F 3000 1680 2028 \
                  2800 \
                  115F 1160 3164 FFA0 \
                  FE00 FE0F E0100 E01EF \
                  E0000 E0041 E007F \
                  202E 2066 200E 061C \
                  200B 200D 2060 FEFF 00AD 034F 180E 17B4 FFF0 1BCA0 1D173; do
                bad=$(printf "ab%bcd" "\\U$(printf %08X "0x$cp")")
                run -1 alice ashmemctl broker call "$(jq -cn --arg n "$bad" '{v:1,op:"create",name:$n,size:4096}')"
                [ "$(jq -r .errno <<<"$output")" = EINVAL ]
                [[ "$(jq -r .error <<<"$output")" == *"U+$cp"* ]] || {
                        echo "U+$cp: $output" >&2
                        false
                }
                # the command line says the broker's words, and shows the
                # name with the character escaped, never raw
                run -1 --separate-stderr alice ashmemctl create "$bad" 4K
                esc=$(printf "%b" "\\U$(printf %08X "0x$cp")" | od -An -tx1 | tr -d ' \n' |
                      sed 's/../\\x&/g')
                [ "$stderr" = "ashmemctl: create: ab${esc}cd: field \"name\": a name may not hold U+$cp, an invisible, blank or bidirectional format character" ] || {
                        echo "U+$cp: $stderr" >&2
                        false
                }
        done
        for good in 'a b' $'caf\u00e9' $'\u65e5\u672c' $'\u2764' 'x-y_z.1'; do
                run -0 alice ashmemctl broker call "$(jq -cn --arg n "$good" '{v:1,op:"create",name:$n,size:4096}')"
        done
        run -0 ashmemctl -j broker status
        [ "$(jq -r .stats.regions <<<"$output")" = 5 ]
}

@test "limits: one uid at its connection and descriptor limits, another still served" {
        broker_teardown
        start_broker_at "$ASHMEM_SOCKET" --socket-mode 0666 --no-psi \
                --max-uid-connections 4 --max-uid-fds 23 --max-regions 100
        stage_for_others tests/helpers/probe
        mkfifo "$BATS_TEST_TMPDIR/hog.in"
        # mallory holds 20 connections: the broker keeps 4
        mallory "$stage_dir/tests/helpers/probe" connections "$ASHMEM_SOCKET" 20 \
                <"$BATS_TEST_TMPDIR/hog.in" >"$BATS_TEST_TMPDIR/hog.out" &
        local hog=$!
        exec 7>"$BATS_TEST_TMPDIR/hog.in"
        wait_for grep -q ready "$BATS_TEST_TMPDIR/hog.out"
        run -1 mallory ashmemctl broker call '{"v":1,"op":"hello"}'
        [ "$(jq -r .errno <<<"$output")" = EMFILE ]
        [[ "$(jq -r .error <<<"$output")" == "uid $MALLORY has 4 connections (limit 4, --max-uid-connections)" ]]
        # and the commands say it in the broker's words
        run -1 --separate-stderr mallory ashmemctl list
        [ "$stderr" = "ashmemctl: list: listing regions: uid $MALLORY has 4 connections (limit 4, --max-uid-connections)" ]
        run -1 --separate-stderr mallory ashmemctl create zz 4K
        [ "$stderr" = "ashmemctl: create: zz: uid $MALLORY has 4 connections (limit 4, --max-uid-connections)" ]
        # alice is served meanwhile
        run -0 alice ashmemctl create a1 4K
        run -0 ashmemctl -j broker status
        jq -e ".stats.limits.connections_per_uid == 4 and .stats.limits.descriptors_per_uid == 23" <<<"$output"
        jq -e ".stats.uids[] | select(.uid == $MALLORY) | .connections == 4" <<<"$output"
        exec 7>&-
        wait "$hog"
        # descriptors: 5 a region, 1 a connection: mallory gets 4 regions
        for i in 1 2 3 4; do
                run -0 mallory ashmemctl create "m$i" 4K
        done
        run -1 mallory ashmemctl broker call '{"v":1,"op":"create","name":"m5","size":4096}'
        [ "$(jq -r .errno <<<"$output")" = EMFILE ]
        [[ "$(jq -r .error <<<"$output")" == *"(limit 23, --max-uid-fds)" ]]
        run -1 --separate-stderr mallory ashmemctl create m5 4K
        [[ "$stderr" == "ashmemctl: create: m5: "*"(limit 23, --max-uid-fds)" ]]
        run -0 alice ashmemctl create a2 4K
        # the text of broker status names the per-user limits, and where
        # the caller stands
        run -0 ashmemctl broker status
        [[ "$output" == *"per user 4 connections, 100 names, 23 descriptors"* ]]
        run -0 mallory ashmemctl broker status
        [[ "$output" == *"you (uid $MALLORY): 1 connections, 4 names, 21 descriptors, 16K"* ]]
        # what mallory frees, mallory may use again
        run -0 mallory ashmemctl rm m1
        run -0 mallory ashmemctl create m5 4K
}
