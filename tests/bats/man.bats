#!/usr/bin/env bats
# The man pages: every page lints clean with mandoc and renders with man(1)
# without a warning, every link leads to a page, and ashmemctl(1) documents
# every command of the command table and every option of every command, so
# the page cannot drift from the program.
#
# How ashmemctl.1 marks things (what the checks below look for):
#   a command's entry starts with `.It Ic NAME ...` or `.It Xo` + `.Ic NAME`
#   and runs to the next entry, .Ss or .Sh;
#   each option of a command is an item of its entry:
#   `.It Fl s , Fl -long ...` (`.It Fl -long ...` without a short form);
#   each sub-command (broker run|start|...) is an item `.It Cm word`.

load helpers

MAN_DIR=$BATS_TEST_DIRNAME/../../man
PAGE=$MAN_DIR/ashmemctl.1

setup() {
        export LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat
}

# The man pages that are files (links are checked on their own).
pages() {
        local m
        for m in "$MAN_DIR"/*.[1-8]; do
                [ -L "$m" ] || echo "$m"
        done
}

# Commands as `ashmemctl help` lists them: "NAME ALIAS" per line.
help_commands() {
        ashmemctl help | awk '/^Commands:/ { f = 1; next } /^$/ { f = 0 }
                f { n = $1; a = ""; if (n ~ /,$/) { sub(/,$/, "", n); a = $2 } print n, a }'
}

# The command names the page has entries for.
page_commands() {
        awk 'xo && /^\.Ic / { print $2 } /^\.It Ic / { print $3 } { xo = $0 == ".It Xo" }' \
                "$PAGE" | sort -u
}

# The lines of the entries of command $1 in the page.
page_entry() {
        awk -v cmd="$1" '
                /^\.S[hs] / { cur = "" }
                xo && /^\.Ic / { cur = $2 }
                /^\.It Ic / { cur = $3 }
                { xo = $0 == ".It Xo" }
                cur == cmd { print }' "$PAGE"
}

# A command's help, as `ashmemctl NAME --help` prints it. The shell's own
# commands refuse to run outside the shell, --help included: for them
# `ashmemctl help NAME`, which prints the same text. Sets $help; fails
# (saying so) when there is no usage line.
command_help() {
        help=$(ashmemctl "$1" --help 2>/dev/null) || help=$(ashmemctl help "$1")
        [[ "$help" == "usage: ashmemctl $1"* ]] && return
        echo "no help for $1"
        return 1
}

# A help text's options ("Options:" block): "SHORT LONG" per line, SHORT
# "-" when there is none.
help_options() {
        awk '/^Options:/ { f = 1; next } /^$/ { f = 0 }
                f && /^  -[^-],/ { s = substr($1, 2, 1); l = $2; sub(/^--/, "", l); print s, l; next }
                f && /^ +--/ { l = $1; sub(/^--/, "", l); print "-", l }'
}

# Does text on stdin have the option item for SHORT LONG?
has_option_item() {
        if [ "$1" = - ]; then
                grep -Eq -- "^\.It Fl -$2( |\$)"
        else
                grep -Eq -- "^\.It Fl $1 , Fl -$2( |\$)"
        fi
}

@test "man: there are pages, and ashmemctl.1 is one of them" {
        [ -f "$PAGE" ]
        [ "$(pages | wc -l)" -ge 3 ]
}

@test "man: every page lints clean (mandoc -Tlint -W warning)" {
        local m bad=0
        mapfile -t all < <(pages)
        for m in "${all[@]}"; do
                run mandoc -Tlint -W warning "$m"
                if [ "$status" -ne 0 ] || [ -n "$output" ]; then
                        echo "${m##*/}: status $status"
                        echo "$output"
                        bad=1
                fi
        done
        [ "$bad" = 0 ]
}

@test "man: every page renders with man -l, without a warning" {
        local m bad=0 name
        mapfile -t all < <(pages)
        for m in "${all[@]}"; do
                run --separate-stderr man --warnings -l "$m"
                name=$(awk '$1 == ".Nm" { print $2; exit }' "$m")
                if [ "$status" -ne 0 ] || [ -n "$stderr" ]; then
                        echo "${m##*/}: status $status"
                        echo "$stderr"
                        bad=1
                elif [[ "$output" != *NAME*"$name"*DESCRIPTION* ]]; then
                        echo "${m##*/}: the rendered page has no NAME ($name) or DESCRIPTION"
                        bad=1
                fi
        done
        [ "$bad" = 0 ]
}

@test "man: every link is relative, in its directory, and leads to a page of its section" {
        local m t bad=0 n=0
        for m in "$MAN_DIR"/*; do
                [ -L "$m" ] || continue
                n=$((n + 1))
                t=$(readlink "$m")
                if [[ "$t" == */* ]] || [ ! -f "$MAN_DIR/$t" ] || [ -L "$MAN_DIR/$t" ] ||
                   [ "${t##*.}" != "${m##*.}" ]; then
                        echo "${m##*/} -> $t"
                        bad=1
                fi
        done
        [ "$n" -gt 0 ]
        [ "$bad" = 0 ]
}

@test "man: ashmemctl.1 has an entry for every command of 'ashmemctl help', and mentions every alias" {
        local name alias bad=0 n=0
        local documented
        documented=$(page_commands)
        while read -r name alias; do
                n=$((n + 1))
                if ! grep -qx -- "$name" <<<"$documented"; then
                        echo "no entry for the command $name"
                        bad=1
                fi
                if [ -n "$alias" ] && ! page_entry "$name" | grep -Eq "^\.Ic $alias( |\$)"; then
                        echo "the entry of $name does not give its alias $alias"
                        bad=1
                fi
        done < <(help_commands)
        [ "$n" -ge 20 ]         # the parse found the table
        [ "$bad" = 0 ]
}

@test "man: every command ashmemctl.1 has an entry for exists" {
        local name bad=0
        mapfile -t all < <(page_commands)
        [ "${#all[@]}" -ge 20 ]
        for name in "${all[@]}"; do
                run ashmemctl help "$name"
                if [ "$status" -ne 0 ] || { [ "${lines[0]}" != "usage: ashmemctl $name" ] &&
                                            [[ "${lines[0]}" != "usage: ashmemctl $name "* ]]; }; then
                        echo "the page documents '$name', which is no command: ${lines[0]}"
                        bad=1
                fi
        done
        [ "$bad" = 0 ]
}

@test "man: every option of every command has an item in the command's entry" {
        local name alias s l bad=0 n=0 help
        while read -r name alias; do
                command_help "$name" || { bad=1; continue; }
                while read -r s l; do
                        n=$((n + 1))
                        if ! page_entry "$name" | has_option_item "$s" "$l"; then
                                echo "$name: no item for $([ "$s" = - ] || echo "-$s, ")--$l"
                                bad=1
                        fi
                done < <(help_options <<<"$help")
        done < <(help_commands)
        [ "$n" -ge 45 ]         # the parse found the options
        [ "$bad" = 0 ]
}

@test "man: every option item in a command's entry is an option of the command" {
        local name alias item l bad=0 known help
        while read -r name alias; do
                command_help "$name" || { bad=1; continue; }
                known=$( { help_options <<<"$help"; ashmemctl --help | help_options; } |
                         awk '{ print $2 }')
                while read -r item; do
                        # ".It Fl p , Fl -prot Ar prot" / ".It Fl -fd Ar n"
                        l=$(sed -E 's/^\.It Fl ([^ ] , Fl )?-([^ ]+).*/\2/' <<<"$item")
                        if ! grep -qx -- "$l" <<<"$known"; then
                                echo "$name: the page documents --$l, which it does not take"
                                bad=1
                        fi
                done < <(page_entry "$name" | grep -E '^\.It Fl ([^ ] , Fl )?-')
        done < <(help_commands)
        [ "$bad" = 0 ]
}

@test "man: every global option has an item" {
        local s l bad=0 n=0
        while read -r s l; do
                n=$((n + 1))
                if ! has_option_item "$s" "$l" <"$PAGE"; then
                        echo "no item for the global option --$l"
                        bad=1
                fi
        done < <(ashmemctl --help | help_options)
        [ "$n" -ge 5 ]
        [ "$bad" = 0 ]
}

@test "man: every sub-command in a usage line (a|b|c) has an item in the command's entry" {
        local name alias w bad=0 n=0 help
        while read -r name alias; do
                command_help "$name" || { bad=1; continue; }
                for w in $(head -1 <<<"$help" | tr ' ' '\n' |
                           grep -E '^[a-z]+(\|[a-z]+)+$' | tr '|' ' '); do
                        n=$((n + 1))
                        if ! page_entry "$name" | grep -Eq "^\.It Cm $w( |\$)"; then
                                echo "$name: no item for the sub-command $w"
                                bad=1
                        fi
                done
        done < <(help_commands)
        [ "$n" -ge 5 ]          # broker run|start|stop|status|call
        [ "$bad" = 0 ]
}

@test "man: broker's --max-closing and --max-parked say, in --help as in the page, a total and a user's share" {
        local o line item bad=0
        for o in max-closing max-parked; do
                line=$(ashmemctl broker --help | grep -E "^ +--$o ")
                item=$(awk -v it=".It Fl -$o" '$0 ~ /^\.It / { f = index($0, it) == 1 } f' \
                       "$PAGE" | tr '\n' ' ')
                if [[ "$line" != *"a total for all users"*"each user gets a share, an eighth, at least 16"* ]]; then
                        echo "--help: --$o does not say it is a total with a share per user: $line"
                        bad=1
                fi
                if [[ "$item" != *"for all users together"*"an eighth of it (at least 16)"* ]]; then
                        echo "ashmemctl.1: --$o does not say it is a total with a share per user"
                        bad=1
                fi
        done
        [ "$bad" = 0 ]
}
