#!/bin/sh
# The deps step: check for what the build and the tests need; install what is
# missing with apt-get when running as root, else print the exact command and
# fail. Usage: mk/deps.sh [build|check|bench|fuzz]
set -eu
want=${1:-check}
missing=

need_pkg() { # need_pkg PACKAGE TEST-COMMAND...
        pkg=$1; shift
        if ! "$@" >/dev/null 2>&1; then
                missing="$missing $pkg"
        fi
}
have() { command -v "$1"; }
header() { printf '#include <%s>\n' "$1" | ${CC:-cc} -E -x c - ; }

need_pkg pkg-config      have pkg-config
need_pkg libcjson-dev    sh -c 'pkg-config --exists libcjson'
need_pkg libreadline-dev header readline/readline.h
need_pkg libsystemd-dev  header systemd/sd-daemon.h
need_pkg libsmartcols-dev sh -c 'pkg-config --exists smartcols'
case $want in
check|bench|fuzz)
        need_pkg bats        have bats
        need_pkg jq          have jq
        need_pkg mandoc      have mandoc
        need_pkg tmux        have tmux
        need_pkg util-linux  have setpriv
        need_pkg procps      have pgrep
        # the broker tests count its descriptors apart from client sockets (ss)
        need_pkg iproute2    have ss
        need_pkg man-db      have man
        need_pkg valgrind    have valgrind
        # the completion tests run the zsh and fish scripts in those shells
        need_pkg zsh         have zsh
        need_pkg fish        have fish
        # mk/m32.sh: the pin engine's tests built -m32 (it also wants
        # libcjson-dev:i386, which needs the i386 architecture enabled)
        need_pkg gcc-multilib sh -c 'test -d /usr/lib/gcc/x86_64-linux-gnu/*/32'
        # the service tests: socket activation and unit checks, without a
        # running systemd
        need_pkg systemd     have systemd-socket-activate
        need_pkg systemd     have systemd-analyze
        ;;
esac
case $want in
check|bench)            # make check runs the quick bench once
        need_pkg s6           have s6-fdholderd
        # bench_fdholder talks to s6-fdholderd through s6's client library
        need_pkg libs6-dev    header s6/fdholder.h
        need_pkg skalibs-dev  header skalibs/tai.h
        need_pkg gnuplot-nox  have gnuplot
        # bench_cli's baselines: the System V tools, cat
        need_pkg util-linux   have lsipc
        need_pkg util-linux   have ipcmk
        need_pkg coreutils    have cat
        ;;
esac
case $want in
check)                  # make check builds the Debian packages (check-deb)
        need_pkg dpkg-dev    have dpkg-buildpackage
        need_pkg debhelper   have dh
        need_pkg lintian     have lintian
        ;;
esac
case $want in
fuzz|check)
        need_pkg clang                have clang
        need_pkg libclang-rt-14-dev   sh -c 'ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a'
        ;;
esac

[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "deps: installing:$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        # a failed index (a mirror mid-sync) need not stop the install:
        # apt-get install says what it cannot find
        apt-get update -qq >&2 ||
                echo "deps: apt-get update reported errors; installing anyway" >&2
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >&2
        exit 0
fi
echo "deps: missing:$missing" >&2
echo "deps: install them with: sudo apt-get install$missing" >&2
exit 1
