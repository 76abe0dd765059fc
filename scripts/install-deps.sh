#!/usr/bin/env bash
# Installs every Debian package Isthmus needs to build, test, demo and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo).
#   scripts/install-deps.sh               everything above
#   scripts/install-deps.sh --packaging   also the Debian packaging tools
#                                         (scripts/build-deb.sh)
set -euo pipefail

PKGS=(
  # build
  build-essential meson ninja-build pkg-config
  libuv1-dev libssl-dev libnats-dev node-llhttp libtomlplusplus-dev libspdlog-dev
  libsystemd-dev catch2 nlohmann-json3-dev libgoogle-perftools-dev
  # runtime of tests and demo
  nats-server openssl curl python3 faketime
  # S2 interop, fuzzing and benchmarks
  golang-go golang-github-klauspost-compress-dev libsnappy-dev
  clang libclang-rt-14-dev
)

# Optional: only for building the .deb (scripts/build-deb.sh).
PACKAGING_PKGS=(debhelper dpkg-dev)

for arg in "$@"; do
  case "$arg" in
    --packaging) PKGS+=("${PACKAGING_PKGS[@]}") ;;
    *) echo "install-deps: unknown argument '$arg' (use --packaging)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
