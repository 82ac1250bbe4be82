#!/usr/bin/env bats
# The broker: ashmemctl broker run|start|stop|status|call, auto-start,
# access control for another user, transient shares, the purger, and
# robustness against bad messages. (The C side: tests/unit/test_broker.c.)

load helpers

setup() {
        pub_dir=
}

teardown() {
        broker_teardown
        unstage
}

# ---------------------------------------------------------------- start, stop

@test "broker start, status, stop" {
        export ASHMEM_SOCKET=$BATS_TEST_TMPDIR/broker.sock
        run -1 ashmemctl broker status
        [ "$output" = "no broker running on $ASHMEM_SOCKET" ]
        run -1 ashmemctl -j broker status
        [ "$(jq -r .running <<<"$output")" = false ]

        start_broker
        [ -S "$ASHMEM_SOCKET" ]
        [ "$(stat -c %a "$ASHMEM_SOCKET")" = 600 ]
        run -0 ashmemctl broker status
        [[ "$output" == "broker running on $ASHMEM_SOCKET"* ]]
        [[ "$output" == *"pid:          $broker_pid"* ]]
        run -0 ashmemctl -j broker status
        [ "$(jq -r '.running, .pid, .version, .driver' <<<"$output" | tr '\n' ' ')" = "true $broker_pid 1 memfd " ]
        jq -e '.stats.regions == 0 and .stats.limits.connections == 1024 and (.stats.purger.psi|type) == "boolean"' <<<"$output"

        run -0 ashmemctl broker start 3>&-
        [ "$output" = "broker already running on $ASHMEM_SOCKET (pid $broker_pid)" ]

        run -0 ashmemctl broker stop
        [ "$output" = "broker stopped on $ASHMEM_SOCKET (pid $broker_pid)" ]
        ! kill -0 "$broker_pid" 2>/dev/null
        [ ! -e "$ASHMEM_SOCKET" ]
        run -1 --separate-stderr ashmemctl broker stop
        [ "$stderr" = "ashmemctl: broker: no broker running on $ASHMEM_SOCKET" ]
}

@test "broker run: SIGTERM and SIGINT stop it cleanly and remove the socket" {
        local s=$BATS_TEST_TMPDIR/fg.sock pid sig st
        for sig in TERM INT; do
                ashmemctl --socket "$s" broker run 2>"$BATS_TEST_TMPDIR/fg.log" 3>&- &
                pid=$!
                wait_for test -S "$s"
                wait_for ashmemctl --socket "$s" broker status
                kill -"$sig" "$pid"
                st=0
                wait "$pid" || st=$?
                [ "$st" -eq 0 ]
                [ ! -e "$s" ]
                grep -q "stopping (SIG$sig)" "$BATS_TEST_TMPDIR/fg.log"
                grep -q "stopped$" "$BATS_TEST_TMPDIR/fg.log"
        done
}

@test "broker run: a second broker on the same socket refuses, the first goes on" {
        start_broker
        run -1 --separate-stderr ashmemctl broker run 3>&-
        [[ "$stderr" == *"a broker is already running on $ASHMEM_SOCKET"* ]]
        run -0 ashmemctl broker status
        [[ "$output" == *"pid:          $broker_pid"* ]]
}

@test "broker run: a stale socket is replaced" {
        export ASHMEM_SOCKET=$BATS_TEST_TMPDIR/broker.sock
        start_broker
        kill -KILL "$broker_pid"
        wait_for sh -c "! kill -0 $broker_pid 2>/dev/null"
        [ -S "$ASHMEM_SOCKET" ]                # left behind
        run -1 ashmemctl broker status
        start_broker
        grep -q "removed stale socket" "$broker_log"
}

@test "broker: the default socket's directory is made 0700, and refused when open" {
        export XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/xdg
        unset ASHMEM_SOCKET
        mkdir -m 0700 "$XDG_RUNTIME_DIR"
        ashmemctl broker start 3>&- >/dev/null
        _helpers_sockets+=("$XDG_RUNTIME_DIR/ashmem/broker.sock")
        [ -S "$XDG_RUNTIME_DIR/ashmem/broker.sock" ]
        [ "$(stat -c %a "$XDG_RUNTIME_DIR/ashmem")" = 700 ]
        run -0 ashmemctl broker stop
        chmod 0777 "$XDG_RUNTIME_DIR/ashmem"
        run -1 --separate-stderr ashmemctl broker run 3>&-
        [[ "$stderr" == *"refusing $XDG_RUNTIME_DIR/ashmem: open to others"* ]]
        run -1 ashmemctl broker start 3>&-
        [ ! -e "$XDG_RUNTIME_DIR/ashmem/broker.sock" ]
}

@test "broker start passes its options on; --socket-mode" {
        start_broker --socket-mode 0660 --max-regions 7 --idle-timeout 9 --no-psi --purge-below 3
        [ "$(stat -c %a "$ASHMEM_SOCKET")" = 660 ]
        run -0 ashmemctl -j broker status
        jq -e '.stats.limits.regions_per_uid == 7 and .stats.limits.idle_timeout == 9' <<<"$output"
        jq -e '.stats.purger.psi == false and .stats.purger.purge_below == 3' <<<"$output"
        run -2 ashmemctl broker start --purge-below 101
        run -2 ashmemctl broker start --socket-mode 9
        run -2 ashmemctl broker frobnicate
}

# ---------------------------------------------------------------- auto-start

@test "auto-start: 8 racing clients end with one broker" {
        local s=$BATS_TEST_TMPDIR/race.sock i pids=()
        _helpers_sockets+=("$s")
        for i in 1 2 3 4 5 6 7 8; do
                ashmemctl --socket "$s" -j create "r$i" 4K >"$BATS_TEST_TMPDIR/out.$i" 3>&- &
                pids+=($!)
        done
        for i in "${pids[@]}"; do
                wait "$i"
        done
        for i in 1 2 3 4 5 6 7 8; do
                jq -e ".name == \"r$i\"" "$BATS_TEST_TMPDIR/out.$i"
        done
        run -0 ashmemctl --socket "$s" -j list
        [ "$(jq '.regions | length' <<<"$output")" -eq 8 ]
        run -0 pgrep -f -- "broker run --socket $s --idle-exit 300\$"
        [ "${#lines[@]}" -eq 1 ]
        [ "${lines[0]}" = "$(broker_pid_of "$s")" ]
}

@test "no auto-start with --no-autostart or ASHMEM_NO_AUTOSTART=1" {
        local s=$BATS_TEST_TMPDIR/none.sock
        run -1 ashmemctl --socket "$s" --no-autostart create x 4K
        ASHMEM_NO_AUTOSTART=1 run -1 ashmemctl --socket "$s" slice x --of y -l 4K
        [ ! -e "$s" ]
        run -1 ashmemctl --socket "$s" broker status
}

# ---------------------------------------------------------------- access control

# public_broker, with ashmemctl staged for the other user (as_nobody runs
# the staged one).
shared_broker() {
        stage_for_others ashmemctl
        public_broker
}

@test "another user: denied a 0600 region, read-only on a 0644 one, never the owner's rights" {
        shared_broker
        ashmemctl -q create secret 4K
        printf 'top secret' | ashmemctl write secret
        ashmemctl -q create public 4K --mode 0644
        printf 'hello all' | ashmemctl write public
        ashmemctl -q create open 4K --mode 0666

        # a name nobody may not see is answered as a missing one
        run -1 --separate-stderr as_nobody ashmemctl read secret
        [ "$stderr" = "ashmemctl: read: no such region: secret" ]
        run -1 --separate-stderr as_nobody ashmemctl info secret
        [ "$stderr" = "ashmemctl: info: no such region: secret" ]

        run -0 as_nobody ashmemctl read public --length 9
        [ "$output" = "hello all" ]
        run -0 as_nobody ashmemctl -j info public
        jq -e '.user == "root" and .mode == "0644"' <<<"$output"
        # no writing, no pinning, no unsharing, no purging, no slicing
        run -1 --separate-stderr as_nobody sh -c 'printf x | ashmemctl write public'
        [[ "$stderr" == *"permission denied"* ]]
        run -1 as_nobody ashmemctl unpin public
        run -1 --separate-stderr as_nobody ashmemctl unshare public
        [[ "$stderr" == *"permission denied"* ]]
        run -1 as_nobody ashmemctl purge public
        run -1 as_nobody ashmemctl slice mine --of public --offset 0 --length 1
        run -0 ashmemctl read public --length 9          # still there
        [ "$output" = "hello all" ]

        # list shows nobody what nobody may read
        run -0 as_nobody ashmemctl -j list
        [ "$(jq -r '[.regions[].name] | join(" ")' <<<"$output")" = "open public" ]

        # 0666: read-write
        run -0 as_nobody sh -c 'printf nobody | ashmemctl write open'
        run -0 ashmemctl read open --length 6
        [ "$output" = nobody ]
}

@test "another user: a read-only descriptor stays read-only" {
        shared_broker
        ashmemctl -q create public 4K --mode 0644
        # the broker refuses to take it back as a region to share on
        run -1 --separate-stderr as_nobody ashmemctl attach public --ro -- \
                sh -c 'exec ashmemctl share --fd "$ASHMEM_FD" --mode 0666 stolen'
        [[ "$stderr" == *"stolen"* ]]
        run -1 ashmemctl info stolen
        # and the kernel refuses to reopen it for writing
        run as_nobody ashmemctl attach public --ro -- \
                sh -c 'exec 4<>"/proc/self/fd/$ASHMEM_FD"'
        [ "$status" -ne 0 ]
        [[ "$output" == *"ermission denied"* ]]
        # while reading through the descriptor itself works
        printf 'readable' | ashmemctl write public
        run -0 as_nobody ashmemctl attach public --ro -- \
                bash -c 'head -c 8 <&"$ASHMEM_FD"'
        [ "$output" = readable ]
}

# ---------------------------------------------------------------- transient

@test "a transient share disappears when its owner exits" {
        start_broker
        "$ASHMEM_BUILD/examples/shared_buffer_server" >"$BATS_TEST_TMPDIR/server.out" 3>&- &
        local server=$!
        wait_for ashmemctl info shared-buffer
        run -0 ashmemctl -j info shared-buffer
        jq -e '.transient == true and .size == 4' <<<"$output"
        kill -KILL "$server"
        wait "$server" || true
        wait_for sh -c '! ashmemctl info shared-buffer 2>/dev/null'
        run -1 --separate-stderr ashmemctl info shared-buffer
        [[ "$stderr" == *"shared-buffer"* ]]
}

@test "the shared buffer: three clients print 0, 1, 2" {
        start_broker
        "$ASHMEM_BUILD/examples/shared_buffer_server" >"$BATS_TEST_TMPDIR/server.out" 3>&- &
        local server=$!
        wait_for ashmemctl info shared-buffer
        run -0 "$ASHMEM_BUILD/examples/shared_buffer_client"
        [ "$output" = 0 ]
        run -0 "$ASHMEM_BUILD/examples/shared_buffer_client"
        [ "$output" = 1 ]
        run -0 "$ASHMEM_BUILD/examples/shared_buffer_client"
        [ "$output" = 2 ]
        kill -TERM "$server"
        local st=0
        wait "$server" || st=$?
        [ "$st" -eq 0 ]
        run -1 ashmemctl info shared-buffer
}

# ---------------------------------------------------------------- purger

@test "forced pressure (--purge-below 100) purges unpinned pages, keeps pinned ones" {
        start_broker --purge-below 100 --poll-interval 100
        ashmemctl -q create lru 16K
        head -c 16384 /dev/zero | tr '\0' d | ashmemctl write lru
        run -0 ashmemctl unpin lru 8K 8K
        wait_for sh -c '[ "$(ashmemctl -j info lru | jq .purged)" = 2 ]'
        run -0 ashmemctl -j info lru
        jq -e '.pinned == 2 and .purged == 2 and .unpinned == 0' <<<"$output"
        # pinned pages intact, the purged ones read back as zeros
        [ "$(ashmemctl read lru --length 8K | tr -d d | wc -c)" -eq 0 ]
        [ "$(ashmemctl read lru --offset 8K | tr -d '\0' | wc -c)" -eq 0 ]
        run -0 ashmemctl pin lru 8K 8K
        [[ "$output" == *"was-purged"* ]]
        grep -q "purged lru: 2 pages (8192 bytes), MemAvailable below threshold" "$broker_log"
        run -0 ashmemctl -j broker status
        jq -e '.stats.pages_purged == 2 and .stats.purges == 1' <<<"$output"
}

@test "the purger watches memory pressure with a PSI trigger" {
        [ -e /proc/pressure/memory ] || skip "no PSI on this kernel"
        start_broker
        grep -q 'purger: PSI trigger "some 150000 2000000" on /proc/pressure/memory' "$broker_log"
        run -0 ashmemctl -j broker status
        jq -e '.stats.purger.psi == true and (.stats.purger | has("purge_below") | not)' <<<"$output"
}

# ---------------------------------------------------------------- robustness

@test "garbage, oversized and 200-descriptor messages: errors, and nothing kept" {
        start_broker
        ashmemctl -q create keep 4K
        ashmemctl attach keep --ro -- true      # its read-only reopenings, once
        local before
        before=$(broker_fds)
        run -1 ashmemctl broker call 'not json'
        [[ "$output" == *'"errno":"EPROTO"'* ]]
        run -1 ashmemctl broker call '{"v":1,"op":"hello"'
        [[ "$output" == *'"errno":"EPROTO"'* ]]
        run -1 ashmemctl broker call '{"v":9,"op":"hello"}'
        [[ "$output" == *'"errno":"EPROTO"'* ]]
        run -1 ashmemctl broker call '{"v":1,"op":"nope"}'
        [[ "$output" == *'"errno":"EOPNOTSUPP"'* ]]
        run -1 ashmemctl broker call '{"v":1,"op":"attach","name":"keep"}'
        [[ "$output" == *'"errno":"EINVAL"'* ]]
        run -1 ashmemctl broker call "{\"v\":1,\"op\":\"hello\",\"pad\":\"$(head -c 70000 /dev/zero | tr '\0' x)\"}"
        [[ "$output" == *'"errno":"EMSGSIZE"'* ]]
        run -1 ashmemctl broker call --fds 200 '{"v":1,"op":"hello"}'
        [[ "$output" == *'"errno":"EINVAL","error":"too many descriptors (at most 2)"'* ]]
        run -1 ashmemctl broker call --fds 2 '{"v":1,"op":"share","name":"x"}'
        [[ "$output" == *'"errno":"EINVAL"'* ]]
        run -1 ashmemctl broker call --fds 1 '{"v":1,"op":"lookup"}'
        [[ "$output" == *'"errno":"ENOENT"'* ]]
        # still serving everyone, holding what it held and nothing more
        run -0 ashmemctl broker call '{"v":1,"op":"hello"}'
        run -0 ashmemctl attach keep --ro -- true
        broker_fds_back_to "$before"
        run -0 ashmemctl -j broker status
        jq -e '.stats.regions == 1 and .stats.errors >= 9' <<<"$output"
}

# Found by tests/fuzz/fuzz_broker.c: the receive buffer has one byte more
# than the limit, and a message of exactly limit+1 bytes was served.
@test "a message of 65536 bytes is served, one of 65537 bytes refused (EMSGSIZE)" {
        start_broker
        local m='{"v":1,"op":"hello"}' pad
        pad=$(head -c $((65536 - ${#m})) /dev/zero | tr '\0' ' ')
        run -0 ashmemctl broker call "$m$pad"
        [[ "$output" == *'"ok":true'* ]]
        run -1 ashmemctl broker call "$m$pad "
        [[ "$output" == *'"errno":"EMSGSIZE"'* ]]
        run -0 ashmemctl broker call "$m"
}

@test "the closer's global limits: passed on by start, shown by status, bad values refused" {
        start_broker --max-closing 300 --max-parked 40 --park-bytes 64K
        run -0 ashmemctl -j broker status
        jq -e '.stats.closer.max_closing == 300 and .stats.closer.max_parked == 40' <<<"$output"
        jq -e '.stats.closer.closing == 0 and .stats.closer.parked == 0 and .stats.closer.closed_on_loop == 0' <<<"$output"
        stop_broker
        run -2 --separate-stderr timeout 10 ashmemctl broker run --max-closing 0
        [[ "$stderr" == *"--max-closing must be at least 1"* ]]
        run -2 --separate-stderr timeout 10 ashmemctl broker run --max-parked lots
        [[ "$stderr" == *"invalid max-parked 'lots'"* ]]
        run -2 --separate-stderr timeout 10 ashmemctl broker run --park-bytes 1K
        [[ "$stderr" == *"--park-bytes must be between 4K and 1G"* ]]
        run -2 --separate-stderr timeout 10 ashmemctl broker run --park-bytes 2G
        [[ "$stderr" == *"--park-bytes must be between 4K and 1G"* ]]
}
