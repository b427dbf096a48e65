#!/usr/bin/env bash
# Installs every Debian package that building and testing toolgate needs, then the pinned npm
# test peers. Safe to run again: apt and npm skip what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-filesystem1.81-dev
  libssl-dev ca-certificates libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev libre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev
  curl openssl
)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PKGS+=(nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f tests/e2e/package-lock.json ] && [ "${TOOLGATE_SKIP_NPM:-0}" != 1 ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
