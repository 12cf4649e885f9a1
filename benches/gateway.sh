#!/usr/bin/env bash
# Gateway benchmark (issues 5 and 14), run by hand. See benches/README.md.
#   1. POST /v1/chat/completions under wrk -t2 -c64 through the gateway, through nginx
#      (Debian's, proxy_pass to the same upstream with upstream keepalive; the reference)
#      and directly to the container's published port (the `address` GET
#      /api/v1/deployments/{name} gives); median req/s of BENCH_RUNS rounds, alternating
#      gateway / nginx / direct; targets gateway >= 0.85x direct and >= 1.0x nginx
#   2. added latency: p50 of the same request at two connections (wrk -t2 -c2) over direct,
#      gateway and nginx; targets gateway <= 0.3 ms and <= nginx's
#   3. time to the first streamed SSE event (stream: true), one keep-alive connection,
#      BENCH_TTFB requests: median gateway minus direct; target <= 2 ms
# Env: BENCH_RUNS=3, NGINX=nginx (the binary; installed with apt-get when missing), BENCH_TTFB=300, IMAGE=hangar-test-model:latest, HANGAR_BIN, BENCH_KEEP,
# and the wrk knobs of lib/common.sh (BENCH_WRK_SECS, BENCH_CONNECTIONS, BENCH_THREADS).
set -euo pipefail
SCRIPT=gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
RUNS=${BENCH_RUNS:-3}
TTFB_N=${BENCH_TTFB:-300}
RATIO_MIN=0.85
ADDED_P50_MAX_MS=0.3
ADDED_TTFB_MAX_MS=2
NGINX_RATIO_MIN=1.0
NGINX=${NGINX:-nginx}
need_test_image
if ! command -v "$NGINX" >/dev/null && [[ -x /usr/sbin/$NGINX ]]; then NGINX=/usr/sbin/$NGINX; fi
if ! command -v "$NGINX" >/dev/null; then
    log "== installing nginx-light"
    command -v apt-get >/dev/null || die "nginx is required (and apt-get is not here to install it)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >&2; } ||
        die "cannot install nginx"
    NGINX=/usr/sbin/nginx
fi
NGINX_PID=

# start_nginx UPSTREAM: nginx on a free port proxying to UPSTREAM (host:port) the way a
# tuned reverse proxy would: one worker per core, upstream keep-alive, HTTP/1.1 upstream,
# no buffering (so SSE passes as Hangar passes it), an access log line per request as
# Hangar writes one (nginx's default, unbuffered). Sets NGINX_URL.
start_nginx() {
    local port dir=$WORK/nginx
    mkdir -p "$dir/logs" "$dir/tmp"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    client_max_body_size 64m;
    upstream model { server $1; keepalive 128; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_buffering off;
        }
    }
}
CONF
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/logs/error.log" &
    NGINX_PID=$!
    NGINX_URL=http://127.0.0.1:$port
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null "$NGINX_URL/health" && return 0
        kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited at start: $(cat "$dir/logs/error.log")"
        sleep 0.1
    done
    die "nginx did not answer within 10 s"
}
stop_nginx() {
    if [[ -n $NGINX_PID ]]; then
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
    fi
}
on_cleanup() { stop_nginx; }

start_server "$WORK/data"
put_bench_runtime
python3 "$LIB/bench.py" files "$BASE" chat 1
read -r _ ADDRESS < <(python3 "$LIB/bench.py" deploy "$BASE" bench-gw chat bench) || die "deploy failed"
[[ $ADDRESS == *:* ]] || die "the deployment has no address: $ADDRESS"
start_nginx "$ADDRESS"
GATEWAY=$BASE/v1/chat/completions
NGINX_CHAT=$NGINX_URL/v1/chat/completions
DIRECT=http://$ADDRESS/v1/chat/completions
log "== gateway $GATEWAY, nginx $NGINX_CHAT, direct $DIRECT"

# The same request both ways, token included (the model server ignores it).
cat >"$WORK/chat.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"bench-gw","messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
for url in "$GATEWAY" "$NGINX_CHAT" "$DIRECT"; do
    code=$(curl -sS -o "$WORK/resp.json" -w '%{http_code}' "${AUTH[@]}" -H 'content-type: application/json' \
        --data '{"model":"bench-gw","messages":[{"role":"user","content":"hello"}]}' "$url") || die "curl $url"
    [[ $code == 200 ]] || die "$url: HTTP $code: $(cat "$WORK/resp.json")"
done

G_RPS=() N_RPS=() D_RPS=() G_P50=() N_P50=() D_P50=() G_ERR=0 N_ERR=0 D_ERR=0
for ((r = 1; r <= RUNS; r++)); do
    wrk_run "gateway-$r" "$GATEWAY" -s "$WORK/chat.lua"
    G_RPS+=("$RPS") G_P50+=("$P50_MS") G_ERR=$((G_ERR + ERRORS))
    wrk_run "nginx-$r" "$NGINX_CHAT" -s "$WORK/chat.lua"
    N_RPS+=("$RPS") N_P50+=("$P50_MS") N_ERR=$((N_ERR + ERRORS))
    wrk_run "direct-$r" "$DIRECT" -s "$WORK/chat.lua"
    D_RPS+=("$RPS") D_P50+=("$P50_MS") D_ERR=$((D_ERR + ERRORS))
done
g_rps=$(calc %.0f "$(median "${G_RPS[@]}")") d_rps=$(calc %.0f "$(median "${D_RPS[@]}")")
n_rps=$(calc %.0f "$(median "${N_RPS[@]}")")
g_p50_64=$(median "${G_P50[@]}") n_p50_64=$(median "${N_P50[@]}") d_p50_64=$(median "${D_P50[@]}")

# Two connections, one per wrk thread: latency without queueing (each side has a core).
saved=("$WRK_THREADS" "$WRK_CONNS")
WRK_THREADS=2 WRK_CONNS=2
G1=() N1=() D1=()
for ((r = 1; r <= RUNS; r++)); do
    wrk_run "gateway-c2-$r" "$GATEWAY" -s "$WORK/chat.lua"
    G1+=("$P50_MS") G_ERR=$((G_ERR + ERRORS))
    wrk_run "nginx-c2-$r" "$NGINX_CHAT" -s "$WORK/chat.lua"
    N1+=("$P50_MS") N_ERR=$((N_ERR + ERRORS))
    wrk_run "direct-c2-$r" "$DIRECT" -s "$WORK/chat.lua"
    D1+=("$P50_MS") D_ERR=$((D_ERR + ERRORS))
done
LAT_CONNS=$WRK_CONNS
WRK_THREADS=${saved[0]} WRK_CONNS=${saved[1]}
g1=$(median "${G1[@]}") n1=$(median "${N1[@]}") d1=$(median "${D1[@]}")

log "== time to first streamed event, $TTFB_N requests each way"
read -r g_ttfb g_ttfb90 < <(python3 "$LIB/bench.py" ttfb "$GATEWAY" bench-gw "$TTFB_N") || die "ttfb through the gateway failed"
read -r d_ttfb d_ttfb90 < <(python3 "$LIB/bench.py" ttfb "$DIRECT" bench-gw "$TTFB_N") || die "ttfb direct failed"
stop_nginx
python3 "$LIB/bench.py" stop "$BASE" bench-gw
stop_server

ratio=$(calc %.2f "$g_rps / $d_rps")
n_ratio=$(calc %.2f "$g_rps / $n_rps")
added=$(calc %.3f "$g1 - $d1")
n_added=$(calc %.3f "$n1 - $d1")
added_ttfb=$(calc %.3f "$g_ttfb - $d_ttfb")
header gateway "median of $RUNS rounds; wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s, POST /v1/chat/completions (non-streamed)"
printf 'rounds req/s: gateway %s; nginx %s; direct %s\n' "${G_RPS[*]}" "${N_RPS[*]}" "${D_RPS[*]}"
printf 'throughput at %s connections: gateway %s req/s (p50 %s ms), direct %s req/s (p50 %s ms); ratio %sx (target >= %sx; errors %s/%s) %s\n' \
    "$WRK_CONNS" "$g_rps" "$g_p50_64" "$d_rps" "$d_p50_64" "$ratio" "$RATIO_MIN" "$G_ERR" "$D_ERR" \
    "$(verdict "$ratio >= $RATIO_MIN && $G_ERR == 0")"
printf 'nginx reference at %s connections: nginx %s req/s (p50 %s ms); gateway/nginx %sx (target >= %sx; nginx errors %s) %s\n' \
    "$WRK_CONNS" "$n_rps" "$n_p50_64" "$n_ratio" "$NGINX_RATIO_MIN" "$N_ERR" \
    "$(verdict "$n_ratio >= $NGINX_RATIO_MIN && $G_ERR == 0")"
printf 'latency at %s connections: p50 gateway %s ms, nginx %s ms, direct %s ms; added gateway %s ms (target <= %s ms) %s, nginx %s ms (gateway target <= nginx) %s\n' \
    "$LAT_CONNS" "$g1" "$n1" "$d1" "$added" "$ADDED_P50_MAX_MS" "$(verdict "$added <= $ADDED_P50_MAX_MS")" \
    "$n_added" "$(verdict "$added <= $n_added")"
printf 'first streamed event: gateway %s ms (p90 %s), direct %s ms (p90 %s); added %s ms (target <= %s ms) %s\n' \
    "$g_ttfb" "$g_ttfb90" "$d_ttfb" "$d_ttfb90" "$added_ttfb" "$ADDED_TTFB_MAX_MS" \
    "$(verdict "$added_ttfb <= $ADDED_TTFB_MAX_MS")"
