#!/usr/bin/env bash
# run.sh BUILD PYTHON [SANITIZER] [CC] - the Python suite (pytest) against the
# build in BUILD, with the extension and the sagesvc binary built there.
set -euo pipefail
BUILD=$1
PY=$2
SAN=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -n "$SAN" ]; then
  # The extension of a sanitizer build needs the sanitizer's runtime loaded
  # before the interpreter starts (LD_PRELOAD), and then reports CPython's
  # own allocations and threads, which are not instrumented: not a signal we
  # can act on. The plain build runs the suite.
  echo "test_python: skipped in the $SAN sanitizer build (CPython is not instrumented); the plain build runs it"
  exit 77
fi
if ! "$PY" -c "import pytest" 2>/dev/null; then
  echo "test_python: $PY has no pytest: apt-get install python3-pytest (scripts/install-deps.sh)" >&2
  exit 1
fi
timeout_args=()
if "$PY" -c "import pytest_timeout" 2>/dev/null; then
  timeout_args=(--timeout=300)
fi
export PYTHONPATH="$BUILD/python"
export SAGESVC_BUILD="$BUILD"
export SAGESVC_BIN="$BUILD/sagesvc"
export PYTHONDONTWRITEBYTECODE=1
cd "$HERE"
exec "$PY" -m pytest -q -p no:cacheprovider "${timeout_args[@]}" "$HERE"
