#!/usr/bin/env bash
# The SDK as a plugin author meets it: install wshub into a prefix (DESTDIR), copy the installed
# template out of the tree, build it with nothing but `pkg-config --cflags wshub-sdk`, load it in
# wshubd; then rebuild the same source with WSHUB_SDK_ABI_MAJOR redefined to 2 after the include
# and check that wshubd refuses it, naming both ABIs, and exits 2.
#
#   sdk_template.sh BUILD_DIR WSHUBD
set -uo pipefail

build=$1
wshubd=$2
tmp=$(mktemp -d)
pid=
passed=0
failed=0

cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

# 1. Install into a staging prefix.
if ! DESTDIR="$tmp/dest" meson install -C "$build" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
    fail install "meson install failed: $(tail -5 "$tmp/install.log")"
    finish
fi
pc=$(find "$tmp/dest" -name wshub-sdk.pc | head -1)
[ -n "$pc" ] && ok "install: wshub-sdk.pc at ${pc#$tmp/dest}" || { fail install "no wshub-sdk.pc"; finish; }
# The staging dir is a sysroot: pkg-config prepends it to the installed paths.
export PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_SYSROOT_DIR="$tmp/dest"
PKGC="pkg-config"
tdir=$($PKGC --variable=templatedir wshub-sdk)
hdr="$($PKGC --variable=includedir wshub-sdk)/wshub/sdk.h"
if [ -f "$hdr" ] && [ -d "$tdir" ]; then ok "installed header and template"; else
    fail "installed header and template" "missing $hdr or $tdir"; finish; fi

# 2. Copy the template out of the tree and build it with pkg-config only.
cp -r "$tdir" "$tmp/hello"
if make -s -C "$tmp/hello" PKG_CONFIG="$PKGC" >"$tmp/make.log" 2>&1 && [ -f "$tmp/hello/hello.so" ]; then
    ok "template builds out of tree"
else
    fail "template builds out of tree" "$(tail -5 "$tmp/make.log")"
    finish
fi

# Runs wshubd on a config loading hello.so; prints its stderr into $tmp/log.$1.
run_server() {
    local tag=$1
    cat >"$tmp/cfg.$tag.yaml" <<EOF
server:
  listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
plugins:
  - name: hello
    path: $tmp/hello/hello.so
EOF
    rm -f "$tmp/port.$tag"
    "$wshubd" -c "$tmp/cfg.$tag.yaml" --port-file "$tmp/port.$tag" 2>"$tmp/log.$tag" &
    pid=$!
    for _ in $(seq 1 100); do
        [ -f "$tmp/port.$tag" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# 3. It loads and serves.
if run_server good; then
    grep -q "plugin hello .* loaded from $tmp/hello/hello.so" "$tmp/log.good" &&
        ok "wshubd loads the out-of-tree plugin" ||
        fail "wshubd loads the out-of-tree plugin" "no load line: $(cat "$tmp/log.good")"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    pid=
    [ "$rc" -eq 0 ] && ok "clean shutdown" || fail "clean shutdown" "exit $rc"
else
    fail "wshubd loads the out-of-tree plugin" "did not start: $(cat "$tmp/log.good")"
    pid=
fi

# 4. The same source with ABI major 2 after the include is refused before any plugin code runs.
sed -i 's|#include <wshub/sdk.h>|&\n#undef WSHUB_SDK_ABI_MAJOR\n#define WSHUB_SDK_ABI_MAJOR 2|' "$tmp/hello/hello.c"
make -s -C "$tmp/hello" clean >/dev/null
if ! make -s -C "$tmp/hello" PKG_CONFIG="$PKGC" >"$tmp/make2.log" 2>&1; then
    fail "ABI 2 rebuild" "$(tail -5 "$tmp/make2.log")"
    finish
fi
run_server abi2
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 2 ] && ok "ABI 2 plugin: exit 2" || fail "ABI 2 plugin: exit 2" "exit $rc"
grep -q "ERR .*\[core\] plugin hello: built for SDK ABI 2.0, this server has 1.0" "$tmp/log.abi2" &&
    ok "ABI 2 plugin: log line names both ABIs" ||
    fail "ABI 2 plugin: log line names both ABIs" "$(cat "$tmp/log.abi2")"
finish
