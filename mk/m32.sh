#!/bin/sh
# The pin engine's unit tests built for 32-bit x86 (-m32) and run, then one
# region shared between a 32-bit and a 64-bit process both ways (the
# control block's layout is the same for both). Needs gcc-multilib and the
# i386 build of libcjson (libcjson-dev:i386); the 64-bit build (make) first.
# Usage: sh mk/m32.sh [BUILD-DIR]   (default build; the 32-bit objects go to
# BUILD-DIR-m32)
set -eu
B=${1:-build}
O=$B-m32
CC=${CC:-gcc}
FLAGS="-m32 -std=gnu11 -pthread -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I. -Ilib/include"
TESTS="test_pin test_hostile test_region test_heap test_table test_faults"

if ! printf 'int main(void){return 0;}\n' | $CC -m32 -x c - -o /dev/null -lcjson 2>/dev/null; then
        echo "m32: skipped: no 32-bit compiler or libcjson (apt-get install gcc-multilib libcjson-dev:i386)"
        exit 0
fi
[ -x "$B/tests/test_pin" ] || { echo "m32: build the 64-bit tests first (make)" >&2; exit 1; }
mkdir -p "$O/obj"
objs=
for f in lib/*.c drivers/*/*.c; do
        o=$O/obj/$(echo "$f" | tr / _ | sed 's/\.c$/.o/')
        $CC $FLAGS -DASHMEM_VERSION='"m32"' -c "$f" -o "$o"
        objs="$objs $o"
done
rm -f "$O/libashmem.a"
ar rcs "$O/libashmem.a" $objs
status=0
for t in $TESTS; do
        $CC $FLAGS tests/unit/support/harness.c "tests/unit/$t.c" "$O/libashmem.a" -lcjson -o "$O/$t"
        "$O/$t" || status=1
done
# a 64-bit creator with a 32-bit peer, and the other way round
ASHMEM_TEST_PEER=$(pwd)/$O/test_pin "$B/tests/test_pin" shared_with_a_peer_of_either_word_size || status=1
ASHMEM_TEST_PEER=$(pwd)/$B/tests/test_pin "$O/test_pin" shared_with_a_peer_of_either_word_size || status=1
exit $status
