#!/bin/sh
# make demo: show the main job working. Usage: examples/demo.sh BUILDDIR
set -eu
B=$1
if [ -t 1 ]; then b=$(printf '\033[1m') n=$(printf '\033[0m'); else b= n=; fi
say() { printf '\n%s== %s%s\n' "$b" "$*" "$n"; }

say "a region shared with a forked child, unpinned, purged, re-pinned (examples/fork_share.c)"
"$B/examples/fork_share"

# ashmemctl on a broker of its own: started on a socket in a temporary
# directory, stopped (and the directory removed) whatever happens.
(
        dir=$(mktemp -d "${TMPDIR:-/tmp}/ashmem-demo.XXXXXX")
        export ASHMEM_SOCKET="$dir/broker.sock" PATH="$B:$PATH"
        stop() { ashmemctl broker stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
        trap stop EXIT
        trap 'exit 1' INT TERM
        run() { printf '%s$ %s%s\n' "$b" "$*" "$n"; "$@"; }

        say "ashmemctl: a broker on a temporary socket"
        run ashmemctl broker start

        say "create a region, write a file into it, read it back"
        run ashmemctl create frame 64K --mode 0640
        printf 'hello from ashmemctl\n' > "$dir/msg"
        run ashmemctl write frame "$dir/msg"
        run ashmemctl read frame --length 21
        run ashmemctl dump frame --length 32

        say "share a slice of it; a second process attaches and reads"
        printf 'the header page' | ashmemctl write frame --offset 4K
        run ashmemctl -q slice header --of frame --offset 4K --length 4K
        # shown as typed; the quotes keep the variables for the second process
        printf '%s$ %s%s\n' "$b" "ashmemctl attach header --ro -- sh -c 'echo \"pid \$\$: \$ASHMEM_NAME is fd \$ASHMEM_FD, \$ASHMEM_SIZE bytes at offset \$ASHMEM_OFFSET\"; ashmemctl read header --length 15'" "$n"
        ashmemctl attach header --ro -- sh -c \
                'echo "pid $$: $ASHMEM_NAME is fd $ASHMEM_FD, $ASHMEM_SIZE bytes at offset $ASHMEM_OFFSET"; ashmemctl read header --length 15; echo'

        say "the shared counter: three processes (one per incr) add one each, atomically"
        run ashmemctl -q create counter 4K
        for i in 1 2 3; do
                run ashmemctl incr counter
        done
        run ashmemctl get counter

        say "unpin, purge (as memory pressure would), pin again: was-purged"
        run ashmemctl unpin frame 8K
        run ashmemctl status frame
        run ashmemctl purge frame
        run ashmemctl info frame --map
        run ashmemctl pin frame 8K
        run ashmemctl pin frame 8K
        run ashmemctl read frame --length 21

        say "list, for people and for scripts"
        run ashmemctl list
        run ashmemctl --json list

        say "the classic shared buffer (examples/shared_buffer_*.c): a server shares a 4-byte slice, transient; three clients increment it"
        "$B/examples/shared_buffer_server" &
        server=$!
        i=0
        until ashmemctl info shared-buffer >/dev/null 2>&1; do
                i=$((i + 1))
                [ "$i" -lt 200 ] || { echo "the server did not share" >&2; exit 1; }
                sleep 0.05
        done
        for i in 1 2 3; do
                run "$B/examples/shared_buffer_client"
        done
        say "the server stops: its share was transient, so the name goes with it"
        kill -TERM "$server"
        wait "$server"
        i=0
        while ashmemctl info shared-buffer >/dev/null 2>&1 && [ "$i" -lt 200 ]; do
                i=$((i + 1))
                sleep 0.05
        done
        echo "(the error below is the point: no name is left behind by a process that is gone)"
        run ashmemctl info shared-buffer || true
)

say "ashmemctl is $B/ashmemctl"
cat <<EOF
To use it from any directory, put it on PATH for this shell:
    export PATH="$B:\$PATH"
or install it (with its man pages and completions) for yourself:
    make install PREFIX="\$HOME/.local"     # then ~/.local/bin on PATH
or for everybody (as root):
    make install                            # /usr/local/bin/ashmemctl
Try 'ashmemctl help', 'ashmemctl shell', and man ashmemctl.
EOF
