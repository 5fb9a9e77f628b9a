#!/usr/bin/env bash
# install-deps.sh - install what sagesvc needs to build, test and run, from
# Debian packages only. Skips packages already installed; needs root (uses
# sudo when not root).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang libclang-rt-14-dev             # sanitizer builds and libFuzzer
  libmsgpack-dev                       # the wire format
  libyaml-dev                          # configuration files
  libjansson-dev                       # JSON in the command-line tool
  libmicrohttpd-dev                    # the metrics endpoint
  libnats-dev nats-server              # the cluster transport
  libzmq3-dev                          # a peer in the benchmarks
  python3-dev python3-pytest python3-pytest-timeout   # the Python extension and its tests
  python3-dbg                          # ... under the debug interpreter
  python3-zmq python3-msgpack          # the Python benchmark's peers
  prometheus                           # promtool, to validate metrics output
  procps psmisc iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
