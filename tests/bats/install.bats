#!/usr/bin/env bats
# make install and make uninstall, into a DESTDIR with PREFIX=/usr, and what
# the installed tree is good for: the program runs (and talks to a broker),
# programs compiled against the installed headers through the installed
# pkg-config file link and run (shared and static), man finds and renders
# the pages, the completions sit where bash-completion, zsh and fish look;
# uninstall removes exactly what install put there.
#
# make runs with `-o all`: the build in $ASHMEM_BUILD is installed as it is
# and never rebuilt from here (possibly with other flags, or while the make
# that runs these tests is still at work on it).

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BUILD=$(cd "$ASHMEM_BUILD" && pwd)
VERSION=$(sed -n 's/^VERSION *:= *//p' "$ROOT/Makefile")
SOVERSION=$(sed -n 's/^SOVERSION *:= *//p' "$ROOT/Makefile")
# Programs are built with the build's compiler; one linked with a sanitized
# libashmem (make SANITIZE=...) needs the sanitizer's runtime too, loaded
# first: the flag the build used.
CC_BUILD=$(sed -n '1s/ -std=.*//p' "$BUILD/.flags" 2>/dev/null)
CC_BUILD=${CC_BUILD:-cc}
SAN=$(grep -o -- '-fsanitize=[^ ]*' "$BUILD/.flags" 2>/dev/null | head -1)

setup() {
        dest=$BATS_TEST_TMPDIR/dest
        mandir=$dest/usr/share/man
        export LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat
}

teardown() {
        broker_teardown
}

# make TARGET... in the source tree for $dest, with nothing inherited from
# a make that may be running the tests, or from the environment, that
# could move the directories.
mk() {
        env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BINDIR -u LIBDIR -u INCLUDEDIR \
                -u MANDIR -u DATADIR \
                make --no-print-directory -C "$ROOT" -o all B="$BUILD" PREFIX=/usr \
                DESTDIR="$dest" "$@"
}

install_tree() {
        run mk install
        if [ "$status" -ne 0 ]; then
                echo "make install failed ($status):"
                echo "$output"
                return 1
        fi
}

# Are there completions to install?
have_completions() {
        [ -n "$(ls -A "$ROOT/completions" 2>/dev/null)" ]
}

# What install must create (files and links), relative to $dest, sorted.
expected_files() {
        local h m
        echo usr/bin/ashmemctl
        for h in "$ROOT"/lib/include/ashmem/*.h; do
                echo "usr/include/ashmem/${h##*/}"
        done
        for h in "$ROOT"/lib/include/android/*.h; do
                echo "usr/include/android/${h##*/}"
        done
        echo usr/lib/libashmem-preload.so
        echo "usr/lib/libashmem.so.$VERSION"
        echo "usr/lib/libashmem.so.$SOVERSION"
        echo usr/lib/libashmem.so
        echo usr/lib/libashmem.a
        echo usr/lib/pkgconfig/libashmem.pc
        for m in "$ROOT"/man/*.[1-8]; do
                echo "usr/share/man/man${m##*.}/${m##*/}"
        done
        if have_completions; then
                echo usr/share/bash-completion/completions/ashmemctl
                echo usr/share/zsh/site-functions/_ashmemctl
                echo usr/share/fish/vendor_completions.d/ashmemctl.fish
        fi
        # the units, where `pkg-config systemd` says for PREFIX=/usr
        echo lib/systemd/system/ashmem-broker.socket
        echo lib/systemd/system/ashmem-broker.service
        echo usr/lib/systemd/user/ashmem-broker.socket
        echo usr/lib/systemd/user/ashmem-broker.service
}

# What is under $dest that is not a directory, relative, sorted.
files_in_dest() {
        (cd "$dest" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort)
}

# Flags for a program built against the installed tree: the .pc file is
# found in the tree, and its /usr paths are taken inside $dest.
pc() {
        PKG_CONFIG_PATH=$dest/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest \
                pkg-config "$@" libashmem
}

@test "install: exactly the expected files, and nothing else" {
        install_tree
        diff -u <(expected_files | LC_ALL=C sort) <(files_in_dest)
}

@test "install: a second install over the first changes nothing" {
        install_tree
        files_in_dest >"$BATS_TEST_TMPDIR/first"
        install_tree
        diff -u "$BATS_TEST_TMPDIR/first" <(files_in_dest)
        [ "$(readlink "$dest/usr/lib/libashmem.so")" = "libashmem.so.$SOVERSION" ]
}

@test "install: bin/ashmemctl runs, and works with a broker" {
        install_tree
        [ -x "$dest/usr/bin/ashmemctl" ]
        run -0 "$dest/usr/bin/ashmemctl" version
        [ "$output" = "ashmemctl $VERSION (driver memfd)" ]
        # the installed program, and the broker it starts, on PATH first
        PATH=$dest/usr/bin:$PATH
        start_broker
        [ "$(readlink "/proc/$broker_pid/exe")" = "$dest/usr/bin/ashmemctl" ]
        run -0 ashmemctl --no-autostart -j create installed 8K
        [[ "$output" == *'"name":"installed","size":8192'* ]]
        run -0 ashmemctl --no-autostart list -n -o name,size
        [ "$output" = "installed 8K" ]
}

@test "install: headers under include/ashmem, the same as the source's, mode 644" {
        install_tree
        local h n=0
        for h in "$ROOT"/lib/include/ashmem/*.h; do
                cmp "$h" "$dest/usr/include/ashmem/${h##*/}"
                [ "$(stat -c %a "$dest/usr/include/ashmem/${h##*/}")" = 644 ]
                n=$((n + 1))
        done
        [ "$n" -ge 3 ]
}

@test "install: libashmem.so with its soname links, exporting only its API; libashmem.a" {
        install_tree
        local lib=$dest/usr/lib
        [ -f "$lib/libashmem.so.$VERSION" ] && [ ! -L "$lib/libashmem.so.$VERSION" ]
        [ "$(readlink "$lib/libashmem.so.$SOVERSION")" = "libashmem.so.$VERSION" ]
        [ "$(readlink "$lib/libashmem.so")" = "libashmem.so.$SOVERSION" ]
        run -0 readelf -d "$lib/libashmem.so.$VERSION"
        [[ "$output" == *"Library soname: [libashmem.so.$SOVERSION]"* ]]
        run -0 nm -D --defined-only "$lib/libashmem.so"
        [[ "$output" == *" T ashmem_create_region"* ]]
        [[ "$output" == *" T ashmem_pin_region"* ]]
        # nothing but the API (ashmem_*, the NDK's ASharedMemory_*) and the
        # version nodes is exported, and, in the private node, what the
        # preload library of the same build calls
        run -0 bash -c "nm -D --defined-only '$lib/libashmem.so' | awk '{ print \$3 }' |
                        grep -v '^ashmem_' | grep -v '^ASharedMemory_' | grep -v '^LIBASHMEM' || true"
        [ "$output" = "$(printf '%s\n' am_driver_of@@LIBASHMEM_PRIVATE am_memfd_make_in_place@@LIBASHMEM_PRIVATE)" ]
        [ ! -L "$lib/libashmem.a" ]
        run -0 nm "$lib/libashmem.a"
        [[ "$output" == *" T ashmem_create_region"* ]]
}

@test "install: lib/pkgconfig/libashmem.pc names the installed tree, without DESTDIR" {
        install_tree
        local f=$dest/usr/lib/pkgconfig/libashmem.pc
        [ -f "$f" ]
        ! grep -q -- "$dest" "$f"
        ! grep -q @ "$f"
        grep -qx 'prefix=/usr' "$f"
        run -0 pc --modversion
        [ "$output" = "$VERSION" ]
        run -0 pc --cflags
        [[ " $output " == *" -I$dest/usr/include "* ]]
        run -0 pc --libs
        [[ " $output " == *" -L$dest/usr/lib -lashmem "* ]]
}

@test "install: examples/fork_share.c, compiled with pkg-config against the installed tree, runs" {
        install_tree
        cd "$BATS_TEST_TMPDIR"
        run -0 $CC_BUILD -Wall -Wextra -Werror $SAN -o fork_share "$ROOT/examples/fork_share.c" $(pc --cflags --libs)
        run -0 readelf -d fork_share
        [[ "$output" == *"Shared library: [libashmem.so.$SOVERSION]"* ]]
        # it runs with the installed library, not another one
        run -0 env LD_LIBRARY_PATH="$dest/usr/lib" ldd ./fork_share
        [[ "$output" == *"libashmem.so.$SOVERSION => $dest/usr/lib/libashmem.so.$SOVERSION "* ]]
        run -0 env LD_LIBRARY_PATH="$dest/usr/lib" ./fork_share
        [[ "$output" == *'parent: reads "hello from child '* ]]
        [[ "$output" == *"parent: purge reclaimed 1 page(s)"* ]]
        [[ "$output" == *'parent: re-pin says was-purged; page 1 now reads ""'* ]]
}

@test "install: fork_share linked statically with the installed libashmem.a runs" {
        install_tree
        cd "$BATS_TEST_TMPDIR"
        local libs
        libs=$(pc --static --libs-only-l | sed 's/-lashmem//')
        run -0 $CC_BUILD -Wall -Wextra -Werror $SAN -o fork_share_static "$ROOT/examples/fork_share.c" \
                $(pc --cflags) "$dest/usr/lib/libashmem.a" $libs
        run -0 readelf -d fork_share_static
        [[ "$output" != *libashmem* ]]
        run -0 ./fork_share_static
        [[ "$output" == *'parent: re-pin says was-purged; page 1 now reads ""'* ]]
}

@test "install: a program using heaps and slices, compiled against the installed tree, runs" {
        [ -f "$ROOT/lib/include/ashmem/heap.h" ] || skip "no lib/include/ashmem/heap.h"
        install_tree
        cd "$BATS_TEST_TMPDIR"
        cat >heap.c <<'EOF'
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ashmem/ashmem.h>

#define TRY(call) do { int r_ = (call); if (r_ < 0) { \
        fprintf(stderr, "%s: %s\n", #call, strerror(-r_)); return 1; } } while (0)

int main(void)
{
        size_t ps = (size_t)sysconf(_SC_PAGESIZE);
        ashmem_heap *heap, *again;
        ashmem_slice *slice;
        int status, r;
        pid_t pid;

        TRY(ashmem_heap_new("install-heap", 2 * ps, 0, &heap));
        TRY(ashmem_slice_new(heap, ps, ps, &slice));
        TRY(ashmem_heap_adopt(ashmem_heap_fd(heap), 0, &again));
        printf("one mapping: %s, %d users\n",
               ashmem_heap_base(again) == ashmem_heap_base(heap) ? "yes" : "no",
               ashmem_heap_mapping_users(heap));
        pid = fork();
        if (pid == 0) {
                strcpy(ashmem_slice_ptr(slice), "written by the child");
                _exit(0);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
                return 1;
        printf("the slice reads \"%s\"\n", (char *)ashmem_slice_ptr(slice));
        TRY(ashmem_slice_unpin(slice));
        TRY(r = ashmem_purge(ashmem_heap_fd(heap)));
        printf("purged %d\n", r);
        TRY(r = ashmem_slice_pin(slice));
        printf("re-pin: %s; it reads \"%s\"\n", r == ASHMEM_WAS_PURGED ? "was-purged" : "not-purged",
               (char *)ashmem_slice_ptr(slice));
        ashmem_slice_unref(slice);
        ashmem_heap_unref(again);
        ashmem_heap_unref(heap);
        return 0;
}
EOF
        run -0 $CC_BUILD -Wall -Wextra -Werror $SAN -o heap heap.c $(pc --cflags --libs)
        run -0 env LD_LIBRARY_PATH="$dest/usr/lib" ./heap
        [ "${lines[0]}" = "one mapping: yes, 2 users" ]
        [ "${lines[1]}" = 'the slice reads "written by the child"' ]
        [ "${lines[2]}" = "purged 1" ]
        [ "${lines[3]}" = 're-pin: was-purged; it reads ""' ]
}

@test "install: man pages in man1, man3 and man7; man finds them and renders them" {
        install_tree
        local m d n=0
        for m in "$ROOT"/man/*.[1-8]; do
                d=$mandir/man${m##*.}/${m##*/}
                if [ -L "$m" ]; then
                        [ "$(readlink "$d")" = "$(readlink "$m")" ]
                        [ -f "$d" ]     # the link leads somewhere
                else
                        [ -f "$d" ] && [ ! -L "$d" ]
                        cmp "$m" "$d"
                fi
                n=$((n + 1))
        done
        [ "$n" -ge 10 ]
        ls "$mandir/man1/ashmemctl.1" "$mandir/man3/libashmem.3" "$mandir/man7/ashmem.7"
        run --separate-stderr man --warnings -l "$mandir/man1/ashmemctl.1"
        [ "$status" -eq 0 ] && [ -z "$stderr" ]
        [[ "$output" == *ASHMEMCTL*SYNOPSIS*ashmemctl*COMMANDS*"SEE ALSO"* ]]
        # (man -w gives the file a link leads to)
        run -0 env MANPATH="$mandir" man -w ashmem_unpin_region
        [[ "$output" == "$mandir/man3/"* ]]
        [ "$(readlink -f "$output")" = "$(readlink -f "$mandir/man3/ashmem_unpin_region.3")" ]
        run -0 env MANPATH="$mandir" man -w 1 ashmemctl
        [ "$output" = "$mandir/man1/ashmemctl.1" ]
        run -0 env MANPATH="$mandir" man -w 7 ashmem
        [ "$output" = "$mandir/man7/ashmem.7" ]
        # a page reached through a link renders
        run -0 env MANPATH="$mandir" man ashmem_unpin_region
        [[ "$output" == *ashmem_unpin_region* ]]
}

@test "install: completions for bash-completion, zsh and fish" {
        have_completions || skip "completions/ is not there yet"
        install_tree
        local share=$dest/usr/share
        [ -s "$share/bash-completion/completions/ashmemctl" ]
        [ -s "$share/zsh/site-functions/_ashmemctl" ]
        [ -s "$share/fish/vendor_completions.d/ashmemctl.fish" ]
        # bash-completion loads the file named after the command: it must
        # set up the completion of ashmemctl
        run -0 bash -c "source '$share/bash-completion/completions/ashmemctl' && complete -p ashmemctl"
        [[ "$output" == "complete "*" ashmemctl" ]]
        # zsh autoloads site-functions files that start with #compdef
        head -1 "$share/zsh/site-functions/_ashmemctl" | grep -Eq '^#compdef( .*)? ashmemctl( |$)'
        grep -Eq '^complete .*(-c|--command) ashmemctl' "$share/fish/vendor_completions.d/ashmemctl.fish"
}

@test "uninstall: removes exactly what install put there, and may run twice" {
        local other=(usr/bin/other usr/include/other.h usr/include/ashmem-other/x.h
                     usr/lib/libother.so.1 usr/lib/pkgconfig/other.pc
                     usr/share/man/man1/other.1 usr/share/man/man3/other.3
                     usr/share/man/man7/other.7
                     usr/share/bash-completion/completions/other
                     usr/share/zsh/site-functions/_other
                     usr/share/fish/vendor_completions.d/other.fish)
        local f
        for f in "${other[@]}"; do
                mkdir -p "$dest/${f%/*}"
                echo "not ours" >"$dest/$f"
        done
        install_tree
        [ "$(files_in_dest | wc -l)" -gt "${#other[@]}" ]
        run -0 mk uninstall
        diff -u <(printf '%s\n' "${other[@]}" | LC_ALL=C sort) <(files_in_dest)
        for f in "${other[@]}"; do
                [ "$(cat "$dest/$f")" = "not ours" ]
        done
        [ ! -e "$dest/usr/include/ashmem" ]
        run -0 mk uninstall
        diff -u <(printf '%s\n' "${other[@]}" | LC_ALL=C sort) <(files_in_dest)
}

@test "uninstall: after an install into an empty tree, no file is left" {
        install_tree
        run -0 mk uninstall
        run -0 files_in_dest
        [ -z "$output" ]
}
