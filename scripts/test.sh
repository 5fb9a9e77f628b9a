#!/usr/bin/env bash
# test.sh - the whole test suite: installs dependencies, then builds and tests
# five configurations (plain, ASan+UBSan with the fuzzers, TSan, plain
# without the cluster: SAGE_WITH_NATS=OFF, and the Python extension under
# Debian's debug interpreter, python3-dbg) and runs the benchmarks' smoke
# runs. Exit status 0 only if everything passed.
#
#   scripts/test.sh            everything
#   scripts/test.sh plain      one configuration: plain | asan | tsan | nonats | pydbg
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc)

bash scripts/install-deps.sh

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(plain asan tsan nonats pydbg)

run_config() {
  local name=$1 dir cc flags label only=()
  case "$name" in
    plain)  dir=build;        cc=gcc;   flags=();                       label="unit|integration|bench" ;;
    asan)   dir=build-asan;   cc=clang; flags=(-DSAGE_SANITIZE=address -DSAGE_FUZZ=ON); label="unit|integration" ;;
    tsan)   dir=build-tsan;   cc=gcc;   flags=(-DSAGE_SANITIZE=thread); label="unit|integration" ;;
    # without the cluster: needs neither nats.c nor nats-server
    nonats) dir=build-nonats; cc=gcc;   flags=(-DSAGE_WITH_NATS=OFF);   label="unit|integration" ;;
    # the extension built for and tested under the debug interpreter, whose
    # checks (reference counts, the GIL, freed memory) abort on misuse
    pydbg)  dir=build-pydbg;  cc=gcc;   flags=(-DPython3_EXECUTABLE=/usr/bin/python3-dbg)
            label="integration"; only=(-R '^test_python$') ;;
    *) echo "test.sh: unknown configuration '$name'" >&2; return 2 ;;
  esac
  echo "=== $name: configure and build ($dir, $cc)"
  CC=$cc cmake -S "$ROOT" -B "$ROOT/$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${flags[@]}" >/dev/null
  ninja -C "$ROOT/$dir"
  echo "=== $name: test"
  # ASan: leaks are errors; UBSan: every finding aborts (-fno-sanitize-recover).
  # TSan: halt on the first race so a report fails its test.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$ROOT/$dir" --output-on-failure -j "$JOBS" -L "$label" "${only[@]}"
}

start=$(date +%s)
for c in "${configs[@]}"; do
  run_config "$c"
done
echo "=== all passed in $(( $(date +%s) - start )) s: ${configs[*]}"
