#!/usr/bin/env bash
# Benchmark of the registry core, run by hand (not in CI). See benches/README.md.
#
# Builds `hangar` in release mode, serves a fresh data dir and measures, each next to a
# reference taken in the same run on the same machine:
#   1. upload of one large file (curl -T)  vs  openssl dgst -sha256, and cp + fsync
#   2. download of it (curl -o /dev/null)   vs  cat file > /dev/null
#   3. the server's peak RSS during the upload, above its idle RSS
#   4. catalog reads under wrk (64 connections): req/s and p99, vs GET /healthz
#   5. the same read with a token vs without one on an `--anonymous-read` server
# Each figure is checked against its target and printed PASS or MISS. The exit status is 0
# whatever the figures; it is non-zero only when the benchmark itself could not run.
#
# Environment (all optional):
#   BENCH_SIZE_MIB=2048    size of the random file uploaded and downloaded
#   BENCH_RUNS=3           rounds of the timed file steps; the median is reported
#   BENCH_DIR=DIR          parent of the scratch dir (default /tmp, or the cargo target dir
#                          when /tmp is a tmpfs: the disk is what should be measured)
#   BENCH_KEEP=1           keep the scratch dir (input file, data dirs, logs, wrk output)
#   BENCH_WRK_SECS=10      duration of each wrk run
#   BENCH_WRK_WARMUP=2     seconds of discarded wrk load before each measured run
#   BENCH_CONNECTIONS=64   wrk connections
#   BENCH_THREADS=2        wrk threads
#   TOKEN=hgr_...          the admin token the server is started with and every request
#                          sends (default: a fixed one; see benches/lib/common.sh)
#   CARGO_TARGET_DIR       where cargo builds (default target/ in the repository)
#   HANGAR_BIN=PATH        benchmark this binary instead of building one
#   RUST_LOG               passed to the server (its default is info: one line a request)

set -euo pipefail

SCRIPT=registry.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
SIZE_MIB=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-3}

# Targets, from the issues.
UPLOAD_MAX_RATIO=1.3      # upload time <= 1.3x the slower of sha256 and cp+fsync
DOWNLOAD_MIN_RATIO=0.7    # download throughput >= 0.7x that of cat
RSS_MAX_MIB=64            # peak RSS during upload <= idle + 64 MiB
P99_MAX_MS=10             # catalog read p99 < 10 ms
TOKEN_MIN_RATIO=0.9       # req/s with a token >= 0.9x that of anonymous reads

for n in "$SIZE_MIB" "$RUNS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((SIZE_MIB > 0 && RUNS > 0)) || die "BENCH_SIZE_MIB and BENCH_RUNS must be > 0"
for tool in openssl head cp sync; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))
need_kib=$((SIZE_BYTES * 3 / 1024 + 1024 * 1024)) # input, one blob, one copy, slack
need_free_kib "$need_kib"




# durable_copy SRC DST: cp, then fsync the copy and its directory (as ingest does).
durable_copy() { cp "$1" "$2" && sync "$2" "$(dirname "$2")"; }

# kib FIELD: a field of /proc/$SERVER_PID/status, in KiB.
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVER_PID/status"; }

# --- input -----------------------------------------------------------------------------

INPUT=$WORK/input.bin
log "== scratch dir $WORK ($WORK_FS on $(df --output=source "$WORK" | tail -n 1))"
log "== writing $SIZE_MIB MiB of random bytes to $INPUT"
head -c "${SIZE_MIB}M" /dev/urandom >"$INPUT"
sync "$INPUT"
HEX=$(openssl dgst -sha256 -r "$INPUT" | awk '{ print $1 }')
[[ $HEX =~ ^[0-9a-f]{64}$ ]] || die "cannot hash $INPUT"
BLOB_REL=blobs/sha256/${HEX:0:2}/$HEX
FILE_URL=/api/v1/models/bench/versions/1/files/model.bin

# --- file rounds -----------------------------------------------------------------------

UP=() DGST=() CPSYNC=() DOWN=() CAT=() IDLE=() PEAK=() GROWTH=()
HWM_RESET=yes
for ((r = 1; r <= RUNS; r++)); do
    log "== round $r of $RUNS"
    DATA=$WORK/data-$r
    start_server "$DATA"
    api POST /api/v1/models 201 '{"name":"bench"}'
    api POST /api/v1/models/bench/versions 201 '{"version":"1"}'

    # (a) sha256 of the file, as fast as this CPU does it.
    settle "$INPUT"
    elapsed t openssl dgst -sha256 -r -out "$WORK/dgst.txt" "$INPUT"
    [[ $(awk '{ print $1 }' "$WORK/dgst.txt") == "$HEX" ]] || die "openssl gave another digest"
    DGST+=("$t")

    # (b) a durable copy on the same filesystem as the data dir.
    settle "$INPUT"
    elapsed t durable_copy "$INPUT" "$WORK/copy.bin"
    CPSYNC+=("$t")
    rm -f "$WORK/copy.bin"

    # The upload, to a fresh data dir (so not the dedup path), watching the server's RSS.
    settle "$INPUT"
    idle=$(kib VmRSS)
    # Resets VmHWM to the current RSS, so the peak read below is this upload's.
    echo 5 2>/dev/null >"/proc/$SERVER_PID/clear_refs" || HWM_RESET=no
    elapsed t curl -sS -o "$WORK/resp.json" -w '%{http_code}' "${AUTH[@]}" -T "$INPUT" \
        "$BASE$FILE_URL?digest=sha256:$HEX" >"$WORK/code.txt" || die "upload: curl failed"
    peak=$(kib VmHWM)
    [[ $(cat "$WORK/code.txt") == 201 ]] || die "upload: HTTP $(cat "$WORK/code.txt"): $(cat "$WORK/resp.json")"
    grep -q "\"size\":$SIZE_BYTES" "$WORK/resp.json" || die "upload: unexpected answer $(cat "$WORK/resp.json")"
    [[ -f $DATA/$BLOB_REL ]] || die "upload: no blob at $DATA/$BLOB_REL"
    UP+=("$t")
    IDLE+=("$(calc %.1f "$idle / 1024")")
    PEAK+=("$(calc %.1f "$peak / 1024")")
    GROWTH+=("$(calc %.1f "($peak - $idle) / 1024")")
    api POST /api/v1/models/bench/versions/1/publish 200

    # The download vs cat, both with their file in the page cache.
    settle "$INPUT"
    elapsed t cat "$INPUT" >/dev/null
    CAT+=("$t")
    settle "$DATA/$BLOB_REL"
    elapsed t curl -sS -o /dev/null -w '%{http_code} %{size_download}' "${AUTH[@]}" \
        "$BASE$FILE_URL" >"$WORK/code.txt" || die "download: curl failed"
    [[ $(cat "$WORK/code.txt") == "200 $SIZE_BYTES" ]] || die "download: got '$(cat "$WORK/code.txt")', expected '200 $SIZE_BYTES'"
    DOWN+=("$t")

    log "   upload ${UP[-1]} s, dgst ${DGST[-1]} s, cp+sync ${CPSYNC[-1]} s," \
        "download ${DOWN[-1]} s, cat ${CAT[-1]} s, rss idle ${IDLE[-1]} MiB peak ${PEAK[-1]} MiB"
    if ((r < RUNS)); then
        stop_server
        rm -rf "$DATA"
    fi
done
[[ $HWM_RESET == yes ]] || log "note: could not reset VmHWM; the peak includes the server's start"

# --- catalog reads ---------------------------------------------------------------------

# read_under_load NAME PATH [CURL/WRK ARGS...]: checks PATH answers 200, then puts it under wrk.
read_under_load() {
    local name=$1 path=$2 code
    shift 2
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$@" "$BASE$path") || die "GET $path: curl failed"
    [[ $code == 200 ]] || die "GET $path: HTTP $code, expected 200"
    wrk_run "$name" "$BASE$path" "$@"
}

log "== catalog reads: wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s (after ${WRK_WARMUP}s warm-up)"
read_under_load healthz /healthz "${AUTH[@]}"
REF_RPS=$RPS REF_P99=$P99_MS REF_ERR=$ERRORS
CAT_LINES=()
for path in /api/v1/models/bench /api/v1/models/bench/versions/1/files; do
    read_under_load "$(basename "$path")" "$path" "${AUTH[@]}"
    v=$(verdict "$P99_MS < $P99_MAX_MS && $ERRORS == 0")
    note=""
    ((ERRORS == 0)) || note=" ($ERRORS errors or non-2xx)"
    CAT_LINES+=("$(printf 'GET %s: %s req/s, p99 %s ms; GET /healthz %s req/s, p99 %s ms; ratio p99 %sx, req/s %sx (target p99 < %s ms) %s%s' \
        "$path" "$RPS" "$P99_MS" "$REF_RPS" "$REF_P99" \
        "$(calc %.2f "$P99_MS / $REF_P99")" "$(calc %.2f "$RPS / $REF_RPS")" "$P99_MAX_MS" "$v" "$note")")
done
((REF_ERR == 0)) || log "note: GET /healthz had $REF_ERR errors or non-2xx"
read_under_load token /api/v1/models/bench "${AUTH[@]}"
TOKEN_RPS=$RPS TOKEN_P99=$P99_MS TOKEN_ERR=$ERRORS
stop_server

log "== the same read on the same data dir, served with --anonymous-read and sent no token"
start_server "$DATA" --anonymous-read
read_under_load anonymous /api/v1/models/bench
ANON_RPS=$RPS ANON_P99=$P99_MS ANON_ERR=$ERRORS
stop_server
token_ratio=$(calc %.2f "$TOKEN_RPS / $ANON_RPS")
TOKEN_LINE=$(printf 'GET /api/v1/models/bench with a token: %s req/s, p99 %s ms; anonymous_read without one: %s req/s, p99 %s ms; ratio req/s %sx (target >= %sx) %s' \
    "$TOKEN_RPS" "$TOKEN_P99" "$ANON_RPS" "$ANON_P99" "$token_ratio" "$TOKEN_MIN_RATIO" \
    "$(verdict "$token_ratio >= $TOKEN_MIN_RATIO && $TOKEN_ERR == 0 && $ANON_ERR == 0")")

# --- results ---------------------------------------------------------------------------

up=$(median "${UP[@]}") dg=$(median "${DGST[@]}") cs=$(median "${CPSYNC[@]}")
down=$(median "${DOWN[@]}") ct=$(median "${CAT[@]}")
slower=$(maximum "$dg" "$cs")
up_ratio=$(calc %.2f "$up / $slower")
down_ratio=$(calc %.2f "$ct / $down")
idle=$(calc %.1f "$(median "${IDLE[@]}")") peak=$(maximum "${PEAK[@]}") growth=$(maximum "${GROWTH[@]}")

header registry "$SIZE_MIB MiB file, median of $RUNS rounds, files in the page cache before each step"
printf 'upload %s MiB: %s s; openssl dgst %s s; cp+sync %s s; ratio %sx of slower (target <= %sx) %s\n' \
    "$SIZE_MIB" "$up" "$dg" "$cs" "$up_ratio" "$UPLOAD_MAX_RATIO" "$(verdict "$up_ratio <= $UPLOAD_MAX_RATIO")"
printf 'download %s MiB: %s s (%s MiB/s); cat %s s (%s MiB/s); ratio %sx (target >= %sx) %s\n' \
    "$SIZE_MIB" "$down" "$(calc %.0f "$SIZE_MIB / $down")" "$ct" "$(calc %.0f "$SIZE_MIB / $ct")" \
    "$down_ratio" "$DOWNLOAD_MIN_RATIO" "$(verdict "$down_ratio >= $DOWNLOAD_MIN_RATIO")"
printf 'upload RSS: idle %s MiB; peak %s MiB; +%s MiB over idle (target <= %s MiB) %s\n' \
    "$idle" "$peak" "$growth" "$RSS_MAX_MIB" "$(verdict "$growth <= $RSS_MAX_MIB")"
printf '%s\n' "${CAT_LINES[@]}"
printf '%s\n' "$TOKEN_LINE"
