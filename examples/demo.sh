#!/bin/sh
# make demo: show the main job working. Usage: examples/demo.sh BUILDDIR
set -eu
B=$1
if [ -t 1 ]; then b=$(printf '\033[1m') n=$(printf '\033[0m'); else b= n=; fi
say() { printf '\n%s== %s%s\n' "$b" "$*" "$n"; }

say "a region shared with a forked child, unpinned, purged, re-pinned (examples/fork_share.c)"
"$B/examples/fork_share"
