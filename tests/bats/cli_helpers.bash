# Helpers for the ashmemctl command tests (cli.bats, data.bats).
# The broker helpers come from helpers.bash: every test runs against its own
# broker on a socket in $BATS_TEST_TMPDIR, stopped in teardown.

bats_require_minimum_version 1.5.0
if [ -f "$BATS_TEST_DIRNAME/helpers.bash" ]; then
        load helpers
fi
PATH="${ASHMEM_BUILD:?set ASHMEM_BUILD to the build directory}:$PATH"
# the broker on a socket in $BATS_TEST_TMPDIR, unless helpers.bash has them
if ! declare -F start_broker >/dev/null; then
        start_broker() {
                export ASHMEM_SOCKET=$BATS_TEST_TMPDIR/broker.sock
                ashmemctl broker start 3>&- >/dev/null
        }
fi
if ! declare -F stop_broker >/dev/null; then
        stop_broker() {
                ashmemctl broker stop >/dev/null
        }
fi

cli_setup() {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
        cli_broker_pid=$(ashmemctl -j broker status | jq -r .pid)
        [ -n "$cli_broker_pid" ] && [ "$cli_broker_pid" != null ]
}

# Stop the test's broker and check that it is gone: the process, and its
# socket. (Every other process a test starts, it waits for.)
cli_teardown() {
        stop_broker
        # (broker stop returns once the process is gone)
        if [ -n "${cli_broker_pid:-}" ] && kill -0 "$cli_broker_pid" 2>/dev/null; then
                echo "the broker (pid $cli_broker_pid) is still running" >&2
                return 1
        fi
        if [ -S "${ASHMEM_SOCKET:-}" ]; then
                echo "the broker's socket $ASHMEM_SOCKET is still there" >&2
                return 1
        fi
}

# bad RC "message part" ARGS...: ashmemctl ARGS fails with exit status RC and
# prints "ashmemctl: " and the message part on stderr, nothing on stdout.
# (RC 127 is written -127 to tell bats that "not found" is expected.)
bad() {
        local want_rc=${1#-} want_msg=$2
        shift 2
        if [ "$want_rc" = 127 ]; then
                run -127 --separate-stderr ashmemctl "$@"
        else
                run --separate-stderr ashmemctl "$@"
        fi
        if [ "$status" -ne "$want_rc" ]; then
                echo "ashmemctl $*: exit $status, expected $want_rc" >&2
                echo "stderr: $stderr" >&2
                return 1
        fi
        case "$stderr" in
        "ashmemctl: "*"$want_msg"*) ;;
        *)
                echo "ashmemctl $*: stderr does not say '$want_msg':" >&2
                echo "$stderr" >&2
                return 1 ;;
        esac
        if [ -n "$output" ]; then
                echo "ashmemctl $*: printed on stdout: $output" >&2
                return 1
        fi
}

# jqe FILTER: the JSON in $output satisfies the jq filter.
jqe() {
        if ! printf '%s\n' "$output" | jq -e "$1" >/dev/null; then
                echo "JSON does not satisfy $1:" >&2
                printf '%s\n' "$output" >&2
                return 1
        fi
}
