#!/bin/sh
# test_cli.sh - runs the real sagesvc binary against services hosted by
# svc_host (kv and testsvc over shm) and checks outputs and exit statuses.
#
#   sh test_cli.sh PATH/TO/sagesvc PATH/TO/svc_host
#
# With SAGE_TEST_CLUSTER=0 in the environment (a build without the cluster,
# SAGE_WITH_NATS=OFF) the cluster commands are left out.
#
# Every run uses its own namespaces; on exit, pass or fail, it stops the
# hosts it started and removes every /dev/shm entry of those namespaces
# (svc_host also stops when this script dies). A run that passes must have
# left none by then: the last check says so. Every command runs under
# `timeout`.
set -u

# Absolute paths: some checks run from another directory.
S=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
H=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
NS="cli$$"
# NS64 is 64 characters long, the most a namespace may have; LONG starts
# with it, and is 300 long. XNS is always empty.
NS64=$(printf '%s%064d' "$NS" 0 | cut -c1-64)
LONG=$(printf '%s%0300d' "$NS64" 0 | cut -c1-300)
XNS="x$NS"
UID_=$(id -u)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sagesvc-cli.XXXXXX")
HOSTS=""
FAILS=0
N=0

# leftovers: prints the /dev/shm entries of this script's namespaces.
leftovers() {
    for ns in "$NS" "$NS64" "$XNS"; do
        for f in /dev/shm/*."$ns".*; do
            [ -e "$f" ] && echo "$f"
        done
    done
}

cleanup() {
    # the hosts still running: SIGTERM, and they leave the registry
    # themselves; SIGKILL after 10 s
    for p in $HOSTS; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in $HOSTS; do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do
            sleep 0.05
            i=$((i + 1))
        done
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    for f in $(leftovers); do
        rm -f "$f"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# A watcher outside this script's process tree removes what is left of its
# namespaces once the script is gone, however it went: ctest, at a test's
# time limit, kills the script and all its descendants with SIGKILL (no
# trap runs), and hosts killed so leave dead entries in the user's
# registry. (setsid -f: the watcher's parent exits at once, so it is no
# one's descendant.) After a clean exit it finds nothing to remove.
if command -v setsid >/dev/null; then
    setsid -f sh -c 'tail --pid="$1" -f /dev/null; sleep 1; shift
        for ns; do rm -f /dev/shm/*."$ns".*; done' watcher $$ "$NS" "$NS64" "$XNS" \
        </dev/null >/dev/null 2>&1
fi

# ------------------------------------------------------------- helpers

# run ARGS...: runs sagesvc; leaves stdout in $TMP/out, stderr in
# $TMP/err, the status in $rc.
run() {
    timeout 60 "$S" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL: $*"
    echo "--- stdout:"
    head -c 2000 "$TMP/out"
    echo "--- stderr:"
    head -c 2000 "$TMP/err"
    echo "---"
}

# expect CODE DESC ARGS...: runs sagesvc ARGS and checks its exit status.
expect() {
    code=$1
    desc=$2
    shift 2
    N=$((N + 1))
    run "$@"
    if [ "$rc" -ne "$code" ]; then
        fail "$desc: 'sagesvc $*' exited $rc, expected $code"
        return 1
    fi
    echo "ok $N - $desc"
    return 0
}

# has FILE PATTERN DESC: FILE (out or err) matches the grep -E PATTERN.
has() {
    if ! grep -Eq -- "$2" "$TMP/$1"; then
        fail "$3: $1 does not match '$2'"
        return 1
    fi
    return 0
}

# hasnt FILE PATTERN DESC: FILE (out or err) does not match the grep -E PATTERN.
hasnt() {
    if grep -Eq -- "$2" "$TMP/$1"; then
        fail "$3: $1 matches '$2'"
        return 1
    fi
    return 0
}

# json DESC: stdout is valid JSON.
json() {
    if ! python3 -c 'import json,sys; json.load(sys.stdin)' <"$TMP/out" 2>>"$TMP/err"; then
        fail "$1: stdout is not JSON"
        return 1
    fi
    return 0
}

# jq_ EXPR: prints a Python expression over the JSON on stdout as `d`.
jq_() {
    python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <"$TMP/out"
}

# py DESC EXPR: the Python expression EXPR over the JSON on stdout (`d`) is true.
py() {
    if [ "$(jq_ "bool($2)" 2>>"$TMP/err")" != True ]; then
        fail "$1: not true of stdout: $2"
        return 1
    fi
    return 0
}

# lines FILE OP N DESC: FILE's line count compares (test OP) with N.
lines() {
    if ! [ "$(wc -l <"$TMP/$1")" "$2" "$3" ]; then
        fail "$4: $1 has $(wc -l <"$TMP/$1") lines, expected $2 $3"
        return 1
    fi
    return 0
}

# count FILE PATTERN N DESC: FILE has N lines matching the grep -E PATTERN.
count() {
    if [ "$(grep -Ec -- "$2" "$TMP/$1")" -ne "$3" ]; then
        fail "$4: $1 has $(grep -Ec -- "$2" "$TMP/$1") lines matching '$2', expected $3"
        return 1
    fi
    return 0
}

# stop_host PID SIGNAL: signals the host PID, waits for it and forgets it
# (its pid, once reaped, may be another process's)
stop_host() {
    kill -"$2" "$1"
    wait "$1" 2>/dev/null
    HOSTS=$(for p in $HOSTS; do [ "$p" = "$1" ] || echo "$p"; done)
}

# start_host [NAMESPACE]: svc_host in NAMESPACE (default $NS); sets HOST.
# It is ready once it says so, with its own pid.
start_host() {
    # emptied here, not by the child's redirection: the loop below must not
    # find the previous host's "ready" before the child truncates the file
    : >"$TMP/host.out"
    "$H" "${1:-$NS}" >>"$TMP/host.out" 2>"$TMP/host.err" &
    HOST=$!
    HOSTS="$HOSTS $HOST"
    i=0
    while ! grep -q "^ready $HOST\$" "$TMP/host.out" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! kill -0 "$HOST" 2>/dev/null; then
            echo "FAIL: svc_host did not start"
            cat "$TMP/host.err"
            exit 1
        fi
        sleep 0.05
    done
}

# ------------------------------------------------------- the dispatcher

expect 0 "--version" --version && has out '^sagesvc [0-9]+\.[0-9]+\.[0-9]+$' "--version"
expect 0 "--help" --help && has out 'SYNOPSIS' "--help" && has out 'EXIT STATUS' "--help"
expect 2 "no command" && has err 'COMMANDS' "no command"
expect 2 "unknown command" frobnicate && has err "unknown command 'frobnicate'" "unknown command"
expect 2 "unknown global option" --frob
expect 0 "help call" help call && has out 'sagesvc call \[OPTIONS\] SERVICE METHOD' "help call"
expect 2 "help of an unknown command" help frobnicate

for c in run call ls status queue bench; do
    expect 0 "$c --help" "$c" --help && has out "SYNOPSIS" "$c --help" &&
        has out "sagesvc $c" "$c --help" && has out "EXIT STATUS" "$c --help"
    expect 0 "$c -h" "$c" -h && has out "SYNOPSIS" "$c -h"
    expect 2 "$c with an unknown option" "$c" --no-such-option &&
        has err "unknown option" "$c unknown option"
done
expect 0 "call --help documents the configuration" call --help &&
    has out 'services.yaml' "call help" && has out '10 +plugin' "call help"

# ---------------------------------------- usage errors, before any call

expect 2 "call without METHOD" call -n "$NS" kv
expect 2 "call: ARGS_JSON bad JSON" call -n "$NS" kv put '["a", 1' &&
    has err 'ARGS_JSON: line 1 column' "bad JSON names the place"
expect 2 "call: ARGS_JSON not an array" call -n "$NS" kv put '{"a": 1}' &&
    has err 'must be a JSON array' "not an array"
expect 2 "call: --kwargs bad JSON" call -n "$NS" kv put '[]' --kwargs '{"a":' &&
    has err 'kwargs: line 1' "bad kwargs"
expect 2 "call: --kwargs not an object" call -n "$NS" kv put '[]' --kwargs '[1]' &&
    has err 'must be a JSON object' "kwargs not an object"
expect 2 "call: bad --timeout" call -n "$NS" kv get --timeout soon
expect 2 "call: zero --timeout" call -n "$NS" kv get --timeout 0
expect 2 "call: bad --async" call -n "$NS" kv get --async 0
expect 2 "call: bad --retries" call -n "$NS" kv get --idempotent --retries x
expect 2 "call: --retries without --idempotent" call -n "$NS" kv get --retries 2
expect 2 "call: option missing its argument" call -n "$NS" kv get --kwargs &&
    has err 'needs an argument' "missing argument"
expect 9 "call: -c of a missing file" call -c "$TMP/none.yaml" kv get
printf 'service:\n  local:\n    max_workers: ten\n' >"$TMP/bad.yaml"
expect 9 "call: -c of a bad file" call -c "$TMP/bad.yaml" kv get && has err 'ECONFIG' "bad config"

# -------------------------------------------------------------- calls

start_host

expect 0 "call: put" call -n "$NS" kv put '["answer", 42]' && has out '^true$' "put"
expect 0 "call: get" call -n "$NS" kv get '["answer"]' && has out '^42$' "get"
expect 0 "call: default args []" call -n "$NS" kv size && has out '^1$' "size"
expect 0 "call: --kwargs" call -n "$NS" testsvc kw --kwargs '{"a": 1, "b": [true, null]}' &&
    has out '^\{"a":1,"b":\[true,null\]\}$' "kwargs echoed"
expect 0 "call: values round trip" call -n "$NS" testsvc echo \
    '[-7, 0.1, 1e300, "h\u00e9", {"$bin": "AAEC/w=="}, {"k": {}}, []]' &&
    has out '^\[-7,0\.1,1e\+?300,"hé",\{"\$bin":"AAEC/w=="\},\{"k":\{\}\},\[\]\]$' "echo"
expect 0 "call: --pretty" call -n "$NS" testsvc echo '[1, [2]]' --pretty &&
    lines out -gt 3 "pretty" && json "pretty"
expect 0 "call: --async 5" call -n "$NS" testsvc add '[2, 3]' --async 5 &&
    count out '^5$' 5 "--async 5" && lines out -eq 5 "--async 5"
expect 0 "call: --idempotent --retries retries the same request" \
    call -n "$NS" testsvc flaky '[1]' --idempotent --retries 2 && has out '^2$' "retried"
# (testsvc counts sightings by request id alone, and every caller's ids
# start alike: asking for 1000 failures keeps this one failing.)
expect 8 "call: the service's EUNAVAILABLE, not retried" call -n "$NS" testsvc flaky '[1000]' &&
    has err 'EUNAVAILABLE' "flaky"

expect 5 "call: wrong arity -> EBADARGS" call -n "$NS" testsvc add '[1]' &&
    has err '^sagesvc: testsvc\.add: EBADARGS \(.+\)$' "EBADARGS message"
expect 3 "call: unknown service" call -n "$NS" nosuch get && has err 'ENOSERVICE' "ENOSERVICE"
expect 3 "call: --async of an unknown service" call -n "$NS" nosuch get --async 2 &&
    count err "call [12] of 2: ENOSERVICE \(no service 'nosuch'" 2 "each failure reported"
expect 4 "call: unknown method" call -n "$NS" kv frob && has err 'ENOMETHOD' "ENOMETHOD"
expect 6 "call: handler error" call -n "$NS" testsvc fail '["boom"]' &&
    has err 'EHANDLER \(failed as asked: boom\)' "EHANDLER"
expect 7 "call: timeout" call -n "$NS" testsvc sleep '[3000]' --timeout 0.2 &&
    has err 'ETIMEDOUT' "ETIMEDOUT"
expect 6 "call: --async with failures exits with the first's status" \
    call -n "$NS" testsvc fail '["x"]' --async 3 &&
    count err 'call [0-9] of 3: EHANDLER' 3 "--async failures"

# ---------------------------------------------------------- namespaces

# Every command that takes a namespace refuses a bad one the same way, with
# status 2, before it does anything: none cuts a long one down to 64
# characters (which would reach the services of NS64 here).
MAIN=$HOST
start_host "$NS64"
HOST64=$HOST
HOST=$MAIN
expect 0 "call: a namespace of 64 characters" call -n "$NS64" kv size && has out '^0$' "NS64"
expect 2 "call: a namespace of 300 characters is not cut to 64" call -n "$LONG" kv size &&
    has err "^sagesvc call: -n/--namespace: namespace '$(echo "$LONG" | cut -c1-20)\.\.\.' is 300 characters long, at most 64 allowed$" "LONG refused"
expect 2 "bench: a namespace of 300 characters is not cut to 64" \
    bench -n "$LONG" kv size --calls 10 && has err "is 300 characters long" "bench LONG"
# (the cluster commands only with the cluster built in: SAGE_TEST_CLUSTER=0
# says it is not, and test_nocluster.sh checks that they refuse then)
CMDS="call bench ls status run"
[ "${SAGE_TEST_CLUSTER:-1}" = 0 ] || CMDS="$CMDS deploy undeploy replica"
for c in $CMDS; do
    case $c in
    call | bench) args="kv size" ;;
    undeploy) args=kv ;;
    replica) args="--service kv" ;;
    *) args="" ;;
    esac
    short=-n
    long=--namespace
    if [ $c = replica ]; then
        short=--ns
        long=--ns
    fi
    # shellcheck disable=SC2086 # $args: words
    expect 2 "$c: $short of 300 characters" $c $short "$LONG" $args &&
        has err "^sagesvc $c: $short.*: namespace '[a-z0-9]{20}\.\.\.' is 300 characters long, at most 64 allowed$" "$c LONG"
    # shellcheck disable=SC2086
    expect 2 "$c: an empty $long" $c $long "" $args &&
        has err "^sagesvc $c: .*the namespace is empty; use 1\.\.64 characters of \[A-Za-z0-9_-\]$" "$c empty"
    # shellcheck disable=SC2086
    expect 2 "$c: a namespace with a dot" $c $args $short "$NS.x" &&
        has err "^sagesvc $c: .*namespace '$NS\.x' has character '\.'; use 1\.\.64" "$c dot"
done
expect 0 "ls: a namespace of 64 characters" ls -n "$NS64" && has out "^kv +$NS64 " "ls NS64"

# The shared options (cli/opts.c) have one rule and one message each, in
# every command that takes them, checked as they are parsed: before a
# configuration is read or a connection is tried. A usage error is the one
# line of the rule and a pointer to the command's help.
# usage_msg CMD MSG DESC: stderr is exactly "sagesvc CMD: MSG" and the
# pointer to CMD's help.
usage_msg() {
    printf 'sagesvc %s: %s\nTry '"'"'sagesvc %s --help'"'"' for more information.\n' \
        "$1" "$2" "$1" >"$TMP/want"
    if ! cmp -s "$TMP/want" "$TMP/err"; then
        fail "$3: stderr is not the usage message '$1: $2'"
        return 1
    fi
    return 0
}
# (--nats only with the cluster built in: without it, call, ls and status
# refuse --nats whatever its value, and test_nocluster.sh checks that)
if [ "${SAGE_TEST_CLUSTER:-1}" != 0 ]; then
    for c in call ls status host deploy undeploy scale replica; do
        case $c in
        call) args="-n $NS kv size" ;;
        undeploy) args=kv ;;
        scale) args="kv 2" ;;
        deploy) args=--list ;;
        host) args=--list ;;
        replica) args="--ns $NS --service kv" ;;
        *) args="-n $NS" ;;
        esac
        for urls in "" ",,"; do
            # shellcheck disable=SC2086 # $args: words
            expect 2 "$c: --nats '$urls' names no server" $c --nats "$urls" $args &&
                usage_msg $c "--nats: no server URL in '$urls'" "$c --nats '$urls'"
        done
    done
fi
for c in call bench; do
    expect 2 "$c: --timeout of 0" $c -n "$NS" kv size --timeout 0 &&
        usage_msg $c "--timeout: expected seconds above 0 (at most 86400), got '0'" "$c --timeout"
done
for c in call bench ls status run host deploy undeploy scale; do
    [ "${SAGE_TEST_CLUSTER:-1}" = 0 ] && case $c in host | deploy | undeploy | scale) continue ;; esac
    expect 2 "$c: -c without its FILE" $c -c &&
        usage_msg $c "option '-c' needs an argument" "$c -c"
    expect 2 "$c: an unknown option" $c --no-such-option &&
        usage_msg $c "unknown option '--no-such-option'" "$c --no-such-option"
done
# scale with a bad namespace, as the commands above
[ "${SAGE_TEST_CLUSTER:-1}" = 0 ] ||
    { expect 2 "scale: a namespace with a dot" scale -n "$NS.x" kv 2 &&
        usage_msg scale "-n/--namespace: namespace '$NS.x' has character '.'; use 1..64 characters of [A-Za-z0-9_-]" "scale dot"; }
stop_host "$HOST64" TERM
N=$((N + 1))
if [ -z "$(leftovers | grep -F ".$NS64.")" ]; then
    echo "ok $N - the host of NS64 left the registry"
else
    fail "the host of NS64 left $(leftovers | grep -F ".$NS64.")"
fi

# The configuration: its namespace and call timeout, -n over it, and the
# search of ./services.yaml.
printf 'namespace: %s\nservice:\n  call:\n    timeout: 0.2\n' "$NS" >"$TMP/cfg.yaml"
expect 0 "call: namespace from -c" call -c "$TMP/cfg.yaml" kv get '["answer"]' && has out '^42$' "cfg"
expect 7 "call: timeout from -c" call -c "$TMP/cfg.yaml" testsvc sleep '[3000]'
expect 3 "call: --namespace over the configuration" call -c "$TMP/cfg.yaml" -n "$XNS" kv size
mkdir "$TMP/cwd" && cp "$TMP/cfg.yaml" "$TMP/cwd/services.yaml"
N=$((N + 1))
(cd "$TMP/cwd" && timeout 30 "$S" call kv size >"$TMP/out" 2>"$TMP/err")
rc=$?
if [ $rc -eq 0 ] && grep -q '^1$' "$TMP/out"; then
    echo "ok $N - ./services.yaml is found"
else
    fail "./services.yaml not used (rc $rc)"
fi

# ------------------------------------------------------------ ls, status

expect 0 "ls" ls -n "$NS" &&
    has out '^NAME +NAMESPACE +TRANSPORT +PID +STATE +UPTIME +ALIVE' "ls header" &&
    has out "^kv +$NS +shm +$HOST +running +[0-9.]+s +yes" "ls kv" &&
    has out "^testsvc +$NS" "ls testsvc" && hasnt err 'no services' "ls: no note"
expect 0 "ls --json" ls -n "$NS" --json && json "ls --json" &&
    py "ls --json" 'sorted(e["name"] for e in d if e["alive"] and e["transport"] == "shm")
                    == ["kv", "testsvc"]'
expect 0 "ls --all" ls --all && has out "^kv +$NS " "ls --all"
expect 0 "ls of an empty namespace" ls -n "$XNS" && lines out -eq 1 "empty ls" &&
    has err "^sagesvc ls: no services in namespace '$XNS'; [0-9]+ in other namespaces \(sagesvc ls --all\)$" \
        "ls of an empty namespace points to --all"
expect 0 "ls --json of an empty namespace" ls -n "$XNS" --json && py "empty" 'd == []' &&
    hasnt err 'no services' "no note with --json"

expect 0 "status" status -n "$NS" && has out '^NAME +STATE +PID' "status header" &&
    has out "^testsvc +running +$HOST " "status line"
expect 0 "status SERVICE" status -n "$NS" testsvc && has out '^requests: +[0-9]+$' "requests" &&
    has out '^latency p99: ' "p99" && has out '^heartbeat age: ' "heartbeat" &&
    has out '^add +[0-9]+ +[0-9]+ ' "per-method line"
expect 0 "status --json" status -n "$NS" --json && json "status --json" &&
    py "status --json" 'len(d) == 2 and d[0]["name"] == "kv"'
expect 0 "status SERVICE --json" status -n "$NS" kv --json && json "status kv --json" &&
    before=$(jq_ 'd["requests"]') && py "status kv --json" 'd["owner_alive"] is True and
        all(k in d for k in ("state", "pid", "uptime_s", "errors", "in_flight", "queue_depth",
            "expired", "malformed", "rejected", "queue_full", "latency_p50_us", "latency_p99_us",
            "last_activity_ns", "heartbeat_age_s", "max_workers", "request_queue_size",
            "queue_timeout_s", "last_drop", "methods"))'
expect 0 "calls for the figures" call -n "$NS" kv get '["answer"]' --async 7
expect 0 "status figures move" status -n "$NS" kv --json &&
    py "requests grew by 7 from $before" "d['requests'] == $before + 7" &&
    py "get's requests" '[m["requests"] for m in d["methods"] if m["name"] == "get"][0] >= 7'
expect 3 "status of an unknown service" status -n "$NS" nosuch

# --------------------------------------------------------------- bench

expect 0 "bench" bench -n "$NS" testsvc add --args '[1, 2]' --calls 200 --concurrency 8 &&
    has out 'p50' "bench p50" && has out 'async calls/s +[0-9]+' "bench throughput"
expect 0 "bench --json" bench -n "$NS" kv size --calls 100 --json && json "bench --json" &&
    py "bench --json" 'd["sync_p50_us"] > 0 and d["async_calls_per_s"] > 0 and d["errors"] == 0'
expect 3 "bench of an unknown service" bench -n "$NS" nosuch get --calls 10
expect 2 "bench with bad --args" bench -n "$NS" kv get --args '[1'
expect 2 "bench without METHOD" bench -n "$NS" kv

# --------------------------------------------------------------- queue

Q="$UID_.$NS.kv.req"
expect 0 "queue ls" queue ls "*.$NS.*" && has out '^NAME +CAPACITY +DEPTH' "queue ls header" &&
    has out "^$Q +[0-9]+ +0 +[0-9]+ +[0-9]+ +$HOST +alive$" "queue ls kv"
expect 0 "queue ls --json" queue ls --json "*.$NS.*" && json "queue ls --json" &&
    py "queue ls --json" 'len([q for q in d if q["consumer"] == "alive"]) == 2'
expect 0 "queue stat" queue stat "$Q" && has out '^capacity: +[0-9]+ bytes' "stat" &&
    has out "^consumer pid: +$HOST \(alive\)" "stat consumer"
expect 0 "queue stat --json" queue stat --json "$Q" && json "queue stat --json" &&
    py "queue stat --json" 'd["msgs_in"] >= 3 and d["consumer_alive"] is True'
expect 1 "queue stat of a missing queue" queue stat "$UID_.$NS.nosuch"
expect 1 "queue rm of a missing queue" queue rm "$UID_.$NS.nosuch"
expect 2 "queue without a subcommand" queue
expect 2 "queue with an unknown subcommand" queue frob

# ------------------------------------------- a dead service, stale queues

stop_host "$HOST" KILL
expect 8 "call: dead service" call -n "$NS" kv size && has err 'EUNAVAILABLE' "dead"
expect 0 "ls shows it dead" ls -n "$NS" &&
    has out "^kv +$NS +shm +$HOST +dead +- +dead$" "ls dead" &&
    has out "^testsvc +$NS +shm +$HOST +dead +- +dead$" "ls dead testsvc"
expect 0 "ls --json shows it dead" ls -n "$NS" --json && json "ls dead" &&
    py "ls --json dead" 'len(d) == 2 and not any(e["alive"] for e in d) and
                         all(e["state"] == "dead" for e in d)'
expect 0 "status shows it dead" status -n "$NS" && has out "^kv +dead +$HOST " "status dead"
expect 0 "queue ls shows stale queues" queue ls "*.$NS.*" && has out "^$Q .* +$HOST +stale$" "stale"
expect 0 "queue rm NAME" queue rm "$Q"
expect 0 "queue rm --stale" queue rm --stale "*.$NS.*" &&
    has out "^removed $UID_\.$NS\.testsvc\.req" "rm --stale"
expect 0 "queue ls after rm" queue ls "*.$NS.*" && lines out -eq 1 "queues removed"
expect 0 "ls --clean" ls -n "$NS" --clean && has err 'removed 2 entries' "clean"
expect 0 "ls after --clean" ls -n "$NS" && lines out -eq 1 "entries removed"
expect 3 "call after --clean" call -n "$NS" kv size

# A service stopped cleanly leaves the registry: calls find no service.
start_host
expect 0 "second host" call -n "$NS" kv size && has out '^0$' "fresh kv"
stop_host "$HOST" TERM
expect 3 "call: cleanly stopped service" call -n "$NS" kv size

# Nothing of this run is left in the registry or among the queues.
N=$((N + 1))
if [ -z "$(leftovers)" ]; then
    echo "ok $N - no registry entries or queues left behind"
else
    fail "left behind: $(leftovers)"
fi

echo "$N checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
