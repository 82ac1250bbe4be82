#!/usr/bin/env bats
# Reload: `ashmemctl broker reload` (and SIGHUP) makes the broker execute
# its binary again and hand everything over: the socket, the connections,
# the regions with their data and pin state, names, owners, modes, slices,
# transient names, counters. Clients of two users keep working through
# five reloads without an error; a new image that refuses the state leaves
# the old one serving; no descriptor is lost or leaked. (docs/reload.md)

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
        # a directory every user reaches: the clients of other users
        # connect to the socket in it
        pub=$(mktemp -d /tmp/ashmem-reload.XXXXXX)
        chmod 0755 "$pub"
        export ASHMEM_SOCKET=$pub/broker.sock
        act_pid= notify_pid= sh_pid=
}

teardown() {
        if [ -n "$sh_pid" ]; then
                exec 5>&- || true
                wait "$sh_pid" 2>/dev/null || true
        fi
        for p in "$act_pid" "$notify_pid"; do
                if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
                        kill -TERM "$p" 2>/dev/null || true
                        wait "$p" 2>/dev/null || true
                fi
        done
        broker_teardown
        rm -rf "$pub"
        unstage
}

# A broker on $ASHMEM_SOCKET that every user may reach.
start_pub_broker() {
        _helpers_sockets+=("$ASHMEM_SOCKET")
        broker_log=$pub/broker.log
        ashmemctl broker start --socket-mode 0666 --log "$broker_log" "$@" 3>&- >/dev/null || return
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
}

# What a user sees of the broker's names: every column but ATTACHES
# (attaching counts) and the pin counts of the regions under load.
snapshot() {
        ashmemctl -j list | jq -c '.regions[] | del(.attaches)' | LC_ALL=C sort
}

# The broker's descriptors of control blocks, and whether the others
# (broker_fds less those) number N.
control_fds() {
        ls -l "/proc/$broker_pid/fd" | grep -c '/memfd:ashmem-control' || true
}
other_fds_are() {
        [ $(( $(broker_fds) - $(control_fds) )) -eq "$1" ]
}

# The state the tests look at: regions of two users with data, modes, a
# slice, unpinned and purged pages.
populate() {
        stage_for_others ashmemctl
        printf 'root data %.0s' $(seq 1 100) >"$pub/root.in"
        chmod 0644 "$pub/root.in"
        run -0 ashmemctl create -m 0640 r1 16384
        run -0 ashmemctl write r1 "$pub/root.in"
        run -0 ashmemctl slice --of r1 -o 4096 -l 4096 -m 0600 r1.view
        run -0 ashmemctl unpin r1 8192 4096
        run -0 ashmemctl create -p r -m 0444 ro 4096
        run -0 as_nobody ashmemctl create -m 0644 nb 8192
        run -0 as_nobody ashmemctl write nb "$pub/root.in"
        run -0 as_nobody ashmemctl unpin nb 4096 4096
        run -0 as_nobody ashmemctl purge nb
        # reads make the broker's read-only reopenings (kept, and made
        # again on demand after a reload): made before counting
        run -0 ashmemctl read r1
        run -0 ashmemctl read nb
}

@test "reload: a new pid serves every region, name, owner, mode and slice with its data and pin state; descriptors match" {
        start_pub_broker
        populate
        local before fds pid0=$broker_pid req0
        before=$(snapshot)
        fds=$(broker_fds)
        req0=$(ashmemctl -j broker status | jq .stats.requests)
        # a client whose connection lives across the reload, holding a
        # transient name
        mkfifo "$pub/fifo"
        ashmemctl shell <"$pub/fifo" >"$pub/shell.out" 2>&1 3>&- &
        sh_pid=$!
        exec 5>"$pub/fifo"
        echo "create -t tr 4096" >&5
        wait_for ashmemctl info tr

        run -0 ashmemctl broker reload
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        [ "$output" = "broker reloaded on $ASHMEM_SOCKET (pid $pid0, now $broker_pid)" ]
        [ "$broker_pid" != "$pid0" ]
        ! kill -0 "$pid0" 2>/dev/null
        # everything is there, as it was
        [ "$(snapshot | grep -v '"name":"tr"')" = "$before" ]
        run -0 ashmemctl read r1
        [ "${output:0:1000}" = "$(cat "$pub/root.in")" ]
        run -0 ashmemctl read nb
        [ "${output:0:1000}" = "$(cat "$pub/root.in")" ]
        run -0 ashmemctl -j info r1.view
        [ "$(jq -c '[.of, .offset, .length, .mode]' <<<"$output")" = '["r1",4096,4096,"0600"]' ]
        run -0 ashmemctl status r1 8192 4096
        [ "$output" = unpinned ]
        run -0 ashmemctl status r1 0 4096
        [ "$output" = pinned ]
        run -0 ashmemctl -j info nb
        [ "$(jq -c '[.user, .mode, .purged]' <<<"$output")" = '["nobody","0644",1]' ]
        # owners still rule: nobody may not remove root's name
        run -1 as_nobody ashmemctl rm r1
        # the counters went on
        [ "$(ashmemctl -j broker status | jq .stats.requests)" -gt "$req0" ]
        # the shell's connection went over: its transient name lives, and
        # goes when the shell does
        echo "info tr" >&5
        run -0 ashmemctl info tr
        exec 5>&-
        wait "$sh_pid"
        sh_pid=
        wait_for bash -c '! ashmemctl info tr'
        grep -q 'Name: *tr' "$pub/shell.out"
        ! grep -qi error "$pub/shell.out"
        # nothing lost, nothing leaked
        broker_fds_back_to "$fds"
        grep -q "took over .* 4 regions\?, 5 names on $ASHMEM_SOCKET\|took over .* on $ASHMEM_SOCKET" "$broker_log"
}

@test "reload: SIGHUP reloads too; the socket stays; stop stops the new pid" {
        start_pub_broker
        run -0 ashmemctl create keep 4096
        local pid0=$broker_pid
        kill -HUP "$pid0"
        wait_for bash -c "[ \"\$(ashmemctl -j broker status | jq .pid)\" != $pid0 ]"
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        [ -S "$ASHMEM_SOCKET" ]
        run -0 ashmemctl info keep
        run -0 ashmemctl broker stop
        [ "$output" = "broker stopped on $ASHMEM_SOCKET (pid $broker_pid)" ]
        [ ! -e "$ASHMEM_SOCKET" ]
}

@test "reload: 16 clients of two users work through 5 reloads without an error" {
        start_pub_broker
        stage_for_others ashmemctl
        run -0 ashmemctl create -m 0644 rl-keep-0 4096
        run -0 as_nobody ashmemctl create -m 0644 rl-keep-65534 4096
        populate
        local before other ctl pids=() i
        before=$(snapshot)
        other=$(( $(broker_fds) - $(control_fds) ))
        ctl=$(control_fds)
        "$ASHMEM_BUILD/tests/helpers/reloadload" --socket "$ASHMEM_SOCKET" --clients 16 \
                --seconds 10 --users 0:0,65534:65534 >"$pub/load.out" 2>"$pub/load.err" 3>&- &
        local load=$!
        for i in 1 2 3 4 5; do
                sleep 1.5
                run -0 ashmemctl broker reload
                pids+=("$(sed -n 's/.* now \([0-9]*\))$/\1/p' <<<"$output")")
        done
        local st=0
        wait "$load" || st=$?
        cat "$pub/load.err" >&2
        tail -1 "$pub/load.out"
        [ "$st" -eq 0 ]
        grep -q '^reloadload: [1-9][0-9]* operations, 0 errors, 0 of 16 clients failed$' "$pub/load.out"
        # five new images, each a new pid
        [ "$(printf '%s\n' "${pids[@]}" | sort -u | wc -l)" -eq 5 ]
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        [ "$broker_pid" = "${pids[4]}" ]
        # what was there before the load is there after it, the same
        [ "$(snapshot | grep -v '"name":"rl-')" = "$(grep -v '"name":"rl-' <<<"$before")" ]
        run -0 ashmemctl read nb
        [ "${output:0:1000}" = "$(cat "$pub/root.in")" ]
        run -0 ashmemctl status r1 8192 4096
        [ "$output" = unpinned ]
        # the clients' names went with them (transient ones with their
        # connections, the rest unshared)
        run -0 ashmemctl list -n -o NAME
        ! grep -q '^rl-[0-9t]' <<<"$output"
        # every descriptor exactly as before (regions, sockets, the
        # broker's own, the library's control blocks): the purger keeps no
        # region's pin state cached once its job is done
        wait_for other_fds_are "$other"
        [ "$(control_fds)" -eq "$ctl" ]
}

@test "reload: a new image that refuses the state format leaves the old one serving" {
        # the test hook: the new image reads state version 2 only
        ASHMEM_BROKER_RELOAD_TEST_VERSION=2 start_pub_broker
        populate
        local before fds pid0=$broker_pid
        before=$(snapshot)
        fds=$(broker_fds)
        run -1 --separate-stderr ashmemctl broker reload
        [ "$stderr" = "ashmemctl: broker: reloading the broker (pid $pid0): the new image refused: state format version 1 is not 2, the one this broker reads: Protocol error" ] ||
                [[ "$stderr" == *"reloading the broker (pid $pid0): the new image refused: state format version 1 is not 2"* ]]
        [ "$(broker_pid_of "$ASHMEM_SOCKET")" = "$pid0" ]
        [ "$(snapshot)" = "$before" ]
        run -0 ashmemctl create after 4096
        run -0 ashmemctl rm after
        grep -q "refusing the reload state: state format version 1 is not 2" "$broker_log"
        grep -q "reload failed: the new image refused: .*; this broker goes on serving" "$broker_log"
        broker_fds_back_to "$fds"
        # and no child is left behind
        [ -z "$(pgrep -P "$pid0")" ]
}

@test "reload: a refused reload makes no pin state for regions that have none, and their first unpin still gets one" {
        ASHMEM_BROKER_RELOAD_TEST_VERSION=2 start_pub_broker
        local ctl pid0=$broker_pid
        run -0 ashmemctl create lz-a 8192
        run -0 ashmemctl create lz-b 4096
        ctl=$(control_fds)
        run -1 ashmemctl broker reload
        [ "$(broker_pid_of "$ASHMEM_SOCKET")" = "$pid0" ]
        # the fork that started the new image made no control block in
        # the old one
        [ "$(control_fds)" -eq "$ctl" ]
        run -0 ashmemctl status lz-a 0 8192
        [ "$output" = pinned ]
        # and the old image still makes a region's block on first need
        run -0 ashmemctl unpin lz-a 4096 4096
        run -0 ashmemctl status lz-a 4096 4096
        [ "$output" = unpinned ]
        run -0 ashmemctl status lz-b
        [ "$output" = pinned ]
        [ "$(control_fds)" -gt "$ctl" ]
}

@test "reload: only root or the broker's own user may reload" {
        start_pub_broker
        stage_for_others ashmemctl
        local pid0=$broker_pid
        run -1 --separate-stderr as_nobody ashmemctl broker reload
        [[ "$stderr" == *"reloading the broker (pid $pid0): only root or uid 0 may reload the broker"* ]]
        [ "$(broker_pid_of "$ASHMEM_SOCKET")" = "$pid0" ]
}

@test "reload: the binary is executed by its path, so an upgraded binary takes over" {
        local bin=$pub/bin pid0 fds
        mkdir "$bin"
        cp "$ASHMEM_BUILD/ashmemctl" "$bin/ashmemctl"
        _helpers_sockets+=("$ASHMEM_SOCKET")
        "$bin/ashmemctl" broker run --socket-mode 0666 2>"$pub/broker.log" 3>&- &
        pid0=$!
        wait_for ashmemctl broker status
        run -0 ashmemctl create up 4096
        # the upgrade: a new file at the path (the old one is deleted),
        # here a wrapper that records that it ran, with what arguments
        cat >"$bin/ashmemctl.new" <<EOF
#!/bin/sh
echo "\$@" >>"$pub/upgraded"
exec "$ASHMEM_BUILD/ashmemctl" "\$@"
EOF
        chmod 0755 "$bin/ashmemctl.new"
        mv "$bin/ashmemctl.new" "$bin/ashmemctl"
        run -0 ashmemctl broker reload
        [ "$(cat "$pub/upgraded")" = "broker run --socket-mode 0666" ]
        run -0 ashmemctl info up
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        [ "$broker_pid" != "$pid0" ]
        wait "$pid0"            # the old image exited 0
        run -0 ashmemctl broker stop
}

@test "reload under socket activation: RELOADING=1, MAINPID= and READY=1 from the new pid; the activated socket stays" {
        command -v systemd-socket-activate >/dev/null ||
                skip "systemd-socket-activate is not installed (package systemd)"
        local sock=$pub/act.sock notify=$pub/notify pid0 pid1
        "$ASHMEM_BUILD/tests/helpers/notifysock" "$notify" 30 >"$pub/notify.out" 3>&- &
        notify_pid=$!
        wait_for grep -qx ready "$pub/notify.out"
        NOTIFY_SOCKET=$notify systemd-socket-activate --seqpacket -l "$sock" -E NOTIFY_SOCKET \
                "$ASHMEM_BUILD/ashmemctl" broker run 2>"$pub/act.log" 3>&- &
        act_pid=$!
        wait_for test -S "$sock"
        export ASHMEM_SOCKET=$sock
        run -0 ashmemctl create act 4096
        pid0=$act_pid
        [ "$(broker_pid_of "$sock")" = "$pid0" ]
        run -0 ashmemctl broker reload
        pid1=$(broker_pid_of "$sock")
        [ "$pid1" != "$pid0" ]
        run -0 ashmemctl info act
        wait_for grep -qx "MAINPID=$pid1" "$pub/notify.out"
        # in this order: RELOADING=1 from the old, MAINPID= from the old,
        # READY=1 from the new (which may come a moment after MAINPID=)
        wait_for awk -v o="pid=$pid0" -v n="pid=$pid1" '
                /^pid=/ { who = $0; next }
                /^RELOADING=1$/ && who == o && !r { r = NR }
                /^MAINPID=/ && who == o && r && !m { m = NR }
                /^READY=1$/ && who == n && m && !y { y = NR }
                END { exit !(r && m && y) }' "$pub/notify.out"
        grep -q "listening on $sock (reloaded)" "$pub/act.log"
        # the new image still never removes the service manager's socket
        run -0 ashmemctl broker stop
        wait_for grep -qx 'STOPPING=1' "$pub/notify.out"
        [ -S "$sock" ]
        wait "$act_pid" || true
        act_pid=
        rm -f "$sock"
}

@test "reload: a state that is not what it claims is refused, and nothing is served" {
        local f=$pub/state st=0
        printf 'ASHMEMRS\001\000\000\000' >"$f"
        # descriptors 7 and 8 as the state and the channel: a plain file
        # is no sealed memfd
        ASHMEM_BROKER_RELOAD=7,8 ashmemctl broker run 7<"$f" 8<"$f" 2>"$pub/err" 3>&- || st=$?
        [ "$st" -eq 1 ]
        grep -q "refusing the reload state: the state memfd is not sealed" "$pub/err"
        [ ! -e "$ASHMEM_SOCKET" ]
        # a malformed variable
        st=0
        ASHMEM_BROKER_RELOAD=7 ashmemctl broker run 2>"$pub/err" 3>&- || st=$?
        [ "$st" -eq 1 ]
        grep -q "refusing the reload state: malformed ASHMEM_BROKER_RELOAD" "$pub/err"
        [ ! -e "$ASHMEM_SOCKET" ]
}

@test "reload: a region whose block was never made gets it from the new image on first need" {
        start_pub_broker
        run -0 ashmemctl create lazy 16K
        # no block yet: the broker holds the data descriptor alone
        [ "$(control_fds)" -eq 0 ]
        run -0 ashmemctl broker reload
        broker_pid=$(broker_pid_of "$ASHMEM_SOCKET")
        [ "$(control_fds)" -eq 0 ]
        # the first unpin needs the block: the new image makes it, as the
        # old one would have, and keeps it for every later holder
        run -0 ashmemctl unpin lazy 4096 4096
        run -0 ashmemctl status lazy 4096 4096
        [ "$output" = unpinned ]
        run -0 ashmemctl status lazy 0 4096
        [ "$output" = pinned ]
        [ "$(control_fds)" -ge 1 ]
}

# The new image reads the state as hostile input: a state cut short at any
# byte, or with any byte inverted, is refused with a reason or accepted
# (then, without "go", the image leaves); never a crash, never served.
@test "reload: a state cut at every byte, with any byte inverted or a descriptor misnamed is refused or harmless, never a crash" {
        local h=$ASHMEM_BUILD/tests/helpers/reloadstate s=$pub/st.sock body out
        local -A seen=()
        run -0 --separate-stderr "$h" "$s" valid 0 -- "$ASHMEM_BUILD/ashmemctl" broker run
        [ "$output" = $'accepted\nexit 1' ]
        body=$("$h" "$s" valid -1 -- true)
        [ "$body" -gt 200 ]
        for ((i = 0; i < body; i++)); do
                out=$("$h" "$s" trunc "$i" -- "$ASHMEM_BUILD/ashmemctl" broker run 2>/dev/null)
                [[ "$out" == "refused: "*$'\n'"exit 1" ]] || {
                        echo "cut at $i: $out"
                        return 1
                }
                seen[${out%%$'\n'*}]=1
        done
        # a listening socket bound elsewhere than the state says (the
        # path's last byte inverted: the path starts at byte 124)
        run -0 --separate-stderr "$h" "$s" flip $((124 + ${#s} - 1)) -- "$ASHMEM_BUILD/ashmemctl" broker run
        [ "$output" = $'refused: the listening socket is not bound to the state\'s path\nexit 1' ]
        # a descriptor named twice, or not what its field claims (the
        # connection's at 132 + the path's length, the region's at 155 +,
        # its control block's at 159 +)
        local l=${#s} spec want
        for spec in "$((132 + l)):region=a connection's descriptor is not a connected SOCK_SEQPACKET socket" \
                    "$((155 + l)):conn=region: descriptor [0-9]* named twice" \
                    "$((155 + l)):lock=region: descriptor [0-9]* named twice" \
                    "$((159 + l)):region=control: descriptor [0-9]* named twice" \
                    "100:lfd=the lock descriptor is not a file" \
                    "96:conn=the listening descriptor is not a listening SOCK_SEQPACKET socket"; do
                want=${spec#*=}
                out=$("$h" "$s" put "${spec%%=*}" -- "$ASHMEM_BUILD/ashmemctl" broker run 2>/dev/null)
                [[ "$out" =~ ^"refused: "$want$'\n'"exit 1"$ ]] || {
                        echo "put ${spec%%=*}: $out"
                        return 1
                }
        done
        # cut short, it says where or what count does not fit
        [ -n "${seen['refused: more names than the state can hold']}" ]
        [ -n "${seen['refused: truncated at byte 24']}" ]
        for ((i = 0; i < body + 32; i++)); do
                out=$("$h" "$s" flip "$i" -- "$ASHMEM_BUILD/ashmemctl" broker run 2>/dev/null)
                [[ "$out" == "refused: "*$'\n'"exit 1" || "$out" == $'accepted\nexit 1' ]] || {
                        echo "inverted byte $i: $out"
                        return 1
                }
        done
        [ ! -e "$s" ]
}

# A stop asked for while the reload runs is not lost: the old image reads
# no signal then, so it hands SIGTERM on to the new one as it goes.
@test "reload: SIGTERM during a reload stops the new image" {
        local bin=$pub/bin pid0 rpid
        mkdir "$bin"
        cp "$ASHMEM_BUILD/ashmemctl" "$bin/ashmemctl"
        _helpers_sockets+=("$ASHMEM_SOCKET")
        "$bin/ashmemctl" broker run --socket-mode 0666 2>"$pub/broker.log" 3>&- &
        pid0=$!
        wait_for ashmemctl broker status
        # the new image is slow to start: the stop comes while it does
        cat >"$bin/ashmemctl.new" <<EOS
#!/bin/sh
touch "$pub/starting"
sleep 1
exec "$ASHMEM_BUILD/ashmemctl" "\$@"
EOS
        chmod 0755 "$bin/ashmemctl.new"
        mv "$bin/ashmemctl.new" "$bin/ashmemctl"
        ashmemctl broker reload >"$pub/reload.out" 2>&1 3>&- &
        rpid=$!
        wait_for test -e "$pub/starting"
        kill -TERM "$pid0"
        wait "$rpid"
        wait "$pid0"
        # the new image got the stop: it leaves, and removes the socket
        wait_for test ! -e "$ASHMEM_SOCKET"
        run -1 ashmemctl broker status
        grep -q "stopping (SIGTERM)" "$pub/broker.log"
}
