#!/usr/bin/env bash
# Gateway benchmark (issue 5), run by hand. See benches/README.md.
#   1. POST /v1/chat/completions under wrk -t2 -c64 through the gateway vs directly to the
#      container's published port (the `address` GET /api/v1/deployments/{name} gives);
#      median req/s of BENCH_RUNS rounds, alternating; target gateway >= 0.85x direct
#   2. added latency: p50 of the same request on one connection (wrk -t1 -c1), gateway
#      minus direct; target <= 0.3 ms
#   3. time to the first streamed SSE event (stream: true), one keep-alive connection,
#      BENCH_TTFB requests: median gateway minus direct; target <= 2 ms
# Env: BENCH_RUNS=3, BENCH_TTFB=300, IMAGE=hangar-test-model:latest, HANGAR_BIN, BENCH_KEEP,
# and the wrk knobs of lib/common.sh (BENCH_WRK_SECS, BENCH_CONNECTIONS, BENCH_THREADS).
set -euo pipefail
SCRIPT=gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
RUNS=${BENCH_RUNS:-3}
TTFB_N=${BENCH_TTFB:-300}
RATIO_MIN=0.85
ADDED_P50_MAX_MS=0.3
ADDED_TTFB_MAX_MS=2
need_test_image

start_server "$WORK/data"
put_bench_runtime
python3 "$LIB/bench.py" files "$BASE" chat 1
read -r _ ADDRESS < <(python3 "$LIB/bench.py" deploy "$BASE" bench-gw chat bench) || die "deploy failed"
[[ $ADDRESS == *:* ]] || die "the deployment has no address: $ADDRESS"
GATEWAY=$BASE/v1/chat/completions
DIRECT=http://$ADDRESS/v1/chat/completions
log "== gateway $GATEWAY, direct $DIRECT"

# The same request both ways, token included (the model server ignores it).
cat >"$WORK/chat.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"bench-gw","messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
for url in "$GATEWAY" "$DIRECT"; do
    code=$(curl -sS -o "$WORK/resp.json" -w '%{http_code}' "${AUTH[@]}" -H 'content-type: application/json' \
        --data '{"model":"bench-gw","messages":[{"role":"user","content":"hello"}]}' "$url") || die "curl $url"
    [[ $code == 200 ]] || die "$url: HTTP $code: $(cat "$WORK/resp.json")"
done

G_RPS=() D_RPS=() G_P50=() D_P50=() G_ERR=0 D_ERR=0
for ((r = 1; r <= RUNS; r++)); do
    wrk_run "gateway-$r" "$GATEWAY" -s "$WORK/chat.lua"
    G_RPS+=("$RPS") G_P50+=("$P50_MS") G_ERR=$((G_ERR + ERRORS))
    wrk_run "direct-$r" "$DIRECT" -s "$WORK/chat.lua"
    D_RPS+=("$RPS") D_P50+=("$P50_MS") D_ERR=$((D_ERR + ERRORS))
done
g_rps=$(calc %.0f "$(median "${G_RPS[@]}")") d_rps=$(calc %.0f "$(median "${D_RPS[@]}")")
g_p50_64=$(median "${G_P50[@]}") d_p50_64=$(median "${D_P50[@]}")

# One connection, one thread: latency without queueing.
saved=("$WRK_THREADS" "$WRK_CONNS")
WRK_THREADS=1 WRK_CONNS=1
G1=() D1=()
for ((r = 1; r <= RUNS; r++)); do
    wrk_run "gateway-c1-$r" "$GATEWAY" -s "$WORK/chat.lua"
    G1+=("$P50_MS") G_ERR=$((G_ERR + ERRORS))
    wrk_run "direct-c1-$r" "$DIRECT" -s "$WORK/chat.lua"
    D1+=("$P50_MS") D_ERR=$((D_ERR + ERRORS))
done
WRK_THREADS=${saved[0]} WRK_CONNS=${saved[1]}
g1=$(median "${G1[@]}") d1=$(median "${D1[@]}")

log "== time to first streamed event, $TTFB_N requests each way"
read -r g_ttfb g_ttfb90 < <(python3 "$LIB/bench.py" ttfb "$GATEWAY" bench-gw "$TTFB_N") || die "ttfb through the gateway failed"
read -r d_ttfb d_ttfb90 < <(python3 "$LIB/bench.py" ttfb "$DIRECT" bench-gw "$TTFB_N") || die "ttfb direct failed"
python3 "$LIB/bench.py" stop "$BASE" bench-gw
stop_server

ratio=$(calc %.2f "$g_rps / $d_rps")
added=$(calc %.3f "$g1 - $d1")
added_ttfb=$(calc %.3f "$g_ttfb - $d_ttfb")
header gateway "median of $RUNS rounds; wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s, POST /v1/chat/completions (non-streamed)"
printf 'rounds req/s: gateway %s; direct %s\n' "${G_RPS[*]}" "${D_RPS[*]}"
printf 'throughput at %s connections: gateway %s req/s (p50 %s ms), direct %s req/s (p50 %s ms); ratio %sx (target >= %sx; errors %s/%s) %s\n' \
    "$WRK_CONNS" "$g_rps" "$g_p50_64" "$d_rps" "$d_p50_64" "$ratio" "$RATIO_MIN" "$G_ERR" "$D_ERR" \
    "$(verdict "$ratio >= $RATIO_MIN && $G_ERR == 0")"
printf 'latency on one connection: p50 gateway %s ms, direct %s ms; added %s ms (target <= %s ms) %s\n' \
    "$g1" "$d1" "$added" "$ADDED_P50_MAX_MS" "$(verdict "$added <= $ADDED_P50_MAX_MS")"
printf 'first streamed event: gateway %s ms (p90 %s), direct %s ms (p90 %s); added %s ms (target <= %s ms) %s\n' \
    "$g_ttfb" "$g_ttfb90" "$d_ttfb" "$d_ttfb90" "$added_ttfb" "$ADDED_TTFB_MAX_MS" \
    "$(verdict "$added_ttfb <= $ADDED_TTFB_MAX_MS")"
