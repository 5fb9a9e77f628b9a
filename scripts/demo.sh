#!/usr/bin/env bash
# demo.sh - install what is needed, build, and show sagesvc working:
#   1. two processes exchanging messages through a named shared-memory queue;
#   2. `sagesvc run` hosting the example services (a key-value store and a
#      text service, loaded as plugins) in one process, an example caller
#      program calling them from another (sync and async, with latency), a
#      series of `sagesvc call`s, `sagesvc ls` and `sagesvc status`, then a
#      clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build
NS=demo

bash scripts/install-deps.sh
echo "=== building (release build in $BUILD)"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD" >/dev/null

run_pid=""
cleanup() {
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -TERM "$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

say "1. The queue: two processes, one named shared-memory ring each way"
"$BUILD/examples/queue_demo"

say "2. Services: 'sagesvc run' hosts the example services from examples/services.yaml"
"$BUILD/sagesvc" run "$ROOT/examples/services.yaml" &
run_pid=$!
# wait until both services answer (registration takes milliseconds)
for _ in $(seq 1 100); do
  "$BUILD/sagesvc" call -n "$NS" kv size >/dev/null 2>&1 &&
    "$BUILD/sagesvc" call -n "$NS" text words '["ready"]' >/dev/null 2>&1 && break
  sleep 0.05
done

say "3. Another process calls them: the example caller (sync, async, latency)"
"$BUILD/caller" "$NS"

say "4. The command line: calls, listing, health"
show "$BUILD/sagesvc" call -n "$NS" kv put '["greeting", "hello, world"]'
show "$BUILD/sagesvc" call -n "$NS" kv get '["greeting"]'
show "$BUILD/sagesvc" call -n "$NS" kv keys
show "$BUILD/sagesvc" call -n "$NS" text freq '["the cat and the hat and the bat", 2]'
show "$BUILD/sagesvc" call -n "$NS" text tokenize '["split these words"]' --async 3
echo "# an unknown method: an error with its own exit status"
"$BUILD/sagesvc" call -n "$NS" kv frobnicate '[]' || echo "(exit status $?)"
show "$BUILD/sagesvc" ls -n "$NS"
show "$BUILD/sagesvc" status -n "$NS"
show "$BUILD/sagesvc" status -n "$NS" kv

say "5. Stopping: SIGTERM drains in-flight calls, then 'sagesvc run' exits 0"
kill -TERM "$run_pid"
wait "$run_pid" && echo "sagesvc run exited with status 0"
run_pid=""

say "6. Python: the reference document's own API on the same runtime"
PYTHONPATH="$BUILD/python" /usr/bin/python3 "$ROOT/examples/python/local_service.py"

echo
echo "Next: 'scripts/test.sh' runs the whole test suite; README.md has a 5-minute tour."
