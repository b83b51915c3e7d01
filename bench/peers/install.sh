#!/usr/bin/env bash
# Installs the peer servers that scripts/bench.sh measures wshub against:
#   uWebSockets.js (npm @trufflesuite/uws-js-unofficial: the native uWS build, pub/sub built in),
#   node ws 8, socket.io 4 — into bench/peers/node_modules (git-ignored), or into
#   $BENCH_PEERS_PREFIX/node_modules when that is set (then run the servers with
#   NODE_PATH=$BENCH_PEERS_PREFIX/node_modules; scripts/bench.sh does).
# nats-server is Debian's package (scripts/deps.sh installs it).
#
# Versions are pinned so that figures stay comparable between runs. Idempotent: when the pinned
# versions are already installed it only checks them. Needs Node.js >= 18 and npm, and the npm
# registry. Nothing is written into the repository except the git-ignored node_modules.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${BENCH_PEERS_PREFIX:-$here}

UWS_VERSION=20.30.0-unofficial.0
WS_VERSION=8.18.3
SOCKETIO_VERSION=4.8.1
PKGS=(
    "@trufflesuite/uws-js-unofficial@$UWS_VERSION"
    "ws@$WS_VERSION"
    "socket.io@$SOCKETIO_VERSION"
)

die() {
    echo "peers/install.sh: $*" >&2
    exit 1
}

command -v node >/dev/null || die "node not found: install Node.js >= 18 (Debian: apt-get install nodejs)"
command -v npm >/dev/null || die "npm not found (Debian: apt-get install npm, or Node.js from nodesource)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || die "Node.js $(node --version) is too old: need >= 18"

# Prints "ok" when every pinned version is installed under $prefix and uWS's native binary for
# this Node.js loads (the package would otherwise fall back silently to a JavaScript emulation).
check() {
    node - "$prefix/node_modules" "$UWS_VERSION" "$WS_VERSION" "$SOCKETIO_VERSION" <<'EOF' 2>/dev/null
const fs = require('fs');
const path = require('path');
const [mods, uwsV, wsV, sioV] = process.argv.slice(2);
const ver = (name) => JSON.parse(fs.readFileSync(path.join(mods, name, 'package.json'))).version;
if (ver('@trufflesuite/uws-js-unofficial') !== uwsV || ver('ws') !== wsV ||
    ver('socket.io') !== sioV)
    process.exit(1);
require(path.join(mods, '@trufflesuite/uws-js-unofficial', 'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`));
console.log('ok');
EOF
}

if [ "$(check || true)" = ok ]; then
    echo "peers/install.sh: peers already installed in $prefix/node_modules"
    exit 0
fi

mkdir -p "$prefix"
echo "peers/install.sh: npm install ${PKGS[*]} into $prefix/node_modules" >&2
npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund --omit=dev \
    --loglevel=error "${PKGS[@]}"

if [ "$(check || true)" != ok ]; then
    die "installed, but the check failed: uWS has no native binary for Node.js $(node --version)" \
        "($(node -p 'process.platform + "_" + process.arch + "_" + process.versions.modules'))"
fi
command -v nats-server >/dev/null || echo "peers/install.sh: note: nats-server is missing" \
    "(bash scripts/deps.sh installs it)" >&2
echo "peers/install.sh: ok ($prefix/node_modules)"
