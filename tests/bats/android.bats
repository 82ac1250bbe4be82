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
