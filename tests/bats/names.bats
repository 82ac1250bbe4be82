#!/usr/bin/env bats
# The broker's name table with many names: kept in order in blocks of 256
# (an insert moves one block, not the whole table), found by name, listed
# page by page, removed, and counted against the per-user limits. The
# names go in shuffled, so blocks split in the middle as well as at the end.

load helpers

setup() {
        start_broker --no-psi --max-regions 1000 --max-bytes 1M
        ashmemctl -q create base 4K
}

teardown() {
        broker_teardown
}

# slices N...: make a slice of base under each name given, in one shell
slices() {
        local n
        for n in "$@"; do
                echo "slice --of base -o 0 -l 4K $n"
        done | ashmemctl -q shell -e
}

# names: every name the broker lists, in its order
names() {
        ashmemctl -j list | jq -r '.regions[].name'
}

# shuffled FIRST LAST: the names n0FIRST..n0LAST in a fixed shuffled order
shuffled() {
        seq "$1" "$2" | shuf --random-source=<(yes) | awk '{ printf "n%04d\n", $1 }'
}

# ordered FIRST LAST STEP: the names from FIRST to LAST by STEP
ordered() {
        seq "$1" "$3" "$2" | awk '{ printf "n%04d\n", $1 }'
}

@test "700 names: listed once each, in order, each found by name" {
        # in front of everything (descending), between (ascending), after
        # everything (shuffled): blocks split at their start, middle and end
        mapfile -t want < <(ordered 600 2 -2; ordered 1 599 2; shuffled 601 700)
        slices "${want[@]}"
        run names
        [ "$status" -eq 0 ]
        [ "${#lines[@]}" -eq 701 ]
        # in order, and exactly the names made
        diff <(printf '%s\n' "${lines[@]}") <( (echo base; printf '%s\n' "${want[@]}") | sort)
        # the first, a middle one and the last, by name
        for n in n0001 n0257 n0512 n0700; do
                run ashmemctl -j info "$n"
                [ "$status" -eq 0 ]
                [ "$(jq -r .name <<<"$output")" = "$n" ]
                [ "$(jq -r .of <<<"$output")" = base ]
        done
        run ashmemctl info n0701
        [ "$status" -eq 1 ]
        # a name that exists is refused again, wherever it sits
        run ashmemctl slice --of base -o 0 -l 4K n0300
        [ "$status" -eq 1 ]
        [[ "$output" == *exists* ]]
}

@test "removing every other name and half a block at the end keeps the order and the finds" {
        mapfile -t all < <(ordered 600 2 -2; ordered 1 599 2; shuffled 601 700)
        slices "${all[@]}"
        # the odd ones, in shuffled order, then 640..700
        mapfile -t gone < <( (shuffled 1 700 | awk 'substr($0, 2) % 2 == 1'; seq 640 700 |
                awk '{ printf "n%04d\n", $1 }') | awk '!seen[$0]++')
        ashmemctl -q unshare "${gone[@]}"
        run names
        [ "$status" -eq 0 ]
        want=$( (echo base; seq 2 2 638 | awk '{ printf "n%04d\n", $1 }') | sort)
        diff <(printf '%s\n' "${lines[@]}") <(echo "$want")
        run ashmemctl info n0003
        [ "$status" -eq 1 ]
        run ashmemctl -j info n0638
        [ "$status" -eq 0 ]
        # and new names go in between again
        slices n0003 n0701 n0000
        run names
        [ "${lines[0]}" = base ]
        [ "${lines[1]}" = n0000 ]
        [ "${lines[3]}" = n0003 ]
        [ "${lines[-1]}" = n0701 ]
        [ "${#lines[@]}" -eq $((1 + 319 + 3)) ]
}

@test "the per-user limits count names and bytes as they come and go" {
        # 1000 names at most: base + 999 slices
        mapfile -t all < <(shuffled 1 999)
        slices "${all[@]}"
        run ashmemctl slice --of base -o 0 -l 4K n1000
        [ "$status" -eq 1 ]
        [[ "$output" == *"per-user limit on names is reached (broker run --max-regions N)"* ]]
        ashmemctl -q unshare n0500 n0501
        slices n1000 n1001
        run ashmemctl slice --of base -o 0 -l 4K n1002
        [ "$status" -eq 1 ]
        # bytes: slices hold none; 1M in all, base holds 4K
        ashmemctl -q unshare n0001 n0002 n0003
        ashmemctl -q create big 1020K
        run ashmemctl create more 4K
        [ "$status" -eq 1 ]
        [[ "$output" == *"per-user byte limit would be passed (broker run --max-bytes SIZE"* ]]
        ashmemctl -q unshare big
        ashmemctl -q create more 1020K
}
