# Driving an interactive program the way a person does: in a tmux pane of
# a private tmux server (its socket in $BATS_TEST_TMPDIR), typing with
# send-keys and reading the screen with capture-pane. `load tmux_helpers`
# after helpers; call tmux_teardown from teardown.

tmux_sock=

# tmux_start [ENV=VALUE...] COMMAND: a 120x30 pane running COMMAND (a shell
# command line), in the environment of the test plus ENV.
tmux_start() {
        tmux_sock=$BATS_TEST_TMPDIR/tmux.sock
        local -a envs=()
        while [[ $# -gt 1 && $1 == *=* ]]; do
                envs+=("$1")
                shift
        done
        env "${envs[@]}" tmux -S "$tmux_sock" -f /dev/null new-session -d -s t \
                -x 120 -y 30 "$1" 3>&-
}

# tmux_keys KEYS...: type (tmux send-keys: "Enter", "Tab", "C-c", text).
tmux_keys() {
        tmux -S "$tmux_sock" send-keys -t t -- "$@"
}

# The pane's text, and its history, trailing blanks cut.
tmux_screen() {
        tmux -S "$tmux_sock" capture-pane -p -S -200 -t t | sed 's/ *$//'
}

# screen_has TEXT: some line of the pane contains TEXT.
screen_has() {
        tmux_screen | grep -qF -- "$1"
}

# screen_matches REGEX: some line of the pane matches the extended REGEX.
screen_matches() {
        tmux_screen | grep -qE -- "$1"
}

# screen_has_line TEXT: some line of the pane is TEXT (trailing blanks cut).
screen_has_line() {
        local want=$1
        want=${want%"${want##*[! ]}"}
        tmux_screen | grep -qxF -- "$want"
}

# The line the cursor is on (trailing blanks cut).
cursor_line() {
        local y
        y=$(tmux -S "$tmux_sock" display -p -t t '#{cursor_y}')
        tmux -S "$tmux_sock" capture-pane -p -t t | sed -n "$((y + 1))p" | sed 's/ *$//'
}

# cursor_line_is TEXT: the cursor's line is TEXT, for wait_for.
cursor_line_is() {
        [ "$(cursor_line)" = "$1" ]
}

# cursor_after TEXT: the cursor's line is TEXT and the cursor is right
# after it (so a trailing space in TEXT counts).
cursor_after() {
        local x
        x=$(tmux -S "$tmux_sock" display -p -t t '#{cursor_x}')
        [ "$(cursor_line)" = "${1%"${1##*[! ]}"}" ] && [ "$x" -eq "${#1}" ]
}

# wait_screen CHECK ARGS...: wait_for CHECK, showing the screen if it
# never comes.
wait_screen() {
        if ! wait_for "$@"; then
                echo "--- the screen:" >&2
                tmux_screen >&2
                return 1
        fi
}

# tmux_teardown: stop the tmux server (and what runs in it); fail if it
# would not go.
tmux_teardown() {
        [ -n "$tmux_sock" ] || return 0
        tmux -S "$tmux_sock" kill-server 2>/dev/null || true
        if tmux -S "$tmux_sock" has-session 2>/dev/null; then
                echo "the tmux server on $tmux_sock is still running" >&2
                return 1
        fi
        tmux_sock=
}
