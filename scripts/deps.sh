#!/usr/bin/env bash
# Installs every Debian package that wshub's build, run, tests and benchmarks need.
# Idempotent: when every package is already installed it does nothing (no apt-get update).
set -euo pipefail

PKGS=(
    # toolchain and build
    gcc make meson ninja-build pkg-config clang-format
    # core
    libevent-dev libjson-c-dev libyaml-dev libhttp-parser-dev zlib1g-dev libssl-dev
    # plugins
    libjwt-dev libnats-dev
    # tests
    check libsubunit-dev libwebsockets-dev nats-server python3 python3-websockets procps curl
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
