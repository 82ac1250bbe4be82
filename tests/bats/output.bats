#!/usr/bin/env bats
# ashmemctl's output: tables by display width, --raw, --export, --shell,
# --notruncate, --time-format; JSON that a strict parser accepts whatever
# bytes a region or a name holds; region bytes escaped on a terminal;
# sizes with a fraction; top.

load cli_helpers
load tmux_helpers

setup() {
        cli_setup
        export LC_ALL=C.UTF-8
}

teardown() {
        local rc=0
        unstage
        tmux_teardown || rc=1
        cli_teardown || rc=1
        return $rc
}

# strict_json: standard input is one JSON document per line, each valid
# UTF-8 and valid JSON (no NaN, no duplicate keys), and there is at least
# one.
strict_json() {
        python3 -c '
import json, sys
data = sys.stdin.buffer.read()
text = data.decode("utf-8", errors="strict")
def pairs(kv):
    keys = [k for k, _ in kv]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in %r" % keys)
    return dict(kv)
def bad_const(c):
    raise ValueError("not JSON: " + c)
lines = [l for l in text.split("\n") if l]
if not lines:
    raise SystemExit("no JSON at all")
for l in lines:
    json.loads(l, object_pairs_hook=pairs, parse_constant=bad_const)
'
}

# jcheck ARGS...: ashmemctl --json ARGS; stdout and stderr are each strict
# JSON (stderr only when the command failed); sets $output to stdout.
jcheck() {
        run --separate-stderr ashmemctl --json "$@"
        if [ "$status" -eq 0 ]; then
                printf '%s' "$output" | strict_json || { echo "ashmemctl -j $*: stdout: $output" >&2; return 1; }
        else
                printf '%s' "$stderr" | strict_json || { echo "ashmemctl -j $*: stderr: $stderr" >&2; return 1; }
        fi
}

# width TEXT: display columns of TEXT (East Asian wide and emoji: 2)
width() {
        python3 -c '
import sys, unicodedata
s = sys.argv[1]
print(sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s))
' "$1"
}

NAMES=("plain" "héllo wörld" "日本語の名前" "😀 smile" "tab	less" 'q"uo$te`s\back')

make_names() {
        local n
        for n in "${NAMES[@]}"; do
                [[ $n == *$'\t'* ]] && continue    # no control characters in names
                ashmemctl -q create "$n" 12K
        done
}

# ---------------------------------------------------------------- tables

@test "list: columns align by display width (accents, CJK, emoji)" {
        make_names
        run -0 ashmemctl list -o NAME,SIZE,PAGES
        [ "${#lines[@]}" -eq 6 ]
        # every line is as wide as the header, on the screen
        w=$(width "${lines[0]}")
        for l in "${lines[@]}"; do
                [ "$(width "$l")" -eq "$w" ] || { echo "'$l' is $(width "$l") columns, not $w" >&2; false; }
        done
        # the SIZE column ends in the same screen column on every line
        [[ "${lines[0]}" == *" SIZE PAGES" ]]
        for l in "${lines[@]:1}"; do
                [[ "$l" =~ 12K\ +3$ ]]
        done
        # the name is shown as it is, not escaped
        [[ "$output" == *"日本語の名前 "* ]]
        [[ "$output" == *"😀 smile "* ]]
}

@test "--raw: one space between fields, names escaped as \\xNN, printf %b gives them back" {
        make_names
        run -0 ashmemctl --raw list -o NAME,SIZE,PINNED --bytes
        [ "${lines[0]}" = "NAME SIZE PINNED" ]
        [ "${#lines[@]}" -eq 6 ]
        [[ "$output" == *'h\xc3\xa9llo\x20w\xc3\xb6rld 12288 3'* ]]
        got=()
        while read -r name size pinned; do
                [ "$size" = 12288 ] && [ "$pinned" = 3 ]
                printf -v n '%b' "$name"
                got+=("$n")
        done < <(ashmemctl -r list -n -o NAME,SIZE,PINNED -b)
        [ "${#got[@]}" -eq 5 ]
        for n in "${NAMES[@]}"; do
                [[ $n == *$'\t'* ]] && continue
                printf '%s\n' "${got[@]}" | grep -qxF -- "$n" || { echo "lost '$n'" >&2; false; }
        done
}

@test "--export and --shell: KEY=\"value\" pairs that eval gives back exactly" {
        make_names
        run -0 ashmemctl --export list -n -o NAME,SIZE -b
        [ "${#lines[@]}" -eq 5 ]
        [[ "$output" == *'NAME="日本語の名前" SIZE="12288"'* ]]
        n=0
        while IFS= read -r line; do
                NAME= SIZE=
                eval "$line"
                [ "$SIZE" = 12288 ]
                found=0
                for want in "${NAMES[@]}"; do [ "$want" = "$NAME" ] && found=1; done
                [ $found = 1 ] || { echo "eval of $line gave '$NAME'" >&2; false; }
                n=$((n + 1))
        done < <(ashmemctl -e list -o NAME,SIZE -b)
        [ $n -eq 5 ]
        # --shell: the same pairs (every column name is a shell name) ...
        [ "$(ashmemctl --shell list -o NAME,SIZE -b)" = "$(ashmemctl -e list -o NAME,SIZE -b)" ]
        # ... but for UID, read-only in bash
        run -0 ashmemctl -e list -n -o UID
        ! (eval "$output") 2>/dev/null
        run -0 ashmemctl --shell list -n -o NAME,UID
        (eval "${lines[0]}"; [ "$UID_" = "$(id -u)" ])
        # a record too: info's fields as one line of pairs
        run -0 ashmemctl --shell info 'q"uo$te`s\back'
        eval "$output"
        [ "$NAME" = 'q"uo$te`s\back' ] && [ "$PAGES" = 3 ] && [ "$TRANSIENT" = no ] && [ "$MODE" = 0600 ]
        # and a slice's record has its slice fields
        ashmemctl -q slice --of plain -o 4K -l 4K view
        run -0 ashmemctl -y info view
        eval "$output"
        [ "$OF" = plain ] && [ "$OFFSET" = 4K ] && [ "$LENGTH" = 4K ]
}

# A fresh set of regions for each run of a command that changes them.
export_prep() {
        ashmemctl -q rm -f r 's p"a$c`e' v made >/dev/null
        ashmemctl -q create r 16K
        ashmemctl -q create 's p"a$c`e' 8K
        ashmemctl -q set r -t str -o 4K 'dollar $HOME "quoted" `tick` \back ünï'
        ashmemctl -q slice --of r -o 4K -l 4K v
}

# export_agrees CMD...: --json and --export of CMD (each after
# export_prep) exit alike; the JSON parses; every line of the export is
# nothing but KEY="value" pairs that eval takes; and each string or number
# at the top of the JSON document is what eval of the first line gives
# its key in capitals (records: only the name, their sizes are for people;
# not "encoding", which says how JSON holds a string).
export_agrees() {
        local json jrc line key want got
        export_prep
        run --separate-stderr ashmemctl --json "$@"
        json=$output jrc=$status
        printf '%s\n' "$json" | jq -e . >/dev/null || { echo "ashmemctl -j $*: $json" >&2; return 1; }
        export_prep
        # a record has UID, which bash keeps read-only: --shell for eval
        local how=--export
        [ -z "$records" ] || how=--shell
        run --separate-stderr ashmemctl $how "$@"
        if [ "$status" -ne "$jrc" ] || [ -z "$output" ]; then
                echo "ashmemctl -e $*: exit $status (JSON: $jrc), output '$output'" >&2
                return 1
        fi
        while IFS= read -r line; do
                if ! [[ "$line" =~ ^([A-Z_][A-Z0-9_]*=\"([^\"\\\`\$]|\\.)*\"( |$))+$ ]] ||
                   ! (eval "$line"); then
                        echo "ashmemctl -e $*: not KEY=\"value\" pairs: $line" >&2
                        return 1
                fi
        done <<<"$output"
        for key in $(printf '%s' "$json" | jq -r 'to_entries[] | select(.value | type == "string" or type == "number") | .key'); do
                [ -n "$records" ] && [ "$key" != name ] && continue
                # the JSON's own: how a string is encoded in it
                [ "$key" = encoding ] && continue
                want=$(printf '%s' "$json" | jq -r --arg k "$key" '.[$k]')
                got=$(eval "${lines[0]}"; v=${key^^}; printf '%s' "${!v}")
                if [ "$want" != "$got" ]; then
                        echo "ashmemctl -e $*: $key is '$got', JSON says '$want'" >&2
                        return 1
                fi
        done
}

@test "every command that prints a result honours --json and --export alike" {
        local records=
        export_agrees size r
        export_agrees prot r
        export_agrees prot r rw
        export_agrees status r
        export_agrees status v
        export_agrees pin r 0 4K
        export_agrees unpin r 0 4K
        export_agrees purge r
        export_agrees purge --all
        export_agrees get r -t u16
        export_agrees get r -t str -o 4K
        export_agrees set 's p"a$c`e' -t str 'x "y" $z'
        export_agrees set r -t i64 -- -5
        export_agrees incr r -t u32 -o 8 3
        printf 'abc' > "$BATS_TEST_TMPDIR/in"
        export_agrees write r "$BATS_TEST_TMPDIR/in"
        export_agrees dump r -l 16
        export_agrees version
        export_agrees broker status
        export_agrees rm 's p"a$c`e'
        export_agrees rm -f r nosuch
        export_agrees rm r nosuch
        records=1
        export_agrees info 's p"a$c`e'
        export_agrees info v
        export_agrees create made 4K
        export_agrees slice --of r -o 8K -l 4K made
        # the values eval gives
        export_prep
        eval "$(ashmemctl -e purge 's p"a$c`e')"
        [ "$NAME" = 's p"a$c`e' ] && [ "$PAGES" = 0 ] && [ "$BYTES" = 0 ]
        eval "$(ashmemctl -e get r -t str -o 4K)"
        [ "$VALUE" = 'dollar $HOME "quoted" `tick` \back ünï' ] && [ "$TYPE" = str ]
        eval "$(ashmemctl --shell status r)"
        [ "$PINNED" = yes ] && [ "$LENGTH" = 16384 ]
        # rm: a line a name, removed or not, and exit 1 for the one missing
        run -1 --separate-stderr ashmemctl -e rm r nosuch 's p"a$c`e'
        [ "${lines[0]}" = 'REMOVED="r"' ]
        (eval "${lines[1]}"; [ "$REMOVED" = 's p"a$c`e' ])
        [ "${lines[2]}" = 'FAILED_NAME="nosuch" FAILED_ERRNO="ENOENT" FAILED_MESSAGE="no such region: nosuch"' ]
        # --json purge names the region
        export_prep
        run -0 ashmemctl -j purge 's p"a$c`e'
        jqe '.name == "s p\"a$c`e" and .pages == 0'
        run -0 ashmemctl -j purge --all
        jqe '.all == true and (.name | not)'
        # the broker's nested counters: prefixed by their object's key
        run -0 ashmemctl -e broker status
        (eval "${lines[0]}"; [ "$RUNNING" = yes ] && [ "$SOCKET" = "$ASHMEM_SOCKET" ] &&
         [ "$STATS_REGIONS" = 3 ] && [ -n "$STATS_LIMITS_CONNECTIONS" ])
        [[ "${lines[1]}" == "STATS_UIDS_UID=\"$(id -u)\" "* ]]
        # -q silences text, not --export (nor --json)
        run -0 ashmemctl -q -e size r
        [ "$output" = 'NAME="r" SIZE="16384"' ]
}

@test "--time-format: short, full, iso; JSON keeps UTC; a bad format is a usage error" {
        ashmemctl -q create t 4K
        export TZ=UTC
        run -0 ashmemctl --time-format iso list -n -o CREATED
        [[ "$output" =~ ^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\+0000$ ]]
        run -0 ashmemctl --time-format=full list -n -o CREATED
        [[ "$output" =~ ^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\ [A-Z][a-z]{2}\ [\ 1-3][0-9]\ [0-2][0-9]:[0-5][0-9]:[0-5][0-9]\ 20[0-9]{2}$ ]]
        run -0 ashmemctl list --time-format short -n -o CREATED
        # made just now: the time of day (or the day, just after midnight)
        [[ "$output" =~ ^[0-2][0-9]:[0-5][0-9]$ || "$output" =~ ^[A-Z][a-z]{2}[0-3][0-9]$ ]]
        run -0 ashmemctl list -n -o CREATED
        [[ "$output" =~ ^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]$ ]]
        # info follows it too
        run -0 ashmemctl --time-format iso info t
        [[ "$output" == *"Created:         20"*"+0000"* ]]
        # JSON: always UTC with Z
        run -0 ashmemctl -j --time-format full info t
        jqe '.created | test("^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")'
        bad 2 "invalid time format 'long': use short, full or iso" --time-format long list
        bad 2 "list: invalid time format '': use short, full or iso" list --time-format=
        bad 2 "option --time-format needs an argument (FORMAT)" list --time-format
}

@test "--notruncate: a long name is cut to fit a narrow terminal only without it" {
        long=$(printf 'n%.0s' $(seq 70))
        ashmemctl -q create "$long" 4K
        # a terminal 40 columns wide
        tmux_start "echo ready; read x; ashmemctl list -o NAME,SIZE,PAGES,PINNED; echo ===; ashmemctl --notruncate list -o NAME,SIZE,PAGES,PINNED; echo '[done]'; exec sleep 600"
        wait_screen screen_has ready
        tmux -S "$tmux_sock" resize-window -t t -x 40 -y 30
        tmux_keys Enter
        wait_screen screen_has '[done]'
        # joined back where the pane wrapped them
        screen=$(tmux -S "$tmux_sock" capture-pane -p -J -S -200 -t t | sed 's/ *$//')
        before=${screen%%===*}
        after=${screen#*===}
        # cut to the terminal's width, the name shortened
        while IFS= read -r l; do
                [ -z "$l" ] && continue
                [ ${#l} -le 40 ] || { echo "too wide: $l" >&2; false; }
        done <<< "$before"
        [[ "$before" != *"$long"* ]]
        [[ "$after" == *"$long"* ]]
}

# ---------------------------------------------------------------- region bytes

@test "get --type str: escapes control bytes on a terminal, --raw gives them, JSON says the encoding" {
        ashmemctl -q create s 4K
        ashmemctl -q set s -t str $'red\e[31mALERT\e]0;title\a\\end'
        run -0 ashmemctl get s -t str
        [ "$output" = 'red\x1b[31mALERT\x1b]0;title\x07\x5cend' ]
        [[ "$output" != *$'\e'* ]]
        # --raw: the bytes themselves
        [ "$(ashmemctl --raw get s -t str | od -An -c | tr -s ' ')" = \
          "$(printf 'red\e[31mALERT\e]0;title\a\\end\n' | od -An -c | tr -s ' ')" ]
        jcheck get s -t str
        jqe '.value == "red\u001b[31mALERT\u001b]0;title\u0007\\end" and .encoding == "utf-8"'
        # bytes that are not UTF-8: base64 in JSON, \xNN as text
        printf 'ok\xff\xfe\xc3(\x80z\0' | ashmemctl write s
        jcheck get s -t str
        jqe '.encoding == "base64" and .value == "b2v//sMogHo="'
        [ "$(printf '%s' "$output" | jq -r .value | base64 -d | od -An -tx1 | tr -d ' \n')" = 6f6bfffec328807a ]
        run -0 ashmemctl get s -t str
        [ "$output" = 'ok\xff\xfe\xc3(\xc2\x80z' ] || [ "$output" = 'ok\xff\xfe\xc3(\x80z' ]
        # a C1 control character (valid UTF-8) is escaped too, byte by byte
        ashmemctl -q set s -t str $'a\u0085b\u00e9'
        run -0 ashmemctl get s -t str
        [ "$output" = 'a\xc2\x85bé' ]
        # set -t str reports in JSON with the encoding, nothing as text
        run -0 ashmemctl set s -t str 'plain'
        [ -z "$output" ]
        jcheck set s -t str 'héllo'
        jqe '.value == "héllo" and .encoding == "utf-8"'
}

@test "every command's JSON parses strictly, with hostile data and Unicode names" {
        ashmemctl -q create 'ünï 😀' 16K
        ashmemctl -q create '日本' 8K
        # bytes that are not UTF-8, escape sequences, NULs
        printf '\xff\xfe\e[2J\x80\xc0\xaf\0\0\xed\xa0\x80' | ashmemctl write 'ünï 😀'
        ashmemctl -q set '日本' -t str $'\e]52;c;aGk=\a'
        ashmemctl -q slice --of 'ünï 😀' -o 4K -l 4K 'vüe'
        jcheck list
        jqe '[.regions[].name] | sort == (["ünï 😀","日本","vüe"] | sort)'
        jcheck list -o NAME,OF,OFFSET
        jcheck list -H
        jcheck info 'ünï 😀'
        jcheck info 'vüe'
        jcheck size '日本'
        jcheck prot '日本'
        jcheck status 'ünï 😀'
        jcheck unpin 'ünï 😀' 0 4K
        jcheck pin 'ünï 😀' 0 4K
        jcheck purge 'ünï 😀'
        jcheck read 'ünï 😀' -l 16
        want=$(printf '\xff\xfe\e[2J\x80\xc0\xaf\0\0\xed\xa0\x80\0\0' | base64)
        jqe ".base64 == \"$want\""
        jcheck dump 'ünï 😀' -l 16
        jcheck get 'ünï 😀' -t str
        jqe '.encoding == "base64"'
        jcheck get '日本' -t str
        jqe '.encoding == "utf-8" and (.value | startswith("\u001b]52"))'
        jcheck get 'ünï 😀' -t u64
        jcheck set '日本' -t u32 -o 8 7
        jcheck incr '日本' -t u32 -o 8
        jqe '.value == 8'
        printf 'x' > "$BATS_TEST_TMPDIR/one"
        jcheck write '日本' -o 100 "$BATS_TEST_TMPDIR/one"
        jcheck create 'nöu' 1.5K
        jqe '.size == 1536'
        jcheck version
        jcheck broker status
        jcheck top --count 1 --interval 0.1
        jcheck unshare 'nöu' 'vüe'
        # errors quote what was typed: still valid JSON, still no escape bytes
        jcheck info $'bad/\xffname'
        [ "$status" -eq 2 ]
        # the bad byte quoted as \xff (a backslash doubled in JSON)
        [[ "$stderr" == *'bad/\\xffname'* ]]
        jcheck create $'esc\e[31m' 4K
        [ "$status" -eq 2 ]
        jcheck create x $'4\xffK'
        [ "$status" -eq 2 ]
        jcheck list -o $'NAME,\xc3'
        [ "$status" -eq 2 ]
        jcheck info 'no such ünï'
        [ "$status" -eq 1 ]
}

@test "messages show control characters and bad bytes as \\xNN" {
        bad 2 'create: invalid size '"'"'4\x1b[2JK'"'"': trailing characters' create x $'4\e[2JK'
        [[ "$stderr" != *$'\e'* ]]
        bad 2 "unknown column 'N\\xffAME'" list -o $'N\xffAME'
}

# ---------------------------------------------------------------- sizes

@test "sizes take a fraction: 1.5M, 0.5G, 1.5KiB, rounded up to a byte" {
        run -0 ashmemctl -j create a 1.5M
        jqe '.size == 1572864'
        run -0 ashmemctl -j create b 0.5G
        jqe '.size == 536870912'
        run -0 ashmemctl -j create c 1.5KiB
        jqe '.size == 1536'
        run -0 ashmemctl -j create d 0.3K
        jqe '.size == 308'
        run -0 ashmemctl -j create e 2.5MB
        jqe '.size == 2500000'
        [ "$(ashmemctl read a --offset 1.25M --length 0.25M | wc -c)" -eq 262144 ]
        bad 2 "create: invalid size '1.5': a fraction of a byte (give a unit, as in 1.5K)" create f 1.5
        bad 2 "invalid size '1.K': no digits after the decimal point" create f 1.K
        bad 2 "invalid size '.5K': not a number" create f .5K
        bad 2 "invalid size '0.0M': must be greater than zero" create f 0.0M
        bad 2 "invalid size '1,5M': trailing characters ',5M'" create f 1,5M
        bad 2 "invalid size '4.5T': larger than the 4T limit" create f 4.5T
}

@test "every size ashmemctl prints reads back" {
        for s in 1 1023 1024 1025 5000 10000 65535 1048575 1572865 3000000 315831091; do
                ashmemctl -q create "r$s" "$s"
        done
        # human sizes from list, info, top and the broker's status
        mapfile -t printed < <(
                ashmemctl list -n -o SIZE
                ashmemctl info r10000 | sed -n 's/^Size: *\([^ ]*\).*/\1/p'
                ashmemctl top -n 1 -o SIZE | sed 1d
                ashmemctl broker status | sed -n 's/^regions: .*(\(.*\))$/\1/p')
        [ "${#printed[@]}" -ge 13 ]
        for p in "${printed[@]}"; do
                p=${p// /}      # right-aligned in their columns
                [ -n "$p" ] || continue
                run -0 ashmemctl -j create "again-$RANDOM$RANDOM" "$p"
                # within the rounding of one decimal of the unit
                printf '%s' "$output" | jq -e --arg p "$p" '.size > 0' >/dev/null
        done
        # and each reads back as about what it showed (within 5%)
        while read -r name human; do
                exact=$(ashmemctl -j size "$name" | jq .size)
                run -0 ashmemctl -j create "back-$name" "$human"
                got=$(printf '%s' "$output" | jq .size)
                [ $(( (got - exact) * 100 / exact )) -le 5 ] && [ $(( (exact - got) * 100 / exact )) -le 5 ] || {
                        echo "$name: $exact shown as $human, reads back as $got" >&2; false; }
        done < <(ashmemctl list -n -o NAME,SIZE | grep '^r')
}

# ---------------------------------------------------------------- top

@test "top --json: one strict JSON record per refresh, sorted, --count ends it" {
        ashmemctl -q create small 4K
        ashmemctl -q create big 1M
        ashmemctl -q create mid 64K
        run --separate-stderr ashmemctl top --json --interval 0.1 --count 3
        [ "$status" -eq 0 ]
        [ "${#lines[@]}" -eq 3 ]
        printf '%s\n' "$output" | strict_json
        for l in "${lines[@]}"; do
                printf '%s' "$l" | jq -e '(.regions | map(.name)) == ["big","mid","small"] and .interval == 0.1 and (.time | endswith("Z"))' >/dev/null
        done
        run -0 ashmemctl top -j -d 0.1 -n 1 -s name
        jqe '(.regions | map(.name)) == ["big","mid","small"]'
        run -0 ashmemctl top -j -d 0.1 -n 1 -s name --reverse
        jqe '(.regions | map(.name)) == ["small","mid","big"]'
        # a change shows in the next record
        ashmemctl -q unpin mid 0 8K
        run -0 ashmemctl top -j -n 1 -s unpinned
        jqe '.regions[0].name == "mid" and .regions[0].unpinned == 2'
        # usage errors
        bad 2 "top: invalid interval '0': use 0.1 to 86400 seconds" top -d 0
        bad 2 "top: invalid interval 'x': not a number of seconds" top -d x
        bad 2 "top: invalid count '0': give at least 1" top -n 0
        bad 2 "top: unknown column 'NOPE'" top -s NOPE
        bad 2 "top: invalid sort column 'NAME,SIZE': give one column" top -s NAME,SIZE
}

@test "top: RES and RESIDENT count the pages in memory, a slice those of its view" {
        local ps
        ps=$(getconf PAGESIZE)
        ashmemctl -q create r $((8 * ps))
        # 3 of its 8 pages touched: 0, 2 and 5
        printf a | ashmemctl write -o 0 r
        printf b | ashmemctl write -o $((2 * ps + 7)) r
        printf c | ashmemctl write -o $((5 * ps)) r
        # a view of pages 1-3: one of them (2) touched
        ashmemctl -q slice --of r -o "$ps" -l $((3 * ps)) s
        run -0 ashmemctl top -j -n 1
        printf '%s\n' "$output" | strict_json
        jqe ".regions[0].name == \"r\" and .regions[0].resident == 3 and .regions[0].resident_bytes == $((3 * ps))"
        jqe ".regions[1].name == \"s\" and .regions[1].resident == 1 and .regions[1].resident_bytes == $ps"
        # sortable, and shown human-readable or in bytes
        run -0 ashmemctl top -n 1 -o NAME,RES,RESIDENT -s RESIDENT --reverse
        [ "$(printf "%s\n" "${lines[0]}" | tr -s " ")" = "NAME RES RESIDENT" ]
        [ "$(printf '%s\n' "${lines[1]}" | tr -s ' ')" = "s $((ps / 1024))K 1" ]
        [ "$(printf '%s\n' "${lines[2]}" | tr -s ' ')" = "r $((3 * ps / 1024))K 3" ]
        run -0 ashmemctl top -n 1 -b -o NAME,RES -s RES
        [ "$(printf '%s\n' "${lines[1]}" | tr -s ' ')" = "r $((3 * ps))" ]
        run -0 ashmemctl --export top -n 1 -o NAME,RESIDENT
        [ "${lines[0]}" = 'NAME="r" RESIDENT="3"' ]
        # purged pages hold no memory: 0 and 2 go, 5 stays
        ashmemctl -q unpin r 0 $((4 * ps))
        ashmemctl -q purge r
        run -0 ashmemctl top -j -n 1
        jqe '.regions[0].resident == 1 and .regions[1].resident == 0'
        # top attaches a region once, not at every refresh
        run -0 ashmemctl top -j -n 3 -d 0.1
        [ "$(printf '%s\n' "${lines[1]}" | jq '.regions[0].attaches')" = \
          "$(printf '%s\n' "${lines[2]}" | jq '.regions[0].attaches')" ]
        # the columns are top's: list and info do not have them
        bad 2 "list: column 'RES' is shown only by 'top'" list -o NAME,RES
        run -0 ashmemctl info r
        [[ "$output" != *Resident* ]]
        run -0 ashmemctl __complete -- list -o RES
        [[ "$output" != *RESIDENT* ]]
        run -0 ashmemctl __complete -- top -s RES
        [[ "$output" == *RESIDENT* ]]
}

@test "top: resident pages only where the kernel tells the truth (not to another user)" {
        # root's broker that nobody may reach; nobody may read region pub
        stage_for_others ashmemctl
        public_broker
        sock=$ASHMEM_SOCKET
        ashmemctl --socket "$sock" -q create pub 16K --mode 0644
        printf x | ashmemctl --socket "$sock" write pub
        run -0 ashmemctl --socket "$sock" -j top -n 1
        jqe '.regions[0].resident == 1'
        # mincore(2) would say every page of root's file is in: not shown
        run -0 as_nobody ashmemctl --socket "$sock" -j top -n 1
        jqe '.regions[0].name == "pub" and .regions[0].resident == null and .regions[0].resident_bytes == null'
        run -0 as_nobody ashmemctl --socket "$sock" top -n 1 -o NAME,RES,RESIDENT
        [ "$(printf '%s\n' "${lines[1]}" | tr -s ' ')" = "pub - -" ]
        ashmemctl --socket "$sock" broker stop >/dev/null
}

@test "top streams until SIGTERM or SIGINT, and fails when the broker cannot be reached" {
        ashmemctl -q create one 4K
        ashmemctl top --json --interval 0.1 > "$BATS_TEST_TMPDIR/stream" 3>&- &
        pid=$!
        wait_for eval '[ "$(wc -l < "$BATS_TEST_TMPDIR/stream")" -ge 3 ]'
        kill -TERM $pid
        rc=0; wait $pid || rc=$?
        [ $rc -eq 143 ]
        strict_json < "$BATS_TEST_TMPDIR/stream"
        # without a terminal or --json: a table per refresh
        run -0 ashmemctl top -n 2 -d 0.1 -o NAME,PINNED
        [ "${lines[0]}" = "NAME PINNED" ]
        [ "${lines[1]}" = "one       1" ]
        [ "${lines[2]}" = "NAME PINNED" ]
        run --separate-stderr ashmemctl -j --socket "$BATS_TEST_TMPDIR/none.sock" top -n 1
        [ "$status" -eq 1 ] && [ -z "$output" ]
        printf '%s' "$stderr" | jq -e '.error.command == "top"' >/dev/null
}

@test "top on a terminal: draws, re-sorts on keys, redraws on resize, q gives the terminal back" {
        ashmemctl -q create aaa 1M
        ashmemctl -q create zzz 4K
        tmux_start "stty -g > $BATS_TEST_TMPDIR/before; ashmemctl top -d 0.2; echo \"[exit \$?]\"; stty -g > $BATS_TEST_TMPDIR/after; exec sleep 600"
        wait_screen screen_matches '^NAME +SIZE +RES +PAGES +PINNED +UNPINNED +PURGED +ATTACHES +OWNER$'
        wait_screen screen_has 'sort: SIZE'
        screen_matches '^[0-9-]+T[0-9:]+[-+][0-9]{4}  2 regions, 1M, 0B resident  pages 257: 257 pinned'
        # sorted by size: aaa first
        [ "$(tmux_screen | grep -E '^(aaa|zzz) ' | head -1 | cut -c1-3)" = aaa ]
        # '<' moves the sort to the column left of SIZE: NAME
        tmux_keys '<'
        wait_screen screen_has 'sort: NAME'
        tmux_keys r
        wait_screen screen_has 'sort: NAME reversed'
        wait_for eval '[ "$(tmux_screen | grep -E "^(aaa|zzz) " | head -1 | cut -c1-3)" = zzz ]'
        # a narrower terminal: redrawn to fit, nothing wrapped onto a
        # line of its own
        tmux -S "$tmux_sock" resize-window -t t -x 30 -y 10
        wait_screen screen_has_line 'NAME SIZE RES PAGES PINNED UNP'
        sleep 0.5
        [ -z "$(tmux_screen | grep -vE '^(NAME|aaa|zzz|sort|[0-9]{4}-|$)')" ]
        tmux_keys q
        wait_screen screen_has '[exit 0]'
        # the terminal is as it was, the alternate screen gone
        [ "$(cat "$BATS_TEST_TMPDIR/before")" = "$(cat "$BATS_TEST_TMPDIR/after")" ]
        ! screen_has 'sort: NAME'
}

@test "top on a terminal: Ctrl-C and SIGTERM give the terminal back" {
        ashmemctl -q create one 4K
        tmux_start "trap '' INT; stty -g > $BATS_TEST_TMPDIR/before; ashmemctl top; echo \"[exit \$?]\"; stty -g > $BATS_TEST_TMPDIR/after; read x; ashmemctl top; echo \"[exit2 \$?]\"; stty -g > $BATS_TEST_TMPDIR/after2; exec sleep 600"
        wait_screen screen_has 'sort: SIZE'
        tmux_keys C-c
        wait_screen screen_has '[exit 130]'
        [ "$(cat "$BATS_TEST_TMPDIR/before")" = "$(cat "$BATS_TEST_TMPDIR/after")" ]
        ! screen_has 'sort: SIZE'
        tmux_keys Enter
        wait_screen screen_has 'sort: SIZE'
        pkill -TERM -x -P "$(tmux -S "$tmux_sock" display -p -t t '#{pane_pid}')" ashmemctl
        wait_screen screen_has '[exit2 143]'
        [ "$(cat "$BATS_TEST_TMPDIR/before")" = "$(cat "$BATS_TEST_TMPDIR/after2")" ]
}

@test "top on a terminal: the broker gone says so with its socket; one started again is shown" {
        ashmemctl -q create one 4K
        tmux_start "ashmemctl top -d 0.2; echo \"[exit \$?]\"; exec sleep 600"
        wait_screen screen_matches '^one +4K '
        stop_broker
        wait_screen screen_has "no broker is running on $ASHMEM_SOCKET"
        ! screen_matches '^one +4K '
        start_broker
        ashmemctl -q create two 8K
        wait_screen screen_matches '^two +8K '
        ! screen_has 'no broker is running'
        tmux_keys q
        wait_screen screen_has '[exit 0]'
}

@test "top --count on a terminal: the last refresh stays on the screen" {
        ashmemctl -q create one 4K
        tmux_start "ashmemctl top -n 1 -o NAME,SIZE; echo \"[exit \$?]\"; exec sleep 600"
        wait_screen screen_has '[exit 0]'
        screen_has_line 'NAME SIZE'
        screen_matches '^one +4K$'
}

@test "top: completion offers its options and columns" {
        run -0 ashmemctl __complete -- top -
        [[ "$output" == *$'--sort\t'* && "$output" == *$'--interval\t'* && "$output" == *$'--count\t'* ]]
        run -0 ashmemctl __complete -- top -s PIN
        [[ "$output" == *PINNED* ]]
        run -0 ashmemctl __complete -- list --time-format ''
        [[ "$output" == *$'short\t'* && "$output" == *$'full\t'* && "$output" == *$'iso\t'* ]]
}

@test "get --type str keeps newlines and tabs, escapes every other control character" {
        ashmemctl -q create s 4K
        ashmemctl -q set s -t str $'one\ttwo\nthree\rfour\x08'
        run -0 ashmemctl get s -t str
        [ "$output" = $'one\ttwo\nthree\\x0dfour\\x08' ]
}
