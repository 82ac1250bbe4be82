#!/usr/bin/env bats
# ashmemctl read, write, dump: bytes in and out of regions.

load cli_helpers

setup() { cli_setup; }
teardown() { cli_teardown; }

sum() { sha256sum | cut -d' ' -f1; }

@test "write then read round-trips 64 MiB of binary data exactly (file and pipe)" {
        head -c 64M /dev/urandom > "$BATS_TEST_TMPDIR/in"
        want=$(sum < "$BATS_TEST_TMPDIR/in")
        ashmemctl -q create big 64M
        run -0 ashmemctl write big "$BATS_TEST_TMPDIR/in"
        [ -z "$output" ]
        # to a file, to a pipe
        ashmemctl read big > "$BATS_TEST_TMPDIR/out"
        [ "$(sum < "$BATS_TEST_TMPDIR/out")" = "$want" ]
        [ "$(ashmemctl read big | sum)" = "$want" ]
        # from a pipe, into a second region
        ashmemctl -q create big2 64M
        cat "$BATS_TEST_TMPDIR/in" | ashmemctl write big2 -
        [ "$(ashmemctl read big2 | sum)" = "$want" ]
        # from standard input redirected from the file
        ashmemctl -q create big3 64M
        ashmemctl write big3 < "$BATS_TEST_TMPDIR/in"
        [ "$(ashmemctl read big3 | sum)" = "$want" ]
        # a range from the middle
        [ "$(ashmemctl read big --offset 1M --length 3M | sum)" = \
          "$(tail -c +$((1048576 + 1)) "$BATS_TEST_TMPDIR/in" | head -c 3M | sum)" ]
}

@test "write --offset puts bytes there; reads of the rest see zeros" {
        ashmemctl -q create w 8K
        printf 'hello' | ashmemctl write w --offset 4094
        run -0 ashmemctl read w -o 4094 -l 5
        [ "$output" = hello ]
        [ "$(ashmemctl read w -l 4094 | tr -d '\0' | wc -c)" -eq 0 ]
        run -0 ashmemctl -j write w -o 10 /dev/null
        jqe '. == {"name":"w","offset":10,"bytes":0}'
        run -0 bash -c 'printf abc | ashmemctl -j write w -o 4K'
        jqe '.bytes == 3 and .offset == 4096'
        # write fills the whole region exactly
        head -c 8K /dev/zero | tr '\0' 'z' > "$BATS_TEST_TMPDIR/z"
        run -0 ashmemctl write w "$BATS_TEST_TMPDIR/z"
        [ "$(ashmemctl read w | tr -d z | wc -c)" -eq 0 ]
}

@test "write refuses to run past the end" {
        ashmemctl -q create small 4K
        printf 'original' | ashmemctl write small
        head -c 5000 /dev/urandom > "$BATS_TEST_TMPDIR/big"
        # a file too big: refused before anything is written
        bad 1 "write: $BATS_TEST_TMPDIR/big (5000 bytes) does not fit: small has 4096 bytes from offset 0" \
                write small "$BATS_TEST_TMPDIR/big"
        bad 1 "write: $BATS_TEST_TMPDIR/big (5000 bytes) does not fit: small has 96 bytes from offset 4000" \
                write small -o 4000 "$BATS_TEST_TMPDIR/big"
        run -0 ashmemctl read small -l 8
        [ "$output" = original ]
        # a stream too long: stopped at the end, and it says so
        run --separate-stderr bash -c "head -c 5000 /dev/zero | ashmemctl write small"
        [ "$status" -eq 1 ]
        [[ "$stderr" == "ashmemctl: write: the input runs past the end of small (4096 bytes written from offset 0; 4096 bytes in all)" ]]
        run --separate-stderr bash -c "head -c 5000 /dev/zero | ashmemctl -j write small"
        output=$stderr jqe '.error.errno == "EFBIG"'
        bad 1 "write: offset 5000 is past the end of small (4096 bytes)" write small -o 5000 /dev/null
        bad 1 "write: /nonexistent: No such file or directory" write small /nonexistent
        bad 1 "write: / is a directory" write small /
        bad 2 "write: invalid offset '1x': unknown unit 'x'" write small -o 1x /dev/null
        bad 2 "write: unexpected argument: b" write small a b
        bad 1 "write: no such region: large" write large /dev/null
}

@test "read: ranges, empty reads, errors, JSON base64" {
        ashmemctl -q create r 100
        printf 'The quick brown fox' | ashmemctl write r
        run -0 ashmemctl read r -o 4 -l 5
        [ "$output" = quick ]
        [ "$(ashmemctl read r | wc -c)" -eq 100 ]
        [ "$(ashmemctl read r -o 100 | wc -c)" -eq 0 ]
        run -0 ashmemctl -j read r -l 9
        jqe '.name == "r" and .offset == 0 and .length == 9'
        [ "$(printf '%s\n' "$output" | jq -r .base64 | base64 -d)" = "The quick" ]
        bad 1 "read: offset 101 is past the end of r (100 bytes)" read r -o 101
        bad 1 "read: offset 90 + length 20 is past the end of r (100 bytes)" read r -o 90 -l 20
        bad 2 "read: invalid length '0': must be greater than zero" read r -l 0
        bad 2 "read: invalid offset '': empty" read r -o ""
        bad 2 "read: option --length needs an argument (N)" read r --length
        bad 1 "read: no such region: s" read s
}

@test "read needs the read bit; write the write bit" {
        ashmemctl -q create p 4K
        ashmemctl prot p none
        bad 1 "read: p: the region's protection is ---" read p
        bad 1 "dump: p: the region's protection is ---" dump p
        bad 1 "write: p: the region's protection is ---" write p /dev/null
}

@test "dump prints what hexdump -C prints" {
        ashmemctl -q create d 300
        printf 'Hello, shared memory!\n\001\002\377' | ashmemctl write d
        printf 'tail' | ashmemctl write d -o 290
        ashmemctl read d > "$BATS_TEST_TMPDIR/d"
        run -0 ashmemctl dump d
        [ "$output" = "$(hexdump -C "$BATS_TEST_TMPDIR/d")" ]
        run -0 ashmemctl dump d --offset 16 --length 40
        [ "$output" = "$(hexdump -C -s 16 -n 40 "$BATS_TEST_TMPDIR/d")" ]
        run -0 ashmemctl dump d -o 300
        [ "$output" = 0000012c ]
        run -0 ashmemctl -j dump d -l 5
        jqe '. == {"name":"d","offset":0,"length":5,"hex":"48656c6c6f"}'
}

@test "data commands read through a read-only attach" {
        ashmemctl -q create ro 4K
        printf 'readable' | ashmemctl write ro
        ashmemctl prot ro r
        run -0 ashmemctl read ro -l 8
        [ "$output" = readable ]
        run -0 ashmemctl get ro -t str
        [ "$output" = readable ]
        bad 1 "write: ro: the region's protection is r--" write ro /dev/null
        bad 1 "incr: ro: the region's protection is r--" incr ro
}

@test "dump never passes a region's control bytes to the terminal; read gives them as they are" {
        ashmemctl -q create esc 4K
        printf 'A\e[2J\e]0;pwned\a\x9b31m\xff' | ashmemctl write esc
        run -0 ashmemctl dump esc -l 16
        [[ "$output" != *$'\e'* && "$output" != *$'\a'* && "$output" != *$'\x9b'* ]]
        [[ "${lines[0]}" == *"|A.[2J.]0;pwned..|" ]]
        [ "$(ashmemctl read esc -l 15 | od -An -tx1 | tr -d ' \n')" = \
          "$(printf 'A\e[2J\e]0;pwned\a\x9b31m\xff' | head -c 15 | od -An -tx1 | tr -d ' \n')" ]
        # in JSON: hex for dump, base64 for read, both valid whatever the bytes
        run -0 ashmemctl -j dump esc -l 4
        jqe '.hex == "411b5b32"'
        run -0 ashmemctl -j read esc -l 4
        jqe '.base64 == "QRtbMg=="'
}
