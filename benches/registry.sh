#!/usr/bin/env bash
# Benchmark of the registry core, run by hand (not in CI). See benches/README.md.
#
# Builds `hangar` in release mode, serves a fresh data dir and measures, each next to a
# reference taken in the same run on the same machine:
#   1. upload of one large file (curl -T)  vs  openssl dgst -sha256, and cp + fsync
#   2. download of it (curl -o /dev/null)   vs  cat file > /dev/null
#   3. the server's peak RSS during the upload, above its idle RSS
#   4. catalog reads under wrk (64 connections): req/s and p99, vs GET /healthz
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
#   TOKEN=...              sent as `Authorization: Bearer $TOKEN` by curl and wrk
#   CARGO_TARGET_DIR       where cargo builds (default target/ in the repository)
#   HANGAR_BIN=PATH        benchmark this binary instead of building one
#   RUST_LOG               passed to the server (its default is info: one line a request)

set -euo pipefail
export LC_ALL=C

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
    exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$PWD/$TARGET_DIR
SIZE_MIB=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-3}
WRK_SECS=${BENCH_WRK_SECS:-10}
WRK_WARMUP=${BENCH_WRK_WARMUP:-2}
WRK_CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_THREADS:-2}
KEEP=${BENCH_KEEP:-0}

# Targets, from the issue.
UPLOAD_MAX_RATIO=1.3      # upload time <= 1.3x the slower of sha256 and cp+fsync
DOWNLOAD_MIN_RATIO=0.7    # download throughput >= 0.7x that of cat
RSS_MAX_MIB=64            # peak RSS during upload <= idle + 64 MiB
P99_MAX_MS=10             # catalog read p99 < 10 ms

# Sent by every request, curl and wrk alike (both take -H "Name: value").
AUTH=()
if [[ -n ${TOKEN:-} ]]; then
    AUTH=(-H "Authorization: Bearer $TOKEN")
fi

log() { printf '%s\n' "$*" >&2; }
die() {
    log "registry.sh: $*"
    exit 2
}

for n in "$SIZE_MIB" "$RUNS" "$WRK_SECS" "$WRK_WARMUP" "$WRK_CONNS" "$WRK_THREADS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((SIZE_MIB > 0 && RUNS > 0 && WRK_SECS > 0)) || die "BENCH_SIZE_MIB, BENCH_RUNS and BENCH_WRK_SECS must be > 0"

for tool in cargo curl openssl awk head cp sync df sort git; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if ! command -v wrk >/dev/null; then
    log "== installing wrk"
    command -v apt-get >/dev/null || die "wrk is required (and apt-get is not here to install it)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; } ||
        die "cannot install wrk"
fi

# --- build -----------------------------------------------------------------------------

if [[ -n ${HANGAR_BIN:-} ]]; then
    BIN=$HANGAR_BIN
    log "== using $BIN (HANGAR_BIN is set; not building)"
else
    log "== cargo build --release (target dir $TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release >&2) || die "build failed"
    BIN=$TARGET_DIR/release/hangar
fi
[[ -x $BIN ]] || die "no binary at $BIN"

# --- scratch dir -----------------------------------------------------------------------

fstype() { df --output=fstype "$1" | tail -n 1 | tr -d ' '; }
if [[ -n ${BENCH_DIR:-} ]]; then
    PARENT=$BENCH_DIR
    mkdir -p "$PARENT"
elif [[ $(fstype /tmp) == tmpfs ]]; then
    PARENT=$TARGET_DIR
    mkdir -p "$PARENT"
else
    PARENT=/tmp
fi
WORK=$(mktemp -d "$PARENT/hangar-bench.XXXXXX")
WORK_FS=$(fstype "$WORK")
[[ $WORK_FS == tmpfs ]] && log "warning: $WORK is on a tmpfs; the disk is not being measured"

SERVER_PID=
cleanup() {
    local status=$?
    stop_server
    if [[ $KEEP == 1 ]]; then
        log "scratch dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))
need_kib=$((SIZE_BYTES * 3 / 1024 + 1024 * 1024)) # input, one blob, one copy, slack
avail_kib=$(df --output=avail -k "$WORK" | tail -n 1 | tr -d ' ')
((avail_kib >= need_kib)) || die "$WORK has $((avail_kib / 1024)) MiB free; need $((need_kib / 1024)) MiB"

# --- helpers ---------------------------------------------------------------------------

# elapsed VAR CMD...: runs CMD, sets VAR to its wall time in seconds.
elapsed() {
    local -n out=$1
    shift
    local rc=0 t0=$EPOCHREALTIME
    "$@" || rc=$?
    local t1=$EPOCHREALTIME
    out=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    return "$rc"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); printf "%.3f", (NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2) }'; }
maximum() { printf '%s\n' "$@" | sort -g | tail -n 1; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
verdict() { awk "BEGIN { exit !($1) }" && echo PASS || echo MISS; }

# Evicts nothing, but makes every timed step start alike: no dirty pages from the last step
# being written back under it, and the file it reads already in the page cache.
settle() {
    sync
    local f
    for f in "$@"; do cat "$f" >/dev/null; done
}

# durable_copy SRC DST: cp, then fsync the copy and its directory (as ingest does).
durable_copy() { cp "$1" "$2" && sync "$2" "$(dirname "$2")"; }

# kib FIELD: a field of /proc/$SERVER_PID/status, in KiB.
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVER_PID/status"; }

# api METHOD PATH EXPECTED_STATUS [JSON]: one API call; the body goes to $WORK/resp.json.
api() {
    local method=$1 path=$2 expect=$3 body=${4:-} code
    local args=(-sS -o "$WORK/resp.json" -w '%{http_code}' -X "$method" "${AUTH[@]}")
    [[ -n $body ]] && args+=(-H 'content-type: application/json' --data "$body")
    code=$(curl "${args[@]}" "$BASE$path") || die "$method $path: curl failed"
    [[ $code == "$expect" ]] || die "$method $path: HTTP $code, expected $expect: $(cat "$WORK/resp.json")"
}

start_server() {
    local data=$1
    : >"$WORK/server.out"
    RUST_LOG=${RUST_LOG:-info} "$BIN" serve --data-dir "$data" --listen 127.0.0.1:0 \
        >"$WORK/server.out" 2>>"$WORK/server.log" &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        BASE=$(grep -o 'http://[^ ]*' "$WORK/server.out" || true)
        [[ -n $BASE ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited at start; see $WORK/server.log (BENCH_KEEP=1 keeps it)"
        sleep 0.1
    done
    die "the server did not say where it serves within 30 s"
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# How busy the CPUs are with other work, over one second, in percent.
cpu_busy() {
    local a b
    a=$(awk '$1 == "cpu"' /proc/stat)
    sleep 1
    b=$(awk '$1 == "cpu"' /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t; idle[NR] = $5 + $6 }
        END { d = tot[2] - tot[1]; printf "%.0f", (d > 0 ? 100 * (1 - (idle[2] - idle[1]) / d) : 0) }'
}
BUSY_AT_START=$(cpu_busy)
((BUSY_AT_START <= 10)) ||
    log "warning: the CPUs are ${BUSY_AT_START}% busy with other work; that skews the figures"

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

# wrk_run NAME PATH: a warm-up, then the measured run; sets RPS, P99_MS, ERRORS.
wrk_run() {
    local name=$1 path=$2 out=$WORK/wrk-$1.txt
    api GET "$path" 200
    if ((WRK_WARMUP > 0)); then
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_WARMUP}s" "${AUTH[@]}" "$BASE$path" >/dev/null ||
            die "wrk failed on $path"
    fi
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency "${AUTH[@]}" "$BASE$path" >"$out" ||
        die "wrk failed on $path"
    cat "$out" >&2
    RPS=$(awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' "$out")
    P99_MS=$(awk '$1 == "99%" {
        v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f < 0) exit 1
        printf "%.2f", v * f }' "$out") || die "wrk: cannot read the p99 unit in $out"
    [[ -n $RPS && -n $P99_MS ]] || die "wrk: no Requests/sec or 99% line in $out"
    ERRORS=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) { gsub(/,/, "", $i); if ($i ~ /^[0-9]+$/) n += $i } }
        END { print n + 0 }' "$out")
    log "   $name: $RPS req/s, p99 $P99_MS ms, $ERRORS errors"
}

log "== catalog reads: wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s (after ${WRK_WARMUP}s warm-up)"
wrk_run healthz /healthz
REF_RPS=$RPS REF_P99=$P99_MS REF_ERR=$ERRORS
CAT_LINES=()
for path in /api/v1/models/bench /api/v1/models/bench/versions/1/files; do
    wrk_run "$(basename "$path")" "$path"
    v=$(verdict "$P99_MS < $P99_MAX_MS && $ERRORS == 0")
    note=""
    ((ERRORS == 0)) || note=" ($ERRORS errors or non-2xx)"
    CAT_LINES+=("$(printf 'GET %s: %s req/s, p99 %s ms; GET /healthz %s req/s, p99 %s ms; ratio p99 %sx, req/s %sx (target p99 < %s ms) %s%s' \
        "$path" "$RPS" "$P99_MS" "$REF_RPS" "$REF_P99" \
        "$(calc %.2f "$P99_MS / $REF_P99")" "$(calc %.2f "$RPS / $REF_RPS")" "$P99_MAX_MS" "$v" "$note")")
done
((REF_ERR == 0)) || log "note: GET /healthz had $REF_ERR errors or non-2xx"
stop_server

# --- results ---------------------------------------------------------------------------

up=$(median "${UP[@]}") dg=$(median "${DGST[@]}") cs=$(median "${CPSYNC[@]}")
down=$(median "${DOWN[@]}") ct=$(median "${CAT[@]}")
slower=$(maximum "$dg" "$cs")
up_ratio=$(calc %.2f "$up / $slower")
down_ratio=$(calc %.2f "$ct / $down")
idle=$(calc %.1f "$(median "${IDLE[@]}")") peak=$(maximum "${PEAK[@]}") growth=$(maximum "${GROWTH[@]}")

printf '\n== hangar registry benchmark, %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%s, %s cores, %s MiB RAM, kernel %s; scratch on %s (%s); CPUs busy before start %s%%\n' \
    "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
    "$(awk '$1 == "MemTotal:" { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)" \
    "$(df --output=source "$WORK" | tail -n 1)" "$WORK_FS" "$BUSY_AT_START"
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
[[ -n ${HANGAR_BIN:-} ]] && REV="binary $BIN (tree at $REV)"
printf 'hangar %s; %s MiB file, median of %s rounds, files in the page cache before each step\n\n' \
    "$REV" "$SIZE_MIB" "$RUNS"
printf 'upload %s MiB: %s s; openssl dgst %s s; cp+sync %s s; ratio %sx of slower (target <= %sx) %s\n' \
    "$SIZE_MIB" "$up" "$dg" "$cs" "$up_ratio" "$UPLOAD_MAX_RATIO" "$(verdict "$up_ratio <= $UPLOAD_MAX_RATIO")"
printf 'download %s MiB: %s s (%s MiB/s); cat %s s (%s MiB/s); ratio %sx (target >= %sx) %s\n' \
    "$SIZE_MIB" "$down" "$(calc %.0f "$SIZE_MIB / $down")" "$ct" "$(calc %.0f "$SIZE_MIB / $ct")" \
    "$down_ratio" "$DOWNLOAD_MIN_RATIO" "$(verdict "$down_ratio >= $DOWNLOAD_MIN_RATIO")"
printf 'upload RSS: idle %s MiB; peak %s MiB; +%s MiB over idle (target <= %s MiB) %s\n' \
    "$idle" "$peak" "$growth" "$RSS_MAX_MIB" "$(verdict "$growth <= $RSS_MAX_MIB")"
printf '%s\n' "${CAT_LINES[@]}"
