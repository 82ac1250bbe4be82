#!/usr/bin/env bats
# Who answers on a broker socket (docs/trust-model.md, "the broker's
# identity"): every client path checks that the socket's directory belongs
# to the user or root and that neither group nor others may write it, and
# that the process listening runs as the user or root (SO_PEERCRED). A
# refused socket fails closed, with a message naming the path and the
# reason. broker stop, status and start take the broker's pid from the
# kernel, never from the hello reply. A fake broker
# (tests/helpers/fakebroker) answers hello claiming any pid.

load helpers

VICTIM=2101
ATTACKER=2102

setup() {
        [ "$(id -u)" = 0 ] || skip "needs root (setpriv to other users)"
        stage_for_others ashmemctl tests/helpers/fakebroker
        fake=$stage_dir/tests/helpers/fakebroker
        public_dir
        fake_pids=()
        export ASHMEM_NO_AUTOSTART=1
}

teardown() {
        local p
        for p in "${fake_pids[@]}"; do
                kill "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        [ -z "${sleeper:-}" ] || { kill "$sleeper" 2>/dev/null; wait "$sleeper" 2>/dev/null || true; }
        broker_teardown
        unstage
}

victim() {
        as_user --reuid=$VICTIM --regid=$VICTIM --clear-groups -- "$@"
}

attacker() {
        as_user --reuid=$ATTACKER --regid=$ATTACKER --clear-groups -- "$@"
}

# start_fake SOCKET [USER-RUNNER] [FAKEBROKER-OPTIONS...]: a fake broker
# (as the user the runner gives: attacker, or "" for root) on SOCKET.
start_fake() {
        local s=$1 who=$2 out=$BATS_TEST_TMPDIR/fake.$RANDOM
        shift 2
        if [ -n "$who" ]; then
                $who "$fake" "$s" "$@" >"$out" &
        else
                "$fake" "$s" "$@" >"$out" &
        fi
        fake_pids+=($!)
        wait_for grep -q listening "$out"
}

@test "identity: a socket directory planted by another user is refused, naming it" {
        local d=$pub_dir/ashmem-$VICTIM
        # the attacker made the victim's directory first, and listens in it
        mkdir -m 0700 "$d"
        chown $ATTACKER:$ATTACKER "$d"
        start_fake "$d/broker.sock" attacker --mode 0666
        chmod 0711 "$d"
        run -1 --separate-stderr victim env ASHMEM_SOCKET="$d/broker.sock" ashmemctl list
        [[ "$stderr" == *"$d/broker.sock"* ]]
        [[ "$stderr" == *"belongs to uid $ATTACKER"* ]]
        run -1 --separate-stderr victim ashmemctl --socket "$d/broker.sock" broker status
        [[ "$stderr" == *"refusing the broker socket $d/broker.sock"*"belongs to uid $ATTACKER"* ]]
        # in a directory of the victim's own, who listens is still checked
        chown $VICTIM:$VICTIM "$d"
        run -1 --separate-stderr victim ashmemctl --socket "$d/broker.sock" -j broker status
        [[ "$stderr" == *"$d/broker.sock"*"runs as uid $ATTACKER"* ]]
}

@test "identity: a socket directory others or the group may write is refused" {
        local d=$pub_dir/open
        mkdir "$d"
        start_fake "$d/broker.sock" "" --mode 0666
        for m in 0777 1777 0775; do
                chmod $m "$d"
                run -1 --separate-stderr ashmemctl --socket "$d/broker.sock" list
                [[ "$stderr" == *"$d/broker.sock"*"writable by"* ]]
        done
        chmod 0755 "$d"
        run -0 ashmemctl --socket "$d/broker.sock" -j broker status
}

@test "identity: a broker of another user is refused (SO_PEERCRED), even in a trusted directory" {
        local d=$pub_dir/any
        mkdir -m 0777 "$d"
        start_fake "$d/fake.sock" attacker --mode 0666
        # root moves the attacker's socket into a directory root trusts
        mv "$d/fake.sock" "$pub_dir/broker.sock"
        run -1 --separate-stderr ashmemctl --socket "$pub_dir/broker.sock" list
        [[ "$stderr" == *"$pub_dir/broker.sock"*"runs as uid $ATTACKER"* ]]
        run -1 --separate-stderr ashmemctl --socket "$pub_dir/broker.sock" broker stop
        [[ "$stderr" == *"runs as uid $ATTACKER"* ]]
        # and the victim does not trust it either
        run -1 --separate-stderr victim ashmemctl --socket "$pub_dir/broker.sock" list
        [[ "$stderr" == *"runs as uid $ATTACKER"* ]]
        # start does not take it for a running broker
        run -1 --separate-stderr ashmemctl --socket "$pub_dir/broker.sock" broker start
        [[ "$stderr" == *"runs as uid $ATTACKER"* ]]
        [ -S "$pub_dir/broker.sock" ]
}

@test "identity: broker stop and status use the kernel's pid, not the one hello claims" {
        sleep 300 &
        sleeper=$!
        start_fake "$pub_dir/broker.sock" "" --pid "$sleeper"
        local real=${fake_pids[0]}
        run -0 ashmemctl --socket "$pub_dir/broker.sock" -j broker status
        [ "$(jq -r .pid <<<"$output")" = "$real" ]
        run -0 ashmemctl --socket "$pub_dir/broker.sock" broker stop
        [ "$output" = "broker stopped on $pub_dir/broker.sock (pid $real)" ]
        kill -0 "$sleeper"                      # the claimed pid is untouched
        ! kill -0 "$real" 2>/dev/null || { sleep 0.2; ! kill -0 "$real" 2>/dev/null; }
}

@test "identity: a real broker as root on a 0666 socket serves other users" {
        export ASHMEM_SOCKET=$pub_dir/broker.sock
        start_broker_at "$ASHMEM_SOCKET" --socket-mode 0666
        run -0 victim ashmemctl create v-region 4096 --mode 0644
        run -0 attacker ashmemctl info v-region
}
