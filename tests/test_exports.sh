#!/bin/sh
# test_exports.sh - what the shipped libraries hold: libsage.so exports the
# public API and nothing else, and no test hook is in either library.
#
#   test_exports.sh NM LIBSAGE_SO LIBSAGE_A INCLUDE_DIR...   (ctest; label unit)
#
# Checks:
# - every symbol libsage.so defines in its dynamic table starts with sage_
#   and is no sage__ internal (the library is built with hidden visibility;
#   SAGE_API marks the public declarations); a fuzzing build's coverage
#   section bounds, which the linker adds, are let pass;
# - every such symbol is declared in a public header (an INCLUDE_DIR's
#   sage/*.h), and some are there at all;
# - no test hook (sage__*_hook_*, compiled only with SAGE_TEST_HOOKS) is in
#   libsage.so's full symbol table or in libsage.a.
set -u

NM=${1:?usage: test_exports.sh NM LIBSAGE_SO LIBSAGE_A INCLUDE_DIR...}
SO=${2:?usage: test_exports.sh NM LIBSAGE_SO LIBSAGE_A INCLUDE_DIR...}
AR=${3:?usage: test_exports.sh NM LIBSAGE_SO LIBSAGE_A INCLUDE_DIR...}
shift 3
[ $# -gt 0 ] || { echo "usage: test_exports.sh NM LIBSAGE_SO LIBSAGE_A INCLUDE_DIR..."; exit 2; }
HEADERS=
for d in "$@"; do
    HEADERS="$HEADERS $(ls "$d"/sage/*.h)"
done

FAILS=0
fail() { FAILS=$((FAILS + 1)); echo "FAIL $1"; }

exported=$("$NM" -D --defined-only "$SO" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }' | sort -u)
if [ -z "$exported" ]; then
    fail "$SO exports nothing (or $NM cannot read it)"
fi
# shellcheck disable=SC2086 # $HEADERS: words
declared=$(grep -ohw 'sage_[A-Za-z0-9_]*' $HEADERS | sort -u)
count=0
for s in $exported; do
    count=$((count + 1))
    case $s in
    sage__*) fail "exported internal: $s" ;;
    sage_*)
        case "
$declared
" in
        *"
$s
"*) ;;
        *) fail "exported, but in no public header: $s" ;;
        esac
        ;;
    __start___sancov_* | __stop___sancov_*)
        # the linker's bounds of the coverage sections of a fuzzing build
        # (-fsanitize=fuzzer-no-link): not ours, and only there
        count=$((count - 1)) ;;
    *) fail "exported, not sage_: $s" ;;
    esac
done
echo "libsage.so exports $count symbols"

# test hooks: compiled only into the test build (sage_testing)
hooks=$( ("$NM" "$SO" 2>/dev/null; "$NM" -D "$SO"; "$NM" "$AR" 2>/dev/null) |
    awk '{ print $NF }' | grep -E '^sage__[A-Za-z0-9_]*_hook_' | sort -u)
for s in $hooks; do
    fail "test hook in a shipped library: $s"
done
# the one hook there is today, by name: a rename must not pass unseen
for f in "$SO" "$AR"; do
    if "$NM" "$f" 2>/dev/null | grep -q sage__sq_hook_after_claim; then
        fail "sage__sq_hook_after_claim in $f"
    fi
done

if [ "$FAILS" -ne 0 ]; then
    echo "test_exports: $FAILS failures"
    exit 1
fi
echo "test_exports: libsage.so exports only the public API; no test hook shipped"
