#!/usr/bin/env bash
# test_readme_scripts.sh - every script README.md tells a new user to run,
# and the CI entry point .ci/run, runs as written from a fresh clone: it
# exists, git records it executable (mode 100755: a clone makes the file
# what the index says), it starts with a #! line, and bash parses it.
#
#   test_readme_scripts.sh SOURCE_DIR        (ctest runs it; label unit)
#
# Outside a git checkout (an unpacked release, say) the file's own mode is
# checked instead of the index's, and the test says so.
set -u

SRC=${1:?usage: test_readme_scripts.sh SOURCE_DIR}
cd "$SRC" || exit 1

FAILS=0
CHECKS=0
pass() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $1"; }

[ -f README.md ] || { echo "FAIL: no README.md in $SRC"; exit 1; }

# The paths: every scripts/NAME the README writes, in a command or in prose
# (a listing of the folder, "scripts/   a.sh, b.sh", names no path).
mapfile -t SCRIPTS < <(grep -oE '(^|[^A-Za-z0-9_./-])(\./)?scripts/[A-Za-z0-9_.-]+' README.md |
    sed -E 's|^[^s.]*||; s|^\./||' | sort -u)
if [ ${#SCRIPTS[@]} -eq 0 ]; then
    echo "FAIL: README.md names no scripts/...: the pattern no longer matches how it names them"
    exit 1
fi
echo "README.md names: ${SCRIPTS[*]}"

in_git=0
if command -v git >/dev/null && [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ]; then
    in_git=1
else
    echo "note: $SRC is not a git checkout: checking each file's mode instead of git's index"
fi

for s in "${SCRIPTS[@]}" .ci/run; do
    if [ ! -f "$s" ]; then
        fail "$s: no such file"
        continue
    fi
    if [ $in_git -eq 1 ]; then
        mode=$(git ls-files -s -- "$s" | awk '{print $1}')
        case $mode in
        100755) pass "$s: executable in git (100755)" ;;
        "") fail "$s: not in git, so a fresh clone has no such file" ;;
        *) fail "$s: mode $mode in git: a fresh clone cannot run it (git update-index --chmod=+x $s)" ;;
        esac
    elif [ -x "$s" ]; then
        pass "$s: executable"
    else
        fail "$s: not executable"
    fi
    if head -n 1 "$s" | grep -qE '^#!/(usr/bin/env (ba)?sh|bin/(ba)?sh)( |$)'; then
        pass "$s: starts with $(head -n 1 "$s")"
    else
        fail "$s: first line '$(head -n 1 "$s")' is not a #! line for bash or sh"
    fi
    if err=$(timeout 30 bash -n "$s" 2>&1); then
        pass "$s: bash -n"
    else
        fail "$s: bash -n: $err"
    fi
done

echo "test_readme_scripts: $((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
