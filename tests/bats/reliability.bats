#!/usr/bin/env bats
# Faults: clients SIGKILLed in the middle of pin, unpin and purge;
# the broker SIGKILLed under its clients and the regions other processes
# hold; the broker at its descriptor limit; clients that never speak or
# send half a message; SIGTERM while clients are mid-request. Load is
# `make load` (tests/load/load.c); the library-level kill test is
# tests/unit/test_faults.c. No assertion here is about time: a hang is
# caught by `timeout` with a bound far above any normal answer.

load helpers

setup() {
        probe=$ASHMEM_BUILD/tests/helpers/probe
        [ -x "$probe" ]
        holder_pid= bg_pids=() hw= hr=
}

# Everything a test started goes, whatever happened: the brokers (stopped
# cleanly, and checked), then holders, probes and client loops.
teardown() {
        local p rc=0
        if [ -n "$hw" ]; then exec {hw}>&-; fi
        if [ -n "$hr" ]; then exec {hr}<&-; fi
        broker_teardown || rc=1
        for p in $holder_pid "${bg_pids[@]}"; do
                kill -KILL "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        return $rc
}

# backlog_is SOCKET N: N connections wait to be accepted on SOCKET.
backlog_is() {
        [ "$(ss -xlH src "$1" | awk '{ print $3 }')" = "$2" ]
}

# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() {
        awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# holder_start NAME [--ro]: `ashmemctl attach NAME -- probe hold` in the
# background, driven through two fifos; `hold CMD` sends a command and puts
# the reply line in $reply.
holder_start() {
        local name=$1
        shift
        mkfifo "$BATS_TEST_TMPDIR/h.in" "$BATS_TEST_TMPDIR/h.out"
        ashmemctl attach "$@" "$name" -- "$probe" hold <"$BATS_TEST_TMPDIR/h.in" \
                >"$BATS_TEST_TMPDIR/h.out" 2>"$BATS_TEST_TMPDIR/h.err" 3>&- &
        holder_pid=$!
        exec {hw}>"$BATS_TEST_TMPDIR/h.in"
        exec {hr}<"$BATS_TEST_TMPDIR/h.out"
        read -t 10 -r reply <&"$hr"
        [[ "$reply" == "holding "* ]]
}

hold() {
        reply=
        echo "$*" >&"$hw"
        read -t 10 -r reply <&"$hr"
}

# map_counts JSON: "P u x", the pages of each state in a record's map.
map_counts() {
        jq -r '.map | [(explode[] | [.] | implode)] | "\(map(select(. == "P")) | length) \(map(select(. == "u")) | length) \(map(select(. == "x")) | length)"' <<<"$1"
}

# ---------------------------------------------------------------- clients killed

@test "clients SIGKILLed mid pin, unpin and purge, 200 times: state recovers, pinned pages survive, nothing leaks" {
        local i t op pid st killed=0 done=0 before counts want never
        local ops=("pin r 16K 48K" "unpin r 16K 48K" "purge r" "unpin r 32K 4K" "pin r 32K 4K"
                   "unpin r 48K" "pin r")
        start_broker
        ashmemctl -q create r 64K
        # pages 0-3 are never unpinned; pages 4-15 go round
        { head -c 16384 /dev/zero | tr '\0' A; head -c 49152 /dev/zero | tr '\0' b; } |
                ashmemctl write r
        ashmemctl -q unpin r 16K 48K
        ashmemctl -q purge r
        ashmemctl -q pin r 16K 48K
        ashmemctl read r --length 1 >/dev/null  # its read-only reopenings, once
        before=$(broker_fds)
        mkfifo "$BATS_TEST_TMPDIR/never"
        exec {never}<>"$BATS_TEST_TMPDIR/never"
        for i in $(seq 1 200); do
                op=${ops[RANDOM % ${#ops[@]}]}
                # shellcheck disable=SC2086
                ashmemctl -q $op 3>&- &
                pid=$!
                # a random moment of its life (a few milliseconds): a
                # read that times out, on a fifo nobody writes
                printf -v t '0.%06d' $((RANDOM % 6000))
                read -r -t "$t" -u "$never" || true
                kill -KILL "$pid" 2>/dev/null || true
                st=0
                wait "$pid" || st=$?
                if [ "$st" -eq 137 ]; then
                        killed=$((killed + 1))
                else
                        [ "$st" -eq 0 ] || { echo "$op: status $st" >&2; return 1; }
                        done=$((done + 1))
                fi
        done
        # a locking call on the anchors recovers a lock left by the dead
        run -0 ashmemctl pin r 0 16K
        [ "$output" = not-purged ]
        run -0 ashmemctl -j info -M r
        counts=$(map_counts "$output")
        [ "$(jq -r '"\(.pinned) \(.unpinned) \(.purged)"' <<<"$output")" = "$counts" ]
        jq -e '.map | test("^PPPP")' <<<"$output"
        # the pinned pages kept every byte
        [ "$(ashmemctl read r --length 16K | tr -d A | wc -c)" -eq 0 ]
        # pin says what happened: was-purged exactly when a page is purged
        if jq -e '.map | test("x")' <<<"$output" >/dev/null; then want=was-purged; else want=not-purged; fi
        run -0 ashmemctl pin r
        [ "$output" = "$want" ]
        run -0 ashmemctl -j info -M r
        jq -e '.map == "PPPPPPPPPPPPPPPP" and .pinned == 16 and .purged == 0' <<<"$output"
        # the broker let go of every dead client and everything it sent
        broker_fds_back_to "$before"
        wait_for sh -c '[ "$(ashmemctl -j broker status | jq .stats.connections)" = 1 ]'
        run -0 ashmemctl -j broker status
        jq -e '.stats.regions == 1' <<<"$output"
        exec {never}<&-
        echo "# 200 clients: $killed SIGKILLed mid-command, $done finished first" >&3
}

# ---------------------------------------------------------------- broker killed

@test "the broker SIGKILLed: clients get a clear error, the next command starts a new one, held regions live on" {
        local old st
        start_broker
        ashmemctl -q create lonely 4K           # held by the broker alone
        printf 'gone' | ashmemctl write lonely
        ashmemctl -q create held 16K
        printf 'before' | ashmemctl write held
        holder_start held
        hold hello
        [ "$reply" = "ok pid=$broker_pid" ]
        # no pin state yet (nobody needed it); the first pin call gets it
        # through the broker, which makes it, so it lives on without it
        hold stats
        [ "$reply" = "pinned=4 unpinned=0 purged=0 shared=0" ]
        hold pin
        [ "$reply" = not-purged ]
        hold stats
        [ "$reply" = "pinned=4 unpinned=0 purged=0 shared=1" ]
        old=$broker_pid

        # a client waiting for its answer when the broker dies
        kill -STOP "$old"
        ashmemctl --no-autostart info held >"$BATS_TEST_TMPDIR/w.out" 2>"$BATS_TEST_TMPDIR/w.err" 3>&- &
        local waiting=$!
        bg_pids+=("$waiting")
        # it has connected (it waits in the stopped broker's backlog)
        wait_for backlog_is "$ASHMEM_SOCKET" 1
        kill -KILL "$old"
        st=0
        timeout 10 tail --pid="$waiting" -f /dev/null
        wait "$waiting" || st=$?
        [ "$st" -eq 1 ]
        [ ! -s "$BATS_TEST_TMPDIR/w.out" ]
        run cat "$BATS_TEST_TMPDIR/w.err"
        [[ "$output" == "ashmemctl: info: held: "* ]]
        [[ "$output" == *"onnection reset by peer"* || "$output" == *broker* ]]
        echo "# a client mid-request: $output" >&3

        # a connection kept open: an error, not a hang
        hold hello
        [[ "$reply" == "error "* ]]
        echo "# a connected client's next request: $reply" >&3
        # a new command, told not to start one: says so
        run -1 --separate-stderr ashmemctl --no-autostart create x 4K
        [ "$stderr" = "ashmemctl: create: no broker is running on $ASHMEM_SOCKET, and --no-autostart says not to start one" ]
        run -0 ashmemctl --no-autostart -j list
        [ "$output" = '{"regions":[]}' ]

        # the holder's region: data readable and writable, pin state shared
        hold read 0 6
        [ "$reply" = before ]
        hold write 0 after!
        [ "$reply" = ok ]
        hold read 0 6
        [ "$reply" = after! ]
        hold unpin
        [ "$reply" = ok ]
        hold status
        [ "$reply" = unpinned ]
        hold stats
        [ "$reply" = "pinned=0 unpinned=4 purged=0 shared=1" ]

        # with no broker, list holds nothing (and starts none); the next
        # create starts a new broker, which knows no other names
        run -0 ashmemctl -j list
        jq -e '.regions == []' <<<"$output"
        [ ! -S "$ASHMEM_SOCKET" ] || ! broker_pid_of "$ASHMEM_SOCKET"
        run -0 ashmemctl -q create fresh 4K
        run -0 ashmemctl -j list
        jq -e '[.regions[].name] == ["fresh"]' <<<"$output"
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        [ "$broker_pid" != "$old" ]
        run -1 ashmemctl info lonely
        # the holder gives its region a name again, pin state and all
        hold share held
        [ "$reply" = ok ]
        run -0 ashmemctl read held --length 6
        [ "$output" = after! ]
        run -0 ashmemctl -j info held
        jq -e '.unpinned == 4 and .pinned == 0' <<<"$output"
        run -0 ashmemctl pin held
        [ "$output" = not-purged ]
        hold status
        [ "$reply" = pinned ]
        echo quit >&"$hw"
        wait "$holder_pid"
        holder_pid=
}

# ---------------------------------------------------------------- descriptor limit

@test "the broker at its descriptor limit: EMFILE for what needs descriptors, serving, no spin, recovery" {
        local n=0 base t0 t1 waiter st i
        export ASHMEM_SOCKET=$BATS_TEST_TMPDIR/broker.sock
        _helpers_sockets+=("$ASHMEM_SOCKET")
        broker_log=$ASHMEM_SOCKET.log
        (ulimit -n 32 && ashmemctl broker start --log "$broker_log" >/dev/null 3>&-)
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        export ASHMEM_NO_AUTOSTART=1
        grep -Eq '^Max open files +32 +32 ' "/proc/$broker_pid/limits"
        base=$(broker_fds)

        # regions until a create fails: with EMFILE, and the broker goes on
        while ashmemctl -q create "r$n" 4K 2>"$BATS_TEST_TMPDIR/err"; do
                n=$((n + 1))
                [ "$n" -lt 32 ]
        done
        [ "$n" -gt 0 ]
        run cat "$BATS_TEST_TMPDIR/err"
        [ "$output" = "ashmemctl: create: r$n: the broker is out of descriptors (its RLIMIT_NOFILE is 32)" ]
        run -1 --separate-stderr ashmemctl -j create more 4K
        jq -e '.error.errno == "EMFILE"' <<<"$stderr"
        # what needs no new descriptor works
        run -0 ashmemctl -j list
        [ "$(jq '.regions | length' <<<"$output")" -eq "$n" ]
        run -0 ashmemctl -j info r0
        run -0 ashmemctl -j broker status
        # a read-only attach needs two more (the reopenings): EMFILE
        run -1 --separate-stderr ashmemctl -j attach r0 --ro -- true
        jq -e '.error.errno == "EMFILE"' <<<"$stderr"

        # the last descriptor too: connections that never speak (one is
        # accepted, the others wait in the backlog), and a client behind
        # them; the broker waits for descriptors without spinning
        mkfifo "$BATS_TEST_TMPDIR/hog.in"
        "$probe" connections "$ASHMEM_SOCKET" 3 <"$BATS_TEST_TMPDIR/hog.in" \
                >"$BATS_TEST_TMPDIR/hog.out" 3>&- &
        bg_pids+=($!)
        exec {hw}>"$BATS_TEST_TMPDIR/hog.in"
        wait_for grep -qx ready "$BATS_TEST_TMPDIR/hog.out"
        wait_for fds_are "$broker_pid" 32
        timeout 60 ashmemctl -j list >"$BATS_TEST_TMPDIR/late.out" 2>&1 3>&- {hw}>&- &
        waiter=$!
        bg_pids+=("$waiter")
        wait_for backlog_is "$ASHMEM_SOCKET" 3
        t0=$(cpu_ticks "$broker_pid")
        sleep 2
        t1=$(cpu_ticks "$broker_pid")
        kill -0 "$waiter"                       # still waiting, not refused
        [ $((t1 - t0)) -lt 50 ]                 # a busy loop would burn ~200
        grep -q "accept: Too many open files; pausing" "$broker_log"
        # the descriptors come back: the waiting client is served
        exec {hw}>&-
        hw=
        st=0
        wait "$waiter" || st=$?
        [ "$st" -eq 0 ]
        [ "$(jq '.regions | length' "$BATS_TEST_TMPDIR/late.out")" -eq "$n" ]
        # unshare the regions: creating works again, every descriptor returns
        for ((i = 0; i < n; i++)); do ashmemctl -q unshare "r$i"; done
        run -0 ashmemctl -q create again 4K
        run -0 ashmemctl -q attach again --ro -- true
        ashmemctl -q unshare again
        broker_fds_back_to "$base"
        echo "# limit 32: $n regions held, then EMFILE; served on; CPU while stalled: $((t1 - t0)) ticks in 2 s" >&3
}

# ---------------------------------------------------------------- silent clients

@test "clients that never speak or send half a message do not delay the others" {
        local i p
        start_broker
        export ASHMEM_NO_AUTOSTART=1
        ashmemctl -q create busy 4K
        mkfifo "$BATS_TEST_TMPDIR/quiet.in"
        # 20 that never speak, 20 that send half a message (a truncated
        # JSON object: one SOCK_SEQPACKET record) and never read on
        for i in $(seq 1 20); do
                "$probe" connect "$ASHMEM_SOCKET" <"$BATS_TEST_TMPDIR/quiet.in" \
                        >"$BATS_TEST_TMPDIR/idle.$i" 3>&- &
                bg_pids+=($!)
                "$probe" connect "$ASHMEM_SOCKET" '{"v":1,"op":"attach","name":"bu' \
                        <"$BATS_TEST_TMPDIR/quiet.in" >"$BATS_TEST_TMPDIR/half.$i" 3>&- &
                bg_pids+=($!)
        done
        exec {hw}>"$BATS_TEST_TMPDIR/quiet.in"     # (the readers are there)
        for i in $(seq 1 20); do
                wait_for grep -qx ready "$BATS_TEST_TMPDIR/idle.$i"
                wait_for grep -qx ready "$BATS_TEST_TMPDIR/half.$i"
        done
        # the half messages got their error and stay connected
        for i in $(seq 1 20); do
                run head -n 1 "$BATS_TEST_TMPDIR/half.$i"
                jq -e '.ok == false and .errno == "EPROTO"' <<<"$output"
        done
        # (and the status request's own connection)
        wait_for sh -c '[ "$(ashmemctl -j broker status | jq .stats.connections)" = 41 ]'
        # everyone else is answered while they stay: 50 requests, each
        # bounded by a timeout far above any normal answer
        for i in $(seq 1 50); do
                timeout 10 ashmemctl -q pin busy
                timeout 10 ashmemctl -j info busy >/dev/null
        done
        wait_for sh -c '[ "$(ashmemctl -j broker status | jq .stats.connections)" = 41 ]'
        run -0 ashmemctl -j broker status
        jq -e '.stats.dropped == 0' <<<"$output"
        # they go: the broker closes them all
        exec {hw}>&-
        hw=
        for p in "${bg_pids[@]}"; do wait "$p"; done
        bg_pids=()
        wait_for sh -c '[ "$(ashmemctl -j broker status | jq .stats.connections)" = 1 ]'
}

@test "an idle client is dropped after --idle-timeout; the others go on" {
        start_broker --idle-timeout 1
        export ASHMEM_NO_AUTOSTART=1
        mkfifo "$BATS_TEST_TMPDIR/quiet.in"
        "$probe" connect "$ASHMEM_SOCKET" <"$BATS_TEST_TMPDIR/quiet.in" \
                >"$BATS_TEST_TMPDIR/idle" 3>&- &
        bg_pids+=($!)
        exec {hw}>"$BATS_TEST_TMPDIR/quiet.in"
        wait_for grep -qx ready "$BATS_TEST_TMPDIR/idle"
        wait_for sh -c '[ "$(ashmemctl -j broker status | jq .stats.dropped)" = 1 ]'
        run -0 ashmemctl -j broker status
        jq -e '.stats.connections == 1' <<<"$output"
        grep -q "dropping idle connection of uid 0 pid ${bg_pids[0]}" "$broker_log"
}

# ---------------------------------------------------------------- SIGTERM

@test "SIGTERM while 16 clients are mid-request: exit 0, socket gone, answers or clean errors, no hang" {
        local s=$BATS_TEST_TMPDIR/term.sock pid k st f
        export ASHMEM_SOCKET=$s ASHMEM_NO_AUTOSTART=1
        _helpers_sockets+=("$s")
        ashmemctl broker run 2>"$BATS_TEST_TMPDIR/term.log" 3>&- &
        pid=$!
        bg_pids+=("$pid")
        wait_for ashmemctl broker status
        ashmemctl -q create shared 64K
        # each client loops create/attach/pin/unpin/info/unshare until a
        # command fails, and records every exit status
        for k in $(seq 1 16); do
                (
                        i=0
                        while :; do
                                for c in "create c$k-$i 4K" "unpin shared" "pin shared" \
                                         "attach c$k-$i -- true" "info shared" "unshare c$k-$i"; do
                                        st=0
                                        # shellcheck disable=SC2086
                                        timeout 20 ashmemctl -q $c >/dev/null 2>>"$BATS_TEST_TMPDIR/err.$k" || st=$?
                                        echo "$st" >>"$BATS_TEST_TMPDIR/st.$k"
                                        [ "$st" -eq 0 ] || exit 0
                                done
                                i=$((i + 1))
                        done
                ) 3>&- &
                bg_pids+=($!)
        done
        wait_for sh -c '[ "$(ashmemctl -j broker status | jq .stats.requests)" -ge 300 ]'
        kill -TERM "$pid"
        st=0
        wait "$pid" || st=$?
        [ "$st" -eq 0 ]
        [ ! -e "$s" ]
        grep -q "stopping (SIGTERM)" "$BATS_TEST_TMPDIR/term.log"
        grep -q "stopped$" "$BATS_TEST_TMPDIR/term.log"
        for k in "${bg_pids[@]:1}"; do wait "$k"; done
        bg_pids=()
        # every command ended with 0 or 1 (no hang: 124; no signal: >128)
        cat "$BATS_TEST_TMPDIR"/st.* | sort | uniq -c | sed 's/^/# exit status: /' >&3
        ! grep -qv '^[01]$' "$BATS_TEST_TMPDIR"/st.*
        # and every failure said what happened, in one line
        cat "$BATS_TEST_TMPDIR"/err.* | sed -E 's/c[0-9]+-[0-9]+/cN-M/' | sort | uniq -c | sed 's/^/# /' >&3
        for f in "$BATS_TEST_TMPDIR"/err.*; do
                while IFS= read -r line; do
                        [[ "$line" == "ashmemctl: "*" (no broker is running on $s)" ||
                           "$line" == "ashmemctl: "*": no broker is running on $s, and ASHMEM_NO_AUTOSTART=1 (environment) says not to start one" ||
                           "$line" == "ashmemctl: "*"onnection reset by peer" ||
                           "$line" == "ashmemctl: "*"Broken pipe" ]] || {
                                echo "unexpected: $line" >&2
                                return 1
                        }
                done <"$f"
        done
}
