#!/usr/bin/env bats
# Completion: the hidden `ashmemctl __complete` helper (what every script
# calls), the bash function through COMP_WORDS/COMP_CWORD/COMPREPLY, and
# the zsh and fish scripts (they parse; and each completes a command and a
# region name in the real shell).

load helpers
load tmux_helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup() {
        start_broker
        export ASHMEM_NO_AUTOSTART=1
}

teardown() {
        local rc=0
        tmux_teardown || rc=1
        broker_teardown || rc=1
        return $rc
}

# comp WORDS...: the helper's candidates (without descriptions) for the
# last word, one per line, in $output; its directive in $directive.
comp() {
        run -0 --separate-stderr ashmemctl __complete -- "$@"
        [ -z "$stderr" ]
        directive=${lines[-1]}
        [[ $directive == :* ]]
        output=$(printf '%s\n' "${lines[@]:0:${#lines[@]}-1}" | cut -f1)
}

# has WORD: $output has the line WORD; lacks WORD: it has not
has() { grep -qxF -- "$1" <<<"$output" || { echo "no '$1' in: $output" >&2; return 1; }; }
lacks() { ! grep -qxF -- "$1" <<<"$output" || { echo "'$1' in: $output" >&2; return 1; }; }

# ---------------------------------------------------------------- __complete

@test "__complete: command names from the table, by prefix" {
        comp ""
        [ "$directive" = :words ]
        for c in create list info size prot pin unpin status purge read write dump get set \
                 incr share slice unshare attach broker shell help version; do
                has "$c"
        done
        # hidden and shell-only commands are not offered on the command line
        lacks __complete
        lacks map
        lacks regions
        comp cr
        [ "$output" = create ]
        comp un
        [ "$output" = "$(printf 'unpin\nunshare')" ]
        comp zzz
        [ -z "$output" ]
        # descriptions come with the names: the table's summaries
        run -0 ashmemctl __complete -- inf
        [ "${lines[0]}" = "info	show a region's record" ]
        [ "${lines[1]}" = :words ]
}

@test "__complete: global options before the command" {
        comp --
        has --json
        has --socket
        has --no-autostart
        has --quiet
        has --version
        comp --socket ""
        [ "$directive" = :files ]
        [ -z "$output" ]
        comp --socket=/tm
        [ "$directive" = :files ]
        comp -j --no-autostart cre
        [ "$output" = create ]
}

@test "__complete: the output options, --system, rm --force, top's and the broker's idle exit" {
        comp --
        for o in --raw --export --shell --notruncate --time-format --system; do has "$o"; done
        comp list --time-format ""
        [ "$output" = "$(printf 'short\nfull\niso')" ]
        comp --time-format=i
        [ "$output" = --time-format=iso ]
        comp rm --f
        [ "$output" = --force ]
        comp top --
        has --interval
        has --count
        has --sort
        has --reverse
        comp broker run --idle-e
        [ "$output" = --idle-exit ]
        comp attach x --f
        has --fd
        has --force
}

@test "__complete: a command's options, each once, with the global ones" {
        comp create -
        has --prot
        has --mode
        has --transient
        has --local
        has --json
        lacks --map
        comp info --
        has --map
        has --bytes
        lacks --prot
        comp info --map --
        lacks --map
        has --bytes
        comp list --out
        [ "$output" = --output ]
        # an unknown command has nothing
        comp nosuch -
        [ -z "$output" ]
        # after "--" words are positionals: no options
        comp info -- -
        lacks --map
}

@test "__complete: types, protections, columns, broker subcommands, commands" {
        comp get x --type ""
        [ "$output" = "$(printf 'u8\nu16\nu32\nu64\ni8\ni16\ni32\ni64\nstr')" ]
        comp set x -t i
        [ "$output" = "$(printf 'i8\ni16\ni32\ni64')" ]
        comp set x --type=u1
        [ "$output" = --type=u16 ]
        comp create x 4K --prot ""
        [ "$output" = "$(printf 'r\nrw\nrx\nrwx')" ]
        comp prot x ""
        [ "$output" = "$(printf 'r\nrw\nrx\nrwx')" ]
        comp list -o ""
        [ "$directive" = :nospace ]
        has NAME
        has SIZE
        has TRANSIENT
        has OF
        # every column list --list-columns shows, and nothing else
        [ "$output" = "$(ashmemctl list --list-columns | sed -n 's/^ [ *] \([A-Z]*\) .*/\1/p')" ]
        comp list -o NAME,S
        [ "$output" = NAME,SIZE ]
        comp list -o na
        [ "$output" = NAME ]
        comp list --output=NAME,PU
        [ "$output" = --output=NAME,PURGED ]
        comp list -o +TR
        [ "$output" = +TRANSIENT ]
        comp broker st
        [ "$output" = "$(printf 'start\nstop\nstatus')" ]
        comp help sh
        [ "$output" = "$(printf 'share\nshell')" ]
        comp write x ""
        [ "$directive" = :files ]
        comp attach x -- ""
        [ "$directive" = :commands ]
        comp attach x -- sh ""
        [ "$directive" = :files ]
        # a positional past the last one has nothing
        comp size x ""
        [ -z "$output" ]
        [ "$directive" = :words ]
}

@test "__complete: region names from the running broker" {
        ashmemctl -q create frame 4K
        ashmemctl -q create "front buffer" 8K
        ashmemctl -q create other 4K
        # in the broker's order (by name)
        comp info ""
        [ "$output" = "$(printf 'frame\nfront buffer\nother')" ]
        comp info fr
        [ "$output" = "$(printf 'frame\nfront buffer')" ]
        comp unshare frame ""
        has other
        comp slice s --of fr
        [ "$output" = "$(printf 'frame\nfront buffer')" ]
        run -0 ashmemctl __complete -- size fra
        [ "${lines[0]}" = "frame	4K rwx" ]
        # new names are not completed
        comp create ""
        [ -z "$output" ]
        # and neither is share's name outside the shell (it names a
        # region of the shell there)
        comp share ""
        [ -z "$output" ]
}

@test "__complete: --socket among the words picks the broker" {
        start_broker_at "$BATS_TEST_TMPDIR/second.sock"
        ashmemctl --socket "$BATS_TEST_TMPDIR/second.sock" -q create elsewhere 4K
        ashmemctl -q create here 4K
        comp info ""
        [ "$output" = here ]
        comp --socket "$BATS_TEST_TMPDIR/second.sock" info ""
        [ "$output" = elsewhere ]
        comp info --socket="$BATS_TEST_TMPDIR/second.sock" ""
        [ "$output" = elsewhere ]
}

@test "__complete never starts a broker" {
        export ASHMEM_SOCKET=$BATS_TEST_TMPDIR/none/broker.sock
        unset ASHMEM_NO_AUTOSTART
        mkdir -m 700 "$BATS_TEST_TMPDIR/none"
        comp info ""
        [ -z "$output" ]
        [ "$directive" = :words ]
        [ ! -e "$ASHMEM_SOCKET" ]
        run -1 ashmemctl broker status
}

@test "__complete: usage errors" {
        run -2 --separate-stderr ashmemctl __complete info
        [[ $stderr == *"usage: ashmemctl __complete -- WORDS..."* ]]
        # not in the help
        run -0 ashmemctl help
        [[ $output != *__complete* ]]
}

# ---------------------------------------------------------------- bash

# bcomp WORDS...: run the bash function on COMP_WORDS=(ashmemctl WORDS...)
# with the cursor on the last word; COMPREPLY one per line in $output.
bcomp() {
        run -0 bash -c 'source "$1/completions/ashmemctl.bash"; shift
                COMP_WORDS=(ashmemctl "$@"); COMP_CWORD=$#
                _ashmemctl ashmemctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf "%s\n" "${COMPREPLY[@]}"' bash "$ROOT" "$@"
}

@test "bash: the function is registered for ashmemctl" {
        run -0 bash -c 'source "$1/completions/ashmemctl.bash"; complete -p ashmemctl' bash "$ROOT"
        [ "$output" = "complete -F _ashmemctl ashmemctl" ]
}

@test "bash: commands, options, values" {
        bcomp cre
        [ "$output" = create ]
        bcomp ""
        has create
        has version
        lacks __complete
        bcomp info --m
        [ "$output" = --map ]
        bcomp get x --type u
        [ "$output" = "$(printf 'u8\nu16\nu32\nu64')" ]
        bcomp create x 1M -p rw
        [ "$output" = "$(printf 'rw\nrwx')" ]
        bcomp list -o NAME,PIN
        [ "$output" = NAME,PINNED ]
        bcomp broker sta
        [ "$output" = "$(printf 'start\nstatus')" ]
}

@test "bash and fish: the output options and their values" {
        bcomp --no
        [ "$output" = "$(printf -- '--no-autostart\n--notruncate')" ]
        bcomp list --time-format f
        [ "$output" = full ]
        bcomp rm --f
        [ "$output" = --force ]
        command -v fish >/dev/null || skip "fish is not installed (mk/deps.sh check installs it)"
        export HOME=$BATS_TEST_TMPDIR XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/config XDG_DATA_HOME=$BATS_TEST_TMPDIR/data
        run -0 fish --no-config -c "source '$ROOT/completions/ashmemctl.fish'; complete -C'ashmemctl list --time-format '"
        # fish sorts what it offers
        [ "$(cut -f1 <<<"$output")" = "$(printf 'full\niso\nshort')" ]
        run -0 fish --no-config -c "source '$ROOT/completions/ashmemctl.fish'; complete -C'ashmemctl --notr'"
        [ "$(cut -f1 <<<"$output")" = --notruncate ]
}

@test "bash: words split at '=' are put back together" {
        # bash gives "--output=NA" as three words; the reply replaces "NA"
        bcomp list --output = NA
        [ "$output" = NAME ]
        # (',' is no word break: the piece is the whole list)
        bcomp list --output = NAME,PA
        [ "$output" = NAME,PAGES ]
        bcomp set x --type = i6
        [ "$output" = i64 ]
}

@test "bash: region names, quoted for the command line" {
        ashmemctl -q create "my region" 4K
        ashmemctl -q create "it's" 4K
        ashmemctl -q create plain 4K
        bcomp info ""
        [ "$output" = "$(printf '%s\n' "it\\'s" 'my\ region' plain)" ]
        bcomp info my
        [ "$output" = 'my\ region' ]
        bcomp info 'my\ r'
        [ "$output" = 'my\ region' ]
        # inside an open quote the name goes in as it is
        bcomp info '"my'
        [ "$output" = 'my region' ]
        bcomp info "'it"
        [ "$output" = "it's" ]
}

@test "bash: file names for a file argument" {
        mkdir "$BATS_TEST_TMPDIR/files"
        touch "$BATS_TEST_TMPDIR/files/data.bin" "$BATS_TEST_TMPDIR/files/dump.txt"
        cd "$BATS_TEST_TMPDIR/files"
        bcomp write x d
        [ "$output" = "$(printf 'data.bin\ndump.txt')" ]
        bcomp write x da
        [ "$output" = data.bin ]
        bcomp --socket ./du
        [ "$output" = ./dump.txt ]
}

@test "bash: completion in an interactive bash (readline quoting)" {
        ashmemctl -q create "my region" 4K
        tmux_start "bash --norc --noprofile"
        tmux_keys "source '$ROOT/completions/ashmemctl.bash'; PS1='\$ '; clear" Enter
        wait_screen cursor_line_is '$'
        tmux_keys 'ashmemctl si' Tab 'm' Tab
        wait_screen cursor_line_is '$ ashmemctl size my\ region'
        tmux_keys Enter
        wait_screen screen_has_line 4096
}

# ---------------------------------------------------------------- zsh, fish

@test "zsh: the script parses and completes in zsh" {
        command -v zsh >/dev/null || skip "zsh is not installed (mk/deps.sh check installs it)"
        run -0 zsh -n "$ROOT/completions/_ashmemctl"
        head -1 "$ROOT/completions/_ashmemctl" | grep -qx '#compdef ashmemctl'
        ashmemctl -q create "front buffer" 4K
        mkdir "$BATS_TEST_TMPDIR/zdot"
        cat >"$BATS_TEST_TMPDIR/zdot/.zshrc" <<EOF
fpath=('$ROOT/completions' \$fpath)
autoload -Uz compinit && compinit -u -d '$BATS_TEST_TMPDIR/zdot/.zcompdump'
PS1='%% '
EOF
        tmux_start ZDOTDIR="$BATS_TEST_TMPDIR/zdot" "zsh -i"
        wait_screen cursor_line_is '%'
        tmux_keys 'ashmemctl inf' Tab 'fr' Tab
        wait_screen cursor_line_is '% ashmemctl info front\ buffer'
        tmux_keys Enter
        wait_screen screen_has_line 'Name:            front buffer'
}

@test "fish: the script parses and completes in fish" {
        command -v fish >/dev/null || skip "fish is not installed (mk/deps.sh check installs it)"
        run -0 fish --no-execute "$ROOT/completions/ashmemctl.fish"
        ashmemctl -q create "front buffer" 4K
        export HOME=$BATS_TEST_TMPDIR XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/config XDG_DATA_HOME=$BATS_TEST_TMPDIR/data
        run -0 fish --no-config -c "source '$ROOT/completions/ashmemctl.fish'; complete -C'ashmemctl inf'"
        [ "$output" = "info	show a region's record" ]
        run -0 fish --no-config -c "source '$ROOT/completions/ashmemctl.fish'; complete -C'ashmemctl info fr'"
        [ "$output" = "front buffer	4K rwx" ]
        run -0 fish --no-config -c "source '$ROOT/completions/ashmemctl.fish'; complete -C'ashmemctl info \"fr'"
        [ "$output" = "front buffer	4K rwx" ]
        run -0 fish --no-config -c "source '$ROOT/completions/ashmemctl.fish'; complete -C'ashmemctl get x -t u6'"
        [ "$output" = "u64	unsigned 64-bit integer" ]
}
