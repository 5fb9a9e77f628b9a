#!/usr/bin/env bash
# test_run_security.sh - `sagesvc run` against files of another user, and
# stop signals while it starts, with the real binary: a registry lock or
# entry planted by a second user is refused at once, naming the file and
# its owner; a lock held past the bound by a process of ours is an error
# after 5 s; SIGTERM ends a run that is still starting (waiting for the
# lock, or in a slow service factory) promptly, with status 1, stopping
# what it started.
#
#   test_run_security.sh BUILD_DIR SOURCE_DIR     (ctest runs it; label integration)
#
# It needs root (the second user is "nobody", by setpriv) and runs in a
# private /dev/shm (a mount namespace of its own): the registry lock it
# plants and holds, /dev/shm/sage.r.UID.lock, is shared by every run of this
# user on the machine. Without either it skips (77). Anything that could
# hang runs under `timeout`; on exit, pass or fail, a trap kills every
# process the script started, and the private /dev/shm goes with them.
set -u

BUILD=${1:?usage: test_run_security.sh BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: test_run_security.sh BUILD_DIR SOURCE_DIR}
SAGESVC=$BUILD/sagesvc
TPLUG=$BUILD/tests/plugins
[ -x "$SAGESVC" ] || { echo "SKIP: $SAGESVC is not built"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root, to act as a second user"; exit 77; }
id nobody >/dev/null 2>&1 || { echo "SKIP: no user 'nobody'"; exit 77; }
if [ "${SAGE_TEST_PRIVATE_SHM:-}" != 1 ]; then
    PRIVATE='mount --make-rprivate / && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm'
    if ! unshare -m sh -c "$PRIVATE" 2>/dev/null; then
        echo "SKIP: cannot make a private /dev/shm (mount namespace)"
        exit 77
    fi
    SAGE_TEST_PRIVATE_SHM=1 exec unshare -m sh -c "$PRIVATE"' && exec bash "$@"' _ "$0" "$@"
fi

NS=tsec$$r$RANDOM
ME=$(id -u)
NOBODY=$(id -u nobody)
LOCK=/dev/shm/sage.r.$ME.lock
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sagesvc-test-sec.XXXXXX")
BGPIDS=()
FAILS=0
CHECKS=0

cleanup() {
    local p
    for p in "${BGPIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK" || exit 1
unset SAGE_PLUGIN_PATH
export XDG_CONFIG_HOME=$WORK/xdg
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# ThreadSanitizer builds: no 1 s pause at exit, which these checks time.
export TSAN_OPTIONS=${TSAN_OPTIONS:+$TSAN_OPTIONS:}atexit_sleep_ms=0

pass() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $1"; }
check() { # check NAME COMMAND...: pass when COMMAND succeeds
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
contains() { grep -q -s -F -e "$2" "$1"; }
lacks() { ! grep -q -s -F -e "$2" "$1"; }
between() { [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ]; } # between N LOW HIGH
now_ms() { echo $(($(date +%s%N) / 1000000)); }
as_nobody() { setpriv --reuid="$NOBODY" --regid="$(id -g nobody)" --clear-groups -- "$@"; }

# hold_lock WHO: WHO ("nobody" or "us") creates the lock if need be and holds
# it in the background, in a process that is its own pid $HOLDER (the lock
# goes with the descriptor into the exec'd sleep), once it is held
hold_lock() {
    local i hold='exec 9>"$1" && flock -x 9 && exec sleep 60'
    if [ "$1" = nobody ]; then
        as_nobody bash -c "$hold" _ "$LOCK" </dev/null >/dev/null 2>&1 &
    else
        bash -c "$hold" _ "$LOCK" </dev/null >/dev/null 2>&1 &
    fi
    HOLDER=$!
    BGPIDS+=("$HOLDER")
    for ((i = 0; i < 200; i++)); do
        [ -e "$LOCK" ] && ! flock -n -x "$LOCK" true 2>/dev/null && return 0
        sleep 0.02
    done
    echo "--- the lock holder did not take $LOCK"
    return 1
}

drop_lock() {
    kill "$HOLDER" 2>/dev/null
    wait "$HOLDER" 2>/dev/null
    rm -f "$LOCK"
}

# run_once NAME ARGS...: `sagesvc run ARGS -n NS` in the foreground under a
# 20 s timeout; sets RC and TOOK (ms); output in $WORK/NAME.out and .err
run_once() {
    local name=$1 t0
    shift
    t0=$(now_ms)
    timeout 20 "$SAGESVC" run "$@" -n "$NS" >"$WORK/$name.out" 2>"$WORK/$name.err"
    RC=$?
    TOOK=$(($(now_ms) - t0))
}

# start_bg NAME ARGS...: `sagesvc run ARGS -n NS` in the background; sets RUN_PID
start_bg() {
    local name=$1
    shift
    "$SAGESVC" run "$@" -n "$NS" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    RUN_PID=$!
    BGPIDS+=("$RUN_PID")
}

# wait_file PATH: until PATH exists (10 s at most)
wait_file() {
    local i
    for ((i = 0; i < 500; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.02
    done
    echo "--- $1 never appeared"
    return 1
}

# wait_for SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds;
# fails, saying so, if it still does not after SECONDS
wait_for() {
    local limit=$1 end=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        if [ "$(now_ms)" -ge "$end" ]; then
            echo "--- still not true after $limit s: $*"
            return 1
        fi
        sleep 0.02
    done
}

# has_open PID FILE: process PID has FILE open
has_open() {
    local fd
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "$2" ] && return 0
    done
    return 1
}

# created_by PID QUEUE: QUEUE was created by process PID
created_by() {
    timeout 10 "$SAGESVC" queue stat --json "$2" 2>/dev/null | grep -q "\"creator_pid\": $1,"
}

# term_and_wait PID [SIGNAL]: SIGTERM (or SIGNAL), then wait up to 10 s;
# sets RC and TOOK (ms)
term_and_wait() {
    local pid=$1 sig=${2:-TERM} t0 i
    t0=$(now_ms)
    kill -"$sig" "$pid"
    for ((i = 0; i < 500; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    TOOK=$(($(now_ms) - t0))
    if kill -0 "$pid" 2>/dev/null; then
        echo "--- pid $pid still running 10 s after SIG$sig"
        kill -KILL "$pid"
    fi
    wait "$pid"
    RC=$?
}

show() { echo "--- $1:"; cat "$WORK/$1.out" "$WORK/$1.err"; }

printf 'services:\n  - {name: kv, plugin: kv}\n' >"$WORK/kv.yaml"

# ------------------------------------------- a lock planted by another user
hold_lock nobody
run_once planted_lock "$WORK/kv.yaml"
check "lock of another user: exit 1" [ "$RC" -eq 1 ]
check "...at once ($TOOK ms)" [ "$TOOK" -lt 3000 ]
check "...naming the file and its owner" \
    contains "$WORK/planted_lock.err" "$LOCK is owned by uid $NOBODY (nobody)"
check "...and refusing it" contains "$WORK/planted_lock.err" "refusing to use it"
[ "$RC" -eq 1 ] || show planted_lock
drop_lock

# --------------------------------------- a registry entry of another user
ENTRY=/dev/shm/sage.r.$ME.$NS.kv
as_nobody sh -c "umask 0; printf 'not an entry' >$ENTRY"
run_once planted_entry "$WORK/kv.yaml"
check "registry entry of another user: exit 1" [ "$RC" -eq 1 ]
check "...naming the file and its owner" \
    contains "$WORK/planted_entry.err" "$ENTRY is owned by uid $NOBODY (nobody) and writable by group and others"
check "...not as 'already served'" lacks "$WORK/planted_entry.err" "already served"
check "...and leaving it alone" [ -e "$ENTRY" ]
timeout 10 "$SAGESVC" ls -n "$NS" >"$WORK/ls.out" 2>&1
check "ls does not list it" lacks "$WORK/ls.out" "$NS"
[ "$RC" -eq 1 ] || show planted_entry
rm -f "$ENTRY"

# --------------------------------- our own lock, held past the 5 s bound
hold_lock us
run_once held_lock "$WORK/kv.yaml"
check "lock held 5 s: exit 1" [ "$RC" -eq 1 ]
check "...after about 5 s ($TOOK ms)" between "$TOOK" 4500 9000
check "...saying so" \
    contains "$WORK/held_lock.err" "the registry lock $LOCK is held by another process for more than 5 s"
[ "$RC" -eq 1 ] || show held_lock

# ...and SIGTERM while it waits for that lock (it has the file open while
# it tries)
start_bg wait_lock "$WORK/kv.yaml"
check "a run waits for the lock" wait_for 10 has_open "$RUN_PID" "$LOCK"
term_and_wait "$RUN_PID"
check "SIGTERM while waiting for the lock: exit 1" [ "$RC" -eq 1 ]
check "...promptly ($TOOK ms)" [ "$TOOK" -lt 2500 ]
check "...saying so" contains "$WORK/wait_lock.err" "SIGTERM while starting"
[ "$RC" -eq 1 ] || show wait_lock
drop_lock

# ----------------------------------------- SIGTERM during a slow factory
# kv starts, then slow's factory takes DELAY seconds
slow_conf() {
    printf 'services:\n  - {name: kv, plugin: kv}\n  - name: slow\n    plugin: %s\n    config: {start_delay: %s}\n' \
        "$TPLUG/relay.so" "$1" >"$WORK/slow$1.yaml"
}
# the factory ends within the grace: the run stops both, cleanly
slow_conf 0.6
start_bg brief "$WORK/slow0.6.yaml"
wait_file "/dev/shm/sage.r.$ME.$NS.slow"
term_and_wait "$RUN_PID" INT
check "SIGINT during a brief factory: exit 1" [ "$RC" -eq 1 ]
check "...promptly ($TOOK ms)" [ "$TOOK" -lt 2500 ]
check "...stopping both" contains "$WORK/brief.err" "SIGINT before every service ran: stopped the 2 started"
check "...leaving nothing in /dev/shm" [ -z "$(ls /dev/shm | grep "\.$NS\.")" ]
[ "$RC" -eq 1 ] || show brief
# the factory outlasts the grace: kv is stopped, slow abandoned
slow_conf 30
start_bg stuck "$WORK/slow30.yaml"
wait_file "/dev/shm/sage.r.$ME.$NS.slow"
term_and_wait "$RUN_PID"
check "SIGTERM during a stuck factory: exit 1" [ "$RC" -eq 1 ]
check "...promptly ($TOOK ms)" [ "$TOOK" -lt 2500 ]
check "...saying which start it gave up on" \
    contains "$WORK/stuck.err" "service 'slow' is still starting 1 s after SIGTERM"
check "...kv stopped and gone from /dev/shm" \
    [ -z "$(ls /dev/shm | grep -e "\.$NS\.kv")" ]
[ "$RC" -eq 1 ] || show stuck
# a second signal does not wait for the grace. slow's entry and queue are
# there already, the last run's: this run's factory runs once the queue is
# its own.
start_bg twice "$WORK/slow30.yaml"
check "a run in slow's factory" wait_for 10 created_by "$RUN_PID" "$ME.$NS.slow.req"
kill -TERM "$RUN_PID"
# the first signal is taken (two sent at once could merge into one)
check "first SIGTERM taken" wait_for 10 contains "$WORK/twice.err" "SIGTERM while starting"
term_and_wait "$RUN_PID"
check "a second SIGTERM while starting: exit 1" [ "$RC" -eq 1 ]
check "...at once ($TOOK ms)" [ "$TOOK" -lt 600 ]
check "...saying so" contains "$WORK/twice.err" "SIGTERM again: exiting at once"
[ "$RC" -eq 1 ] || show twice
# the abandoned entries are a dead owner's: the next run takes them over
start_bg after "$WORK/kv.yaml"
check "a run after that serves" wait_for 5 contains "$WORK/after.out" "sagesvc: serving"
term_and_wait "$RUN_PID"
check "...and SIGTERM while serving still exits 0" [ "$RC" -eq 0 ]

echo "test_run_security: $((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
