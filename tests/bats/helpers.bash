# Common helpers of the bats tests: `load helpers` in a .bats file.
#
# `make bats` (tests/bats/run.sh) runs `ASHMEM_BUILD=<abs build dir> bats
# tests/bats`; the build directory comes first on PATH, so `ashmemctl` is
# the one just built.
#
# Brokers: start_broker starts one on a socket in $BATS_TEST_TMPDIR (and
# exports ASHMEM_SOCKET, so every ashmemctl of the test talks to it);
# stop_broker stops it; broker_teardown (call it from teardown) stops every
# broker the test started, whatever happened, and fails if one of them
# would not go. Daemons never keep bats' descriptor 3.
#
# Other users: never run anything of the build directory or the source
# tree as another user directly (it may not reach them); stage it with
# stage_for_others, run it with as_user or as_nobody, and call unstage
# from teardown.

bats_require_minimum_version 1.5.0
PATH="${ASHMEM_BUILD:?set ASHMEM_BUILD to the build directory}:$PATH"

# Sockets of the brokers this test started.
_helpers_sockets=()

# start_broker [BROKER-OPTIONS...]: a broker on $BATS_TEST_TMPDIR/broker.sock,
# exported as ASHMEM_SOCKET, logging to that path plus .log. Sets broker_pid
# and broker_log.
start_broker() {
        export ASHMEM_SOCKET=$BATS_TEST_TMPDIR/broker.sock
        start_broker_at "$ASHMEM_SOCKET" "$@"
}

# start_broker_at SOCKET [BROKER-OPTIONS...]: the same on another socket
# (ASHMEM_SOCKET is left alone); the log is SOCKET.log.
start_broker_at() {
        local s=$1
        shift
        _helpers_sockets+=("$s")
        broker_log=$s.log
        ashmemctl --socket "$s" broker start --log "$broker_log" "$@" 3>&- >/dev/null || return
        broker_pid=$(broker_pid_of "$s")
}

# stop_broker [SOCKET]: stop the broker on SOCKET (default $ASHMEM_SOCKET);
# returns once it is gone.
stop_broker() {
        ashmemctl --socket "${1:-$ASHMEM_SOCKET}" broker stop 3>&- >/dev/null
}

# broker_pid_of SOCKET: the pid of the broker answering there (or fail).
broker_pid_of() {
        local p
        p=$(ashmemctl --socket "$1" -j broker status 3>&- | jq -r .pid) || return
        [ -n "$p" ] && [ "$p" != null ] && echo "$p"
}

# wait_for CMD...: run CMD (quietly) until it succeeds, for at most 10 s.
wait_for() {
        local i
        for i in $(seq 1 200); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        echo "timed out waiting for: $*" >&2
        return 1
}

# ---------------------------------------------------------------- other users
# Another user may not reach the build directory, the source tree or bats'
# temporary directories: they sit below a private directory when the tree
# is a clone in a home of mode 0700. So whatever a test runs as another
# user (programs, scripts, anything they read) is staged first, in a
# directory of the test's own that everybody reaches.
#
# stage_for_others PATH...: copy each PATH of the build directory
# (ashmemctl, tests/helpers/probe, ...) to the same relative path below
# $stage_dir, a directory of mode 0755 under /tmp made on first use, and
# make every copy readable (and, where it was, executable) by everybody.
# Call unstage from teardown to remove it.
stage_for_others() {
        local f
        if [ -z "${stage_dir:-}" ]; then
                stage_dir=$(mktemp -d /tmp/ashmem-stage.XXXXXX) || return
                chmod 0755 "$stage_dir" || return
        fi
        for f in "$@"; do
                if [ ! -e "$ASHMEM_BUILD/$f" ]; then
                        echo "stage_for_others: $ASHMEM_BUILD/$f is not built" >&2
                        return 1
                fi
                mkdir -p "$stage_dir/$(dirname "$f")" &&
                        cp -R "$ASHMEM_BUILD/$f" "$stage_dir/$f" || return
        done
        chmod -R a+rX "$stage_dir"
}

# unstage: remove $stage_dir and what was staged there, and $pub_dir.
unstage() {
        if [ -n "${stage_dir:-}" ]; then
                rm -rf "$stage_dir"
                stage_dir=
        fi
        if [ -n "${pub_dir:-}" ]; then
                rm -rf "$pub_dir"
                pub_dir=
        fi
}

# as_user SETPRIV-OPTIONS... -- CMD...: run CMD as another user (setpriv
# with those options), with $stage_dir first on PATH and as the working
# directory (the test's own may be closed to that user).
as_user() {
        local opts=()
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
                opts+=("$1")
                shift
        done
        if [ $# -lt 2 ]; then
                echo "usage: as_user SETPRIV-OPTIONS... -- CMD..." >&2
                return 2
        fi
        shift
        if [ -z "${stage_dir:-}" ]; then
                echo "as_user: nothing staged (stage_for_others first)" >&2
                return 2
        fi
        (cd "$stage_dir" && PATH="$stage_dir:$PATH" exec setpriv "${opts[@]}" "$@")
}

# as_nobody CMD...: run CMD as user nobody, group nogroup, no other groups.
as_nobody() {
        as_user --reuid=nobody --regid=nogroup --clear-groups -- "$@"
}

# public_dir: a directory of mode 0755 under /tmp, in $pub_dir, for
# what other users must reach (bats' own temporary directories may be
# closed to them); unstage removes it too.
public_dir() {
        pub_dir=$(mktemp -d /tmp/ashmem-pub.XXXXXX) || return
        chmod 0755 "$pub_dir"
}

# public_broker [BROKER-OPTIONS...]: a broker of this user (root) that
# other users reach, on $pub_dir/broker.sock with socket mode 0666,
# exported as ASHMEM_SOCKET (and ASHMEM_NO_AUTOSTART=1); broker_teardown
# stops it.
public_broker() {
        public_dir || return
        export ASHMEM_SOCKET=$pub_dir/broker.sock ASHMEM_NO_AUTOSTART=1
        start_broker_at "$ASHMEM_SOCKET" --socket-mode 0666 "$@"
}

# broker_teardown: stop every broker this test started; fail if one is
# still running or left its socket behind.
broker_teardown() {
        local s p rc=0
        for s in "${_helpers_sockets[@]}"; do
                [ -S "$s" ] || continue
                p=$(broker_pid_of "$s" 2>/dev/null) || p=
                ashmemctl --socket "$s" broker stop 3>&- >/dev/null 2>&1 || true
                if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
                        echo "the broker on $s (pid $p) is still running" >&2
                        kill -KILL "$p" 2>/dev/null || true
                        rc=1
                fi
                if [ -S "$s" ]; then
                        echo "the broker's socket $s is still there" >&2
                        rc=1
                fi
        done
        _helpers_sockets=()
        return $rc
}

# ---------------------------------------------------------------- descriptors

fd_count() {
        ls "/proc/$1/fd" | wc -l
}

# broker_fds: the broker's descriptors other than its client connections
# (whose closing it may not have seen yet): regions, control blocks, the
# listening socket, its own.
broker_fds() {
        local lis
        lis=$(ss -xlH src "$ASHMEM_SOCKET" | awk '{ print $6 }')
        ls -l "/proc/$broker_pid/fd" |
                awk -v l="socket:[$lis]" 'NR > 1 && ($NF !~ /^socket:/ || $NF == l)' | wc -l
}

# broker_fds_are N (for wait_for)
broker_fds_are() {
        [ "$(broker_fds)" -eq "$1" ]
}

# broker_fds_back_to N: wait until broker_fds is N again; if it never is,
# show what the broker holds (the test fails).
broker_fds_back_to() {
        wait_for broker_fds_are "$1" && return 0
        echo "the broker (pid $broker_pid) holds $(broker_fds) descriptors, not $1:" >&2
        ls -l "/proc/$broker_pid/fd" >&2
        return 1
}

# fds_are PID N: PID has N descriptors open (for wait_for).
fds_are() {
        [ "$(fd_count "$1")" -eq "$2" ]
}
