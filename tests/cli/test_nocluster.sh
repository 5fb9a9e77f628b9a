#!/bin/sh
# test_nocluster.sh - a sagesvc built without the cluster (SAGE_WITH_NATS=OFF)
# refuses every cluster command and option with a clear message and a
# non-zero status, before it reads a file or connects anywhere, and says so
# in its help; sage-bench's cluster benchmark says it is not built in.
#
#   sh test_nocluster.sh PATH/TO/sagesvc [PATH/TO/sage-bench]
#
# Nothing here needs nats.c or nats-server, and nothing is started but the
# commands themselves (each under `timeout`).
set -u

[ $# -ge 1 ] || { echo "usage: test_nocluster.sh PATH/TO/sagesvc [PATH/TO/sage-bench]"; exit 2; }
# absolute paths: the checks run from a directory of their own
S=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
B=
[ -n "${2:-}" ] && B=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
NS="nocl$$"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sagesvc-nocluster.XXXXXX")
trap 'rm -f /dev/shm/*."$NS".*; rm -rf "$TMP"' EXIT
FAILS=0
N=0
MSG='cluster support is not built in \(this sagesvc was built with SAGE_WITH_NATS=OFF\)$'

# The tests must not pick up a services.yaml of the caller's.
cd "$TMP" || exit 1
export XDG_CONFIG_HOME="$TMP/xdg"

fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL: $*"
    echo "--- stdout:"
    head -c 2000 "$TMP/out"
    echo "--- stderr:"
    head -c 2000 "$TMP/err"
    echo "---"
}

# refused DESC PREFIX ARGS...: sagesvc ARGS exits 1, prints nothing on
# stdout, and its stderr is the one line "PREFIX: cluster support is not
# built in (...)".
refused() {
    desc=$1
    prefix=$2
    shift 2
    N=$((N + 1))
    timeout 30 "$S" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -ne 1 ]; then
        fail "$desc: 'sagesvc $*' exited $rc, expected 1"
    elif [ -s "$TMP/out" ]; then
        fail "$desc: 'sagesvc $*' printed on stdout"
    elif [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -Eq -- "^$prefix: $MSG" "$TMP/err"; then
        fail "$desc: stderr is not the one line '$prefix: cluster support is not built in ...'"
    else
        echo "ok $N - $desc"
    fi
}

# the cluster commands, whatever their arguments (even --help, even bad
# ones, even a file that does not exist)
refused "host" "sagesvc host" host
refused "host --nats URL" "sagesvc host" host --nats nats://127.0.0.1:4222
refused "host --help" "sagesvc host" host --help
refused "help host" "sagesvc host" help host
refused "deploy FILE" "sagesvc deploy" deploy "$TMP/none.yaml"
refused "deploy, no file" "sagesvc deploy" deploy
refused "undeploy NAME" "sagesvc undeploy" undeploy kv
refused "replica" "sagesvc replica" replica --ns "$NS" --service kv
refused "replica, a bad option" "sagesvc replica" replica --frobnicate

# the cluster options of the other commands
refused "call --cluster" "sagesvc call --cluster" call --cluster -n "$NS" kv get '["k"]'
refused "call --nats URL" "sagesvc call --nats" call --nats nats://127.0.0.1:4222 -n "$NS" kv get '[]'
refused "ls --cluster" "sagesvc ls --cluster" ls --cluster -n "$NS"
refused "ls --nats URL" "sagesvc ls --nats" ls --nats nats://127.0.0.1:4222
refused "status --cluster" "sagesvc status --cluster" status --cluster -n "$NS"
refused "status --nats URL" "sagesvc status --nats" status --nats nats://127.0.0.1:4222 kv

# run: a service with transport nats is refused before anything starts
printf 'services:\n  - name: kv\n    plugin: kv\n    transport: nats\n' >"$TMP/nats.yaml"
N=$((N + 1))
timeout 30 "$S" run -n "$NS" "$TMP/nats.yaml" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -ne 1 ]; then
    fail "run with transport nats: exited $rc, expected 1"
elif ! grep -Eq -- "nats.yaml:[0-9]+: service 'kv': transport nats, but $MSG" "$TMP/err"; then
    fail "run with transport nats: no clear message"
elif ls /dev/shm | grep -q "\.$NS\."; then
    fail "run with transport nats: left shared memory behind"
else
    echo "ok $N - run with transport nats"
fi

# the help says which commands are not built in; the rest work
N=$((N + 1))
timeout 30 "$S" --help >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ "$rc" -ne 0 ]; then
    fail "--help: exited $rc"
elif [ "$(grep -Ec '^    (host|deploy|undeploy|replica) .*\[not built in\]$' "$TMP/out")" -ne 4 ]; then
    fail "--help: the four cluster commands are not marked [not built in]"
elif grep -Eq '^    (run|call|ls|status|queue|bench) .*not built in' "$TMP/out"; then
    fail "--help: a command that is built in is marked"
else
    echo "ok $N - --help marks the cluster commands"
fi
N=$((N + 1))
if timeout 30 "$S" ls -n "$NS" >"$TMP/out" 2>"$TMP/err"; then
    echo "ok $N - ls works"
else
    fail "ls: exited $?"
fi

# sage-bench cluster
if [ -n "$B" ]; then
    N=$((N + 1))
    timeout 30 "$B" cluster --quick >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ "$rc" -eq 0 ] || ! grep -q "not built in" "$TMP/err"; then
        fail "sage-bench cluster: exited $rc, or did not say it is not built in"
    else
        echo "ok $N - sage-bench cluster says it is not built in"
    fi
fi

echo "test_nocluster: $((N - FAILS))/$N passed"
[ "$FAILS" -eq 0 ]
