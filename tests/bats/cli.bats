#!/usr/bin/env bats
# ashmemctl's region commands, text and JSON, and their errors.
# (Data transfer: data.bats.)

load cli_helpers

setup() { cli_setup; }
teardown() {
        unstage
        cli_teardown
}

# ---------------------------------------------------------------- create

@test "create prints the region record; --json gives it typed" {
        run -0 ashmemctl create frame 1M
        [[ "$output" == *"Name:"*"frame"* ]]
        [[ "$output" == *"Size:"*"1M (1048576 bytes)"* ]]
        [[ "$output" == *"Protection:"*"rwx"* ]]
        [[ "$output" == *"Mode:"*"0600"* ]]
        [[ "$output" == *"Pages:"*"256"* ]]
        run -0 ashmemctl -j create two 5000 --prot rw --mode 0640
        jqe '.name == "two" and .size == 5000 and .prot == "rw-" and .prot_mask == 3'
        jqe '.mode == "0640" and .pages == 2 and .pinned == 2 and .unpinned == 0 and .purged == 0'
        jqe '(.uid|type) == "number" and (.gid|type) == "number" and (.user|type) == "string"'
        jqe '.transient == false and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"))'
        jqe 'has("of") | not'
}

@test "create: sizes with units, 1024- and 1000-based" {
        run -0 ashmemctl -j create a 4K;   jqe '.size == 4096'
        run -0 ashmemctl -j create b 2KiB; jqe '.size == 2048'
        run -0 ashmemctl -j create c 3KB;  jqe '.size == 3000'
        run -0 ashmemctl -j create d 1MB;  jqe '.size == 1000000'
        run -0 ashmemctl -j create e 0x10; jqe '.size == 16'
        run -0 ashmemctl -j create f 1G;   jqe '.size == 1073741824 and .pages == 262144'
}

@test "create -q prints nothing; the region exists" {
        run -0 ashmemctl -q create quiet 4K
        [ -z "$output" ]
        run -0 ashmemctl size quiet
        [ "$output" = 4096 ]
}

@test "create: a name taken, bad sizes, names, prot, mode" {
        ashmemctl -q create taken 4K
        bad 1 "create: a region named taken exists already" create taken 4K
        run --separate-stderr ashmemctl -j create taken 4K
        [ "$status" -eq 1 ]
        [ -z "$output" ]
        output=$stderr jqe '.error.errno == "EEXIST" and .error.command == "create"'
        bad 2 "create: invalid size '0': must be greater than zero" create z 0
        bad 2 "create: invalid size '-1': negative" create z -1
        bad 2 "create: invalid size '': empty" create z ""
        bad 2 "create: invalid size '12Q': unknown unit 'Q'" create z 12Q
        bad 2 "create: invalid size '4 K': trailing characters ' K'" create z "4 K"
        bad 2 "create: invalid size '1.5': a fraction of a byte" create z 1.5
        bad 2 "create: invalid size 'lots': not a number" create z lots
        bad 2 "create: invalid size '99999999999999999999': too large" create z 99999999999999999999
        bad 2 "create: invalid size '20000000T': too large" create z 20000000T
        bad 2 "create: invalid size '5T': larger than the 4T limit" create z 5T
        bad 2 "create: invalid name '': empty" create "" 4K
        bad 2 "create: invalid name 'a/b': contains '/'" create a/b 4K
        bad 2 "create: invalid name: contains the control character 0x0a" create "$(printf 'a\nb')" 4K
        bad 2 "create: invalid name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...': 256 bytes long (at most 255)" \
                create "$(printf 'n%.0s' $(seq 256))" 4K
        bad 2 "create: invalid protection 'w': use r, rw, rx, rwx or none" create z 4K --prot w
        bad 2 "create: invalid mode '0999': not an octal number like 0640" create z 4K --mode 0999
        bad 2 "create: invalid mode '4755': the setuid, setgid and sticky bits (04000) mean nothing for a region; use the permission bits only, at most 0777" create z 4K --mode 4755
        bad 2 "create: missing arguments (NAME SIZE)" create
        bad 2 "create: missing argument (NAME SIZE)" create onlyname
        bad 2 "create: unexpected argument: extra" create z 4K extra
        bad 2 "create: unknown option: --bogus" create z 4K --bogus
        bad 2 "create: option --mode needs an argument (MODE)" create z 4K --mode
        bad 2 "create: --transient regions end with the connection" create z 4K --transient
        bad 2 "create: --local makes a region held by the shell" create z 4K --local
        # nothing was made by any of them
        run -0 ashmemctl list -o NAME -n
        [ "$output" = taken ]
}

@test "a 255-byte name is accepted and kept whole" {
        name=$(printf 'n%.0s' $(seq 255))
        run -0 ashmemctl -j create "$name" 4K
        jqe ".name == \"$name\""
}

# ---------------------------------------------------------------- list

@test "list: lsipc-like table, default columns, human sizes" {
        ashmemctl -q create alpha 1M
        ashmemctl -q create beta 5000 --prot r --mode 0644
        run -0 ashmemctl list
        [ "${lines[0]}" = "NAME  SIZE PROT MODE OWNER PAGES PINNED UNPINNED PURGED ATTACHES CREATED" ]
        [[ "${lines[1]}" =~ ^alpha\ +1M\ rwx\ +0600\ [a-z0-9]+\ +256\ +256\ +0\ +0\ +0\ [0-9T:-]+$ ]]
        [[ "${lines[2]}" =~ ^beta\ +4.9K\ r--\ +0644\ [a-z0-9]+\ +2\ +2\ +0\ +0\ +0\ [0-9T:-]+$ ]]
        [ "${#lines[@]}" -eq 3 ]
        run -0 ashmemctl ls --bytes --noheadings -o name,size
        [ "${lines[0]}" = "alpha 1048576" ]
        [ "${lines[1]}" = "beta     5000" ]
}

@test "list -o: chosen columns, +COLS, case-insensitive; JSON keeps only them" {
        ashmemctl -q create alpha 8K
        run -0 ashmemctl list -o NAME,pages,Transient,UID
        [ "${lines[0]}" = "NAME  PAGES TRANSIENT UID" ]
        [[ "${lines[1]}" =~ ^alpha\ +2\ no\ +[0-9]+$ ]]
        run -0 ashmemctl list -n -o +PROTMASK
        [[ "$output" =~ \ 7$ ]]
        run -0 ashmemctl -j list -o name,size
        jqe '.regions == [{"name":"alpha","size":8192}]'
        bad 2 "list: unknown column 'SIZES'" list -o NAME,SIZES
        bad 2 "list: no columns given to --output" list -o +
        bad 2 "list: unexpected argument: alpha" list alpha
}

@test "list --json: {regions:[records]}, every field typed; empty list" {
        run -0 ashmemctl -j list
        jqe '.regions == []'
        run -0 ashmemctl list
        [ "$output" = "NAME SIZE PROT MODE OWNER PAGES PINNED UNPINNED PURGED ATTACHES CREATED" ]
        ashmemctl -q create one 4K
        ashmemctl -q create two 8K
        run -0 ashmemctl --json ls
        jqe '.regions | length == 2'
        jqe '[.regions[].name] == ["one","two"]'
        jqe '.regions[1] | .size == 8192 and .pages == 2 and .prot == "rwx" and .mode == "0600"'
        jqe '.regions[0] | (.attaches|type) == "number" and (.transient|type) == "boolean"'
}

@test "list --list-columns describes every column; JSON form too" {
        run -0 ashmemctl list --list-columns
        [[ "$output" == *"* NAME"* ]]
        [[ "$output" == *"  TRANSIENT"* ]]
        run -0 ashmemctl -j list -H
        jqe '[.columns[] | select(.default) | .name] == ["NAME","SIZE","PROT","MODE","OWNER","PAGES","PINNED","UNPINNED","PURGED","ATTACHES","CREATED"]'
        jqe '.columns | map(.key) | index("of") != null'
}

# ---------------------------------------------------------------- info, size

@test "info: the record as Label: value lines; --json the same record" {
        ashmemctl -q create rec 10000 --mode 0640
        run -0 ashmemctl info rec
        [ "${lines[0]}" = "Name:            rec" ]
        [ "${lines[1]}" = "Size:            9.8K (10000 bytes)" ]
        [[ "$output" == *"Mode:            0640"* ]]
        [[ "$output" == *"Pages:           3"* ]]
        [[ "$output" == *"Transient:       no"* ]]
        run -0 ashmemctl info --bytes rec
        [ "${lines[1]}" = "Size:            10000" ]
        run -0 ashmemctl -j info rec
        jqe '.name == "rec" and .size == 10000 and .pages == 3 and .mode == "0640"'
        bad 1 "info: no such region: nope" info nope
        run --separate-stderr ashmemctl --json info nope
        [ "$status" -eq 1 ]
        output=$stderr jqe '.error.errno == "ENOENT" and .error.message == "no such region: nope"'
        bad 2 "info: missing argument (NAME)" info
        bad 2 "info: unexpected argument: b" info a b
}

@test "info --map draws pinned, unpinned and purged pages" {
        ashmemctl -q create m 8K
        ashmemctl -q unpin m 4096
        run -0 ashmemctl info m --map
        [[ "$output" == *"Map:             [#-]"* ]]
        [[ "$output" == *"2 pages; # pinned, - unpinned, x purged"* ]]
        ashmemctl -q purge m
        run -0 ashmemctl info --map m
        [[ "$output" == *"[#x]"* ]]
        run -0 ashmemctl -j info --map m
        jqe '.map == "Px" and .purged == 1 and .pinned == 1'
        # a big region is drawn in at most 64 cells
        ashmemctl -q create big 1M
        ashmemctl -q unpin big 512K
        run -0 ashmemctl info big --map
        [[ "$output" == *"[################################--------------------------------]"* ]]
        [[ "$output" == *"256 pages, about 4 per character"* ]]
}

@test "size prints the size in bytes alone" {
        ashmemctl -q create s 12345
        run -0 ashmemctl size s
        [ "$output" = 12345 ]
        run -0 ashmemctl -j size s
        jqe '. == {"name":"s","size":12345}'
        bad 1 "size: no such region: t" size t
}

# ---------------------------------------------------------------- prot

@test "prot shows the mask; drops bits; refuses to add them" {
        ashmemctl -q create p 4K
        run -0 ashmemctl prot p
        [ "$output" = rwx ]
        run -0 ashmemctl prot p rw
        [ -z "$output" ]
        run -0 ashmemctl prot p
        [ "$output" = rw- ]
        run -0 ashmemctl -j prot p r
        jqe '. == {"name":"p","prot":"r--","prot_mask":1}'
        bad 1 "prot: p: protection bits can only be dropped: it is r--, asked for rw-" prot p rw
        bad 2 "prot: invalid protection 'wx'" prot p wx
        # without the write bit nobody writes
        bad 1 "set: p: the region's protection is r--" set p 1
        run -0 ashmemctl get p
        [ "$output" = 0 ]
        bad 1 "prot: no such region: q" prot q r
}

# ---------------------------------------------------------------- pin

@test "unpin, purge, pin: was-purged once; status; data of purged pages is gone" {
        ashmemctl -q create pp 16K
        printf 'keep' | ashmemctl write pp
        printf 'lose' | ashmemctl write pp --offset 8K
        run -0 ashmemctl status pp
        [ "$output" = pinned ]
        run -0 ashmemctl unpin pp 8K 4K
        [ -z "$output" ]
        run -0 ashmemctl status pp
        [ "$output" = unpinned ]
        run -0 ashmemctl status pp 0 8K
        [ "$output" = pinned ]
        run -0 ashmemctl status pp 8K 4K
        [ "$output" = unpinned ]
        run -0 ashmemctl purge pp
        [ "$output" = "purged 1 page (4096 bytes)" ]
        run -0 ashmemctl pin pp 8K 4K
        [ "$output" = was-purged ]
        run -0 ashmemctl pin pp 8K 4K
        [ "$output" = not-purged ]
        run -0 ashmemctl read pp -l 4
        [ "$output" = keep ]
        [ "$(ashmemctl read pp -o 8K -l 4 | od -An -tx1 | tr -d ' ')" = 00000000 ]
}

@test "pin/unpin/status/purge --json" {
        ashmemctl -q create pj 16K
        run -0 ashmemctl -j unpin pj 4096
        jqe '. == {"name":"pj","offset":4096,"length":12288}'
        run -0 ashmemctl -j status pj
        jqe '.pinned == false and .offset == 0 and .length == 16384'
        run -0 ashmemctl -j purge pj
        jqe '. == {"name":"pj","pages":3,"bytes":12288}'
        run -0 ashmemctl -j pin pj
        jqe '.was_purged == true'
        run -0 ashmemctl -j status pj
        jqe '.pinned == true'
        run -0 ashmemctl -j purge pj
        jqe '. == {"name":"pj","pages":0,"bytes":0}'
}

@test "purge --all reclaims every region's unpinned pages" {
        ashmemctl -q create a1 8K
        ashmemctl -q create a2 8K
        ashmemctl unpin a1
        ashmemctl unpin a2 4K
        run -0 ashmemctl purge --all
        [ "$output" = "purged 3 pages (12288 bytes)" ]
        run -0 ashmemctl -j list -o name,purged
        jqe '.regions == [{"name":"a1","purged":2},{"name":"a2","purged":1}]'
        bad 2 "purge: give a region name, or --all for every region" purge
        bad 2 "purge: give a region name or --all, not both" purge a1 --all
        bad 1 "purge: no such region: a3" purge a3
}

@test "pin ranges: alignment, the end, a size not page-rounded" {
        ashmemctl -q create r 10000
        bad 2 "pin: offset 4097 is not page-aligned (page size 4096)" pin r 4097
        bad 2 "unpin: length 100 is not a multiple of the page size (4096)" unpin r 0 100
        bad 1 "status: offset 20480 is past the end of r (10000 bytes)" status r 20480
        # unaligned and past the end: the alignment is what to fix first
        bad 2 "status: offset 20000 is not page-aligned (page size 4096)" status r 20000
        bad 1 "unpin: offset 4096 + length 8192 is past the end of r (10000 bytes)" unpin r 4096 8192
        bad 2 "pin: invalid offset '-4096': negative" pin r -4096
        bad 2 "pin: invalid length 'x': not a number" pin r 0 x
        bad 2 "pin: unexpected argument: 4" pin r 0 4096 4
        bad 2 "pin: missing argument (NAME [OFFSET [LENGTH]])" pin
        bad 1 "pin: no such region: nope" pin nope
        # a length reaching the end of the size need not be whole pages
        run -0 ashmemctl unpin r 8192 1808
        run -0 ashmemctl -j status r 8192
        jqe '.pinned == false and .length == 4096'
}

# ---------------------------------------------------------------- values

@test "the shared counter: three incr from three processes print 1, 2, 3" {
        ashmemctl -q create counter 4K
        run -0 ashmemctl incr counter
        [ "$output" = 1 ]
        run -0 ashmemctl incr counter
        [ "$output" = 2 ]
        run -0 ashmemctl incr counter
        [ "$output" = 3 ]
        run -0 ashmemctl get counter
        [ "$output" = 3 ]
}

@test "incr is atomic across concurrent processes" {
        ashmemctl -q create c 4K
        for i in 1 2 3 4 5 6; do
                (for j in 1 2 3 4 5; do ashmemctl incr c; done > "$BATS_TEST_TMPDIR/out$i") &
        done
        wait
        # every new value printed exactly once: 1..30
        [ "$(cat "$BATS_TEST_TMPDIR"/out* | sort -n | tr '\n' ' ')" = "$(seq 30 | tr '\n' ' ')" ]
        run -0 ashmemctl get c
        [ "$output" = 30 ]
}

@test "get/set/incr: every type, offsets, wrap-around, JSON" {
        ashmemctl -q create v 64
        ashmemctl set v -1
        run -0 ashmemctl get v -t u32
        [ "$output" = 4294967295 ]
        run -0 ashmemctl get v -t i8
        [ "$output" = -1 ]
        ashmemctl set v 200 -t u8 -o 8
        run -0 ashmemctl incr v 100 -t u8 -o 8
        [ "$output" = 44 ]
        run -0 ashmemctl incr v -50 -t i16 -o 8
        [ "$output" = -6 ]
        ashmemctl set v 18446744073709551615 -t u64 -o 16
        run -0 ashmemctl get v -t u64 -o 16
        [ "$output" = 18446744073709551615 ]
        run -0 ashmemctl -j get v -t u64 -o 16
        jqe '.type == "u64" and .offset == 16'
        [[ "$output" == *'"value":18446744073709551615'* ]]   # exact, not rounded
        ashmemctl set v -9223372036854775808 -t i64 -o 24
        run -0 ashmemctl get v -t i64 -o 24
        [ "$output" = -9223372036854775808 ]
        run -0 ashmemctl -j incr v 5 -o 4
        jqe '. == {"name":"v","type":"i32","offset":4,"value":5}'
        run -0 ashmemctl set v 7 -t i16 -o 62
        run -0 ashmemctl get v -t i16 -o 62
        [ "$output" = 7 ]
}

@test "get/set str" {
        ashmemctl -q create s 32
        run -0 ashmemctl set s "hello world" -t str -o 4
        [ -z "$output" ]
        run -0 ashmemctl get s -t str -o 4
        [ "$output" = "hello world" ]
        run -0 ashmemctl -j get s -t str -o 10
        jqe '. == {"name":"s","type":"str","offset":10,"value":"world","encoding":"utf-8"}'
        bad 1 "set: the string (32 bytes and a NUL) does not fit in s at offset 0 (32 bytes left)" \
                set s "$(printf 'x%.0s' $(seq 32))" -t str
        run -0 ashmemctl set s "$(printf 'x%.0s' $(seq 31))" -t str
        bad 2 "incr: incr works on integer types, not str" incr s -t str
}

@test "get/set/incr: bad types, values, alignment, the end" {
        ashmemctl -q create v 16
        bad 2 "get: invalid type 'u128': use u8, u16, u32, u64, i8, i16, i32, i64 or str" get v -t u128
        bad 2 "get: offset 2 is not aligned for i32 (use a multiple of 4)" get v -o 2
        bad 2 "incr: offset 4 is not aligned for u64 (use a multiple of 8)" incr v -t u64 -o 4
        bad 2 "set: invalid value '256': out of range for u8" set v 256 -t u8
        bad 2 "set: invalid value '-1': negative, but u16 is unsigned" set v -1 -t u16
        bad 2 "set: invalid value '12abc': trailing characters 'abc'" set v 12abc
        bad 2 "set: invalid value '2147483648': out of range for i32" set v 2147483648
        bad 2 "incr: invalid increment '128': out of range for i8" incr v 128 -t i8
        bad 2 "set: missing arguments (NAME VALUE)" set
        bad 2 "set: missing argument (NAME VALUE)" set v
        bad 1 "get: offset 16 is past the end of v (16 bytes)" get v -o 16
        bad 1 "get: offset 8192 is past the end of v (16 bytes)" get v -t u64 -o 8K
        ashmemctl -q create v12 12
        bad 1 "incr: the u64 at offset 8 runs past the end of v12 (12 bytes)" incr v12 -t u64 -o 8
        bad 1 "incr: no such region: w" incr w
}

@test "incr on a read-only attach is refused; get works there" {
        # a broker another user may reach: root owns region ro (mode 0644)
        # and nobody attaches read-only
        # (bats' own temporary directories are closed to other users, and
        # so may be the build directory: as_nobody runs a staged ashmemctl)
        stage_for_others ashmemctl
        public_broker
        sock=$ASHMEM_SOCKET
        ashmemctl --socket "$sock" -q create ro 4K --mode 0644
        ashmemctl --socket "$sock" set ro 41
        nobody_ctl() { as_nobody ashmemctl --socket "$sock" "$@"; }
        run --separate-stderr nobody_ctl get ro
        [ "$status" -eq 0 ] && [ "$output" = 41 ]
        run --separate-stderr nobody_ctl incr ro
        [ "$status" -eq 1 ]
        [ "$stderr" = "ashmemctl: incr: ro: permission denied" ]
        run --separate-stderr nobody_ctl -j incr ro
        output=$stderr jqe '.error.errno == "EACCES"'
        run --separate-stderr nobody_ctl unpin ro
        [ "$status" -eq 1 ]
        # and the read-only descriptor attach hands out cannot write either
        run --separate-stderr nobody_ctl attach --ro ro -- sh -c 'printf x >&$ASHMEM_FD'
        [ "$status" -ne 0 ]
        run -0 ashmemctl --socket "$sock" get ro
        [ "$output" = 41 ]
        ashmemctl --socket "$sock" broker stop >/dev/null
        [ ! -e "$sock" ]
}

# ---------------------------------------------------------------- share, slice, unshare

@test "slice names a view; reads, values and pins are relative to it" {
        ashmemctl -q create whole 64K
        printf 'ABCDEFGH' | ashmemctl write whole --offset 8K
        run -0 ashmemctl slice part --of whole --offset 8K --length 8K
        [[ "$output" == *"Slice of:        whole"* ]]
        [[ "$output" == *"Offset:          8K (8192 bytes)"* ]]
        run -0 ashmemctl read part -l 8
        [ "$output" = ABCDEFGH ]
        run -0 ashmemctl size part
        [ "$output" = 8192 ]
        run -0 ashmemctl -j info part
        jqe '.of == "whole" and .offset == 8192 and .length == 8192 and .size == 8192 and .pages == 2'
        ashmemctl unpin part 4K
        run -0 ashmemctl info part --map
        [[ "$output" == *"Map:             [#-]"* ]]
        run -0 ashmemctl -j info whole --map
        jqe '.map == "PPPuPPPPPPPPPPPP"'
        run -0 ashmemctl -j status whole 12K 4K
        jqe '.pinned == false'
        run -0 ashmemctl status whole 0 12K
        [ "$output" = pinned ]
        run -0 ashmemctl -j list -o name,of,offset,length
        jqe '.regions == [{"name":"part","of":"whole","offset":8192,"length":8192},{"name":"whole","of":null,"offset":null,"length":null}]'
        bad 1 "read: offset 8193 is past the end of part (8192 bytes)" read part -o 8193
        bad 1 "write: the input runs past the end of part" write part -o 8190 /dev/zero
}

@test "slice errors" {
        ashmemctl -q create whole 16K
        bad 2 "slice: --of REGION is required" slice s --length 4K
        bad 2 "slice: --length N is required" slice s --of whole
        bad 2 "slice: invalid length '0': must be greater than zero" slice s --of whole --length 0
        bad 1 "slice: no such region: hole" slice s --of hole --length 4K
        bad 1 "slice: offset 12288 + length 8192 is not inside whole" slice s --of whole --offset 12K --length 8K
        ashmemctl -q slice s --of whole --length 4K
        bad 1 "slice: a region named s exists already" slice s --of whole --length 4K
}

@test "share --fd registers an inherited descriptor, pin state shared" {
        ashmemctl -q create orig 8K
        ashmemctl set orig 5
        run -0 ashmemctl attach orig -- sh -c 'ashmemctl share alias --fd "$ASHMEM_FD" --mode 0640'
        [[ "$output" == *"Name:            alias"* ]]
        [[ "$output" == *"Mode:            0640"* ]]
        run -0 ashmemctl incr alias
        [ "$output" = 6 ]
        run -0 ashmemctl get orig
        [ "$output" = 6 ]
        ashmemctl unpin alias 4K
        run -0 ashmemctl status orig 4K
        [ "$output" = unpinned ]
        run -0 ashmemctl -j attach orig -- sh -c 'ashmemctl -j share view --fd "$ASHMEM_FD" --offset 4K --length 4K'
        jqe '.name == "view" and .size == 4096'
        bad 2 "share: say which region: --fd N (an inherited descriptor) or --file PATH" share x
        bad 1 "share: descriptor 0 is not a shared memory region" share x --fd 0 </dev/null
        bad 1 "share: descriptor 77 is not open" share x --fd 77
        bad 2 "share: invalid descriptor 'three': not a number" share x --fd three
        bad 2 "share: give --fd or --file, not both" share x --fd 0 --file /dev/null
        bad 2 "share: --offset needs --length" share x --fd 0 --offset 4K
        bad 1 "share: /nonexistent: No such file or directory" share x --file /nonexistent
        bad 1 "share: a region named alias exists already" attach orig -- sh -c 'exec ashmemctl share alias --fd "$ASHMEM_FD"'
}

@test "share --file /proc/PID/fd/N takes a region from a running process" {
        ashmemctl -q create src 4K
        ashmemctl set src 99
        # a process that holds the region (and its pin state) and waits
        ashmemctl attach src -- sh -c 'echo "$$ $ASHMEM_FD" > "$1"; exec sleep 30' sh "$BATS_TEST_TMPDIR/holder" 3>&- &
        holder_job=$!
        while [ ! -s "$BATS_TEST_TMPDIR/holder" ] && kill -0 "$holder_job" 2>/dev/null; do
                sleep 0.05
        done
        [ -s "$BATS_TEST_TMPDIR/holder" ]
        read -r pid fd < "$BATS_TEST_TMPDIR/holder"
        run -0 ashmemctl -j share taken --file "/proc/$pid/fd/$fd"
        jqe '.name == "taken" and .size == 4096'
        kill "$pid"
        wait "$holder_job" || true
        run -0 ashmemctl get taken
        [ "$output" = 99 ]
        bad 1 "share: /dev/null is not a shared memory region" share y --file /dev/null
}

@test "unshare (rm) removes names; holders keep their data" {
        ashmemctl -q create u1 4K
        ashmemctl -q create u2 4K
        ashmemctl -q create u3 4K
        run -0 ashmemctl unshare u1
        [ "$output" = "removed u1" ]
        run -0 ashmemctl -q unshare u2
        [ -z "$output" ]
        ashmemctl -q create u2 4K
        run -0 ashmemctl -j rm u2
        jqe '. == {"removed":["u2"],"failed":[]}'
        # every name is tried; each is reported, removed or not
        run --separate-stderr ashmemctl rm u1 u3
        [ "$status" -eq 1 ]
        [ "$output" = "removed u3" ]
        [ "$stderr" = "ashmemctl: unshare: no such region: u1" ]
        run -0 ashmemctl list -n -o name
        [ -z "$output" ]
        bad 2 "unshare: missing argument (NAME...)" rm
}

# ---------------------------------------------------------------- attach

@test "attach -- CMD: the descriptor, ASHMEM_* and the exit status" {
        ashmemctl -q create at 12345
        ashmemctl set at 1234
        run -0 ashmemctl attach at -- sh -c 'echo "$ASHMEM_NAME $ASHMEM_SIZE $ASHMEM_OFFSET"; readlink /proc/self/fd/$ASHMEM_FD'
        [ "${lines[0]}" = "at 12345 0" ]
        [ "${lines[1]}" = "/memfd:at (deleted)" ]
        run -7 ashmemctl attach at -- sh -c 'exit 7'
        run -0 ashmemctl attach at --fd 9 -- sh -c 'echo $ASHMEM_FD; od -An -tu4 -N4 <&9'
        [ "${lines[0]}" = 9 ]
        [ "$(echo ${lines[1]})" = 1234 ]
        # only the descriptor given is inherited: not the broker connection
        run -0 ashmemctl attach at --fd 9 -- sh -c 'for f in /proc/self/fd/*; do readlink $f; done'
        [ "$(printf '%s\n' "$output" | grep -c memfd)" -eq 1 ]
        [ "$(printf '%s\n' "$output" | grep -c socket)" -eq 0 ]
        # writes through the descriptor land in the region
        ashmemctl attach at -- sh -c 'printf "ABCD" 1<>/proc/self/fd/$ASHMEM_FD'
        run -0 ashmemctl read at -l 4
        [ "$output" = ABCD ]
}

@test "attach --ro gives a read-only descriptor; slices give their offset" {
        ashmemctl -q create at 8K
        run -0 ashmemctl attach --ro at -- sh -c 'cat /proc/self/fdinfo/$ASHMEM_FD'
        flags=$(printf '%s\n' "$output" | sed -n 's/^flags:[[:space:]]*//p')
        [ $((0$flags & 3)) -eq 0 ]      # O_RDONLY
        run -0 ashmemctl attach at -- sh -c 'sed -n "s/^flags:[[:space:]]*//p" /proc/self/fdinfo/$ASHMEM_FD'
        [ $((0$output & 3)) -eq 2 ]     # O_RDWR
        ashmemctl -q slice sl --of at --offset 4K --length 100
        run -0 ashmemctl attach sl -- sh -c 'echo "$ASHMEM_OFFSET $ASHMEM_SIZE"'
        [ "$output" = "4096 100" ]
}

@test "attach errors: no command, not found, unknown region" {
        ashmemctl -q create at 4K
        bad 2 "attach: no command to run (attach NAME -- CMD [ARGS...])" attach at
        bad 2 "attach: unexpected argument: true" attach at true
        bad -127 "attach: cannot run no-such-command-h4: No such file or directory" attach at -- no-such-command-h4
        bad 1 "attach: no such region: gone" attach gone -- true
        bad 2 "attach: invalid descriptor '-1': negative" attach at --fd -1 -- true
        # a descriptor the process may not have: the limit named
        run --separate-stderr bash -c 'ulimit -n 64 && exec ashmemctl attach at --fd 64 -- true'
        [ "$status" -eq 2 ]
        [[ "$stderr" == "ashmemctl: attach: --fd 64 is past the descriptor limit of the process (ulimit -n: 64)"* ]]
        run -0 bash -c 'ulimit -n 64 && exec ashmemctl attach at --fd 63 -- sh -c "echo \$ASHMEM_FD"'
        [ "$output" = 63 ]
}

# ---------------------------------------------------------------- the command line

@test "command names: unique prefixes work, ambiguous ones say what they could be" {
        ashmemctl -q create pre 4K
        run -0 ashmemctl inf pre
        [[ "$output" == *"Name:            pre"* ]]
        run -0 ashmemctl cr pre2 4K -q
        bad 2 "ambiguous command: s, could be: size, status, set, share, slice" s pre
        bad 2 "ambiguous command: p, could be: prot, pin, purge" p pre
        bad 2 "ambiguous command: un, could be: unpin, unshare" un pre
        bad 2 "unknown command: frobnicate" frobnicate
}

@test "--no-autostart with no broker: a clear failure" {
        local s=$BATS_TEST_TMPDIR/none.sock
        run --separate-stderr ashmemctl --socket "$s" --no-autostart create x 4K
        [ "$status" -eq 1 ]
        [ "$stderr" = "ashmemctl: create: no broker is running on $s, and --no-autostart says not to start one" ]
        run --separate-stderr ashmemctl --socket "$s" create x 4K
        [ "$status" -eq 1 ]
        [ "$stderr" = "ashmemctl: create: no broker is running on $s, and ASHMEM_NO_AUTOSTART=1 (environment) says not to start one" ]
        [ ! -e "$s" ]
}

@test "every command has --help from the table" {
        for c in create list info size prot pin unpin status purge read write dump get set incr share slice unshare attach; do
                run -0 ashmemctl "$c" --help
                [[ "${lines[0]}" == "usage: ashmemctl $c"* ]]
        done
        run -0 ashmemctl help
        for c in create list info size prot pin unpin status purge read write dump get set incr share slice unshare attach; do
                [[ "$output" == *"  $c"* ]]
        done
}

# ---------------------------------------------------------------- libcjson

@test "text output loads no libcjson; JSON output loads it" {
        # the dynamic loader names every library it loads (LD_DEBUG=files)
        run -0 --separate-stderr env LD_DEBUG=files ashmemctl create lazy 8K
        [[ "$output" == *"Name:"*"lazy"* ]]
        [[ "$stderr" != *libcjson* ]]
        for args in "info lazy" "list" "size lazy" "version" "rm lazy"; do
                run -0 --separate-stderr env LD_DEBUG=files ashmemctl $args
                [ -n "$output" ]
                if [[ "$stderr" == *libcjson* ]]; then
                        echo "ashmemctl $args loaded libcjson" >&2
                        return 1
                fi
        done
        run -0 --separate-stderr env LD_DEBUG=files ashmemctl -j create lazy 8K
        [[ "$stderr" == *"libcjson"* ]]
        jqe '.name == "lazy" and .size == 8192'
        run -0 --separate-stderr env LD_DEBUG=files ashmemctl --json list
        [[ "$stderr" == *"libcjson"* ]]
        jqe '.regions | map(.name) == ["lazy"]'
}

@test "the text of info and list says what their JSON says (regions and slices)" {
        ashmemctl -q create whole 3M --prot r --mode 0640
        ashmemctl -q slice part --of whole --offset 4K --length 8K
        for n in whole part; do
                run -0 ashmemctl -j info "$n"
                local json=$output
                run -0 ashmemctl info "$n"
                local text=$output
                for key in name:Name: size:Size: prot:Protection: prot_mask:"Protection mask:" \
                           mode:Mode: user:Owner: uid:UID: group:Group: gid:GID: pages:Pages: \
                           pinned:Pinned: unpinned:Unpinned: purged:Purged: attaches:Attaches:; do
                        local k=${key%%:*} label=${key#*:} want
                        want=$(jq -r ".$k" <<<"$json")
                        [ "$k" = size ] && want="$(jq -r '.size' <<<"$json") bytes"
                        if ! grep -q "^$label *.*$want" <<<"$text"; then
                                echo "info $n: '$label' line lacks '$want':" >&2
                                echo "$text" >&2
                                return 1
                        fi
                done
                grep -q '^Transient: *no$' <<<"$text"
        done
        run -0 ashmemctl info part
        grep -q '^Slice of: *whole$' <<<"$output"
        grep -q '^Offset: *4K (4096 bytes)$' <<<"$output"
        grep -q '^Length: *8K (8192 bytes)$' <<<"$output"
        run -0 ashmemctl info whole
        ! grep -q '^Slice of:' <<<"$output"
        # the list: the same fields in columns (a slice has a mode of its own)
        run -0 ashmemctl list --bytes -n
        [[ "${lines[0]}" =~ ^part\ +8192\ r--\ +0600\ root\ +2\ +2\ +0\ +0\ +0\ [0-9-]+T[0-9:]+$ ]]
        [[ "${lines[1]}" =~ ^whole\ +3145728\ r--\ +0640\ root\ +768\ +768\ +0\ +0\ +0\ [0-9-]+T[0-9:]+$ ]]
        run -0 ashmemctl -e list
        [[ "${lines[1]}" == 'NAME="whole" SIZE="3M" PROT="r--" MODE="0640" OWNER="root" PAGES="768" PINNED="768" UNPINNED="0" PURGED="0" ATTACHES="0" CREATED="'* ]]
}

@test "without libcjson, JSON output says so (exit 127); text output works" {
        local lib
        lib=$(ldconfig -p | awk '$1 == "libcjson.so.1" { print $NF; exit }')
        [ -n "$lib" ]
        lib=$(readlink -f "$lib")
        unshare -m true 2>/dev/null || skip "no mount namespaces here (unshare -m)"
        ashmemctl -q create nojson 4K
        # the library made unloadable in a mount namespace of its own
        run -127 --separate-stderr unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' \
                sh "$lib" ashmemctl -j info nojson
        [ -z "$output" ]
        [[ "$stderr" == "ashmemctl: cannot load the JSON library: "*"libcjson.so.1"* ]]
        run -0 unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' \
                sh "$lib" ashmemctl info nojson
        [[ "$output" == *"Name:"*"nojson"* ]]
        run -0 unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' \
                sh "$lib" ashmemctl rm nojson
        [ "$output" = "removed nojson" ]
}
