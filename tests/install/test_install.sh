#!/usr/bin/env bash
# test_install.sh - the installed tree is usable, and still so once moved:
# `cmake --install` of the build into a temporary prefix, the prefix
# renamed, then a small program (consumer.c) built against it as a user
# would, with pkg-config and with find_package(sagesvc), and run.
#
#   test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER [EXTRA_FLAGS]
#
# EXTRA_FLAGS are added to every compile and link (a sanitizer build's
# library needs its runtime in the program too). Every step runs under
# `timeout`; the temporary directory goes on exit, pass or fail.
set -u

BUILD=${1:?usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER [EXTRA_FLAGS]}
SRC=${2:?usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER [EXTRA_FLAGS]}
CC=${3:?usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER [EXTRA_FLAGS]}
EXTRA=${4:-}
HERE=$SRC/tests/install
WANT="sagesvc consumer: timed out; queue round trip: hello"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sagesvc-install.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

FAILS=0
CHECKS=0
pass() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $1"; }
# step NAME COMMAND...: runs COMMAND (output in $WORK/step.log); on failure
# prints the log and stops the test
step() {
    local name=$1
    shift
    if timeout 300 "$@" >"$WORK/step.log" 2>&1; then
        pass "$name"
    else
        fail "$name: exit $?"
        tail -n 40 "$WORK/step.log"
        exit 1
    fi
}
# runs NAME WANT COMMAND...: COMMAND prints exactly WANT
runs() {
    local name=$1 want=$2 out
    shift 2
    out=$(timeout 30 "$@" 2>&1)
    if [ "$out" = "$want" ]; then
        pass "$name"
    else
        fail "$name: printed '$out', expected '$want'"
    fi
}
# needs_shared NAME PROGRAM: PROGRAM loads libsage.so at run time
needs_shared() {
    if readelf -d "$2" | grep -q 'NEEDED.*\[libsage\.so\.'; then
        pass "$1"
    else
        fail "$1: $2 does not load libsage.so"
    fi
}

command -v pkg-config >/dev/null || { echo "SKIP: no pkg-config"; exit 77; }

# ------------------------------------------------- install, then move it
step "cmake --install into a temporary prefix" cmake --install "$BUILD" --prefix "$WORK/staged"
mv "$WORK/staged" "$WORK/moved"
P=$WORK/moved
PC=$(find "$P" -name sagesvc.pc)
CONF=$(find "$P" -name sagesvcConfig.cmake)
CMAKEDIR=$(dirname "${CONF:-.}")
if [ -n "$PC" ] && [ -n "$CONF" ] && [ -f "$CMAKEDIR/sagesvcConfigVersion.cmake" ]; then
    pass "installs sagesvc.pc, sagesvcConfig.cmake and sagesvcConfigVersion.cmake"
else
    fail "installed files missing: sagesvc.pc '$PC', sagesvcConfig.cmake '$CONF'"
    exit 1
fi
LIBDIR=$(dirname "$(dirname "$PC")")
if grep -rlF "$WORK/staged" "$LIBDIR/pkgconfig" "$CMAKEDIR"; then
    fail "the pkg-config and CMake files name the prefix they were installed to"
else
    pass "no installed pkg-config or CMake file names the install prefix"
fi

# ------------------------------------------------------------ pkg-config
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
FLAGS=$(timeout 30 pkg-config --cflags --libs sagesvc)
if [ $? -eq 0 ] && [ -d "$(echo "$FLAGS" | sed -n 's/.*-I\([^ ]*\).*/\1/p')/sage" ] &&
    [ -f "$(echo "$FLAGS" | sed -n 's/.*-L\([^ ]*\).*/\1/p')/libsage.so" ]; then
    pass "pkg-config points into the moved prefix: $FLAGS"
else
    fail "pkg-config --cflags --libs sagesvc: '$FLAGS' (sagesvc.pc: $(grep '^prefix' "$PC"))"
fi
step "pkg-config --static --libs sagesvc finds the private dependencies" \
    pkg-config --static --libs sagesvc
# shellcheck disable=SC2086 # $EXTRA and $FLAGS: words
step "build with pkg-config" "$CC" $EXTRA -o "$WORK/consumer_pc" "$HERE/consumer.c" $FLAGS
needs_shared "pkg-config build links the shared library" "$WORK/consumer_pc"
runs "pkg-config build runs" "$WANT" env LD_LIBRARY_PATH="$LIBDIR" "$WORK/consumer_pc"

# --------------------------------------------------------- find_package
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
step "configure with find_package(sagesvc 0.1 COMPONENTS shared static)" \
    cmake -S "$HERE" -B "$WORK/consumer" "${GEN[@]}" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_C_FLAGS="$EXTRA" -DCMAKE_EXE_LINKER_FLAGS="$EXTRA" -DCMAKE_PREFIX_PATH="$P"
step "build with find_package" cmake --build "$WORK/consumer"
needs_shared "sagesvc::sage is the shared library" "$WORK/consumer/consumer_shared"
runs "sagesvc::sage build runs" "$WANT" env LD_LIBRARY_PATH="$LIBDIR" "$WORK/consumer/consumer_shared"
if readelf -d "$WORK/consumer/consumer_static" | grep -q 'NEEDED.*\[libsage\.so\.'; then
    fail "sagesvc::sage_static build loads libsage.so"
else
    pass "sagesvc::sage_static is linked in"
fi
runs "sagesvc::sage_static build runs" "$WANT" "$WORK/consumer/consumer_static"
# SameMajorVersion: 0.1.x does not do for a user asking for 1.0
if timeout 300 cmake -S "$HERE" -B "$WORK/consumer1" "${GEN[@]}" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_PREFIX_PATH="$P" -DSAGESVC_WANT=1.0 >"$WORK/step.log" 2>&1; then
    fail "find_package(sagesvc 1.0) accepted version $(grep -o 'PACKAGE_VERSION "[^"]*"' \
        "$CMAKEDIR/sagesvcConfigVersion.cmake")"
elif grep -q 'compatible with requested version "1.0"' "$WORK/step.log"; then
    pass "find_package(sagesvc 1.0) refuses the installed 0.x"
else
    fail "find_package(sagesvc 1.0) failed for another reason:"
    tail -n 20 "$WORK/step.log"
fi

echo "test_install: $((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
