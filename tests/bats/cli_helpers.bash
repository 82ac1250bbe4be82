# Helpers for the ashmemctl command tests (cli.bats, data.bats).
# The broker helpers come from helpers.bash.

load helpers

# Each test gets a broker of its own on a socket in $BATS_TEST_TMPDIR; none
# is ever started behind its back.
cli_setup() {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
}

# Stop it and fail if it (or any other broker the test started) is still
# running or left its socket behind.
cli_teardown() {
        broker_teardown
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
