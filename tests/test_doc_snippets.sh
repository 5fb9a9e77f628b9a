#!/usr/bin/env bash
# test_doc_snippets.sh - every C snippet of README.md and docs/*.md compiles
# against the public headers as they are.
#
#   test_doc_snippets.sh SOURCE_DIR BUILD_DIR CC      (ctest runs it; label unit)
#
# Each ```c block is compiled on its own (-std=c11, warnings as errors, but
# for unused names: snippets declare more than they use). A block is either
#   - a whole file: compiled as it is when it has #include lines of its own,
#     else with every public header (and <stdio.h>) put in front; or
#   - a function body, when the line before its fence is
#     <!-- c-snippet: body -->  (invisible once rendered): compiled inside
#     a function, with every public header in front.
# <!-- c-snippet: skip --> before a fence leaves that block out (say why
# beside it).
set -u

SRC=${1:?usage: test_doc_snippets.sh SOURCE_DIR BUILD_DIR CC}
BUILD=${2:?usage: test_doc_snippets.sh SOURCE_DIR BUILD_DIR CC}
CC=${3:-cc}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

CFLAGS=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-variable
        -Wno-unused-but-set-variable -Wno-unused-function -Wno-unused-parameter
        -I"$SRC/include" -I"$BUILD/include")

PRELUDE=$TMP/prelude.h
{
    echo '#include <stdio.h>'
    for h in "$SRC"/include/sage/*.h; do echo "#include \"sage/$(basename "$h")\""; done
    echo '#include "sage/version.h"'
} >"$PRELUDE"

FAILS=0
COUNT=0
for doc in "$SRC"/README.md "$SRC"/docs/*.md; do
    rel=${doc#"$SRC"/}
    # split the document into one file per ```c block: NNN.KIND.LINE.c
    awk -v dir="$TMP" -v base="$(basename "$doc" .md)" '
        /^[ \t]*<!-- c-snippet: [a-z]+ -->[ \t]*$/ { mark = $0; sub(/.*c-snippet: /, "", mark); sub(/ .*/, "", mark); next }
        /^```c[ \t]*$/ && !inblk { inblk = 1; n++; kind = mark ? mark : "file"; mark = "";
                                   out = sprintf("%s/%s.%03d.%s.%d.c", dir, base, n, kind, NR + 1); next }
        /^```/ && inblk { inblk = 0; close(out); next }
        inblk { print > out; next }
        { if ($0 !~ /^[ \t]*$/) mark = "" }
    ' "$doc"
    for f in "$TMP/$(basename "$doc" .md)".*.c; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .c)
        kind=$(echo "$name" | awk -F. '{print $(NF-1)}')
        line=$(echo "$name" | awk -F. '{print $NF}')
        unit=$TMP/unit.c
        case $kind in
        skip) rm -f "$f"; continue ;;
        body)
            { echo "#include \"$PRELUDE\""; echo "void snippet(void);"; echo "void snippet(void)";
              echo "{"; echo "#line $line \"$rel\""; cat "$f"; echo "}"; } >"$unit" ;;
        file)
            if grep -q '^[[:space:]]*#[[:space:]]*include' "$f"; then
                { echo "#line $line \"$rel\""; cat "$f"; } >"$unit"
            else
                { echo "#include \"$PRELUDE\""; echo "#line $line \"$rel\""; cat "$f"; } >"$unit"
            fi ;;
        *) echo "FAIL $rel:$line: unknown c-snippet kind '$kind' (body, skip)"; FAILS=$((FAILS + 1)); continue ;;
        esac
        COUNT=$((COUNT + 1))
        if "$CC" "${CFLAGS[@]}" -c -o "$TMP/unit.o" "$unit" 2>"$TMP/err"; then
            echo "ok   $rel:$line ($kind)"
        else
            echo "FAIL $rel:$line ($kind):"
            sed 's/^/    /' "$TMP/err"
            FAILS=$((FAILS + 1))
        fi
        rm -f "$f"
    done
done

if [ $COUNT -eq 0 ]; then
    echo "FAIL: no \`\`\`c block found: the pattern no longer matches how the docs write them"
    exit 1
fi
if [ $FAILS -ne 0 ]; then
    echo "$FAILS of $COUNT C snippets do not compile"
    exit 1
fi
echo "all $COUNT C snippets compile"
