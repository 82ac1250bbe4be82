#!/usr/bin/env bats
# The option grammar of ashmemctl(1): one parser for the global options and
# a command's own, before the command and after its name, on the command
# line and in the shell.

load cli_helpers

setup() { cli_setup; }
teardown() {
        if [ -n "${other:-}" ]; then
                stop_broker "$other" || true
        fi
        cli_teardown
}

@test "bundled global options before the command: -qj, -jq" {
        ashmemctl -q create frame 8K
        run -0 --separate-stderr ashmemctl -qj size frame
        [ "$output" = '{"name":"frame","size":8192}' ]
        [ -z "$stderr" ]
        run -0 ashmemctl -jq size frame
        [ "$output" = '{"name":"frame","size":8192}' ]
        # -q alone silences create; with -j the JSON record still comes
        run -0 ashmemctl -qj create other 4K
        jqe '.name == "other" and .size == 4096'
}

@test "the same global options after the command name, bundled or not" {
        ashmemctl -q create frame 8K
        run -0 ashmemctl size -qj frame
        [ "$output" = '{"name":"frame","size":8192}' ]
        run -0 ashmemctl size frame -jq
        [ "$output" = '{"name":"frame","size":8192}' ]
        run -0 ashmemctl -j size frame
        [ "$output" = '{"name":"frame","size":8192}' ]
        run -0 ashmemctl size --json --quiet frame
        [ "$output" = '{"name":"frame","size":8192}' ]
        # a global option bundled with a command's own
        run -0 ashmemctl list -jn -o NAME
        jqe '.regions == [{"name":"frame"}]'
        run -0 ashmemctl pin -q frame
        [ -z "$output" ]
}

@test "-V with -j, in either order, before and after the command name" {
        run -0 ashmemctl -V
        [[ "$output" == "ashmemctl "*" (driver "*")" ]]
        text=$output
        run -0 ashmemctl --version
        [ "$output" = "$text" ]
        run -0 ashmemctl -jV
        jqe '(.version|type) == "string" and (.driver|type) == "string"'
        json=$output
        run -0 ashmemctl -Vj
        [ "$output" = "$json" ]
        run -0 ashmemctl -V -j
        [ "$output" = "$json" ]
        run -0 ashmemctl size -jV frame
        [ "$output" = "$json" ]
        run -0 ashmemctl size -Vj
        [ "$output" = "$json" ]
        run -0 ashmemctl list -V
        [ "$output" = "$text" ]
        # help wins over the version, and is text
        run -0 ashmemctl -Vh
        [ "${lines[0]}" = "usage: ashmemctl [OPTIONS] COMMAND [ARGS...]" ]
        run -0 ashmemctl size -jhV
        [ "${lines[0]}" = "usage: ashmemctl size NAME" ]
}

@test "--socket=PATH and --socket PATH, before and after the command" {
        other=$BATS_TEST_TMPDIR/other.sock
        start_broker_at "$other"
        ashmemctl --socket="$other" -q create elsewhere 4K
        bad 1 "size: no such region: elsewhere" size elsewhere
        run -0 ashmemctl --socket="$other" size elsewhere
        [ "$output" = 4096 ]
        run -0 ashmemctl --socket "$other" size elsewhere
        [ "$output" = 4096 ]
        run -0 ashmemctl size --socket="$other" elsewhere
        [ "$output" = 4096 ]
        run -0 ashmemctl size elsewhere --socket "$other"
        [ "$output" = 4096 ]
        run -0 ashmemctl -j size --socket "$other" elsewhere
        [ "$output" = '{"name":"elsewhere","size":4096}' ]
        bad 2 "option --socket needs an argument (PATH)" --socket
        bad 2 "size: option --socket needs an argument (PATH)" size elsewhere --socket
        # in the shell too, and there the command gets a connection of its own
        run -0 ashmemctl shell -c "size -q --socket=$other elsewhere; size --socket $other -j elsewhere"
        [ "${lines[0]}" = 4096 ]
        [ "${lines[1]}" = '{"name":"elsewhere","size":4096}' ]
}

@test "an unknown option inside a bundle is named alone; exit 2" {
        ashmemctl -q create frame 4K
        bad 2 "unknown option: -z" -qz size frame
        [[ "$stderr" != *"-qz"* ]]
        [[ "${stderr_lines[1]}" == "usage: ashmemctl [OPTIONS] COMMAND"* ]]
        bad 2 "size: unknown option: -z" size -qz frame
        [[ "$stderr" != *"-qz"* ]]
        [ "${stderr_lines[1]}" = "usage: ashmemctl size NAME" ]
        # with -j read before it, the error is a JSON object
        run -2 --separate-stderr ashmemctl size -jqz frame
        [ -z "$output" ]
        output=$stderr jqe '.error.message == "unknown option: -z" and .error.command == "size"'
        bad 2 "unknown option: -x" -qx
        # nothing ran: -q did not silence the error, the region is untouched
        run -0 ashmemctl size frame
        [ "$output" = 4096 ]
}

@test "long options are spelt in full: no prefixes; flags take no value" {
        ashmemctl -q create frame 4K
        bad 2 "unknown option: --jso" --jso size frame
        bad 2 "size: unknown option: --jso" size --jso frame
        bad 2 "list: unknown option: --out" list --out NAME
        bad 2 "size: option --json takes no argument" size --json=1 frame
        bad 2 "list: option -o needs an argument (COLS)" list -o
        bad 2 "list: option -o needs an argument (COLS)" list -no
        bad 2 "list: option --output needs an argument (COLS)" list --output
}

@test "-- ends the options: a positional may then start with -" {
        run -0 ashmemctl -q create -- -dash 4K
        [ -z "$output" ]
        run -0 ashmemctl size -- -dash
        [ "$output" = 4096 ]
        run -0 ashmemctl -j size -- -dash
        [ "$output" = '{"name":"-dash","size":4096}' ]
        # without it the word is read as options
        bad 2 "size: unknown option: -d" size -dash
        # after "--" even a global option is a positional
        bad 2 "size: unexpected argument: -j" size -- -dash -j
        # "--" before the command ends the global options
        run -0 ashmemctl -q -- size -- -dash
        [ "$output" = 4096 ]
        # a negative number is a positional without "--"
        ashmemctl -q create counter 4K
        run -0 ashmemctl incr counter -5
        [ "$output" = -5 ]
}

@test "option arguments attached or not: -oNAME,SIZE, --output=, -t u8, -tu8" {
        ashmemctl -q create frame 8K
        run -0 ashmemctl list -oNAME,SIZE
        [ "${lines[0]}" = "NAME  SIZE" ]
        [ "${lines[1]}" = "frame   8K" ]
        run -0 ashmemctl list -o NAME,SIZE
        [ "${lines[1]}" = "frame   8K" ]
        run -0 ashmemctl list --output=NAME,SIZE
        [ "${lines[1]}" = "frame   8K" ]
        run -0 ashmemctl list --output NAME,SIZE
        [ "${lines[1]}" = "frame   8K" ]
        # flags and an option with its argument in one bundle
        run -0 ashmemctl list -bnoNAME,SIZE
        [ "$output" = "frame 8192" ]
        run -0 ashmemctl list -jbnoNAME
        jqe '.regions == [{"name":"frame"}]'
        run -0 ashmemctl set -tu8 -o4 frame 200
        run -0 ashmemctl get frame --type=u8 --offset 4
        [ "$output" = 200 ]
        run -0 ashmemctl get -t u8 -o 4 frame
        [ "$output" = 200 ]
}

@test "the shell parses its lines with the same parser" {
        ashmemctl -q create frame 8K
        run -0 ashmemctl shell -c 'size -qj frame; list -noNAME,SIZE; size -- frame; version -j'
        [ "${lines[0]}" = '{"name":"frame","size":8192}' ]
        [ "${lines[1]}" = "frame 8K" ]
        [ "${lines[2]}" = 8192 ]
        jqe_line() { output=${lines[$1]} jqe "$2"; }
        jqe_line 3 '(.version|type) == "string"'
        run --separate-stderr ashmemctl shell -c 'size -qz frame'
        [ "$status" -eq 2 ]
        [ "${stderr_lines[0]}" = "ashmemctl: size: unknown option: -z" ]
}
