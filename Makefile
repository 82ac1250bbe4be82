# ashmem toolkit - one Makefile. `make help` lists the targets.

VERSION    := 0.1.0
SOVERSION  := 1

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share
DESTDIR    ?=

# Build directory: B=dir builds out of tree (several builds side by side).
B          ?= build
CC         ?= cc
SANITIZE   ?=
V          ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes \
            -Wstrict-prototypes -Wpointer-arith -Wundef -Wvla
CFLAGS   ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -I. -Ilib/include -DASHMEM_VERSION='"$(VERSION)"'
ALL_CFLAGS = -std=gnu11 -fPIC -pthread $(WARN) $(CFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS    += -fsanitize=$(SANITIZE)
endif
LDLIBS_LIB := -pthread

PKG_CONFIG ?= pkg-config
CJSON_CFLAGS = $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null)
CJSON_LIBS   = $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null || echo -lcjson)
# ashmemctl's tables (display width, --raw) as lsblk and lsipc: the header
# only; cli/output.c loads the library when it prints a table
SMARTCOLS_CFLAGS = $(shell $(PKG_CONFIG) --cflags smartcols 2>/dev/null)
# readline is loaded by the interactive shell when it starts (dlopen:
# cli/shell-rl.h), not linked: every other command starts without it
READLINE_LIBS = -ldl
# the broker's service manager side (sd-daemon: socket activation,
# sd_notify): the header only; broker/service.c loads libsystemd when a
# service manager is there

LIB_SRC   := $(wildcard lib/*.c) $(wildcard drivers/*/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
HEADERS   := $(wildcard lib/include/ashmem/*.h)
ANDROID_HEADERS := $(wildcard lib/include/android/*.h)
CLI_SRC   := $(wildcard cli/*.c)
CLI_OBJ   := $(CLI_SRC:%.c=$(B)/obj/%.o)
# the broker daemon: ships inside ashmemctl (`ashmemctl broker run`)
BROKER_SRC := $(wildcard broker/*.c)
BROKER_OBJ := $(BROKER_SRC:%.c=$(B)/obj/%.o)
TEST_SUPPORT := $(wildcard tests/unit/support/*.c)
TEST_SUPPORT_OBJ := $(TEST_SUPPORT:%.c=$(B)/obj/%.o)
TEST_SRC  := $(wildcard tests/unit/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/unit/%.c=$(B)/tests/%)
EX_SRC    := $(wildcard examples/*.c)
EX_BIN    := $(EX_SRC:examples/%.c=$(B)/examples/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
BENCH_SUPPORT := $(wildcard bench/support/*.c)
BENCH_SUPPORT_OBJ := $(BENCH_SUPPORT:%.c=$(B)/obj/%.o)
# test helper programs and the load generator: one program per file
HELPER_SRC := $(wildcard tests/helpers/*.c) $(wildcard tests/load/*.c)
HELPER_BIN := $(HELPER_SRC:tests/%.c=$(B)/tests/%)
MANPAGES  := $(wildcard man/*.[1-8])

SONAME    := libashmem.so.$(SOVERSION)
SHLIB     := $(B)/libashmem.so.$(VERSION)
STLIB     := $(B)/libashmem.a
CLI       := $(if $(CLI_SRC),$(B)/ashmemctl)
# the /dev/ashmem interposer (LD_PRELOAD), installed beside libashmem
PRELOAD_SRC := $(wildcard preload/*.c)
PRELOAD_OBJ := $(PRELOAD_SRC:%.c=$(B)/obj/%.o)
PRELOAD   := $(if $(PRELOAD_SRC),$(B)/libashmem-preload.so)
# programs that drive /dev/ashmem through the interposer (tests/android):
# run with the unit tests
ANDROID_SRC := $(wildcard tests/android/test_*.c)
ANDROID_BIN := $(ANDROID_SRC:tests/android/%.c=$(B)/tests/android_%)

.PHONY: all deps deps-build check unit bats hdrcheck manlint install uninstall \
        clean help demo bench check-bench bench-readme examples tests check-sanitize check-tsan fuzz fuzz-bins check-fuzz load \
        memcheck FORCE
.DEFAULT_GOAL := all
.SECONDARY:

all: deps-build $(SHLIB) $(STLIB) $(CLI) $(PRELOAD) examples tests units

deps-build:
	$(Q)CC="$(CC)" sh mk/deps.sh build
deps:
	$(Q)CC="$(CC)" sh mk/deps.sh check

# Objects depend on the flags they were built with.
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(LDFLAGS)' > $@

$(B)/obj/%.o: %.c $(B)/.flags
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(CPPFLAGS) $(CJSON_CFLAGS) $(SMARTCOLS_CFLAGS) -MMD -MP -c -o $@ $<

$(SHLIB): $(LIB_OBJ) lib/libashmem.sym
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libashmem.sym \
		-Wl,-z,defs $(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS_LIB) $(CJSON_LIBS)
	$(Q)ln -sf libashmem.so.$(VERSION) $(B)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(B)/libashmem.so

$(PRELOAD): $(PRELOAD_OBJ) $(SHLIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libashmem-preload.so -Wl,-z,defs -Wl,-rpath,'$$ORIGIN' \
		$(LDFLAGS) -o $@ $(PRELOAD_OBJ) $(B)/$(SONAME) -ldl $(LDLIBS_LIB)

$(STLIB): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJ)

# where `ashmemctl run` looks for the interposer last
$(B)/obj/cli/cmd-run.o: CPPFLAGS += -DASHMEM_LIBDIR='"$(LIBDIR)"'

# libcjson is loaded by cli/json-load.c when a command first uses JSON
# (dlopen), not linked: see there. It and libsmartcols are loaded from
# where the build found them first (the dynamic loader then reads no
# cache to find them), else by soname. -lcjson comes --as-needed: only a
# cJSON function json-load.c lacks links it (and cli.bats says so).
CLI_DLOPEN_PATH = $(abspath $(filter /%,$(shell $(CC) -print-file-name=$(1) 2>/dev/null)))
$(B)/obj/cli/json-load.o: CPPFLAGS += -DCJSON_PATH='"$(call CLI_DLOPEN_PATH,libcjson.so.1)"'
$(B)/obj/cli/output.o: CPPFLAGS += -DSCOLS_PATH='"$(call CLI_DLOPEN_PATH,libsmartcols.so.1)"'
$(B)/ashmemctl: $(CLI_OBJ) $(BROKER_OBJ) $(STLIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $(CLI_OBJ) $(BROKER_OBJ) $(STLIB) \
		-Wl,--as-needed $(CJSON_LIBS) -Wl,--no-as-needed $(READLINE_LIBS)

examples: $(EX_BIN)
$(B)/examples/%: $(B)/obj/examples/%.o $(STLIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $< $(STLIB) $(CJSON_LIBS)

tests: $(TEST_BIN)
$(B)/tests/%: $(B)/obj/tests/unit/%.o $(TEST_SUPPORT_OBJ) $(STLIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $< $(TEST_SUPPORT_OBJ) $(STLIB) $(CJSON_LIBS)

# a bench program that links a baseline's own client library
BENCH_LIBS_bench_fdholder = -ls6 -lskarnet
$(B)/bench/%: $(B)/obj/bench/%.o $(BENCH_SUPPORT_OBJ) $(STLIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $< $(BENCH_SUPPORT_OBJ) $(STLIB) $(CJSON_LIBS) -lrt $(BENCH_LIBS_$*)

tests: $(ANDROID_BIN)
$(B)/tests/android_%: $(B)/obj/tests/android/%.o $(TEST_SUPPORT_OBJ) $(SHLIB) $(PRELOAD)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $< $(TEST_SUPPORT_OBJ) $(B)/$(SONAME) -Wl,-rpath,'$$ORIGIN/..' -ldl

tests: $(HELPER_BIN)
$(B)/tests/helpers/%: $(B)/obj/tests/helpers/%.o $(STLIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $< $(STLIB) $(CJSON_LIBS)
$(B)/tests/load/%: $(B)/obj/tests/load/%.o $(STLIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -pthread -o $@ $< $(STLIB) $(CJSON_LIBS)

# ---------------------------------------------------------------- checks
# `make check`: the deps step, the build, then mk/check.sh runs each step
# of CHECK_STEPS (going on after a failing one) and ends with the line
# "check: N passed, N failed"; it fails if anything failed. Each step
# counts the tests it ran into $(B)/check/STEP (the file named by
# ASHMEM_CHECK_COUNTS) as "PASSED FAILED"; run on its own, a step counts
# nothing (RECORD does nothing without ASHMEM_CHECK_COUNTS).
CHECK_STEPS := hdrcheck unit bats manlint check-sanitize check-fuzz load check-bench memcheck check-deb
RECORD = if [ -n "$${ASHMEM_CHECK_COUNTS:-}" ]; then echo "$(1) $(2)" >"$$ASHMEM_CHECK_COUNTS"; fi

check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)MAKE="$(MAKE)" sh mk/check.sh $(abspath $(B))/check $(CHECK_STEPS)

# The unit tests again, built with ASan and UBSan in a build dir of their own
# (skipped when this build is itself sanitized).
check-sanitize:
	$(Q)if [ -z "$(SANITIZE)" ]; then \
		$(MAKE) --no-print-directory B=$(B)-sanitize SANITIZE=address,undefined unit; \
	else echo "check-sanitize: skipped (SANITIZE=$(SANITIZE))"; $(call RECORD,0,0); fi

# The unit tests that exercise concurrency (threads against threads,
# processes and purges), built with ThreadSanitizer in their own build
# dir and run with the suppressions of tests/unit/tsan.supp (each
# explained there). Not part of `make check` (several minutes).
TSAN_TESTS := test_pin test_heap test_table test_table_recycle
check-tsan:
	$(Q)$(MAKE) --no-print-directory B=build-tsan SANITIZE=thread \
		$(TSAN_TESTS:%=build-tsan/tests/%)
	$(Q)TSAN_OPTIONS="suppressions=$(CURDIR)/tests/unit/tsan.supp halt_on_error=1 $(TSAN_OPTIONS)" \
		sh tests/unit/run.sh $(TSAN_TESTS:%=build-tsan/tests/%)

unit: $(TEST_BIN) $(ANDROID_BIN) $(CLI)
	$(Q)ASHMEM_TEST_PRELOAD=$(abspath $(PRELOAD)) sh tests/unit/run.sh $(TEST_BIN) $(ANDROID_BIN)

bats: all
	$(Q)sh tests/bats/run.sh $(B)

# Each public header compiles on its own, in C and in C++: one test each.
hdrcheck: $(HEADERS) $(ANDROID_HEADERS)
	$(Q)p=0; f=0; for h in $(HEADERS:lib/include/%=%) $(ANDROID_HEADERS:lib/include/%=%); do \
		if printf '#include <%s>\n' $$h | $(CC) $(WARN) -Ilib/include -fsyntax-only -x c - && \
		   { ! command -v c++ >/dev/null || \
		     printf '#include <%s>\n' $$h | c++ -Wall -Wextra -Werror -Ilib/include -fsyntax-only -x c++ - ; }; \
		then p=$$((p+1)); else f=$$((f+1)); echo "hdrcheck: FAIL $$h"; fi; \
	done; echo "hdrcheck: $$p passed, $$f failed"; $(call RECORD,$$p,$$f); [ $$f -eq 0 ]

# Each man page (not the links) lints clean: one test each.
manlint:
	$(Q)p=0; f=0; for m in $(MANPAGES); do [ -L $$m ] && continue; \
		if out=$$(mandoc -Tlint -W warning $$m 2>&1) && [ -z "$$out" ]; then p=$$((p+1)); \
		else f=$$((f+1)); echo "manlint: FAIL $$m"; printf '%s\n' "$$out"; fi; \
	done; echo "manlint: $$p passed, $$f failed"; $(call RECORD,$$p,$$f); [ $$f -eq 0 ]

# ---------------------------------------------------------------- fuzzing
# libFuzzer harnesses in tests/fuzz/fuzz_*.c, built with clang in their own
# build dir. `make fuzz FUZZ_SECONDS=N` runs each for N seconds; `make check`
# runs each briefly from the committed seed corpus.
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN      = $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 5

# A harness of cli/ code either includes the .c files it needs or links
# cli and broker objects listed here (never cli/main.o: libFuzzer has its
# own main).
FUZZ_CLI_OBJ  = $(filter-out $(B)/obj/cli/main.o,$(CLI_OBJ)) $(BROKER_OBJ)
$(B)/fuzz/fuzz_cmdline: $(FUZZ_CLI_OBJ)
$(B)/fuzz/fuzz_cmdline: FUZZ_LINK = $(FUZZ_CLI_OBJ) $(READLINE_LIBS)
$(B)/fuzz/fuzz_broker: FUZZ_LINK = -ldl

fuzz-bins: $(FUZZ_BIN)
$(B)/fuzz/%: $(B)/obj/tests/fuzz/%.o $(STLIB)
	@mkdir -p $(@D)
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -pthread -o $@ $< $(FUZZ_LINK) $(STLIB) $(CJSON_LIBS)

fuzz:
	$(Q)sh mk/deps.sh fuzz
	$(Q)$(MAKE) --no-print-directory B=$(B)-fuzz CC=clang \
		SANITIZE=fuzzer-no-link,address,undefined fuzz-bins
	$(Q)sh tests/fuzz/run.sh $(B)-fuzz/fuzz $(FUZZ_SECONDS)

# (tests/fuzz/run.sh counts each fuzzer run as one test)
check-fuzz:
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_CHECK_SECONDS)

# ---------------------------------------------------------------- memcheck
# The broker and ashmemctl through a session under valgrind memcheck (no
# error, no definite or indirect leak, no descriptor left open); about
# 30 s; one test. Skipped in a sanitized build (valgrind cannot run those).
memcheck: all
	$(Q)if [ -z "$(SANITIZE)" ]; then \
		if sh tests/memcheck.sh $(B); then $(call RECORD,1,0); else $(call RECORD,0,1); exit 1; fi; \
	else echo "memcheck: skipped (SANITIZE=$(SANITIZE))"; $(call RECORD,0,0); fi

# ---------------------------------------------------------------- demo, bench
demo: all
	$(Q)sh examples/demo.sh $(abspath $(B))

# The baselines (s6, its client library) are installed before the bench
# programs are built. `make check` runs the quick mode once, its results in
# the build dir, without judging the numbers.
# The Markdown table of the run goes to $(B)/bench.md (bench-quick.md for
# check-bench); `make bench-readme` puts the full run's into README.md.
BENCH_MD ?= $(abspath $(B))/bench.md
bench: all
	$(Q)sh mk/deps.sh bench
	$(Q)$(MAKE) --no-print-directory $(BENCH_BIN)
	$(Q)BENCH_MD=$(BENCH_MD) sh bench/run.sh $(abspath $(B)) $(if $(QUICK),quick,full)

# check-bench is one test: passed when the quick run succeeded and left a
# non-empty array of well-formed rows.
BENCH_QUICK_RESULTS = $(abspath $(B))/bench-quick.json
BENCH_ROWS_OK = type == "array" and length > 0 and all(.[]; type == "object" and \
	(.name | type == "string") and (.unit | type == "string") and \
	has("ours") and has("baseline") and has("ratio") and has("target") and has("meets"))
check-bench: all
	$(Q)rm -f $(BENCH_QUICK_RESULTS); \
	if $(MAKE) --no-print-directory bench QUICK=1 BENCH_RESULTS=$(BENCH_QUICK_RESULTS) \
		BENCH_MD=$(abspath $(B))/bench-quick.md && \
	   jq -e '$(BENCH_ROWS_OK)' $(BENCH_QUICK_RESULTS) >/dev/null; \
	then echo "check-bench: $(BENCH_QUICK_RESULTS) holds well-formed rows"; $(call RECORD,1,0); \
	else echo "check-bench: FAIL: the quick bench failed or left no well-formed rows"; \
		$(call RECORD,0,1); exit 1; fi

bench-readme:
	$(Q)sh bench/readme.sh $(BENCH_MD) README.md

# LOAD_CLIENTS clients (processes) against a broker of their own for
# LOAD_SECONDS: zero errors, the broker's descriptors and memory back to
# where they were (tests/load/load.c). As root, the clients run as three
# users and the third misbehaves (--hostile): the others must see no
# error. Part of `make check`.
LOAD_SECONDS ?= 30
LOAD_CLIENTS ?= 64
load: all
	$(Q)if $(B)/tests/load/load --ashmemctl $(B)/ashmemctl \
		--clients $(LOAD_CLIENTS) --seconds $(LOAD_SECONDS) $(if $(SANITIZE),--rss-slack none) \
		$(if $(filter 0,$(shell id -u)),--hostile); \
	then $(call RECORD,1,0); else $(call RECORD,0,1); exit 1; fi

# ---------------------------------------------------------------- systemd units
# systemd/*.in with the installed ashmemctl's path (BINDIR), into
# $(B)/systemd/ (system units as ashmem-broker.*, user units as
# user/ashmem-broker.*) for the tests; install makes its own for its BINDIR.
# Installed under systemd's own unit directories for PREFIX=/usr (what
# `pkg-config systemd` says), else under PREFIX/lib/systemd/{system,user}
# (which systemd searches too for PREFIX=/usr/local); SYSTEMDSYSTEMUNITDIR
# and SYSTEMDUSERUNITDIR override both.
ifeq ($(PREFIX),/usr)
SYSTEMDSYSTEMUNITDIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
SYSTEMDUSERUNITDIR   ?= $(shell $(PKG_CONFIG) --variable=systemduserunitdir systemd 2>/dev/null || echo /usr/lib/systemd/user)
else
SYSTEMDSYSTEMUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSTEMDUSERUNITDIR   ?= $(PREFIX)/lib/systemd/user
endif
UNITS := $(B)/systemd/ashmem-broker.socket $(B)/systemd/ashmem-broker.service \
         $(B)/systemd/user/ashmem-broker.socket $(B)/systemd/user/ashmem-broker.service
.PHONY: units
units: $(UNITS)
$(B)/systemd/ashmem-broker.%: systemd/ashmem-broker.%.in $(B)/.flags FORCE
	@mkdir -p $(@D)
	$(Q)sed -e 's|@BINDIR@|$(BINDIR)|g' $< > $@.tmp && \
		{ cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@; }
$(B)/systemd/ashmem-broker.socket: systemd/ashmem-broker.socket
	@mkdir -p $(@D)
	$(Q)cp $< $@
$(B)/systemd/user/ashmem-broker.%: systemd/ashmem-broker-user.%.in FORCE
	@mkdir -p $(@D)
	$(Q)sed -e 's|@BINDIR@|$(BINDIR)|g' $< > $@.tmp && \
		{ cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@; }
$(B)/systemd/user/ashmem-broker.socket: systemd/ashmem-broker-user.socket
	@mkdir -p $(@D)
	$(Q)cp $< $@

# ---------------------------------------------------------------- Debian packages
# `make deb`: the packages of debian/ (libashmem1, libashmem-dev,
# ashmem-tools) built with dpkg-buildpackage -us -uc -b from a copy of the
# source tree in $(B)/deb/ashmem-$(VERSION) (the tracked files and new ones
# not ignored; build directories never), so the .debs, .changes and
# .buildinfo land in $(B)/deb/ and the tree stays clean; then lintian, which
# must report no error and no warning. `make check` runs it as its step
# check-deb when dpkg-buildpackage and lintian are installed.
DEB_DIR = $(abspath $(B))/deb
.PHONY: deb check-deb
deb:
	$(Q)rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/ashmem-$(VERSION)
	$(Q)if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | \
			tar --null -T - -cf - ; \
	else tar --exclude='./build*' -cf - . ; fi | tar -C $(DEB_DIR)/ashmem-$(VERSION) -xf -
	$(Q)cd $(DEB_DIR)/ashmem-$(VERSION) && \
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u B -u PREFIX -u LIBDIR -u BINDIR \
		-u CFLAGS -u SANITIZE dpkg-buildpackage -us -uc -b >$(DEB_DIR)/build.log 2>&1 || \
		{ tail -40 $(DEB_DIR)/build.log; echo "deb: dpkg-buildpackage failed (log: $(DEB_DIR)/build.log)"; exit 1; }
	$(Q)lintian --fail-on error,warning --suppress-tags-from-file /dev/null \
		$(DEB_DIR)/ashmem_$(VERSION)_*.changes
	$(Q)ls $(DEB_DIR)/*.deb

# one test: the packages build and lintian passes them (skipped without
# the packaging tools)
check-deb:
	$(Q)if ! command -v dpkg-buildpackage >/dev/null || ! command -v lintian >/dev/null || \
	      ! command -v dh >/dev/null; then \
		echo "check-deb: skipped (dpkg-buildpackage, debhelper or lintian missing)"; $(call RECORD,0,0); \
	elif $(MAKE) --no-print-directory deb; then $(call RECORD,1,0); \
	else $(call RECORD,0,1); exit 1; fi

# ---------------------------------------------------------------- install
install: all
	install -d $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR) $(DESTDIR)$(SYSTEMDUSERUNITDIR)
	install -m 644 systemd/ashmem-broker.socket $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' systemd/ashmem-broker.service.in \
		> $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/ashmem-broker.service
	install -m 644 systemd/ashmem-broker-user.socket $(DESTDIR)$(SYSTEMDUSERUNITDIR)/ashmem-broker.socket
	sed -e 's|@BINDIR@|$(BINDIR)|g' systemd/ashmem-broker-user.service.in \
		> $(DESTDIR)$(SYSTEMDUSERUNITDIR)/ashmem-broker.service
	chmod 644 $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/ashmem-broker.service \
		$(DESTDIR)$(SYSTEMDUSERUNITDIR)/ashmem-broker.service
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/ashmem
	install -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/ashmem/
	install -d $(DESTDIR)$(INCLUDEDIR)/android && install -m 644 $(ANDROID_HEADERS) $(DESTDIR)$(INCLUDEDIR)/android/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(PRELOAD) $(DESTDIR)$(LIBDIR)/
	ln -sf libashmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libashmem.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    lib/libashmem.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libashmem.pc
	$(if $(CLI),install -d $(DESTDIR)$(BINDIR) && install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/)
	$(Q)set -e; for m in $(MANPAGES); do s=$${m##*.}; d=$(DESTDIR)$(MANDIR)/man$$s; \
		install -d $$d; \
		if [ -L $$m ]; then ln -sf "$$(readlink $$m)" $$d/$${m##*/}; \
		else install -m 644 $$m $$d/; fi; done
	$(Q)if [ -f completions/ashmemctl.bash ]; then \
		install -d $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
			$(DESTDIR)$(DATADIR)/fish/vendor_completions.d; \
		install -m 644 completions/ashmemctl.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/ashmemctl; \
		install -m 644 completions/_ashmemctl $(DESTDIR)$(DATADIR)/zsh/site-functions/_ashmemctl; \
		install -m 644 completions/ashmemctl.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/ashmemctl.fish; fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/ashmem/,$(notdir $(HEADERS)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/ashmem
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/android/,$(notdir $(ANDROID_HEADERS))) \
	      $(DESTDIR)$(LIBDIR)/libashmem-preload.so
	-rmdir $(DESTDIR)$(INCLUDEDIR)/android
	rm -f $(DESTDIR)$(LIBDIR)/libashmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libashmem.so $(DESTDIR)$(LIBDIR)/libashmem.a \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libashmem.pc $(DESTDIR)$(BINDIR)/ashmemctl
	rm -f $(foreach m,$(MANPAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	rm -f $(DESTDIR)$(DATADIR)/bash-completion/completions/ashmemctl \
	      $(DESTDIR)$(DATADIR)/zsh/site-functions/_ashmemctl \
	      $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/ashmemctl.fish
	rm -f $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/ashmem-broker.socket \
	      $(DESTDIR)$(SYSTEMDSYSTEMUNITDIR)/ashmem-broker.service \
	      $(DESTDIR)$(SYSTEMDUSERUNITDIR)/ashmem-broker.socket \
	      $(DESTDIR)$(SYSTEMDUSERUNITDIR)/ashmem-broker.service

clean:
	rm -rf $(B) $(B)-sanitize $(B)-fuzz

help:
	@echo 'Targets:'
	@echo '  all        build libashmem (shared + static), libashmem-preload.so, ashmemctl,'
	@echo '             examples, tests'
	@echo '  deps       check for (and as root install) what the build and tests need'
	@echo '  check      deps, build, then every test, going on after a failure: header check'
	@echo '             (one per header), unit tests, bats, man lint (one per page), unit'
	@echo '             tests under ASan+UBSan, fuzzers (5 s each), load (30 s), quick bench,'
	@echo '             memcheck, Debian packages + lintian; ends with the line "check: N passed, N failed" summing them'
	@echo '             (counts per step in B/check/) and fails if any test failed'
	@echo '  unit, bats, hdrcheck, manlint, check-sanitize, check-fuzz, check-bench'
	@echo '             one step of check on its own (so are load and memcheck)'
	@echo '  demo       build and show the main job working'
	@echo '  fuzz       run every libFuzzer harness for FUZZ_SECONDS (default 60)'
	@echo '  memcheck   the broker and ashmemctl through a session under valgrind'
	@echo '  bench      benchmarks against the baselines (QUICK=1 for a short run)'
	@echo '  bench-readme  the last full bench run'"'"'s table ($$(B)/bench.md) into README.md'
	@echo '  load       LOAD_CLIENTS (64) clients on one broker for LOAD_SECONDS (30)'
	@echo '  deb        the Debian packages (dpkg-buildpackage -us -uc -b) into B/deb/, then lintian'
	@echo '  install    install under PREFIX (default /usr/local), honouring DESTDIR;'
	@echo '             systemd units under PREFIX/lib/systemd/{system,user} (for PREFIX=/usr:'
	@echo '             where pkg-config systemd says), or SYSTEMDSYSTEMUNITDIR, SYSTEMDUSERUNITDIR'
	@echo '  uninstall  remove what install installed'
	@echo '  clean      remove the build directory'
	@echo 'Variables: CC, CFLAGS, SANITIZE=address,undefined, V=1, B=builddir, PREFIX, DESTDIR'

# every object's header dependencies (tests, examples and benches too)
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BROKER_OBJ:.o=.d) $(FUZZ_SRC:tests/fuzz/%.c=$(B)/obj/tests/fuzz/%.d) \
	$(TEST_SRC:%.c=$(B)/obj/%.d) $(TEST_SUPPORT_OBJ:.o=.d) $(EX_SRC:%.c=$(B)/obj/%.d) \
	$(BENCH_SRC:%.c=$(B)/obj/%.d) $(BENCH_SUPPORT_OBJ:.o=.d) $(PRELOAD_OBJ:.o=.d) \
	$(ANDROID_SRC:%.c=$(B)/obj/%.d)
