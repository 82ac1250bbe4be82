#!/usr/bin/env bats
# The broker under a service manager: socket activation (the socket made
# by systemd-socket-activate, as systemd's socket unit would), sd_notify
# readiness and status on a notification socket of the test's own
# (tests/helpers/notifysock), the log's priority prefixes when stderr is
# the journal, the refusal of a passed descriptor that is not a listening
# SOCK_SEQPACKET socket, and the unit files (systemd-analyze verify). No
# running systemd is needed.

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
        d=$BATS_TEST_TMPDIR
        sock=$d/broker.sock
        notify=$d/notify
        act_pid= notify_pid=
}

teardown() {
        if [ -n "$act_pid" ] && kill -0 "$act_pid" 2>/dev/null; then
                kill -TERM "$act_pid" 2>/dev/null || true
                wait "$act_pid" 2>/dev/null || true
        fi
        if [ -n "$notify_pid" ] && kill -0 "$notify_pid" 2>/dev/null; then
                kill -TERM "$notify_pid" 2>/dev/null || true
                wait "$notify_pid" 2>/dev/null || true
        fi
        broker_teardown
}

need_activate() {
        command -v systemd-socket-activate >/dev/null ||
                skip "systemd-socket-activate is not installed (package systemd; make deps installs it)"
}

# start_notify: the notification socket, its datagrams into $d/notify.out
start_notify() {
        "$ASHMEM_BUILD/tests/helpers/notifysock" "$notify" 30 >"$d/notify.out" 3>&- &
        notify_pid=$!
        wait_for grep -qx ready "$d/notify.out"
}

# activate [BROKER-OPTIONS...]: systemd-socket-activate listening on $sock
# (SOCK_SEQPACKET), starting the broker on the first connection, with
# NOTIFY_SOCKET=$notify.
activate() {
        NOTIFY_SOCKET=$notify systemd-socket-activate --seqpacket -l "$sock" \
                -E NOTIFY_SOCKET "$ASHMEM_BUILD/ashmemctl" broker run "$@" \
                2>"$d/broker.log" 3>&- &
        act_pid=$!
        wait_for test -S "$sock"
        export ASHMEM_SOCKET=$sock
}

@test "socket activation: the broker takes the socket and serves, and READY=1 and STATUS reach the notification socket" {
        need_activate
        start_notify
        activate
        # the first connection starts the broker (the same process:
        # systemd-socket-activate execs it)
        printf 'hello, service' >"$d/in"
        run -0 ashmemctl create svc 8192
        run -0 ashmemctl write svc "$d/in"
        run -0 ashmemctl read svc
        [ "${output:0:14}" = "hello, service" ]
        broker_pid=$(broker_pid_of "$sock")
        [ "$broker_pid" = "$act_pid" ]
        grep -q "listening on $sock (socket activation)" "$d/broker.log"
        # READY=1 with the status, from the broker itself
        wait_for grep -qx 'READY=1' "$d/notify.out"
        grep -qx "pid=$broker_pid" "$d/notify.out"
        # the status follows the change within a tick
        wait_for grep -qx 'STATUS=1 region, 0 clients' "$d/notify.out"
        run -0 ashmemctl create svc2 4096
        wait_for grep -qx 'STATUS=2 regions, 0 clients' "$d/notify.out"
        run -0 ashmemctl broker stop
        wait_for grep -qx 'STOPPING=1' "$d/notify.out"
        wait "$notify_pid"
        notify_pid=
        wait "$act_pid"
        act_pid=
        # the service manager's socket stays (systemd removes it, not the
        # broker)
        [ -S "$sock" ]
        rm -f "$sock"
}

@test "socket activation: the status counts connected clients, at most once a tick" {
        need_activate
        start_notify
        activate
        run -0 ashmemctl create one 4096
        mkfifo "$d/fifo"
        # a client that stays connected: a shell reading from a fifo
        ashmemctl shell <"$d/fifo" >/dev/null 2>&1 3>&- &
        local sh=$!
        exec 5>"$d/fifo"
        echo "list" >&5
        wait_for grep -qx 'STATUS=1 region, 1 client' "$d/notify.out"
        exec 5>&-
        wait "$sh" || true
        wait_for grep -qx 'STATUS=1 region, 0 clients' "$d/notify.out"
        # one STATUS line per change, not one per tick
        sleep 1.2
        [ "$(grep -cx 'STATUS=1 region, 0 clients' "$d/notify.out")" -eq 1 ]
        run -0 ashmemctl broker stop
        wait "$act_pid"
        act_pid=
        rm -f "$sock"
}

@test "socket activation: a second broker on the same socket path is refused" {
        need_activate
        start_notify
        activate
        run -0 ashmemctl create x 4096
        run -1 --separate-stderr ashmemctl --socket "$sock" broker run 3>&-
        [[ "$stderr" == *"a broker is already running on $sock"* ]]
        run -0 ashmemctl list -n -o NAME
        [ "$output" = x ]
        run -0 ashmemctl broker stop
        wait "$act_pid"
        act_pid=
        rm -f "$sock"
}

@test "socket activation: a passed descriptor that is not a listening SOCK_SEQPACKET socket is refused" {
        local st=0
        # LISTEN_PID must be the broker's pid: exec keeps the shell's
        : >"$d/file"
        run -1 --separate-stderr bash -c 'exec 3<"$1"; shift; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"' _ \
                "$d/file" "$ASHMEM_BUILD/ashmemctl" --socket "$sock" broker run
        [[ "$stderr" == *"socket activation: descriptor 3 is not a listening AF_UNIX SOCK_SEQPACKET socket"* ]]
        [[ "$stderr" == *"ListenSequentialPacket="* ]]
        [ ! -e "$sock" ]
        # two sockets: the broker listens on one
        run -1 --separate-stderr bash -c 'exec 3<"$1" 4<"$1"; shift; LISTEN_PID=$$ LISTEN_FDS=2 exec "$@"' _ \
                "$d/file" "$ASHMEM_BUILD/ashmemctl" --socket "$sock" broker run
        [[ "$stderr" == *"socket activation passed 2 sockets; the broker listens on one"* ]]
        # a stream socket (systemd-socket-activate without --seqpacket)
        if command -v systemd-socket-activate >/dev/null; then
                systemd-socket-activate -l "$sock" "$ASHMEM_BUILD/ashmemctl" broker run \
                        2>"$d/stream.log" 3>&- &
                act_pid=$!
                wait_for test -S "$sock"
                # a stream connection starts it
                "$ASHMEM_BUILD/tests/helpers/notifysock" --connect-stream "$sock" || true
                wait "$act_pid" || st=$?
                act_pid=
                [ "$st" -eq 1 ]
                grep -q "is not a listening AF_UNIX SOCK_SEQPACKET socket" "$d/stream.log"
                rm -f "$sock"
        fi
}

@test "log: priority prefixes and no time stamp when stderr is the journal (JOURNAL_STREAM), none otherwise" {
        local log=$d/j.log id st
        : >"$log"
        id=$(stat -c '%d:%i' "$log")
        JOURNAL_STREAM=$id ashmemctl --socket "$sock" broker run -v 2>>"$log" 3>&- &
        broker_pid=$!
        _helpers_sockets+=("$sock")
        wait_for test -S "$sock"
        ASHMEM_SOCKET=$sock ashmemctl broker call '{"op":"bogus"}' >/dev/null || true
        ashmemctl --socket "$sock" broker stop >/dev/null
        grep -qx "<6>listening on $sock (mode 0600), protocol 1, driver memfd" "$log"
        grep -q '^<7>uid [0-9]* pid [0-9]*: bogus: ' "$log"
        ! grep -qv '^<[0-7]>' "$log"
        # another file's identity: the usual lines
        : >"$d/plain.log"
        JOURNAL_STREAM=$id ashmemctl --socket "$sock" broker run 2>>"$d/plain.log" 3>&- &
        broker_pid=$!
        wait_for test -S "$sock"
        ashmemctl --socket "$sock" broker stop >/dev/null
        grep -Eq '^[0-9T:.-]+Z ashmem-broker\[[0-9]+\]: listening on ' "$d/plain.log"
        ! grep -q '^<' "$d/plain.log"
}

@test "units: systemd-analyze verify passes the system and the user units" {
        command -v systemd-analyze >/dev/null ||
                skip "systemd-analyze is not installed (package systemd; make deps installs it)"
        local u=$d/units rt=$d/rt
        mkdir -p "$u/system" "$u/user" "$rt"
        chmod 0700 "$rt"
        # the units as install makes them, with this build's ashmemctl
        # (verify checks that ExecStart's program exists)
        sed "s|@BINDIR@|$ASHMEM_BUILD|g" "$ROOT/systemd/ashmem-broker.service.in" \
                >"$u/system/ashmem-broker.service"
        cp "$ROOT/systemd/ashmem-broker.socket" "$u/system/"
        sed "s|@BINDIR@|$ASHMEM_BUILD|g" "$ROOT/systemd/ashmem-broker-user.service.in" \
                >"$u/user/ashmem-broker.service"
        cp "$ROOT/systemd/ashmem-broker-user.socket" "$u/user/ashmem-broker.socket"
        run -0 systemd-analyze verify --man=no "$u/system/ashmem-broker.socket" \
                "$u/system/ashmem-broker.service"
        [ -z "$output" ]
        XDG_RUNTIME_DIR=$rt run -0 systemd-analyze verify --user --man=no \
                "$u/user/ashmem-broker.socket" "$u/user/ashmem-broker.service"
        [ -z "$output" ]
        # and verify is no rubber stamp: a misspelt key fails it
        sed -i 's/^ExecStart=/ExecStrat=/' "$u/system/ashmem-broker.service"
        run systemd-analyze verify --man=no "$u/system/ashmem-broker.service"
        [ "$status" -ne 0 ]
        grep -q '^ListenSequentialPacket=/run/ashmem/broker.sock$' "$ROOT/systemd/ashmem-broker.socket"
        grep -q '^ListenSequentialPacket=%t/ashmem/broker.sock$' "$ROOT/systemd/ashmem-broker-user.socket"
}

@test "install: the units go where systemd looks for PREFIX=/usr/local, with the installed ashmemctl's path" {
        # make install installs a build of this tree (not so against the
        # installed packages)
        [ -f "$ASHMEM_BUILD/libashmem.a" ] || skip "no build of this tree in $ASHMEM_BUILD"
        local dest=$d/dest
        run -0 env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BINDIR -u SYSTEMDSYSTEMUNITDIR \
                -u SYSTEMDUSERUNITDIR make --no-print-directory -C "$ROOT" -o all \
                B="$ASHMEM_BUILD" PREFIX=/usr/local DESTDIR="$dest" install
        local sys=$dest/usr/local/lib/systemd/system usr=$dest/usr/local/lib/systemd/user
        [ -f "$sys/ashmem-broker.socket" ] && [ -f "$sys/ashmem-broker.service" ]
        [ -f "$usr/ashmem-broker.socket" ] && [ -f "$usr/ashmem-broker.service" ]
        grep -qx 'ExecStart=/usr/local/bin/ashmemctl broker run --system' "$sys/ashmem-broker.service"
        grep -qx 'ExecReload=/usr/local/bin/ashmemctl --socket /run/ashmem/broker.sock broker reload' \
                "$sys/ashmem-broker.service"
        grep -qx 'ExecStart=/usr/local/bin/ashmemctl broker run' "$usr/ashmem-broker.service"
        grep -qx 'ListenSequentialPacket=%t/ashmem/broker.sock' "$usr/ashmem-broker.socket"
        ! grep -rq '@BINDIR@' "$dest"
        [ "$(stat -c %a "$sys/ashmem-broker.service")" = 644 ]
        run -0 env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$ROOT" -o all \
                B="$ASHMEM_BUILD" PREFIX=/usr/local DESTDIR="$dest" uninstall
        [ -z "$(find "$dest" -path '*systemd*' -type f)" ]
}

@test "socket activation: --idle-exit does not apply to a broker under a service manager" {
        need_activate
        start_notify
        activate --idle-exit 1
        run -0 ashmemctl broker status
        grep -q "run by a service manager: --idle-exit does not apply" "$d/broker.log"
        # idle for three ticks past the limit: still there
        sleep 3
        kill -0 "$act_pid"
        run -0 ashmemctl broker status
        run -0 ashmemctl broker stop
        wait "$act_pid" || true
        act_pid=
        rm -f "$sock"
}
