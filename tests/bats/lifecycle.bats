#!/usr/bin/env bats
# Brokers that come and go: which commands start one, what the others say
# with none running, an auto-started broker's idle exit (and a client that
# comes just then), the socket on the broker's command line; rm's report of
# every name and rm -f; slices that go with their region; --system; the
# messages that name what is wrong.

load helpers
load cli_helpers

setup() {
        pub_dir=
        s=$BATS_TEST_TMPDIR/auto.sock
        _helpers_sockets+=("$s")
}

teardown() {
        broker_teardown
        unstage
}

# the pid of the broker on socket $1, from ps (its command line names it)
ps_broker() {
        pgrep -f -- "ashmemctl broker run --socket $1( |\$)"
}

no_broker() {
        [ ! -S "$1" ] && ! ps_broker "$1" >/dev/null
}

# ---------------------------------------------------------------- autostart

@test "without a broker: list is empty, info and the others say the name is unknown; none starts one" {
        export ASHMEM_SOCKET=$s
        run -0 --separate-stderr ashmemctl list -o NAME
        [ "$output" = NAME ]
        [ -z "$stderr" ]
        run -0 ashmemctl -j list
        [ "$output" = '{"regions":[]}' ]
        local c
        for c in "info r" "size r" "read r" "dump r" "get r" "pin r" "status r" "prot r" \
                 "purge r" "attach r -- true"; do
                read -ra words <<<"$c"
                bad 1 "${words[0]}: no such region: r (no broker is running on $s)" "${words[@]}"
        done
        bad 1 "write: no such region: r (no broker is running on $s)" write r /dev/null
        bad 1 "unshare: no such region: r (no broker is running on $s)" rm r
        run -0 ashmemctl rm -f r
        run -0 ashmemctl purge --all
        [ "$output" = "purged 0 pages (0 bytes)" ]
        no_broker "$s"
}

@test "create, share and slice start a broker; it shows its socket in ps" {
        export ASHMEM_SOCKET=$s
        run -0 ashmemctl -q create a 8K
        [ -S "$s" ]
        run -0 ps_broker "$s"
        local pid=$output
        [ "$pid" = "$(broker_pid_of "$s")" ]
        run -0 ps -o args= -p "$pid"
        [ "$output" = "ashmemctl broker run --socket $s --idle-exit 300" ]
        stop_broker
        # slice starts one as well (and finds no region there)
        bad 1 "slice: no such region: a" slice v --of a --length 4K
        ps_broker "$s"
        stop_broker
        # two brokers: ps tells them apart
        local s2=$BATS_TEST_TMPDIR/other.sock
        _helpers_sockets+=("$s2")
        ashmemctl -q create a 4K
        ashmemctl --socket "$s2" -q create b 4K
        [ "$(ps_broker "$s")" != "$(ps_broker "$s2")" ]
        [ "$(ps_broker "$s2")" = "$(broker_pid_of "$s2")" ]
}

@test "an auto-started broker exits once it holds nothing and serves nobody; a started one stays" {
        export ASHMEM_SOCKET=$s ASHMEM_IDLE_EXIT=1
        ashmemctl -q create a 4K
        local pid
        pid=$(ps_broker "$s")
        [ "$(ps -o args= -p "$pid")" = "ashmemctl broker run --socket $s --idle-exit 1" ]
        # it holds a region: it stays
        sleep 2.5
        kill -0 "$pid"
        run -0 ashmemctl size a
        [ "$output" = 4096 ]
        # a client connected keeps it too: a shell waiting on its input
        ashmemctl -q rm a
        coproc SH { ashmemctl shell 2>&1; }
        # bash unsets SH_PID as soon as the coprocess ends
        local shpid=$SH_PID
        echo version >&"${SH[1]}"
        read -r line <&"${SH[0]}"
        [[ "$line" == "ashmemctl "* ]]
        echo "list -n -o NAME; version" >&"${SH[1]}"
        read -r line <&"${SH[0]}"
        sleep 2.5
        kill -0 "$pid"
        exec {SH[1]}>&-
        wait_for bash -c "! kill -0 $shpid 2>/dev/null"
        # nothing held, nobody connected: gone, and its socket with it
        wait_for no_broker "$s"
        ! kill -0 "$pid" 2>/dev/null
        run -0 ashmemctl -j list
        [ "$output" = '{"regions":[]}' ]

        # broker start (and broker run) stay unless asked
        start_broker_at "$s"
        sleep 2.5
        kill -0 "$broker_pid"
        stop_broker "$s"
        # ... or asked to go: broker start --idle-exit
        start_broker_at "$s" --idle-exit 1
        [ "$(ps -o args= -p "$broker_pid")" = "ashmemctl broker run --socket $s --idle-exit 1" ]
        wait_for no_broker "$s"
        grep -q "nothing held and nobody served for 1s: exiting" "$broker_log"
        bad 2 "broker: invalid" broker run --idle-exit x
}

@test "a client that comes as the broker goes idle is never lost" {
        export ASHMEM_SOCKET=$s ASHMEM_IDLE_EXIT=1
        local n t cpid lpid
        # creates and lists timed around the moment the broker exits: each
        # create works (on the old broker or a new one), each list answers
        # (bats' run uses i: the loop's variable is n)
        for n in $(seq 1 14); do
                ashmemctl -q create "r$n" 4K
                ashmemctl -q rm "r$n"
                t=$(printf '0.%02d' $((85 + (n % 7) * 5)))
                sleep "${t/0.115/1.15}"
                ashmemctl -q create "s$n" 4K &
                cpid=$!
                ashmemctl -j list >"$BATS_TEST_TMPDIR/list.$n" &
                lpid=$!
                wait "$cpid"
                wait "$lpid"
                jq -e '.regions | type == "array"' "$BATS_TEST_TMPDIR/list.$n"
                run -0 ashmemctl size "s$n"
                [ "$output" = 4096 ]
                ashmemctl -q rm "s$n"
        done
        wait_for no_broker "$s"
}

@test "ASHMEM_IDLE_EXIT must be a number of seconds" {
        export ASHMEM_SOCKET=$s ASHMEM_IDLE_EXIT=soon
        bad 2 "ASHMEM_IDLE_EXIT=soon (environment): not a number of seconds" create a 4K
        no_broker "$s"
}

# ---------------------------------------------------------------- rm

@test "rm reports each name it removed and each it could not, in text and JSON; rm -f" {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
        ashmemctl -q create a 4K
        ashmemctl -q create b 4K
        run --separate-stderr ashmemctl rm a nosuch b
        [ "$status" -eq 1 ]
        [ "$output" = "$(printf 'removed a\nremoved b')" ]
        [ "$stderr" = "ashmemctl: unshare: no such region: nosuch" ]
        ashmemctl -q create a 4K
        run --separate-stderr ashmemctl -j rm a nosuch
        [ "$status" -eq 1 ]
        jq -e '. == {"removed":["a"],"failed":[{"name":"nosuch","errno":"ENOENT","message":"no such region: nosuch"}]}' <<<"$output"
        # -f: missing names are no failure
        ashmemctl -q create a 4K
        run -0 --separate-stderr ashmemctl rm -f nosuch a other
        [ "$output" = "removed a" ]
        [ -z "$stderr" ]
        run -0 ashmemctl -j rm --force nosuch
        jq -e '. == {"removed":[],"failed":[]}' <<<"$output"
        run -0 ashmemctl -q rm -f nosuch
        [ -z "$output" ]
}

@test "rm -f still fails for a name that is not yours" {
        stage_for_others ashmemctl
        public_broker
        ashmemctl -q create mine 4K --mode 0644
        run --separate-stderr as_nobody ashmemctl rm -f mine gone
        [ "$status" -eq 1 ]
        [ -z "$output" ]
        [[ "$stderr" == "ashmemctl: unshare: mine: "* ]]
        run --separate-stderr as_nobody ashmemctl -j rm -f mine
        [ "$status" -eq 1 ]
        jq -e '.removed == [] and (.failed | length) == 1 and .failed[0].name == "mine" and
               (.failed[0].errno == "EPERM" or .failed[0].errno == "EACCES")' <<<"$output"
        run -0 ashmemctl size mine
}

# ---------------------------------------------------------------- slices

@test "a slice goes with its region: never a view of what takes the name next" {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
        ashmemctl -q create frame 8K
        ashmemctl -q slice header --of frame --offset 4K --length 4K
        ashmemctl -q slice field --of header --length 1K
        ashmemctl -q create other 4K
        ashmemctl -q slice keep --of other --length 4K
        run -0 ashmemctl rm frame
        [ "$output" = "removed frame" ]
        ashmemctl -q create frame 4K
        bad 1 "info: no such region: header" info header
        bad 1 "info: no such region: field" info field
        bad 1 "attach: no such region: header" attach header -- true
        run -0 ashmemctl list -n -o NAME
        [ "$output" = "$(printf 'frame\nkeep\nother')" ]
        # a slice named again works on the new region
        ashmemctl -q slice header --of frame --length 4K
        run -0 ashmemctl -j info header
        jq -e '.of == "frame" and .offset == 0 and .length == 4096' <<<"$output"
        # removing a slice leaves its region
        ashmemctl -q rm keep
        run -0 ashmemctl size other
        [ "$output" = 4096 ]
        grep -q "header: removed" "$broker_log"
}

# ---------------------------------------------------------------- --system

@test "--system is a global option, before or after the command" {
        export ASHMEM_SOCKET=$s
        bad 2 "--system (/run/ashmem/broker.sock) and --socket /x name different brokers: give one" \
                --system --socket /x list
        bad 2 "--system (/run/ashmem/broker.sock) and --socket /x name different brokers: give one" \
                list --socket /x --system
        bad 2 "--socket needs a path (it was empty)" --socket '' list
        bad 2 "--socket needs a path (it was empty)" list --socket=
        if [ -S /run/ashmem/broker.sock ]; then
                skip "a system broker runs on this machine"
        fi
        # --system wins over ASHMEM_SOCKET; before or after the command
        bad 1 "info: no such region: x (no broker is running on /run/ashmem/broker.sock)" --system info x
        bad 1 "info: no such region: x (no broker is running on /run/ashmem/broker.sock)" info x --system
        run -1 ashmemctl broker status --system
        [ "$output" = "no broker running on /run/ashmem/broker.sock" ]
        run -1 ashmemctl --socket /run/ashmem/broker.sock --system broker status
        [ "$output" = "no broker running on /run/ashmem/broker.sock" ]
        no_broker "$s"
}

# ---------------------------------------------------------------- messages

@test "messages name the limit, variable, path or option involved" {
        export ASHMEM_SOCKET=$s
        start_broker_at "$s" --max-bytes 1M
        bad 1 "create: big: the broker's per-user byte limit would be passed (broker run --max-bytes SIZE" \
                create big 3T
        ASHMEM_NO_AUTOSTART=1 bad 1 "create: no broker is running on $BATS_TEST_TMPDIR/none.sock, and ASHMEM_NO_AUTOSTART=1 (environment) says not to start one" \
                --socket "$BATS_TEST_TMPDIR/none.sock" create x 4K
        ASHMEM_DRIVER=bogus bad 2 "ASHMEM_DRIVER=bogus (environment): no such driver; the values are auto and memfd" list
        ASHMEM_DRIVER=ashmem bad 2 "ASHMEM_DRIVER=ashmem (environment): this build has no /dev/ashmem driver" list
        ASHMEM_DRIVER=memfd run -0 ashmemctl list
        bad 2 "create: invalid name: contains the control character U+0085" create $'a\u0085b' 4K
        bad 2 "create: invalid name: not valid UTF-8 text (byte 0xff)" create $'a\xffb' 4K
        bad 2 "create: invalid mode '01777': the setuid, setgid and sticky bits (01000) mean nothing for a region" \
                create x 4K --mode 01777
        bad 2 "create: invalid mode '0640000': larger than 0777" create x 4K --mode 0640000
        bad 2 "create: invalid mode '00640': use three or four octal digits, like 0640" \
                create m 4K --mode 00640
        ashmemctl -q create m 4K
        # pin: an unaligned offset past the end is first of all unaligned
        bad 2 "pin: offset 20000 is not page-aligned (page size 4096)" pin m 20000
        bad 1 "pin: offset 20480 is past the end of m (4096 bytes)" pin m 20480
        # purge of a region that cannot be written says why nothing went
        ashmemctl -q create ro 8K --prot r
        ashmemctl unpin ro >/dev/null
        run -0 ashmemctl purge ro
        [ "$output" = "purged 0 pages (0 bytes) (its protection has no write: ro is never purged while its protection is r--)" ]
        run -0 ashmemctl -j purge ro
        jq -e '. == {"name":"ro","pages":0,"bytes":0,"not_purged":"its protection has no write"}' <<<"$output"
        ashmemctl unpin m >/dev/null
        run -0 ashmemctl purge m
        [ "$output" = "purged 1 page (4096 bytes)" ]
}

@test "an unsafe socket directory: the path and the reason" {
        local d=$BATS_TEST_TMPDIR/xdg
        mkdir -p "$d/ashmem"
        chmod 0777 "$d/ashmem"
        run --separate-stderr env -u ASHMEM_SOCKET XDG_RUNTIME_DIR="$d" ashmemctl create x 4K
        [ "$status" -eq 1 ]
        [ "$stderr" = "ashmemctl: create: refusing the socket directory $d/ashmem: open to others" ]
        [ ! -e "$d/ashmem/broker.sock" ]
        # a --socket in such a directory: the path and the reason too
        chmod 0700 "$d/ashmem"
        chmod 0777 "$d"
        run --separate-stderr ashmemctl --socket "$d/b.sock" create x 4K
        [ "$status" -eq 1 ]
        [ "$stderr" = "ashmemctl: create: refusing the broker socket $d/b.sock: its directory $d is writable by others (mode 0777)" ]
        chmod 0700 "$d"
}

@test "a socket in a directory that does not exist: create says it cannot start a broker there" {
        local d=$BATS_TEST_TMPDIR/no/such/dir
        run --separate-stderr ashmemctl --socket "$d/b.sock" create x 4K
        [ "$status" -eq 1 ]
        [ "$stderr" = "ashmemctl: create: cannot start a broker on $d/b.sock: the directory $d does not exist" ]
        [ ! -e "$BATS_TEST_TMPDIR/no" ]
        # list and info start none: no broker, nothing more to say
        run -0 ashmemctl --socket "$d/b.sock" list -n
        [ -z "$output" ]
}

@test "attach --fd 0, 1 or 2 is refused unless --force" {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
        ashmemctl -q create r 4K
        printf 'hi' | ashmemctl write r
        bad 2 "attach: --fd 1 would replace the command's stdout with the region (add --force if that is what you want)" \
                attach r --fd 1 -- true
        bad 2 "attach: --fd 0 would replace the command's stdin" attach r --fd 0 -- true
        bad 2 "attach: --fd 2 would replace the command's stderr" attach r --fd 2 -- true
        run -0 ashmemctl attach r --ro --fd 0 --force -- head -c 2
        [ "$output" = hi ]
        run -0 ashmemctl attach r --fd 5 -- sh -c 'head -c 2 <&5'
        [ "$output" = hi ]
}
