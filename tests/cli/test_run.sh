#!/usr/bin/env bash
# test_run.sh - `sagesvc run` end to end, with the real binary: hosting the
# example services, calling them, refusing a second host, broken plugins,
# bad configurations, SIGTERM under load, metrics, and two hosts calling
# each other.
#
#   test_run.sh BUILD_DIR SOURCE_DIR        (ctest runs it; label integration)
#
# With SAGE_TEST_CLUSTER=0 in the environment (a build without the cluster,
# SAGE_WITH_NATS=OFF) transport nats is left out.
#
# Every run uses a namespace of its own; on exit, pass or fail, a trap kills
# every process the script started and removes every /dev/shm entry that
# carries the namespace. Anything that could hang runs under `timeout`.
set -u

BUILD=${1:?usage: test_run.sh BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: test_run.sh BUILD_DIR SOURCE_DIR}
SAGESVC=$BUILD/sagesvc
CALLER=$BUILD/caller
TPLUG=$BUILD/tests/plugins
[ -x "$SAGESVC" ] || { echo "SKIP: $SAGESVC is not built"; exit 77; }

NS=trun$$r$RANDOM
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sagesvc-test-run.XXXXXX")
BGPIDS=()
FAILS=0
CHECKS=0

cleanup() {
    local p
    for p in "${BGPIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    rm -f /dev/shm/*"$NS"*
    rm -rf "$WORK"
}
trap cleanup EXIT

# A watcher outside this script's process tree removes what is left of its
# namespace once the script is gone, however it went: ctest, at a test's
# time limit, kills the script and all its descendants with SIGKILL (no
# trap runs), and hosts killed so leave dead entries in the user's
# registry. (setsid -f: the watcher's parent exits at once, so it is no
# one's descendant.) After a clean exit it finds nothing to remove.
if command -v setsid >/dev/null; then
    setsid -f sh -c 'tail --pid="$1" -f /dev/null; sleep 1; rm -f /dev/shm/*."$2".*' \
        watcher $$ "$NS" </dev/null >/dev/null 2>&1
fi

# The tests must not pick up a services.yaml or plugins of the caller's.
cd "$WORK" || exit 1
unset SAGE_PLUGIN_PATH
export XDG_CONFIG_HOME=$WORK/xdg
# ASan builds: a leak report must fail the process that leaked.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

pass() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL $1"; }
check() { # check NAME COMMAND...: pass when COMMAND succeeds
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; fi
}
contains() { grep -q -s -e "$2" "$1"; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# wait_for SECONDS COMMAND...: runs COMMAND every 50 ms until it succeeds;
# fails, saying so, if it still does not after SECONDS
wait_for() {
    local limit=$1 end=$(($(now_ms) + $1 * 1000))
    shift
    until "$@"; do
        if [ "$(now_ms)" -ge "$end" ]; then
            echo "--- still not true after $limit s: $*"
            return 1
        fi
        sleep 0.05
    done
}

# figures SERVICE NAME...: the sum of the top-level figures NAME... of
# `sagesvc status SERVICE --json` (0 when it cannot be read)
figures() {
    local svc=$1
    shift
    timeout 10 "$SAGESVC" status -n "$NS" "$svc" --json 2>/dev/null |
        awk -v names=" $* " '/^  "[a-z_]*": [0-9]/ {
            k = $1; gsub(/[":]/, "", k); v = $2; sub(/,$/, "", v)
            if (index(names, " " k " ")) n += v
        } END { print n + 0 }'
}

# at_least N SERVICE NAME...: figures SERVICE NAME... is N or more
at_least() { [ "$(figures "${@:2}")" -ge "$1" ]; }

call() { timeout 30 "$SAGESVC" call -n "$NS" "$@"; }

# Hosts take this script's death for a SIGTERM: killed alone, it cannot stop
# them, and an orphan host keeps its entries in the user's registry for as
# long as it lives. (setpriv execs: the pid is the host's.)
TIED=()
if setpriv --pdeathsig TERM true 2>/dev/null; then
    TIED=(setpriv --pdeathsig TERM --)
fi

# start_run NAME ARGS...: `sagesvc run ARGS -n NS` in the background, output
# in $WORK/NAME.out and .err; waits until it serves (or dies): until it says
# so with its own pid. Sets RUN_PID.
start_run() {
    local name=$1 i
    shift
    "${TIED[@]}" "$SAGESVC" run "$@" -n "$NS" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    RUN_PID=$!
    BGPIDS+=("$RUN_PID")
    for ((i = 0; i < 200; i++)); do
        contains "$WORK/$name.out" "^sagesvc: serving .*(pid $RUN_PID)" && return 0
        kill -0 "$RUN_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "--- $name did not start:"; cat "$WORK/$name.out" "$WORK/$name.err"
    return 1
}

# stop_run PID SIGNAL: signal a run and wait up to 30 s for it; returns its status.
stop_run() {
    local pid=$1 sig=$2 i
    kill -"$sig" "$pid" 2>/dev/null
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "--- pid $pid still running 30 s after SIG$sig"
        kill -KILL "$pid"
    fi
    wait "$pid"
}

# expect_exit NAME STATUS PATTERN ARGS...: `sagesvc run ARGS` must fail
# quickly with STATUS and a message matching PATTERN on stderr.
expect_exit() {
    local name=$1 want=$2 pattern=$3 rc
    shift 3
    timeout 30 "$SAGESVC" run "$@" >"$WORK/x.out" 2>"$WORK/x.err"
    rc=$?
    if [ "$rc" -eq "$want" ] && contains "$WORK/x.err" "$pattern"; then
        pass "$name (exit $rc)"
    else
        fail "$name: exit $rc (want $want), stderr: $(cat "$WORK/x.err")"
    fi
}

# fetch URL: curl, or bash's /dev/tcp when curl is missing
fetch() {
    if command -v curl >/dev/null; then
        timeout 10 curl -s -f "$1"
        return
    fi
    local hostport=${1#http://}
    local path=/${hostport#*/}
    hostport=${hostport%%/*}
    timeout 10 bash -c 'exec 3<>/dev/tcp/${1%:*}/${1##*:} || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$2" "$1" >&3
        sed "1,/^\r$/d" <&3' _ "$hostport" "$path"
}

# metric FILE NAME LABELS: the value of one sample
metric() { grep -F "$2{$3} " "$1" | awk '{print $2}'; }

# ------------------------------------------------------------ help, usage
timeout 10 "$SAGESVC" run --help >"$WORK/help.out"
check "run --help exits 0" [ $? -eq 0 ]
check "run --help has SYNOPSIS, SIGNALS, EXIT STATUS" \
    grep -q SIGNALS "$WORK/help.out"
expect_exit "unknown option" 2 "unknown option" --bogus
expect_exit "two configuration files" 2 "two configuration files" a.yaml -c b.yaml

# ---------------------------------------------- the example configuration
start_run demo "$SRC/examples/services.yaml" --metrics 127.0.0.1:0
DEMO=$RUN_PID
check "demo prints where kv listens" \
    contains "$WORK/demo.out" "^kv: shm /dev/shm/sage.q.*$NS.kv.* (pid $DEMO, 4 workers, plugin $BUILD/plugins/kv.so)"
check "demo loads text from build/plugins" \
    contains "$WORK/demo.out" "^text: shm .*plugin $BUILD/plugins/text.so)"
URL=$(sed -n 's/^metrics: //p' "$WORK/demo.out")
check "demo prints the metrics URL" [ -n "$URL" ]

check "kv.put" [ "$(call kv put '["greeting", "hello"]')" = true ]
check "kv.get" [ "$(call kv get '["greeting"]')" = '"hello"' ]
check "kv.get x3" [ "$(call kv get '["greeting"]' --async 3 | sort -u)" = '"hello"' ]
check "text.words" [ "$(call text words '["the quick brown fox"]')" = 4 ]
check "text.tokenize" [ "$(call text tokenize '["a  b\tc"]')" = '["a","b","c"]' ]
check "text.upper" [ "$(call text upper '["abc xyz"]')" = '"ABC XYZ"' ]
# the example's config folds case and drops the stopwords a, an, the
check "text.freq with the service's config" \
    [ "$(call text freq '["The cat, the dog, a cat.", 1]')" = '{"cat":2}' ]
call text freq '["x", -1]' 2>"$WORK/err.txt"
check "text.freq bad top: exit 5" [ $? -eq 5 ]
call kv nosuch 2>/dev/null
check "kv.nosuch: exit 4" [ $? -eq 4 ]

# metrics: the format, and the figures of the calls above
fetch "$URL" >"$WORK/m1.txt"
check "metrics fetched" [ -s "$WORK/m1.txt" ]
if command -v promtool >/dev/null; then
    timeout 10 promtool check metrics <"$WORK/m1.txt" >"$WORK/promtool.txt" 2>&1
    check "promtool check metrics" [ $? -eq 0 ]
    [ -s "$WORK/promtool.txt" ] && cat "$WORK/promtool.txt"
else
    echo "note: promtool not installed: format not checked"
fi
L="namespace=\"$NS\",service=\"kv\""
check "requests_total counts kv.get" [ "$(metric "$WORK/m1.txt" sagesvc_requests_total "$L,method=\"get\"")" = 4 ]
check "errors_total counts text.freq" \
    [ "$(metric "$WORK/m1.txt" sagesvc_errors_total "namespace=\"$NS\",service=\"text\",method=\"freq\"")" = 1 ]
check "histogram +Inf = count" \
    [ "$(metric "$WORK/m1.txt" sagesvc_call_duration_seconds_bucket "$L,method=\"get\",le=\"+Inf\"")" = \
      "$(metric "$WORK/m1.txt" sagesvc_call_duration_seconds_count "$L,method=\"get\"")" ]
check "sagesvc_up is 1" [ "$(metric "$WORK/m1.txt" sagesvc_up "$L")" = 1 ]
# the service's own totals count the call to a method it lacks (no method family does)
check "service_requests_total counts kv.nosuch" \
    [ "$(metric "$WORK/m1.txt" sagesvc_service_requests_total "$L")" = 6 ]
check "service_errors_total counts kv.nosuch" \
    [ "$(metric "$WORK/m1.txt" sagesvc_service_errors_total "$L")" = 1 ]
if command -v curl >/dev/null; then
    check "metrics: 404 elsewhere" \
        [ "$(timeout 10 curl -s -o /dev/null -w '%{http_code}' "${URL%/metrics}/other")" = 404 ]
fi

# the example caller: sync, latency, async with callbacks
timeout 60 "$CALLER" "$NS" >"$WORK/caller.out" 2>&1
check "caller exits 0" [ $? -eq 0 ]
check "caller measured p50" contains "$WORK/caller.out" "p50"
fetch "$URL" >"$WORK/m2.txt"
# caller: 1 put + 5000 async puts; we made 1
check "requests_total counts the caller's puts" \
    [ "$(metric "$WORK/m2.txt" sagesvc_requests_total "$L,method=\"put\"")" = 5002 ]

# a second host of the same names is refused, naming the first
expect_exit "second run of kv refused" 1 "service 'kv' is already served on this host by pid $DEMO: stop it first" \
    "$SRC/examples/services.yaml" -n "$NS"
# the metrics port in use: exit 1, and the services it started are stopped
printf 'services:\n  - {name: other, plugin: kv}\n' >"$WORK/other.yaml"
PORT=${URL##*:}
PORT=${PORT%%/*}
expect_exit "metrics port in use" 1 "cannot serve metrics on 127.0.0.1:$PORT" "$WORK/other.yaml" -n "$NS" \
    --metrics "127.0.0.1:$PORT"
check "...and 'other' left the registry" [ -z "$(ls /dev/shm | grep "$NS.other")" ]
expect_exit "metrics address malformed" 2 "expected ADDR:PORT" "$WORK/other.yaml" -n "$NS" --metrics nonsense

# ------------------------------------------------ two hosts calling each other
# host A serves relay_a, host B relay_b (the relay test plugin: its method
# relay forwards a call through a sage_manager). client -> A.relay_a ->
# B.relay_b -> A.relay_a.echo: each host calls the other.
cat >"$WORK/a.yaml" <<EOF
services:
  - name: relay_a
    plugin: $TPLUG/relay.so
    error_threshold: 0.5
    config: {namespace: $NS}
EOF
cat >"$WORK/b.yaml" <<EOF
services:
  - name: relay_b
    plugin: relay.so        # relative: from this file's directory, so copy it here
    config: {namespace: $NS}
EOF
cp "$TPLUG/relay.so" "$WORK/relay.so"
start_run hosta "$WORK/a.yaml" --metrics 127.0.0.1:0 && HOSTA=$RUN_PID
URLA=$(sed -n 's/^metrics: //p' "$WORK/hosta.out")
start_run hostb "$WORK/b.yaml" && HOSTB=$RUN_PID
check "relay_b plugin found relative to its config" contains "$WORK/hostb.out" "plugin $WORK/relay.so"
check "A -> B -> A: relay_a.relay(relay_b.relay(relay_a.echo))" \
    [ "$(call relay_a relay '["relay_b", "relay", ["relay_a", "echo", [1, "x"]]]')" = '[1,"x"]' ]
check "B -> the demo host: relay_b.relay(text.upper)" \
    [ "$(call relay_b relay '["text", "upper", ["hi"]]')" = '"HI"' ]
call relay_b relay '["kv", "nosuch", []]' 2>"$WORK/err.txt"
check "an error crosses both hosts: exit 4" [ $? -eq 4 ]
call relay_b relay '["nosuch", "get", []]' 2>"$WORK/err.txt"
check "relay to a missing service: exit 3" [ $? -eq 3 ]

# degraded: half of relay_a's calls fail on its side (the relayed service is
# missing), then no longer do. status, ls and /metrics all say so.
LA="namespace=\"$NS\",service=\"relay_a\""
call relay_a relay '["nosuch", "get", []]' --async 12 >/dev/null 2>&1
check "relay_a degraded: status" \
    sh -c "'$SAGESVC' status -n '$NS' relay_a | grep -q '^state: *degraded'"
check "...with the reason" \
    sh -c "'$SAGESVC' status -n '$NS' relay_a | grep -Eq '^state: *degraded: 1[0-9] of 1[0-9] calls failed in the last 10 s'"
check "...in ls" sh -c "'$SAGESVC' ls -n '$NS' | grep -Eq '^relay_a .* degraded '"
check "...in status --json" sh -c "'$SAGESVC' status -n '$NS' relay_a --json | grep -q '\"state\": *\"degraded\"'"
fetch "$URLA" >"$WORK/ma.txt"
check "...in /metrics: sagesvc_degraded 1" [ "$(metric "$WORK/ma.txt" sagesvc_degraded "$LA")" = 1 ]
check "...and still up" [ "$(metric "$WORK/ma.txt" sagesvc_up "$LA")" = 1 ]
call relay_a echo '[1]' --async 30 >/dev/null
check "relay_a running again" \
    sh -c "'$SAGESVC' status -n '$NS' relay_a | grep -q '^state: *running'"
fetch "$URLA" >"$WORK/ma.txt"
check "...sagesvc_degraded 0" [ "$(metric "$WORK/ma.txt" sagesvc_degraded "$LA")" = 0 ]

stop_run "$HOSTB" TERM
check "host B: SIGTERM, exit 0" [ $? -eq 0 ]
stop_run "$HOSTA" HUP
check "host A: SIGHUP, exit 0" [ $? -eq 0 ]
check "host A said it stopped" contains "$WORK/hosta.out" "^sagesvc: SIGHUP: stopping"

stop_run "$DEMO" INT
check "demo: SIGINT, exit 0" [ $? -eq 0 ]
check "demo: kv stopped after its requests" contains "$WORK/demo.out" "^kv: stopped after"
check "demo left no shared memory" [ -z "$(ls /dev/shm | grep "\.$NS\.")" ]

# --------------------------------------------- a request queue scribbled on
# another process of the user sets the queue's tail to 3 (8 bytes at offset
# 128, little-endian): the service shows failed with the reason, and SIGTERM
# ends the run at once, exit 1, saying why
printf 'services:\n  - {name: scribbled, plugin: kv, queue_timeout: 1}\n' >"$WORK/scribbled.yaml"
start_run scribbled "$WORK/scribbled.yaml"
SCRIBBLED=$RUN_PID
SQ=$(ls /dev/shm | grep "^sage\.q\.$(id -u)\.$NS\.scribbled\.req")
printf '\003\000\000\000\000\000\000\000' | dd of="/dev/shm/$SQ" bs=1 seek=128 conv=notrunc 2>/dev/null
check "scribbled queue: status failed, with the reason" wait_for 5 \
    sh -c "'$SAGESVC' status -n '$NS' scribbled | grep -q '^state: *failed: .*tail is not 8-byte aligned'"
T0=$SECONDS
stop_run "$SCRIBBLED" TERM
check "...SIGTERM: exit 1" [ $? -eq 1 ]
check "...within its queue timeout" [ $((SECONDS - T0)) -le 3 ]
check "...saying why" contains "$WORK/scribbled.err" "service 'scribbled' .*tail is not 8-byte aligned"

# ------------------------------------------------------ SIGTERM under load
# (relay's manager is told the namespace: its reply queue then carries it
# too, and the cleanup finds it should the host be killed)
cat >"$WORK/slow.yaml" <<EOF
services:
  - name: slow
    plugin: $TPLUG/relay.so
    max_workers: 4
    config: {namespace: $NS}
EOF
# a second signal cuts the drain short: exit 1 at once, and the caller of
# the call in flight learns that the process died instead of hanging
start_run impatient "$WORK/slow.yaml"
IMPATIENT=$RUN_PID
timeout 30 "$SAGESVC" call -n "$NS" slow sleep '[8000]' --timeout 25 >/dev/null 2>"$WORK/cut.err" &
CUT=$!
BGPIDS+=("$CUT")
check "the call of 8 s runs" wait_for 10 at_least 1 slow in_flight
kill -TERM "$IMPATIENT"
# the first signal is taken: the drain began (a second sent at once could
# merge with it into one pending signal)
check "first SIGTERM: draining" wait_for 10 contains "$WORK/impatient.out" "^sagesvc: SIGTERM: stopping"
T0=$SECONDS
stop_run "$IMPATIENT" TERM
check "second SIGTERM during the drain: exit 1" [ $? -eq 1 ]
check "...at once" [ $((SECONDS - T0)) -lt 4 ]
check "...saying so" contains "$WORK/impatient.err" "SIGTERM again: exiting without draining"
wait "$CUT"
check "the call in flight failed as unavailable (exit 8), not hung" [ $? -eq 8 ]

# the stale registry entry of that host is taken over by the next one
start_run slow "$WORK/slow.yaml"
SLOW=$RUN_PID
# 8 clients, each with 20 calls of 50 ms outstanding, 3 rounds each: far
# more than 4 workers drain at once. SIGTERM comes once the first round of
# every client arrived (160 calls answered, running or queued).
CLIENTS=()
for c in 1 2 3 4 5 6 7 8; do
    (
        for round in 1 2 3; do
            timeout 40 "$SAGESVC" call -n "$NS" slow sleep '[50]' --async 20 --timeout 30 \
                >"$WORK/load.$c.$round.out" 2>"$WORK/load.$c.$round.err"
            echo $? >"$WORK/load.$c.$round.rc"
        done
    ) &
    CLIENTS+=($!)
    BGPIDS+=($!)
done
check "under load: 160 calls arrived" wait_for 20 at_least 160 slow requests in_flight queue_depth
stop_run "$SLOW" TERM
check "SIGTERM under load: run exits 0" [ $? -eq 0 ]
hung=0
for p in "${CLIENTS[@]}"; do
    for ((i = 0; i < 900; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && hung=1
done
check "every client process exited" [ $hung -eq 0 ]
bad=0 answered=0 refused=0
for f in "$WORK"/load.*.rc; do
    rc=$(cat "$f")
    base=${f%.rc}
    ok=$(grep -c '^true$' "$base.out")
    errs=$(grep -c '^sagesvc: ' "$base.err")
    answered=$((answered + ok))
    case $rc in
        0) [ "$ok" -eq 20 ] || bad=1 ;;
        3 | 8) refused=$((refused + 1)) ;; # the service was gone or going: an error, not a hang
        *) bad=1; echo "--- $base: exit $rc"; cat "$base.err" ;;
    esac
    # every call of an invocation got its line: a result or an error
    if [ "$rc" -ne 3 ] && [ $((ok + errs)) -lt 20 ]; then
        bad=1; echo "--- $base: $ok results + $errs errors < 20"; cat "$base.err"
    fi
done
check "every call got a result or an error ($answered answered, $refused refused invocations)" [ $bad -eq 0 ]
check "the drain answered queued calls" contains "$WORK/slow.out" "^slow: stopped after"

# --------------------------------------------------------- broken plugins
mkplug() { # mkplug FILE PLUGIN: a config hosting one service 'p'
    printf 'services:\n  - name: p\n    plugin: %s\n' "$2" >"$1"
}
mkplug "$WORK/p_missing.yaml" "$WORK/nope/missing.so"
expect_exit "plugin file missing" 10 "missing.so does not exist" "$WORK/p_missing.yaml"
mkplug "$WORK/p_noname.yaml" nosuchplugin
expect_exit "bare name, no file, no built-in" 10 "no plugin 'nosuchplugin' found, and no built-in" "$WORK/p_noname.yaml"
mkplug "$WORK/p_abi.yaml" "$TPLUG/broken_abi.so"
expect_exit "plugin with a wrong ABI" 10 "built for service ABI [0-9]*; this sagesvc speaks" "$WORK/p_abi.yaml"
mkplug "$WORK/p_nosym.yaml" "$TPLUG/broken_nosym.so"
expect_exit "plugin without sage_plugin_entry" 10 "exports no sage_plugin_entry" "$WORK/p_nosym.yaml"
mkplug "$WORK/p_null.yaml" "$TPLUG/broken_null.so"
expect_exit "plugin whose entry returns NULL" 10 "returned no service" "$WORK/p_null.yaml"
mkplug "$WORK/p_elf.yaml" "$TPLUG/notelf.so"
expect_exit "a file that is not ELF" 10 "cannot load plugin .*notelf.so" "$WORK/p_elf.yaml"
# a broken kv.so found by name is refused, not replaced by the built-in kv
mkdir -p "$WORK/badplugins"
cp "$TPLUG/notelf.so" "$WORK/badplugins/kv.so"
mkplug "$WORK/p_shadow.yaml" kv
SAGE_PLUGIN_PATH=$WORK/badplugins expect_exit "broken kv.so never replaced by the built-in" 10 \
    "badplugins/kv.so" "$WORK/p_shadow.yaml" -n "$NS"
# by bare name through SAGE_PLUGIN_PATH
mkplug "$WORK/p_path.yaml" broken_abi
SAGE_PLUGIN_PATH=$WORK/none:$TPLUG expect_exit "bare name via SAGE_PLUGIN_PATH, refused" 10 \
    "$TPLUG/broken_abi.so" "$WORK/p_path.yaml" -n "$NS"

# a plugin's own manager refuses a namespace longer than 64 characters
# rather than cutting it short (and then calling another namespace's services)
LONGNS=$(printf '%s%0300d' "$NS" 0 | cut -c1-300)
cat >"$WORK/longns.yaml" <<EOF
services:
  - name: relay_long
    plugin: $TPLUG/relay.so
    config: {namespace: $LONGNS}
EOF
expect_exit "a plugin's manager refuses a 300-character namespace" 9 \
    "namespace name '$(echo "$LONGNS" | cut -c1-20)\.\.\.' is 300 bytes, at most 64 allowed" \
    "$WORK/longns.yaml" -n "$NS"

# built-ins: a sagesvc with no plugins beside it falls back to them
mkdir -p "$WORK/bin"
cp "$SAGESVC" "$WORK/bin/sagesvc"
printf 'namespace: %s\nservices:\n  - {name: kv, plugin: kv}\n  - {name: text, plugin: text}\n' "$NS" \
    >"$WORK/builtin.yaml"
SAGESVC_SAVED=$SAGESVC
SAGESVC=$WORK/bin/sagesvc
start_run builtin "$WORK/builtin.yaml" && BUILTIN=$RUN_PID
SAGESVC=$SAGESVC_SAVED
check "built-in kv when no kv.so is found" contains "$WORK/builtin.out" "^kv: shm .*plugin builtin)"
check "built-in text answers" [ "$(call text words '["one two"]')" = 2 ]
stop_run "$BUILTIN" TERM
check "built-ins: exit 0" [ $? -eq 0 ]

# ------------------------------------------------------ bad configurations
printf 'services:\n  - name: kv\n    plugin: kv\n    max_workers: ten\n' >"$WORK/bad.yaml"
expect_exit "invalid config: exit 9 with file:line:col" 9 "bad.yaml:4:18" "$WORK/bad.yaml"
printf 'services: [\n' >"$WORK/syntax.yaml"
expect_exit "YAML syntax error: exit 9 with file:line" 9 "syntax.yaml:[0-9]*:[0-9]*" "$WORK/syntax.yaml"
expect_exit "missing config file: exit 9" 9 "nothere.yaml" -c "$WORK/nothere.yaml"
expect_exit "no config anywhere: exit 9" 9 "no configuration"
printf 'services: []\n' >"$WORK/empty.yaml"
expect_exit "no services: exit 9" 9 "lists no services" "$WORK/empty.yaml"
printf 'services:\n  - name: kv\n    plugin: kv\n    middleware: [logging, tracing]\n' >"$WORK/mw.yaml"
expect_exit "unknown middleware: exit 9, named" 9 "unknown middleware 'tracing'" "$WORK/mw.yaml"
printf 'services:\n  - name: kv\n    plugin: kv\n    transport: local\n' >"$WORK/local.yaml"
expect_exit "transport local refused" 9 "transport local is in-process only" "$WORK/local.yaml"
printf 'services:\n  - name: kv\n    plugin: kv\n    config: {capacity: -1}\n' >"$WORK/factory.yaml"
expect_exit "a factory refusing its config: exit 9" 9 "service 'kv' failed to start" "$WORK/factory.yaml" -n "$NS"
# the logging middleware logs to stderr
printf 'services:\n  - name: kv\n    plugin: kv\n    middleware: [logging]\n' >"$WORK/log.yaml"
start_run logging "$WORK/log.yaml" && LOGGING=$RUN_PID
call kv put '["k", 1]' >/dev/null
stop_run "$LOGGING" TERM
check "middleware logging logs calls" contains "$WORK/logging.err" "put"

# ------------------------------------------------------ transport nats
# A real nats-server (JetStream on, for the service records and durable
# queues) on a port the kernel picks; two runs of one file are two replicas.
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ "${SAGE_TEST_CLUSTER:-1}" = 0 ]; then
    echo "skip transport nats: this sagesvc has no cluster support (SAGE_WITH_NATS=OFF)"
elif [ -x "$NATS_BIN" ]; then
    "$NATS_BIN" -a 127.0.0.1 -p -1 -js -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
    NATS_PID=$!
    BGPIDS+=("$NATS_PID")
    NATS_URL=
    for ((i = 0; i < 200; i++)); do
        NATS_URL=$(sed -n 's/.*Listening for client connections on \(127.0.0.1:[0-9]*\).*/nats:\/\/\1/p' \
            "$WORK/nats.log")
        [ -n "$NATS_URL" ] && break
        sleep 0.05
    done
    check "nats-server starts" [ -n "$NATS_URL" ]
    printf 'nats:\n  servers: [%s]\nservices:\n  - name: kv\n    plugin: kv\n    transport: nats\n  - name: text\n    plugin: text\n    transport: nats\n    cluster: {delivery: durable}\n' \
        "$NATS_URL" >"$WORK/nats.yaml"
    start_run nats1 "$WORK/nats.yaml" && NATS1=$RUN_PID
    check "nats: prints the subject" contains "$WORK/nats1.out" "^kv: nats sage.$NS.svc.kv via $NATS_URL (pid $NATS1, .*at most once"
    check "nats: durable service says so" contains "$WORK/nats1.out" "^text: nats sage.$NS.svc.text .*durable"
    check "nats: no shm queue for a nats service" [ -z "$(ls /dev/shm | grep "\.$NS\.kv\.req")" ]
    check "nats: kv.put over NATS" [ "$(call --nats "$NATS_URL" kv put '["n", 7]')" = true ]
    check "nats: kv.get over NATS" [ "$(call --nats "$NATS_URL" kv get '["n"]')" = 7 ]
    check "nats: durable text.words over NATS" \
        [ "$(call --nats "$NATS_URL" text words '["one two three"]')" = 3 ]
    check "nats: --async 50 over NATS" \
        [ "$(call --nats "$NATS_URL" text words '["a b"]' --async 50 | sort -u)" = 2 ]
    call kv get '["n"]' >/dev/null 2>"$WORK/nocluster.err"
    check "nats: without --nats the service is not found (exit 3)" [ $? -eq 3 ]
    call --nats "$NATS_URL" nosuch get '[]' >/dev/null 2>"$WORK/nosuch.err"
    check "nats: an unknown service in the cluster exits 3" [ $? -eq 3 ]
    "$SAGESVC" ls -n "$NS" --nats "$NATS_URL" >"$WORK/cls.out" 2>&1
    # a replica `sagesvc run` hosts has no sagesvc host: HOST_ID -, then its machine
    check "nats: ls --nats lists the replicas" contains "$WORK/cls.out" "^kv  *$NS  *nats  *-  *[^ ]*  *$NATS1  *running"
    check "nats: ls --nats has HOST_ID and MACHINE columns" contains "$WORK/cls.out" "^NAME .*TRANSPORT HOST_ID  *MACHINE "
    "$SAGESVC" ls -n "$NS" >"$WORK/ls.out" 2>&1
    check "nats: plain ls stays local" [ "$(grep -c "nats" "$WORK/ls.out")" = 0 ]
    "$SAGESVC" status -n "$NS" --nats "$NATS_URL" text --json >"$WORK/cst.out" 2>&1
    check "nats: status --nats counts text's requests" contains "$WORK/cst.out" '"requests": 51'
    check "nats: status --nats says durable" contains "$WORK/cst.out" '"durable": true'
    "$SAGESVC" status -n "$NS" --nats "$NATS_URL" nosuch >/dev/null 2>&1
    check "nats: status of a service no replica serves: exit 3" [ $? -eq 3 ]
    # a second replica: the kv stores are separate, so each put lands on one
    start_run nats2 "$WORK/nats.yaml" && NATS2=$RUN_PID
    check "nats: a second replica starts" kill -0 "$NATS2"
    stop_run "$NATS1" TERM
    check "nats: first replica drains, exit 0" [ $? -eq 0 ]
    check "nats: the second replica answers alone" \
        [ "$(call --nats "$NATS_URL" text words '["x y z w"]')" = 4 ]
    stop_run "$NATS2" TERM
    check "nats: second replica drains, exit 0" [ $? -eq 0 ]
    call --nats "$NATS_URL" --timeout 3 kv get '["n"]' >/dev/null 2>"$WORK/gone.err"
    check "nats: no replica left: unavailable (exit 8)" [ $? -eq 8 ]
    "$SAGESVC" call --nats nats://127.0.0.1:1 -n "$NS" kv get '[]' >/dev/null 2>"$WORK/nonats.err"
    check "nats: unreachable NATS is a clear error" contains "$WORK/nonats.err" "127.0.0.1:1"
    kill "$NATS_PID" 2>/dev/null
else
    echo "skip transport nats: no nats-server"
fi

check "no shared memory left behind" [ -z "$(ls /dev/shm | grep "\.$NS\.")" ]

echo "test_run: $((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
