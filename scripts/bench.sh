#!/usr/bin/env bash
# scripts/bench.sh (`make bench`): measures wshubd and its peers with wshub-bench, side by side.
#
# Servers: wshub (wshubd: the echo plugin; for fan-out also the rooms plugin with auto_create),
# uws (uWebSockets.js, app.publish in the message handler), uws-deferred (the same publish
# deferred with setImmediate; fan-out only, the other scenarios would repeat uws), ws (node ws 8),
# socketio (socket.io 4, WebSocket transport) and nats (nats-server's WebSocket listener). The
# node peers are installed by bench/peers/install.sh (npm, git-ignored); nats-server is Debian's.
#
# Cases, each on a freshly started server, one at a time, with nothing else of ours running:
#   idle          N connections held (server RSS growth per connection, connect rate)
#   echo          50 connections, 64-byte payloads, one in flight each
#   fanout-max-S  one publisher -> S subscribers of one room/topic, ~100-byte messages as fast as
#                 the publisher can send (deliveries/s, server CPU per delivery)
#   fanout-rate-S the same at a fixed 50 msg/s (end-to-end latency p50/p99)
#   churn         20 parallel connect/close loops (connections/s)
# Every case runs BENCH_REPEAT times (rounds over all servers, so that drift spreads evenly);
# the table shows medians, and each peer's column shows its value and the ratio wshub/peer.
# The default run takes about 15 minutes on 2 cores; BENCH_QUICK=1 about 2.
#
# Environment:
#   BENCH_QUICK=1        a ~3-minute version (fewer connections, shorter runs, 1 repetition)
#   BENCH_REPEAT=R       repetitions (default 3; quick 1)
#   BENCH_SERVERS="..."  subset of: wshub uws uws-deferred ws socketio nats
#   BENCH_CASES="..."    subset of: idle echo fanout churn
#   BENCH_SUBS="..."     fan-out subscriber counts (default "1000 10000"; quick "1000 5000")
#   BENCH_OUT=FILE       where the RESULT lines go (default $BUILD/bench-results/<date>.txt;
#                        the table goes to FILE with .txt replaced by .summary.txt)
#   BENCH_PLOT=FILE      where the fan-out latency plot goes (default docs/img/fanout_latency.png;
#                        quick runs: next to the RESULT lines); BENCH_PLOT=0: no plot
#   BUILD=DIR            build directory (default build)
# The client (wshub-bench) and the server share the machine's cores: the table shows the
# client's CPU seconds too, so that a reader can see which side limited a figure.
set -u
set -o pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
quick=${BENCH_QUICK:-0}
[ "$quick" = 0 ] || quick=1

if [ "$quick" = 1 ]; then
    repeat=${BENCH_REPEAT:-1}
    subs_list=${BENCH_SUBS:-1000 5000}
    idle_n=2000
    idle_hold=1
    echo_secs=3
    echo_warmup=0.5
    fan_deliveries=400000 # per max-speed run: messages = this / subscribers
    rate_secs=1           # fixed-rate runs publish for this long at 50 msg/s
    churn_secs=2
else
    repeat=${BENCH_REPEAT:-3}
    subs_list=${BENCH_SUBS:-1000 10000}
    idle_n=10000
    idle_hold=2
    echo_secs=10
    echo_warmup=1
    fan_deliveries=1000000
    rate_secs=3
    churn_secs=5
fi
servers=${BENCH_SERVERS:-wshub uws uws-deferred ws socketio nats}
cases=${BENCH_CASES:-idle echo fanout churn}
rate=50
case $repeat in '' | *[!0-9]* | 0) echo "bench.sh: BENCH_REPEAT must be a positive integer" >&2; exit 2 ;; esac

bench=$BUILD/bench/wshub-bench
wshubd=$BUILD/core/wshubd
peers=$root/bench/peers
stamp=$(date +%Y%m%d-%H%M%S)
out=${BENCH_OUT:-$BUILD/bench-results/$stamp.txt}
summary=${out%.txt}.summary.txt
[ "$summary" != "$out" ] || summary=$out.summary
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wshub-bench.XXXXXX")
srv_pid=""

log() {
    printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# Stops the server of the current run: SIGTERM, then SIGKILL after 5 s.
stop_server() {
    if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$srv_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$srv_pid" 2>/dev/null
    fi
    [ -z "$srv_pid" ] || wait "$srv_pid" 2>/dev/null
    srv_pid=""
}

cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build and peers -------------------------------------------------------------------------

if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" >/dev/null || exit 1
fi
ninja -C "$BUILD" >/dev/null || { echo "bench.sh: build failed (ninja -C $BUILD)" >&2; exit 1; }
[ -x "$bench" ] && [ -x "$wshubd" ] || { echo "bench.sh: $bench or $wshubd missing" >&2; exit 1; }
"$bench" --self-test >/dev/null || { echo "bench.sh: wshub-bench --self-test failed" >&2; exit 1; }

# Our own WSHUB_* settings only: an override in the caller's environment would change wshubd.
for v in $(compgen -e); do
    case $v in WSHUB_*) unset "$v" ;; esac
done

want_node=0
for s in $servers; do
    case $s in
        wshub | nats) ;;
        uws | uws-deferred | ws | socketio) want_node=1 ;;
        *) echo "bench.sh: unknown server '$s' in BENCH_SERVERS" >&2; exit 2 ;;
    esac
done
if [ "$want_node" = 1 ] && ! bash "$peers/install.sh" >"$tmp/install.log" 2>&1; then
    echo "bench.sh: bench/peers/install.sh failed; the node peers are skipped:" >&2
    sed 's/^/    /' "$tmp/install.log" >&2
    servers=$(tr ' ' '\n' <<<"$servers" | grep -Ev '^(uws|uws-deferred|ws|socketio)$' | xargs)
fi
export NODE_PATH=${BENCH_PEERS_PREFIX:+$BENCH_PEERS_PREFIX/node_modules}
if [[ " $servers " == *" nats "* ]] && ! command -v nats-server >/dev/null; then
    echo "bench.sh: nats-server not found (bash scripts/deps.sh); nats is skipped" >&2
    servers=$(tr ' ' '\n' <<<"$servers" | grep -v '^nats$' | xargs)
fi

# The client and each server may hold 10k+ sockets.
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null

# ---- servers ---------------------------------------------------------------------------------

# wshubd configurations: the echo plugin alone (idle, echo, churn) and with rooms (fan-out), so
# that the rooms plugin's per-connection state does not count in the idle figure.
write_wshub_config() {
    cat >"$tmp/wshub-$1.yaml" <<EOF
server:
  listen: 127.0.0.1:0
admin:
  enabled: false
log:
  level: warn
plugin_dir: $BUILD/plugins
plugins:
  - name: echo
    config:
      path: /echo
EOF
    if [ "$1" = rooms ]; then
        cat >>"$tmp/wshub-$1.yaml" <<EOF
  - name: rooms
    config:
      auto_create: true
EOF
    fi
}
write_wshub_config echo
write_wshub_config rooms

# start_server NAME CASE: starts a fresh server, sets srv_pid and port. Returns 1 on failure.
start_server() {
    local name=$1 kase=$2 pf=$tmp/port
    rm -f "$pf"
    port=""
    : >"$tmp/server.log"
    case $name in
        wshub)
            local cfg=echo
            [[ $kase == fanout-* ]] && cfg=rooms
            "$wshubd" -c "$tmp/wshub-$cfg.yaml" --port-file "$pf" >"$tmp/server.log" 2>&1 &
            ;;
        uws) PORT_FILE=$pf node "$peers/uws_server.js" 0 direct >"$tmp/server.log" 2>&1 & ;;
        uws-deferred) PORT_FILE=$pf node "$peers/uws_server.js" 0 deferred >"$tmp/server.log" 2>&1 & ;;
        ws) PORT_FILE=$pf node "$peers/ws_server.js" 0 >"$tmp/server.log" 2>&1 & ;;
        socketio) PORT_FILE=$pf node "$peers/socketio_server.js" 0 >"$tmp/server.log" 2>&1 & ;;
        nats) NATS_WS_PORT=-1 nats-server -c "$peers/nats-server.conf" >"$tmp/server.log" 2>&1 & ;;
    esac
    srv_pid=$!
    for _ in $(seq 100); do
        case $name in
            wshub) [ -s "$pf" ] && port=$(awk '$1 == "server" {split($2, a, ":"); print a[2]}' "$pf") ;;
            nats) port=$(sed -n 's|.*Listening for websocket clients on ws://[^:]*:\([0-9]*\).*|\1|p' "$tmp/server.log") ;;
            *) [ -s "$pf" ] && port=$(head -1 "$pf") ;;
        esac
        [ -n "$port" ] && return 0
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    log "FAILED to start $name:"
    sed 's/^/    /' "$tmp/server.log" >&2
    stop_server
    return 1
}

# ---- the protocols, as wshub-bench templates -------------------------------------------------

pad() { printf "%${1}s" "" | tr ' ' "$2"; }
P64=$(pad 64 y)
# The fan-out payload: a JSON object of about 100 bytes, {"bts":<send time>,"p":"xxx..."}.
# NATS carries it as an opaque payload with %TS16% (fixed length: PUB announces the size).
FAN_PAD=$(pad 69 x)
FAN_DATA="{\"bts\":%TS%,\"p\":\"$FAN_PAD\"}"
FAN_DATA16="{\"bts\":%TS16%,\"p\":\"$FAN_PAD\"}"
FAN_LEN16=$((${#FAN_DATA16} - 6 + 16))
CRLF=$'\r\n'
NATS_CONNECT="CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":true}$CRLF"
WSHUB_JOIN='{"type":"room.join","id":1,"room":"bench"}'

# bench_args NAME CASE: the protocol arguments of one server for one scenario, into args[].
bench_args() {
    local name=$1 kase=$2 base="ws://127.0.0.1:$port"
    args=()
    case $name in
        wshub)
            case $kase in
                fanout-*)
                    args=(--url "$base/ws" --wait-welcome --sub-template "$WSHUB_JOIN" --sub-ack
                        --pub-join "$WSHUB_JOIN"
                        --pub-template "{\"type\":\"room.send\",\"room\":\"bench\",\"data\":$FAN_DATA}") ;;
                *) args=(--url "$base/echo") ;;
            esac ;;
        uws | uws-deferred | ws)
            case $kase in
                fanout-*)
                    args=(--url "$base/pubsub" --sub-template "sub:bench" --sub-ack
                        --pub-template "pub:bench:$FAN_DATA") ;;
                *) args=(--url "$base/echo") ;;
            esac ;;
        socketio)
            local u="$base/socket.io/?EIO=4&transport=websocket"
            case $kase in
                idle) args=(--url "$u" --wait-welcome --sub-template 40 --sub-ack --reply '2=>3') ;;
                echo)
                    args=(--url "$u" --wait-welcome --sub-template 40 --sub-ack --reply '2=>3'
                        --pub-template "42[\"echo\",\"$P64\"]") ;;
                fanout-*)
                    args=(--url "$u" --wait-welcome --sub-template 40
                        --sub-template '42["join","bench"]' --sub-ack --pub-join 40 --reply '2=>3'
                        --pub-template "42[\"pub\",\"bench\",$FAN_DATA]") ;;
                churn) args=(--url "$u") ;;
            esac ;;
        nats)
            local ping="PING$CRLF" reply="PING$CRLF=>PONG$CRLF"
            case $kase in
                idle)
                    args=(--url "$base/" --wait-welcome --sub-template "$NATS_CONNECT$ping" --sub-ack
                        --reply "$reply") ;;
                echo)
                    args=(--url "$base/" --wait-welcome --sub-ack --reply "$reply"
                        --sub-template "${NATS_CONNECT}SUB e.%SEQ% 1$CRLF$ping"
                        --pub-template "PUB e.%SEQ% 64$CRLF$P64$CRLF") ;;
                fanout-*)
                    args=(--url "$base/" --wait-welcome --sub-ack --reply "$reply" --multi
                        --sub-template "${NATS_CONNECT}SUB bench 1$CRLF$ping"
                        --pub-join "$NATS_CONNECT$ping"
                        --pub-template "PUB bench $FAN_LEN16$CRLF$FAN_DATA16$CRLF") ;;
                churn) args=(--url "$base/") ;;
            esac ;;
    esac
}

# scenario_args CASE: the load of one case, into sargs[].
# Fan-out uses two client processes: at 50 msg/s each delivery arrives on its own (a recv per
# message, ~2 us of client CPU), and a single process reading 10k subscribers would measure
# itself rather than the server. The publisher lives in the first of them.
scenario_args() {
    local kase=$1 subs msgs
    case $kase in
        idle) sargs=(--scenario idle -n "$idle_n" --duration "$idle_hold" --connect-rate 4000) ;;
        echo) sargs=(--scenario echo -c 50 --size 64 --duration "$echo_secs" --warmup "$echo_warmup") ;;
        fanout-max-*)
            subs=${kase#fanout-max-}
            msgs=$((fan_deliveries / subs))
            [ "$msgs" -ge 20 ] || msgs=20
            [ "$msgs" -le 2000 ] || msgs=2000
            sargs=(--scenario fanout -n "$subs" --messages "$msgs" --duration 30 --connect-rate 5000
                --ts-key '"bts":' --warmup 0.5 --procs 2) ;;
        fanout-rate-*)
            subs=${kase#fanout-rate-}
            sargs=(--scenario fanout -n "$subs" --messages $((rate * rate_secs)) --rate "$rate"
                --duration 30 --connect-rate 5000 --ts-key '"bts":' --warmup 0.5 --procs 2) ;;
        churn) sargs=(--scenario churn -c 20 --duration "$churn_secs") ;;
    esac
}

case_list=()
for c in $cases; do
    case $c in
        idle | echo | churn) case_list+=("$c") ;;
        fanout)
            for s in $subs_list; do
                case $s in '' | *[!0-9]* | 0) echo "bench.sh: bad BENCH_SUBS entry '$s'" >&2; exit 2 ;; esac
                case_list+=("fanout-max-$s" "fanout-rate-$s")
            done ;;
        *) echo "bench.sh: unknown case '$c' in BENCH_CASES" >&2; exit 2 ;;
    esac
done

# ---- run -------------------------------------------------------------------------------------

mkdir -p "$(dirname "$out")"
{
    echo "# wshub bench $stamp quick=$quick repeat=$repeat servers=[$servers] cases=[${case_list[*]}]"
    echo "# host: $(nproc) cores, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# wshub $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet 2>/dev/null || echo '+dirty'), $("$wshubd" --version 2>/dev/null | head -1)"
    echo "# node $(node --version 2>/dev/null || echo '-'), $(nats-server --version 2>/dev/null || echo 'nats-server -')"
} >"$out"
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.7) }'; then
    log "note: load average $load1 before the start: something else is running; figures will be noisy"
fi
n_runs=0
for s in $servers; do
    for c in "${case_list[@]}"; do
        [ "$s" = uws-deferred ] && [[ $c != fanout-* ]] && continue
        n_runs=$((n_runs + 1))
    done
done
n_runs=$((n_runs * repeat))
log "bench.sh: $n_runs runs -> $out"

t_start=$SECONDS
k=0
failed=0
for rep in $(seq "$repeat"); do
    for s in $servers; do
        for c in "${case_list[@]}"; do
            [ "$s" = uws-deferred ] && [[ $c != fanout-* ]] && continue
            k=$((k + 1))
            if ! start_server "$s" "$c"; then
                failed=$((failed + 1))
                echo "# FAILED server=$s case=$c rep=$rep: the server did not start" >>"$out"
                continue
            fi
            bench_args "$s" "$c"
            scenario_args "$c"
            res=$(timeout --foreground 300 "$bench" "${args[@]}" "${sargs[@]}" --pid "$srv_pid" 2>"$tmp/bench.err")
            rc=$?
            line=$(grep '^RESULT ' <<<"$res" | tail -1)
            if ! kill -0 "$srv_pid" 2>/dev/null; then
                rc=99
                echo "# server=$s case=$c rep=$rep: the server died: $(tail -3 "$tmp/server.log" | tr '\n' ' ')" >>"$out"
            fi
            stop_server
            if [ -n "$line" ]; then
                echo "RESULT server=$s case=$c rep=$rep rc=$rc ${line#RESULT }" >>"$out"
            else
                echo "# FAILED server=$s case=$c rep=$rep rc=$rc: $(tail -3 "$tmp/bench.err" | tr '\n' ' ')" >>"$out"
            fi
            [ "$rc" = 0 ] || failed=$((failed + 1))
            log "[$k/$n_runs] $s $c rep $rep: rc=$rc $(tr ' ' '\n' <<<"$line" | grep -E '^(conns|msgs_per_s|deliveries_per_s|loss|p99_us|rss_per_conn|anon_per_conn|conn_per_s|srv_cpu_s|cli_cpu_s)=' | tr '\n' ' ')"
        done
    done
done
log "bench.sh: $k runs in $((SECONDS - t_start)) s, $failed failed"

# ---- report ----------------------------------------------------------------------------------

/usr/bin/env python3 "$root/bench/plot.py" table "$out" | tee "$summary"
echo "RESULT lines: $out"
echo "summary: $summary"
plot=${BENCH_PLOT:-}
if [ -z "$plot" ]; then
    plot=$root/docs/img/fanout_latency.png
    [ "$quick" = 0 ] || plot=${out%.txt}.fanout_latency.png
fi
if [ "$plot" != 0 ]; then
    mkdir -p "$(dirname "$plot")"
    /usr/bin/env python3 "$root/bench/plot.py" png "$out" "$plot" && echo "plot: $plot"
fi
[ "$failed" -eq 0 ]
