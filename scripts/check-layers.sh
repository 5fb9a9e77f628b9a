#!/usr/bin/env bash
# check-layers.sh - the dependency rule of docs/ARCHITECTURE.md, checked over
# the #include "..." lines of src/, cli/ and include/sage/.
#
#   scripts/check-layers.sh [SOURCE_DIR]     (ctest runs it as check_layers; label unit)
#
# The layers, lowest first (a folder of src/ each, and cli/ on top):
#
#   0 base   1 platform   2 value   3 queue | config | wire   4 transport
#   5 runtime   6 cluster   7 cli
#
# The rule: a file includes headers of its own layer and of layers below it,
# never of a layer above, never of a sibling on its own level (queue, config
# and wire do not include each other). Skipping levels downward is allowed.
#
# Public headers (include/sage/*.h) are the API: each belongs to a layer too.
#   export.h err.h version.h -> base      value.h -> value
#   queue.h -> queue                      config.h -> config
#   service.h task.h future.h manager.h plugin.h cluster.h -> api
# "api" is the service API, declared together and implemented by transport,
# runtime and cluster (task.h declares sage_transport and the figures the
# transports fill, cluster.h the NATS options): transport and every layer
# above may include it; nothing below transport may.
#
# cli/ uses the public API only: sage/*.h and its own headers.
#
# An include without a folder ("x.h") must name a file beside the includer.
# A folder of src/ or a public header missing from the tables above fails
# the check: a new one gets its place in the order on purpose.
#
# It also checks the one door of each outside dependency (STYLE.md): only
# the file named below includes that library's header.
#
# Exit status 0 when every include keeps the rule (or is on the allow-list
# below), 1 otherwise, printing FILE:LINE, the include and the reason.
set -u

SRC=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$SRC" || exit 2

# ----------------------------------------------------------------- tables

declare -A RANK=([base]=0 [platform]=1 [value]=2 [queue]=3 [config]=3 [wire]=3
                 [transport]=4 [api]=4 [runtime]=5 [cluster]=6 [cli]=7)

declare -A PUBLIC=([export.h]=base [err.h]=base [version.h]=base [value.h]=value
                   [queue.h]=queue [config.h]=config
                   [service.h]=api [task.h]=api [future.h]=api [manager.h]=api
                   [plugin.h]=api [cluster.h]=api)

# the one file that includes each outside library's header
declare -A DOOR=([nats/nats.h]=src/transport/natsio.c [msgpack.h]=src/wire/wire.c
                 [yaml.h]=src/config/load.c)

# --------------------------------------------------------------- allow-list
# Known violations, each "FILE|INCLUDE" with the reason it is still here.
# This list is meant to shrink to nothing: an entry that no longer matches
# an include fails the check too, so fixing a violation means deleting its
# line here. Never add an entry to make a new violation pass.
ALLOW=(
    # sagesvc's built-in kv and text services are the example services:
    # cli/ reaches into examples/ for their tables (examples/kv.h, text.h).
    "cli/builtins.c|kv.h"
    "cli/builtins.c|text.h"
)

# ------------------------------------------------------------------- check

declare -A ALLOWED_USED=()
FAILS=0
CHECKED=0

violation() { # FILE LINE INCLUDE REASON
    local key="$1|$3"
    for a in ${ALLOW[@]+"${ALLOW[@]}"}; do
        if [ "$a" = "$key" ]; then
            ALLOWED_USED[$key]=1
            echo "allowed $1:$2: #include \"$3\": $4"
            return
        fi
    done
    echo "$1:$2: #include \"$3\": $4"
    FAILS=$((FAILS + 1))
}

# may_include FROM TO: may a file of layer FROM include a header of layer TO?
may_include() {
    local from=$1 to=$2
    [ "$from" = "$to" ] && return 0
    if [ "$to" = api ]; then
        [ "${RANK[$from]}" -ge "${RANK[transport]}" ]
        return
    fi
    [ "${RANK[$to]}" -lt "${RANK[$from]}" ]
}

# layer_of FILE: sets LAYER to the layer of a file, from its path ("" if none)
layer_of() {
    local f=$1 d
    LAYER=
    case $f in
    cli/*) LAYER=cli ;;
    include/sage/*) LAYER=${PUBLIC[${f#include/sage/}]:-} ;;
    src/*/*)
        d=${f#src/}
        d=${d%%/*}
        [ -n "${RANK[$d]:-}" ] && [ "$d" != api ] && [ "$d" != cli ] && LAYER=$d
        ;;
    esac
}

mapfile -t FILES < <(find src cli include/sage -type f \( -name '*.c' -o -name '*.h' \) | sort)
if [ ${#FILES[@]} -eq 0 ]; then
    echo "check-layers: no sources under $SRC/src, cli, include/sage"
    exit 2
fi

declare -A KNOWN=()
for f in "${FILES[@]}"; do
    layer_of "$f"
    if [ -z "$LAYER" ]; then
        echo "$f: not in any layer: add its folder (or public header) to the tables of $0"
        FAILS=$((FAILS + 1))
        continue
    fi
    KNOWN[$f]=$LAYER
    CHECKED=$((CHECKED + 1))
done

# FILE<TAB>LINE<TAB>INCLUDE for each #include "..." of every file, in one pass
while IFS=$'\t' read -r f line inc; do
    from=${KNOWN[$f]:-}
    [ -n "$from" ] || continue
    case $inc in
    */*) top=${inc%%/*} ;;
    *) top= ;;
    esac
    if [ -z "$top" ]; then
        # no folder: a file beside the includer, same layer
        [ -f "${f%/*}/$inc" ] ||
            violation "$f" "$line" "$inc" "no such file beside $f: a header of no layer $from may use"
        continue
    fi
    if [ "$top" = sage ]; then
        to=${PUBLIC[${inc#sage/}]:-}
        if [ -z "$to" ]; then
            violation "$f" "$line" "$inc" "public header not in the tables of check-layers.sh"
        elif [ "$from" != cli ] && ! may_include "$from" "$to"; then
            violation "$f" "$line" "$inc" "$from must not include a header of $to (above or beside it)"
        fi
        continue
    fi
    if [ "$from" = cli ]; then
        violation "$f" "$line" "$inc" "cli uses the public API only (sage/*.h and its own headers)"
        continue
    fi
    if [ "${f#include/}" != "$f" ]; then
        violation "$f" "$line" "$inc" "a public header includes only public headers"
        continue
    fi
    if [ -z "${RANK[$top]:-}" ] || [ "$top" = api ] || [ "$top" = cli ] || [ ! -d "src/$top" ]; then
        violation "$f" "$line" "$inc" "'$top/' is not a folder of src/ in the layer order"
        continue
    fi
    may_include "$from" "$top" ||
        violation "$f" "$line" "$inc" "$from must not include a header of $top (above or beside it)"
done < <(awk '/^[ \t]*#[ \t]*include[ \t]*"/ {
                 s = $0; sub(/^[^"]*"/, "", s); sub(/".*$/, "", s); print FILENAME "\t" FNR "\t" s }' \
             "${FILES[@]}")

# the doors: <LIB> only in its one file
for lib in "${!DOOR[@]}"; do
    while IFS=: read -r file line _; do
        [ "$file" = "${DOOR[$lib]}" ] && continue
        echo "$file:$line: #include <$lib>: only ${DOOR[$lib]} may include it (one door per dependency)"
        FAILS=$((FAILS + 1))
    done < <(grep -rnE --include='*.c' --include='*.h' "^[[:space:]]*#[[:space:]]*include[[:space:]]*<$lib>" src cli include/sage)
done

# allow-list entries that no longer match anything
for a in ${ALLOW[@]+"${ALLOW[@]}"}; do
    if [ -z "${ALLOWED_USED[$a]:-}" ]; then
        echo "${a%%|*}: allow-list entry \"$a\" matches no include any more: delete it from $0"
        FAILS=$((FAILS + 1))
    fi
done

if [ $FAILS -ne 0 ]; then
    echo "check-layers: $FAILS problem(s) in $CHECKED files (rule: docs/ARCHITECTURE.md, \"Layers\")"
    exit 1
fi
echo "check-layers: $CHECKED files keep the layer order (${#ALLOW[@]} allowed exception(s) listed above)"
exit 0
