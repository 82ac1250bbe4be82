#!/usr/bin/env bats
# The access-control matrix of the broker (docs/trust-model.md): three users
# (the region's owner, a member of its group, another user; plus a member
# through the primary group and root) across the modes 0600, 0640, 0644,
# 0660 and 0666, for attach r, attach rw, writing through the mapping,
# unpin, purge and unshare. Every cell is observed, then compared with what
# the rules say; a denied write is also shown to be denied by the kernel:
# tests/helpers/probe, given the read-only descriptor that attach --ro
# hands out, gets EACCES for a writable mapping, an mprotect to writable
# and a reopening O_RDWR, EBADF for write(2) and hole punching, and EPERM
# for pin, unpin and purge.
#
# The users are numeric ids with no account (setpriv); the broker runs as
# root on a 0666 socket in a world-searchable directory, and what the users
# run (ashmemctl, the probe) is staged where they reach it. The table goes
# to the test output (and to $ASHMEM_MATRIX_OUT when set).

load helpers

OWNER=2001
MEMBER=2002     # supplementary group 2001
PRIMARY=2004    # primary group 2001
OTHER=2003

setup() {
        [ "$(id -u)" = 0 ] || skip "needs root (setpriv to other users)"
        stage_for_others ashmemctl tests/helpers/probe
        probe=$stage_dir/tests/helpers/probe
        [ -x "$probe" ]
        public_broker
}

teardown() {
        broker_teardown
        unstage
}

# as WHO CMD...: run CMD as one of the users.
as() {
        local who=$1
        shift
        case $who in
        owner)   as_user --reuid=$OWNER --regid=$OWNER --clear-groups -- "$@" ;;
        member)  as_user --reuid=$MEMBER --regid=$MEMBER --groups=$OWNER -- "$@" ;;
        primary) as_user --reuid=$PRIMARY --regid=$OWNER --clear-groups -- "$@" ;;
        other)   as_user --reuid=$OTHER --regid=$OTHER --clear-groups -- "$@" ;;
        root)    "$@" ;;
        esac
}

# The rules (docs/trust-model.md): the permission bits that apply. Root
# may do anything; the owner has the owner bits; a member of the region's
# group, through its primary or a supplementary group, the group bits;
# everybody else the other bits.
bits() {
        local mode=$((8#$1)) who=$2
        case $who in
        root)           echo 7 ;;
        owner)          echo $(((mode >> 6) & 7)) ;;
        member|primary) echo $(((mode >> 3) & 7)) ;;
        other)          echo $((mode & 7)) ;;
        esac
}

# expected MODE WHO OP: yes or no, by the rules.
expected() {
        local b
        b=$(bits "$1" "$2")
        case $3 in
        attach_r)               (( b & 4 )) ;;
        attach_rw|write|unpin)  (( (b & 6) == 6 )) ;;
        purge|unshare)          [ "$2" = owner ] || [ "$2" = root ] ;;
        esac && echo yes || echo no
}

# The region m<MODE>, made by the owner, holding "data-<MODE>".
make_region() {
        local mode=$1
        if ! ashmemctl info "m$mode" >/dev/null 2>&1; then
                as owner ashmemctl -q create "m$mode" 4K --mode "$mode"
        fi
        ashmemctl -q pin "m$mode"
        printf 'data-%s' "$mode" | ashmemctl write "m$mode"
}

# denied_by_broker: the last `run` failed with the broker's refusal: EACCES
# for a region the user ($who in observe) may see (owner, root, or a read
# bit), and for one they may not, the answer a missing name gets (ENOENT),
# so that a refusal does not tell that the name exists.
denied_by_broker() {
        [ "$status" -eq 1 ] || return 1
        if [ "$who" = owner ] || [ "$who" = root ] || (( $(bits "$mode" "$who") & 4 )); then
                [[ "$stderr" == *"permission denied"* ]]
        else
                [[ "$stderr" == *"no such region: m$mode"* ]]
        fi
}

# observe MODE WHO OP: run the operation as WHO; print the cell (yes, or
# no and who refused); fail on any outcome other than allowed or denied.
observe() {
        local mode=$1 who=$2 op=$3 name=m$1 want
        make_region "$mode"
        case $op in
        attach_r)
                run --separate-stderr as "$who" ashmemctl attach "$name" --ro -- "$probe" read 9
                if [ "$status" -eq 0 ] && [ "$output" = "data-$mode" ]; then echo yes
                elif denied_by_broker; then echo "no (broker: EACCES)"
                else echo "attach r: status $status, $output $stderr" >&2; return 1; fi ;;
        attach_rw)
                run --separate-stderr as "$who" ashmemctl attach "$name" -- true
                if [ "$status" -eq 0 ]; then echo yes
                elif denied_by_broker; then echo "no (broker: EACCES)"
                else echo "attach rw: status $status, $stderr" >&2; return 1; fi ;;
        write)
                want="w-$who"
                run --separate-stderr as "$who" ashmemctl attach "$name" -- "$probe" write "$want"
                if [ "$status" -eq 0 ]; then
                        [ "$(ashmemctl read "$name" --length ${#want})" = "$want" ] || return 1
                        echo yes
                elif denied_by_broker; then
                        # with a read-only descriptor, the kernel refuses
                        # every way to write (root could reopen it: not probed)
                        run --separate-stderr as "$who" ashmemctl attach "$name" --ro -- "$probe" ro
                        if [ "$status" -eq 0 ]; then
                                echo "no (kernel: EACCES)"
                        elif denied_by_broker; then
                                echo "no (broker: EACCES)"
                        else
                                echo "probe ro as $who on $name: status $status" >&2
                                echo "$output" >&2
                                return 1
                        fi
                        [ "$(ashmemctl read "$name" --length 9)" = "data-$mode" ] || return 1
                else echo "write: status $status, $output $stderr" >&2; return 1; fi ;;
        unpin)
                run --separate-stderr as "$who" ashmemctl unpin "$name"
                if [ "$status" -eq 0 ]; then
                        [ "$(ashmemctl status "$name")" = unpinned ] || return 1
                        echo yes
                elif denied_by_broker; then
                        [ "$(ashmemctl status "$name")" = pinned ] || return 1
                        # the pin state that comes with a read-only
                        # descriptor refuses too (probe: EPERM)
                        run --separate-stderr as "$who" ashmemctl attach "$name" --ro -- "$probe" ro
                        if [ "$status" -eq 0 ]; then
                                echo "no (library: EPERM)"
                        elif denied_by_broker; then
                                echo "no (broker: EACCES)"
                        else
                                echo "probe ro as $who on $name: status $status: $output" >&2
                                return 1
                        fi
                else echo "unpin: status $status, $stderr" >&2; return 1; fi ;;
        purge)
                ashmemctl -q unpin "$name"
                run --separate-stderr as "$who" ashmemctl -j purge "$name"
                if [ "$status" -eq 0 ] && [ "$(jq .pages <<<"$output")" = 1 ]; then echo yes
                elif denied_by_broker; then
                        [ "$(ashmemctl -j info "$name" | jq .unpinned)" = 1 ] || return 1
                        echo "no (broker: EACCES)"
                else echo "purge: status $status, $output $stderr" >&2; return 1; fi ;;
        unshare)
                run --separate-stderr as "$who" ashmemctl unshare "$name"
                if [ "$status" -eq 0 ]; then
                        ! ashmemctl info "$name" 2>/dev/null || return 1
                        echo yes
                elif denied_by_broker; then
                        ashmemctl info "$name" >/dev/null || return 1
                        echo "no (broker: EACCES)"
                else echo "unshare: status $status, $stderr" >&2; return 1; fi ;;
        esac
}

@test "access matrix: owner, group member, other user (and root) across 0600..0666" {
        local ops=(attach_r attach_rw write unpin purge unshare)
        local users=(owner member primary other root)
        local mode who op cell want table bad=0 row
        table="| mode | user | attach r | attach rw | write through the mapping | unpin | purge | unshare |"$'\n'
        table+="|---|---|---|---|---|---|---|---|"$'\n'
        for mode in 0600 0640 0644 0660 0666; do
                for who in "${users[@]}"; do
                        row="| $mode | $who |"
                        for op in "${ops[@]}"; do
                                cell=$(observe "$mode" "$who" "$op") || {
                                        echo "$mode $who $op: neither allowed nor cleanly denied" >&2
                                        return 1
                                }
                                want=$(expected "$mode" "$who" "$op")
                                if [ "${cell%% *}" != "$want" ]; then
                                        echo "MISMATCH: mode $mode, $who, $op: $cell, the rules say $want" >&2
                                        cell="$cell **expected $want**"
                                        bad=1
                                fi
                                row+=" $cell |"
                        done
                        table+="$row"$'\n'
                done
        done
        table+=$'\n'"owner: uid $OWNER, group $OWNER (the creator); member: uid $MEMBER in group $OWNER "
        table+="as a supplementary group; primary: uid $PRIMARY with $OWNER as its primary group; "
        table+="other: uid $OTHER, group $OTHER; root: uid 0."$'\n'
        printf '%s' "$table" | sed 's/^/# /' >&3
        if [ -n "${ASHMEM_MATRIX_OUT:-}" ]; then
                printf '%s' "$table" >"$ASHMEM_MATRIX_OUT"
        fi
        [ "$bad" -eq 0 ]
}

@test "a read-only descriptor, as its holder sees it: the kernel refuses every write" {
        as owner ashmemctl -q create shown 8K --mode 0644
        printf 'kept' | ashmemctl write shown
        run -0 as other ashmemctl attach shown --ro -- "$probe" ro
        printf '%s\n' "$output" | sed 's/^/# /' >&3
        [[ "$output" == *"mmap(PROT_READ|PROT_WRITE, MAP_SHARED)"*"EACCES"* ]]
        [[ "$output" == *"open(/proc/self/fd/"*"O_RDWR)"*"EACCES"* ]]
        [[ "$output" == *"ashmem_unpin_region"*"EPERM"* ]]
        [[ "$output" != *UNEXPECTED* ]]
        # the owner's own read-only descriptor too (the memfd is the
        # broker's, mode 0600)
        run -0 as owner ashmemctl attach shown --ro -- "$probe" ro
        [[ "$output" != *UNEXPECTED* ]]
        [ "$(ashmemctl read shown --length 4)" = kept ]
        run -0 ashmemctl -j info shown
        jq -e '.pinned == 2 and .unpinned == 0' <<<"$output"
        # the probe itself fails when handed a writable descriptor (and
        # then writes: its hole punch zeroes the first byte)
        run -1 as owner ashmemctl attach shown -- "$probe" ro
        [[ "$output" == *"mmap(PROT_READ|PROT_WRITE, MAP_SHARED)"*"UNEXPECTED"* ]]
        [[ "$output" == *"ashmem_unpin_region"*"UNEXPECTED"* ]]
}
