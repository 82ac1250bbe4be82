#!/usr/bin/env bats
# `ashmemctl run -- CMD`: a program written for Android's /dev/ashmem runs
# unmodified under libashmem-preload.so; LD_PRELOAD is added to, not
# replaced; the command's exit status is ashmemctl's; errors name what is
# missing.

load helpers

DEV=${ASHMEM_BUILD}/tests/helpers/devashmem

@test "run: a /dev/ashmem program works under run and not without it" {
        run -0 ashmemctl run -- "$DEV" camera-buffer 10000 hello
        [ "$output" = "camera-buffer 10000 7 same-inode hello" ]
        run -1 --separate-stderr "$DEV" camera-buffer 10000 hello
        [[ $stderr == *"open /dev/ashmem: No such file or directory"* ]]
}

@test "run: LD_PRELOAD keeps what it held, first, and gets the library once" {
        local libc
        libc=$(ldd "$(command -v sh)" | awk '/libc\.so/ { print $3 }')
        [ -n "$libc" ]
        LD_PRELOAD=$libc run -0 ashmemctl run -- sh -c 'printf "%s\n" "$LD_PRELOAD"'
        [ "$output" = "$libc:$ASHMEM_BUILD/libashmem-preload.so" ]
        run -0 ashmemctl run -- ashmemctl run -- sh -c 'printf "%s\n" "$LD_PRELOAD"'
        [ "$output" = "$ASHMEM_BUILD/libashmem-preload.so" ]
}

@test "run: the command's exit status is ashmemctl's" {
        run -7 ashmemctl run -- sh -c 'exit 7'
        run -127 --separate-stderr ashmemctl run -- /nonexistent/program
        [[ $stderr == *"cannot run /nonexistent/program"* ]]
}

@test "run: usage errors and a missing library" {
        run -2 --separate-stderr ashmemctl run
        [[ $stderr == *"no command to run"* ]]
        ASHMEM_PRELOAD=$BATS_TEST_TMPDIR/none.so run -1 --separate-stderr ashmemctl run -- true
        [[ $stderr == *"ASHMEM_PRELOAD=$BATS_TEST_TMPDIR/none.so"* ]]
        ASHMEM_PRELOAD=relative.so run -1 --separate-stderr ashmemctl run -- true
        [[ $stderr == *"ASHMEM_PRELOAD=relative.so: not an absolute path"* ]]
}

@test "run: the library is found where it is installed" {
        make -C "$BATS_TEST_DIRNAME/../.." --no-print-directory -s install \
                B="$ASHMEM_BUILD" DESTDIR= PREFIX="$BATS_TEST_TMPDIR/prefix" >/dev/null
        [ -f "$BATS_TEST_TMPDIR/prefix/lib/libashmem-preload.so" ]
        run -0 "$BATS_TEST_TMPDIR/prefix/bin/ashmemctl" run -- sh -c 'printf "%s\n" "$LD_PRELOAD"'
        [ "$output" = "$BATS_TEST_TMPDIR/prefix/bin/../lib/libashmem-preload.so" ]
        run -0 "$BATS_TEST_TMPDIR/prefix/bin/ashmemctl" run -- "$DEV" x 100 installed
        [ "$output" = "x 100 7 same-inode installed" ]
}

@test "NDK: <android/sharedmem.h> is found through pkg-config of the installed tree" {
        local p=$BATS_TEST_TMPDIR/prefix
        make -C "$BATS_TEST_DIRNAME/../.." --no-print-directory -s install \
                B="$ASHMEM_BUILD" DESTDIR= PREFIX="$p" >/dev/null
        cat >"$BATS_TEST_TMPDIR/ndk.c" <<'C'
#include <android/sharedmem.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
        int fd = ASharedMemory_create("ndk-program", 8192);
        char *m;

        if (fd < 0 || ASharedMemory_getSize(fd) != 8192)
                return 1;
        m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return 2;
        strcpy(m, "written");
        if (ASharedMemory_setProt(fd, PROT_READ) != 0 || ASharedMemory_getProt(fd) != PROT_READ)
                return 3;
        if (mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED)
                return 4;
        printf("%s %zu\n", m, ASharedMemory_getSize(fd));
        return 0;
}
C
        local flags
        flags=$(PKG_CONFIG_PATH=$p/lib/pkgconfig pkg-config --cflags --libs libashmem)
        [[ $flags == *"-I$p/include"* ]]
        # shellcheck disable=SC2086
        run -0 cc -o "$BATS_TEST_TMPDIR/ndk" "$BATS_TEST_TMPDIR/ndk.c" $flags -Wl,-rpath,"$p/lib"
        run -0 "$BATS_TEST_TMPDIR/ndk"
        [ "$output" = "written 8192" ]
}
