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
  libsqlite3-dev sqlite3 libhiredis-dev redis-server libpq-dev postgresql libhnswlib-dev
  curl openssl
  clang libclang-rt-14-dev
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

# valijson (JSON Schema for schema-guard) is header-only, but Debian's libvalijson-dev depends on
# the -dev packages of every JSON library it adapts (Qt 5, Poco, jsoncpp, ...): its headers alone
# are unpacked into .deps/ instead. `apt-get download` needs no root, only the package lists.
if [ ! -d .deps/valijson/usr/include/valijson ]; then
  echo "setup: unpacking libvalijson-dev into .deps/valijson"
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && apt-get download libvalijson-dev >/dev/null 2>&1); then
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download libvalijson-dev >/dev/null)
  fi
  mkdir -p .deps/valijson
  dpkg -x "$tmp"/libvalijson-dev_*.deb "$PWD/.deps/valijson"
  rm -rf "$tmp"
fi

if [ -f tests/e2e/package-lock.json ] && [ "${TOOLGATE_SKIP_NPM:-0}" != 1 ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
