#!/usr/bin/env bash
# bench-smoke: runs every wshub-bench scenario briefly against a real wshubd with the echo
# plugin, and checks that each printed its RESULT line with sane values.
#
# usage: bench_smoke.sh WSHUBD WSHUB_BENCH PLUGIN_DIR
#
# The server listens on 127.0.0.1:0 (both listeners) and reports its ports through
# --port-file, so the test never collides with anything. Every bench run is bounded by
# `timeout`, and the server is stopped (SIGTERM, then SIGKILL after 15 s) on every exit path.
# Prints `ok NAME` / `FAIL NAME` per check, then `N passed, M failed`; exits 1 on any failure.
set -u

if [ $# -ne 3 ]; then
    echo "usage: $0 WSHUBD WSHUB_BENCH PLUGIN_DIR" >&2
    exit 2
fi
wshubd=$1
bench=$2
plugin_dir=$3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wshub-bench-smoke.XXXXXX")
srv_pid=""
passed=0
failed=0

cleanup() {
    if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null
        for _ in $(seq 150); do
            kill -0 "$srv_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$srv_pid" 2>/dev/null
        wait "$srv_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
    echo "ok $1"
    passed=$((passed + 1))
}

fail() {
    echo "FAIL $1: $2"
    failed=$((failed + 1))
}

# Our own WSHUB_* settings only: a stray override in the caller's environment would change the
# configuration under test.
for v in $(compgen -e); do
    case $v in WSHUB_*) unset "$v" ;; esac
done

cat >"$tmp/wshub.yaml" <<EOF
server:
  listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
log:
  level: warn
plugin_dir: $plugin_dir
plugins:
  - name: echo
    config:
      path: /echo
EOF

"$wshubd" -c "$tmp/wshub.yaml" --port-file "$tmp/ports" >"$tmp/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do
    [ -s "$tmp/ports" ] && break
    if ! kill -0 "$srv_pid" 2>/dev/null; then
        echo "FAIL start: wshubd exited before writing its port file:"
        cat "$tmp/server.log"
        echo "0 passed, 1 failed"
        exit 1
    fi
    sleep 0.1
done
addr=$(awk '$1 == "server" {print $2}' "$tmp/ports" 2>/dev/null)
if [ -z "$addr" ]; then
    echo "FAIL start: no port file within 10 s"
    cat "$tmp/server.log"
    echo "0 passed, 1 failed"
    exit 1
fi

# The value of KEY in the RESULT line of $out.
kv() {
    grep '^RESULT ' <<<"$out" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}

# run NAME ARGS...: runs the bench (bounded) and leaves its output in $out, its status in $rc.
run() {
    local name=$1
    shift
    out=$(timeout 60 "$bench" "$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || ! grep -q "^RESULT scenario=" <<<"$out"; then
        fail "$name" "exit $rc, output:"
        printf '%s\n' "$out" | sed 's/^/    /'
        return 1
    fi
    return 0
}

# expect NAME CONDITION...: one check on the values of the last run.
expect() {
    local name=$1
    shift
    if "$@"; then
        ok "$name"
    else
        fail "$name" "RESULT line: $(grep '^RESULT ' <<<"$out")"
    fi
}

out=$(timeout 60 "$bench" --self-test 2>&1)
if [ $? -eq 0 ] && grep -q "self-test: [0-9]* passed, 0 failed" <<<"$out"; then
    ok self-test
else
    fail self-test "$out"
fi

if run idle --url "ws://$addr/echo" --scenario idle -n 50 --duration 1 --pid "$srv_pid"; then
    expect idle '[' "$(kv conns)" = 50 -a "$(kv failed)" = 0 -a "$(kv dropped)" = 0 ']'
    expect idle-rss '[' -n "$(kv rss_per_conn)" -a -n "$(kv rss_after_kb)" ']'
fi

if run idle-procs --url "ws://$addr/ws" --scenario idle -n 40 --procs 2 --wait-welcome \
    --duration 1; then
    expect idle-procs '[' "$(kv conns)" = 40 -a "$(kv procs)" = 2 -a "$(kv failed)" = 0 ']'
fi

if run echo --url "ws://$addr/echo" --scenario echo -c 4 --duration 1 --pid "$srv_pid"; then
    expect echo '[' "$(kv conns)" = 4 -a "$(kv msgs)" -gt 0 -a "$(kv mismatched)" = 0 ']'
    expect echo-latency '[' -n "$(kv p99_us)" -a -n "$(kv srv_cpu_us_per_msg)" ']'
fi

if run churn --url "ws://$addr/ws" --scenario churn -c 4 --duration 1 --wait-welcome; then
    expect churn '[' "$(kv cycles)" -gt 0 -a "$(kv failed)" = 0 ']'
fi

# There is no pub/sub plugin yet: the fanout code path (publisher, %TS% scan, latency) runs on
# /echo with one subscriber that is also the publisher, so it receives every message back.
if run fanout --url "ws://$addr/echo" --scenario fanout -n 1 --pub-is-sub --messages 100 \
    --pid "$srv_pid"; then
    expect fanout '[' "$(kv sent)" = 100 -a "$(kv received)" = 100 -a "$(kv loss)" = 0.000000 ']'
fi

if kill -0 "$srv_pid" 2>/dev/null; then
    ok server-alive
else
    fail server-alive "wshubd died during the runs: $(tail -20 "$tmp/server.log")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
