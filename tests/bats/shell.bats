#!/usr/bin/env bats
# ashmemctl shell: driven as a person would in a tmux pane (prompt, local
# regions shared transient, tab completion, history, Ctrl-C, Ctrl-D), and
# as a script (stdin, FILE, -c, -e), with sh-like quoting.

load helpers
load tmux_helpers

setup() {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
        export XDG_STATE_HOME=$BATS_TEST_TMPDIR/state
}

teardown() {
        local rc=0
        tmux_teardown || rc=1
        broker_teardown || rc=1
        return $rc
}

# shell_start [ENV=VALUE...]: `ashmemctl shell` in a tmux pane; when it
# ends the pane says "[exit STATUS]".
shell_start() {
        tmux_start "$@" 'ashmemctl shell; echo "[exit $?]"; exec sleep 600'
        wait_screen cursor_line_is 'ashmem>'
}

# names: the regions the broker holds, one per line
names() {
        ashmemctl -j list | jq -r '.regions[].name'
}

name_gone() {
        ! names | grep -qxF -- "$1"
}

# ---------------------------------------------------------------- interactive

@test "shell: a local region shared from the shell, seen by others, gone when the shell leaves" {
        shell_start
        tmux_keys 'create --local frame 64K' Enter
        wait_screen screen_has_line 'Name:            frame'
        # held by the shell only: the broker does not know it yet
        run -0 names
        [ -z "$output" ]
        tmux_keys 'share frame' Enter
        wait_screen screen_has_line 'Transient:       yes'
        # another ashmemctl sees it, and it is the shell's memory
        run -0 ashmemctl -j list
        [ "$(jq -r '.regions[] | select(.name == "frame") | .transient' <<<"$output")" = true ]
        [ "$(jq -r '.regions[] | select(.name == "frame") | .size' <<<"$output")" = 65536 ]
        tmux_keys 'set frame --type str hello' Enter
        wait_screen cursor_line_is 'ashmem>'
        run -0 ashmemctl get frame --type str
        [ "$output" = hello ]
        tmux_keys 'regions' Enter
        wait_screen screen_matches '^  frame +64K rwx +16 +0 +0$'
        # Ctrl-D leaves; the transient name goes with the shell's connection
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
        wait_for name_gone frame
        run -0 names
        [ -z "$output" ]
}

@test "shell: tab completes a command and a region name, and lists the candidates" {
        ashmemctl -q create "front buffer" 8K
        ashmemctl -q create backing 4K
        shell_start
        tmux_keys 'inf' Tab
        wait_screen cursor_after 'ashmem> info '
        tmux_keys 'fr' Tab
        wait_screen cursor_after 'ashmem> info front\ buffer '
        tmux_keys Enter
        wait_screen screen_has_line 'Name:            front buffer'
        # a value of a typed option
        tmux_keys 'get backing --type i6' Tab
        wait_screen cursor_line_is 'ashmem> get backing --type i64'
        tmux_keys C-u
        # an option, then columns after a comma (no space after a column)
        tmux_keys 'list --noh' Tab
        wait_screen cursor_line_is 'ashmem> list --noheadings'
        tmux_keys '-o NAME,SI' Tab
        wait_screen cursor_after 'ashmem> list --noheadings -o NAME,SIZE'
        tmux_keys Enter
        wait_screen screen_has_line 'front buffer 8K'
        # ambiguous: a second (third) Tab lists the candidates with what
        # they are
        tmux_keys 'un' Tab Tab Tab
        wait_screen screen_has 'unshare  remove names from the broker'
        screen_has 'unpin    unpin pages'
        screen_has 'unmap    drop a mapping made with map (shell)'
        tmux_keys C-u 'exit' Enter
        wait_screen screen_has_line '[exit 0]'
}

@test "shell: completion of the shell's own local regions and mappings" {
        shell_start
        tmux_keys 'create -q --local scratch 4K' Enter
        wait_screen cursor_line_is 'ashmem>'
        tmux_keys 'share scr' Tab
        wait_screen cursor_line_is 'ashmem> share scratch'
        tmux_keys C-u 'map scr' Tab
        wait_screen cursor_line_is 'ashmem> map scratch'
        tmux_keys Enter
        wait_screen screen_has 'scratch: 4K mapped rw- at 0x'
        tmux_keys 'unmap s' Tab
        wait_screen cursor_line_is 'ashmem> unmap scratch'
        tmux_keys Enter 'regions' Enter
        wait_screen screen_has_line 'Mappings: none'
        tmux_keys 'exit 3' Enter
        wait_screen screen_has_line '[exit 3]'
}

@test "shell: tab completes file names, after --opt= too" {
        mkdir -p "$BATS_TEST_TMPDIR/files/sub dir"
        echo hello >"$BATS_TEST_TMPDIR/files/data.txt"
        ashmemctl -q create target 4K
        cd "$BATS_TEST_TMPDIR/files"
        shell_start
        tmux_keys 'write target da' Tab
        wait_screen cursor_after 'ashmem> write target data.txt '
        tmux_keys Enter 'get target --type str' Enter
        wait_screen screen_has_line hello
        # a directory: its name with a '/', and no space after it
        tmux_keys 'write target su' Tab
        wait_screen cursor_after 'ashmem> write target sub\ dir/'
        tmux_keys C-u "list --socket=$BATS_TEST_TMPDIR/bro" Tab
        wait_screen cursor_line_is "ashmem> list --socket=$BATS_TEST_TMPDIR/broker.sock"
        tmux_keys Enter
        wait_screen screen_matches '^target +4K rwx'
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
}

@test "shell: history is written, and read by the next shell" {
        shell_start
        tmux_keys 'create -q hist 4K' Enter
        tmux_keys 'size hist' Enter
        wait_screen screen_has_line 4096
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
        [ "$(stat -c %a "$XDG_STATE_HOME/ashmemctl")" = 700 ]
        [ "$(stat -c %a "$XDG_STATE_HOME/ashmemctl/history")" = 600 ]
        run -0 cat "$XDG_STATE_HOME/ashmemctl/history"
        [ "$output" = "$(printf 'create -q hist 4K\nsize hist')" ]
        tmux_teardown
        # the next shell has it: Up brings the last line back
        shell_start
        tmux_keys Up
        wait_screen cursor_line_is 'ashmem> size hist'
        tmux_keys Up
        wait_screen cursor_line_is 'ashmem> create -q hist 4K'
}

@test "shell: the default history file, and a history that cannot be written is no failure" {
        unset XDG_STATE_HOME
        export HOME=$BATS_TEST_TMPDIR/home
        mkdir -m 700 "$HOME"
        shell_start
        tmux_keys 'version' Enter
        wait_screen screen_has 'ashmemctl 0'
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
        [ "$(cat "$HOME/.local/state/ashmemctl/history")" = version ]
        [ "$(stat -c %a "$HOME/.local/state")" = 700 ]
        tmux_teardown
        # a state directory that is a file: a warning, and the shell works
        export XDG_STATE_HOME=$BATS_TEST_TMPDIR/notadir
        touch "$XDG_STATE_HOME"
        shell_start
        screen_has_line "ashmemctl: shell: history $XDG_STATE_HOME/ashmemctl: Not a directory (going on without)"
        tmux_keys 'size nope' Enter
        wait_screen screen_has 'no such region: nope'
        tmux_keys 'create -q ok 4K; size ok' Enter
        wait_screen screen_has_line 4096
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
}

@test "shell: Ctrl-C cancels the line being typed, not the shell" {
        shell_start
        tmux_keys 'create junk 4K'
        wait_screen cursor_line_is 'ashmem> create junk 4K'
        tmux_keys C-c
        wait_screen screen_has_line 'ashmem> create junk 4K^C'
        wait_screen cursor_line_is 'ashmem>'
        # an unfinished quoted line goes too
        tmux_keys 'create "half' Enter
        wait_screen cursor_line_is '>'
        tmux_keys C-c
        wait_screen cursor_line_is 'ashmem>'
        tmux_keys 'list -o NAME' Enter
        wait_screen screen_has_line NAME
        run -0 names
        [ -z "$output" ]
        # a command running is not interrupted by Ctrl-C: attach runs sh
        # in a child, which the key stops; the shell goes on
        tmux_keys 'create -q r 4K' Enter
        tmux_keys 'attach r -- sh -c "echo waiting; exec sleep 60"' Enter
        wait_screen screen_has_line waiting
        tmux_keys C-c
        wait_screen cursor_line_is 'ashmem>'
        tmux_keys 'size r' Enter
        wait_screen screen_has_line 4096
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
}

@test "shell: a quoted line goes on over several lines" {
        ashmemctl -q create text 4K
        shell_start
        tmux_keys "set text --type str 'two" Enter
        wait_screen cursor_line_is '>'
        tmux_keys "lines'" Enter
        wait_screen cursor_line_is 'ashmem>'
        tmux_keys C-d
        wait_screen screen_has_line '[exit 0]'
        run -0 ashmemctl get text --type str
        [ "$output" = "$(printf 'two\nlines')" ]
        # history keeps the two lines as one entry
        [ "$(cat "$XDG_STATE_HOME/ashmemctl/history")" = "$(printf "set text --type str 'two\nlines'")" ]
}

@test "ashmemctl with no command on a terminal starts the shell" {
        tmux_start 'ashmemctl; echo "[exit $?]"; exec sleep 600'
        wait_screen cursor_line_is 'ashmem>'
        tmux_keys 'version' Enter
        wait_screen screen_has 'ashmemctl 0'
        tmux_keys 'exit' Enter
        wait_screen screen_has_line '[exit 0]'
}

# ---------------------------------------------------------------- scripts

@test "script: commands from stdin, with no command or with shell" {
        run -0 --separate-stderr ashmemctl <<'EOF'
# a comment
create -q a 4K
create -q b 8K ; size b   # comment after a command
list -o NAME --noheadings
EOF
        [ "$output" = "$(printf '8192\na\nb')" ]
        [ -z "$stderr" ]
        run -0 ashmemctl shell <<<"size a"
        [ "$output" = 4096 ]
        # FILE, and - for stdin
        printf 'size a\nsize b\n' >"$BATS_TEST_TMPDIR/script"
        run -0 ashmemctl shell "$BATS_TEST_TMPDIR/script"
        [ "$output" = "$(printf '4096\n8192')" ]
        run -0 ashmemctl shell - <"$BATS_TEST_TMPDIR/script"
        [ "$output" = "$(printf '4096\n8192')" ]
        run -1 --separate-stderr ashmemctl shell "$BATS_TEST_TMPDIR/nothing"
        [[ $stderr == "ashmemctl: shell: $BATS_TEST_TMPDIR/nothing: No such file or directory" ]]
}

@test "script: without -e the script goes on and ends with the last status; -e stops at the first failure" {
        run -0 --separate-stderr ashmemctl shell <<'EOF'
size nope
create -q after 4K
EOF
        [ "$stderr" = "ashmemctl: size: no such region: nope" ]
        run -0 names
        [ "$output" = after ]
        run -1 --separate-stderr ashmemctl shell <<'EOF'
create -q x 4K
size nope
EOF
        # -e: the failing command's status, nothing after it runs
        run -1 --separate-stderr ashmemctl shell -e <<'EOF'
create -q first 4K
size nope
create -q second 4K
EOF
        [ "$stderr" = "ashmemctl: size: no such region: nope" ]
        run -0 names
        [ "$output" = "$(printf 'after\nfirst\nx')" ]
        # a usage error stops it with 2, even in the middle of a line
        run -2 --separate-stderr ashmemctl shell -e <<'EOF'
create -q third 4K; create -q fourth 0; create -q fifth 4K
create -q sixth 4K
EOF
        [[ $stderr == "ashmemctl: create: invalid size '0'"* ]]
        run -0 names
        [ "$output" = "$(printf 'after\nfirst\nthird\nx')" ]
        # an unknown command is a usage error too
        run -2 --separate-stderr ashmemctl shell -e <<<"bogus; create -q never 4K"
        [[ $stderr == "ashmemctl: unknown command: bogus"* ]]
        name_gone never
}

@test "script: -c runs a line; exit gives the status" {
        run -0 ashmemctl shell -c 'create -q a 4K; size a; size a --json'
        [ "$output" = "$(printf '4096\n{"name":"a","size":4096}')" ]
        run -1 ashmemctl shell -c 'size a; size nope'
        run -0 ashmemctl shell -c 'size nope; size a'
        run -0 ashmemctl shell -e -c 'size a'
        run -1 ashmemctl shell -e -c 'size nope; create -q never 4K'
        name_gone never
        run -7 ashmemctl shell -c 'exit 7; create -q never 4K'
        name_gone never
        run -1 ashmemctl shell -c 'size nope; exit'
        run -2 --separate-stderr ashmemctl shell -c 'exit 300'
        [[ $stderr == "ashmemctl: exit: invalid exit status '300'"* ]]
        run -2 --separate-stderr ashmemctl shell -c 'size a' "$BATS_TEST_TMPDIR/f"
        [[ $stderr == "ashmemctl: shell: give -c LINE or FILE, not both"* ]]
        # the shell is not a command inside itself
        run -2 --separate-stderr ashmemctl shell -c 'shell'
        [[ $stderr == "ashmemctl: shell: not available in the shell"* ]]
}

@test "script: an unterminated quote is a usage error" {
        run -2 --separate-stderr ashmemctl shell -c "create -q 'open 4K"
        [ "$stderr" = "ashmemctl: shell: -c: an unterminated ' quote" ]
        run -2 --separate-stderr ashmemctl shell <<<'size "open'
        [ "$stderr" = "ashmemctl: shell: standard input: line 1: an unterminated \" quote" ]
        run -2 --separate-stderr ashmemctl shell <<'EOF'
create -q x 4K
size x\
EOF
        [ "$output" = "" ]
        [ "$stderr" = "ashmemctl: shell: standard input: line 2: a backslash at the end" ]
        run -0 names
        [ "$output" = x ]
        # a quote spanning lines, and a backslash-newline, are fine
        run -0 --separate-stderr ashmemctl shell <<'EOF'
set x --type str "two
lines"
size \
x
get x --type str
EOF
        [ "$output" = "$(printf '4096\ntwo\nlines')" ]
}

@test "script: sh-like quoting of names" {
        run -0 ashmemctl shell <<'EOF'
create -q "my region" 4K
create -q 'single quoted' 8K
create -q back\ slash 12K
create -q "it's \"quoted\"" 16K
create -q semi\;colon 20K
create -q '#hash' 24K
EOF
        run -0 names
        [ "$output" = "$(printf '%s\n' '#hash' 'back slash' "it's \"quoted\"" 'my region' 'semi;colon' 'single quoted')" ]
        run -0 ashmemctl shell -c 'size my\ region; size "single quoted"; size back" "slash; size '\''#hash'\'''
        [ "$output" = "$(printf '4096\n8192\n12288\n24576')" ]
        run -0 ashmemctl shell -c "size 'it'\\''s \"quoted\"'; size semi';'colon"
        [ "$output" = "$(printf '16384\n20480')" ]
}

@test "script: every command prints what it prints on the command line" {
        ashmemctl -q create shared 16K --mode 0640
        ashmemctl -q slice view --of shared --offset 4K --length 8K
        ashmemctl -q set shared --type u32 --offset 8 1234
        for c in "list" "list -o NAME,SIZE,OF --bytes" "ls -j" "info shared" "info view -j" \
                 "size view" "prot shared" "status shared" "get shared -t u32 -o 8" \
                 "dump view" "read shared -o 8 -l 4 -j" "help create" "create --help" "version -j" \
                 "size nope" "info" "create x 0" "nosuch"; do
                read -ra words <<<"$c"
                run --separate-stderr ashmemctl "${words[@]}"
                # usage lines in the shell name the command without "ashmemctl"
                local want_rc=$status
                local want_out=$(sed -E 's/^usage: ashmemctl ([a-z])/usage: \1/' <<<"$output")
                local want_err=$(sed -E 's/^usage: ashmemctl ([a-z])/usage: \1/' <<<"$stderr")
                run --separate-stderr ashmemctl shell -c "$c"
                if [ "$status" != "$want_rc" ] || [ "$output" != "$want_out" ] || [ "$stderr" != "$want_err" ]; then
                        echo "'$c' differs in the shell: status $status (want $want_rc)"
                        diff <(echo "$want_out"; echo "$want_err") <(echo "$output"; echo "$stderr")
                        return 1
                fi
        done
        # help lists the same commands, less those the shell refuses to run
        run -0 ashmemctl help
        local want=$(grep -E '^  ' <<<"$output" | grep -v -E '^  (broker|shell) ')
        run -0 ashmemctl shell -c help
        [ "$(grep -E '^  ' <<<"$output")" = "$want" ]
        run -2 ashmemctl shell -c 'broker status'
        # global options given to the shell hold for every command
        run -0 ashmemctl --json shell -c 'size shared; prot shared'
        [ "$output" = "$(printf '%s\n' '{"name":"shared","size":16384}' '{"name":"shared","prot":"rwx","prot_mask":7}')" ]
        # and one command's options are its own
        run -0 ashmemctl shell -c 'size shared --json; size shared'
        [ "$output" = "$(printf '%s\n' '{"name":"shared","size":16384}' 16384)" ]
}

@test "script: transient shares end with the shell; --keep keeps the name" {
        run -0 ashmemctl shell <<'EOF'
create -q --local gone 4K
share -q gone
create -q --local kept 8K
share -q --keep kept
create -q --transient also-gone 4K
set kept --type str still-here
list -o NAME,TRANSIENT --noheadings
EOF
        [ "$output" = "$(printf '%s\n' 'also-gone yes' 'gone      yes' 'kept      no')" ]
        wait_for name_gone gone
        wait_for name_gone also-gone
        run -0 names
        [ "$output" = kept ]
        run -0 ashmemctl get kept --type str
        [ "$output" = still-here ]
        run -2 --separate-stderr ashmemctl shell -c 'create -q --local l 4K; share --keep --transient l'
        [[ $stderr == "ashmemctl: share: --keep and --transient do not go together"* ]]
        run -2 --separate-stderr ashmemctl share --keep x --fd 0
        [[ $stderr == "ashmemctl: share: --keep is for a local region of the shell"* ]]
}

@test "script: local regions, map, unmap, regions" {
        ashmemctl -q create remote 8K
        ashmemctl -q create ro 4K --prot r
        run -0 --separate-stderr ashmemctl -j shell <<'EOF'
create --local mine 12K
map mine
map remote
map ro
regions
unmap remote
regions
EOF
        [ -z "$stderr" ]
        [ "${#lines[@]}" -eq 6 ]
        jq -e '.local == [{"name":"mine","size":12288,"prot":"rwx","pages":3,"pinned":3,"unpinned":0,"purged":0}]' <<<"${lines[4]}"
        jq -e '[.mapped[] | [.name, .size, .prot]] == [["mine",12288,"rw-"],["remote",8192,"rw-"],["ro",4096,"r--"]]' <<<"${lines[4]}"
        jq -e '[.mapped[].name] == ["mine","ro"]' <<<"${lines[5]}"
        jq -e '.mapped[0].address | test("^0x[0-9a-f]+$")' <<<"${lines[5]}"
        # a mapping is held: the region is still there after its name goes
        run -1 --separate-stderr ashmemctl shell <<'EOF'
map remote
unshare remote
regions
unmap remote
map remote
EOF
        [[ ${lines[0]} == "remote: 8K mapped rw- at 0x"* ]]
        [ "${lines[1]}" = "removed remote" ]
        [ "${lines[2]}" = "Local regions: none" ]
        [ "${lines[3]}" = "Mappings:" ]
        [[ ${lines[5]} == "  remote"*"8K rw-  0x"* ]]
        [ "$stderr" = "ashmemctl: map: no such region: remote" ]
        # errors
        run -1 --separate-stderr ashmemctl shell -c 'unmap none'
        [ "$stderr" = "ashmemctl: unmap: none is not mapped" ]
        run -1 --separate-stderr ashmemctl shell -c 'map ro; map ro'
        [ "$stderr" = "ashmemctl: map: ro is mapped already (unmap ro first)" ]
        run -1 --separate-stderr ashmemctl shell -c 'create -q --local a 4K; create --local a 4K'
        [ "$stderr" = "ashmemctl: create: a region named a exists already" ]
        run -1 --separate-stderr ashmemctl shell -c 'share nolocal'
        [[ $stderr == "ashmemctl: share: no local region named nolocal"* ]]
        # read-only: --ro, or a region whose write bit is gone
        run -0 ashmemctl shell -c 'map --ro ro; regions -j'
        jq -e '.mapped[0].prot == "r--"' <<<"${lines[1]}"
}

@test "the shell's own commands are usage errors outside it" {
        for c in map unmap regions exit; do
                run -2 --separate-stderr ashmemctl "$c" x
                [[ $stderr == "ashmemctl: $c: only available in the shell (ashmemctl shell)"* ]]
        done
}

@test "script: a broker that went away is connected to again" {
        run -0 --separate-stderr ashmemctl shell <<EOF
create -q before 4K
attach before -- sh -c 'ashmemctl broker stop >/dev/null && ashmemctl broker start --log "$broker_log" >/dev/null'
size before
create -q after 4K
size after
EOF
        # the broker holds nothing after its restart, and the shell says
        # so plainly (not "broken pipe") and goes on
        [ "$stderr" = "ashmemctl: size: no such region: before" ]
        [ "$output" = 4096 ]
}

# ---------------------------------------------------------------- interrupting, leaving, help

@test "shell: Ctrl-C interrupts write reading the terminal; no partial line is written" {
        ashmemctl -q create w 4K
        shell_start
        tmux_keys 'write w' Enter
        tmux_keys 'whole line' Enter
        tmux_keys 'partial'
        wait_screen cursor_line_is 'partial'
        tmux_keys C-c
        wait_screen cursor_line_is 'ashmem>'
        # the command said it was interrupted; the shell goes on, with 130
        wait_screen screen_has_line 'ashmemctl: write: interrupted reading the input (11 bytes written)'
        tmux_keys 'exit' Enter
        wait_screen screen_has_line '[exit 130]'
        run -0 ashmemctl read w --length 16
        [ "$output" = "$(printf 'whole line\n')" ]
        run -0 ashmemctl dump w --length 16
        [[ "$output" != *"partial"* ]]
}

@test "shell: quit and exit leave, with a status" {
        shell_start
        tmux_keys 'quit' Enter
        wait_screen screen_has_line '[exit 0]'
        run -3 ashmemctl shell -c 'quit 3; version'
        [ -z "$output" ]
        run -4 ashmemctl shell -c 'exit 4'
}

@test "shell: help speaks the shell's language, not ashmemctl's command line" {
        run -0 ashmemctl shell -c help
        [[ "${lines[0]}" == "Commands (help COMMAND, or COMMAND --help, for one):" ]]
        [[ "$output" != *"usage: ashmemctl"* ]]
        [[ "$output" == *"  exit, quit"* ]]
        run -0 ashmemctl shell -c 'help create'
        [[ "${lines[0]}" == "usage: create "* ]]
        run -0 ashmemctl shell -c 'create --help'
        [[ "${lines[0]}" == "usage: create "* ]]
        run -2 --separate-stderr ashmemctl shell -c 'create'
        [[ "$stderr" == *"usage: create "* ]]
        [[ "$stderr" != *"usage: ashmemctl"* ]]
        # on the command line, help is as before
        run -0 ashmemctl help
        [[ "${lines[0]}" == "usage: ashmemctl [OPTIONS] COMMAND [ARGS...]" ]]
}
