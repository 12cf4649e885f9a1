# What the benchmark scripts in benches/ share (sourced, not run).
# Expects SCRIPT (the script's name) to be set. Provides: BIN, WORK (and WORK_FS), BASE,
# TOKEN, AUTH, log/die, start_server/stop_server, api, wrk_run, median, maximum, calc,
# verdict, header, elapsed, settle, need_free_kib, need_test_image/put_bench_runtime for
# the scripts that deploy; a cleanup trap that stops the server and removes containers
# named hangar-*bench*.

# `SCRIPT -h|--help`: the script's header comment, before anything is built or started
# (sourced without arguments, this sees the script's own).
if [[ ${1:-} == -h || ${1:-} == --help ]]; then
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
    exit 0
fi

export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB=$ROOT/benches/lib
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$PWD/$TARGET_DIR
WRK_SECS=${BENCH_WRK_SECS:-10}
WRK_WARMUP=${BENCH_WRK_WARMUP:-2}
WRK_CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_THREADS:-2}
KEEP=${BENCH_KEEP:-0}
# The admin token every server here is started with (HANGAR_BOOTSTRAP_TOKEN creates it):
# hgr_ + 43 base64url characters.
TOKEN=${TOKEN:-hgr_benchToken0123456789benchToken0123456789abc}
ADMIN_PASSWORD=${BENCH_ADMIN_PASSWORD:-bench-admin-password-0123456789}
AUTH=(-H "Authorization: Bearer $TOKEN")

log() { printf '%s\n' "$*" >&2; }
die() {
    log "$SCRIPT: $*"
    exit 2
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); printf "%.3f", (NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2) }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
verdict() { awk "BEGIN { exit !($1) }" && echo PASS || echo MISS; }

for n in "$WRK_SECS" "$WRK_WARMUP" "$WRK_CONNS" "$WRK_THREADS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((WRK_SECS > 0)) || die "BENCH_WRK_SECS must be > 0"
for tool in curl awk sort df git; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if ! command -v wrk >/dev/null; then
    log "== installing wrk"
    command -v apt-get >/dev/null || die "wrk is required (and apt-get is not here to install it)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; } ||
        die "cannot install wrk"
fi

if [[ -n ${HANGAR_BIN:-} ]]; then
    BIN=$HANGAR_BIN
    log "== using $BIN (HANGAR_BIN is set; not building)"
else
    log "== cargo build --release (target dir $TARGET_DIR)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release >&2) || die "build failed"
    BIN=$TARGET_DIR/release/hangar
fi
[[ -x $BIN ]] || die "no binary at $BIN"

# The scratch dir holds the data dirs, so it should be on the disk being measured: under
# BENCH_DIR, else /tmp unless that is a tmpfs, else the cargo target dir.
fstype() { df --output=fstype "$1" | tail -n 1 | tr -d ' '; }
if [[ -n ${BENCH_DIR:-} ]]; then
    PARENT=$BENCH_DIR
elif [[ $(fstype /tmp) == tmpfs ]]; then
    PARENT=$TARGET_DIR
else
    PARENT=/tmp
fi
mkdir -p "$PARENT"
WORK=$(mktemp -d "$PARENT/hangar-bench.XXXXXX")
WORK_FS=$(fstype "$WORK")
[[ $WORK_FS == tmpfs ]] && log "warning: $WORK is on a tmpfs; the disk is not being measured"
SERVER_PID=

remove_bench_containers() {
    command -v docker >/dev/null || return 0
    local ids
    ids=$(docker ps -aq --filter 'name=hangar-.*bench' 2>/dev/null || true)
    [[ -z $ids ]] || docker rm -f -v $ids >/dev/null 2>&1 || true
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

cleanup() {
    local status=$?
    # A script's own processes (gateway.sh's nginx) stop before the server does.
    if declare -F on_cleanup >/dev/null; then on_cleanup || true; fi
    stop_server
    remove_bench_containers
    if [[ $KEEP == 1 ]]; then log "scratch dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server DATA_DIR [FLAGS...]: serves on a free port with the bench token and admin.
start_server() {
    local data=$1
    shift
    : >"$WORK/server.out"
    HANGAR_BOOTSTRAP_TOKEN=$TOKEN HANGAR_ADMIN_PASSWORD=$ADMIN_PASSWORD RUST_LOG=${RUST_LOG:-info} \
        "$BIN" serve --data-dir "$data" --listen 127.0.0.1:0 "$@" \
        >"$WORK/server.out" 2>>"$WORK/server.log" &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        BASE=$(grep -o 'http://[^ ]*' "$WORK/server.out" | head -n 1 || true)
        [[ -n $BASE ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited at start; see $WORK/server.log (BENCH_KEEP=1 keeps it)"
        sleep 0.1
    done
    die "the server did not say where it serves within 30 s"
}

# need_free_kib KIB: the scratch dir's filesystem has that much free, or the script stops.
need_free_kib() {
    local avail_kib
    avail_kib=$(df --output=avail -k "$WORK" | tail -n 1 | tr -d ' ')
    ((avail_kib >= $1)) || die "$WORK has $((avail_kib / 1024)) MiB free; need $(($1 / 1024)) MiB"
}

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

maximum() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# settle FILE...: evicts nothing, but makes every timed step start alike: no dirty pages of
# the last step being written back under it, and the files it reads already in the page cache.
settle() {
    sync
    local f
    for f in "$@"; do cat "$f" >/dev/null; done
}

# need_test_image: Docker, python3 and the test model server image ($IMAGE) are here; no
# container of an earlier run is left.
need_test_image() {
    IMAGE=${IMAGE:-hangar-test-model:latest}
    local tool
    for tool in docker python3; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE; run docker/test-model-server/build-image.sh"
    export TOKEN
    remove_bench_containers
}

# put_bench_runtime: the runtime `bench`, the test image serving on its port 8000.
put_bench_runtime() {
    api PUT /api/v1/runtimes/bench 201 "{\"image\":\"$IMAGE\",\"args\":[\"--port\",\"{port}\",\"--served-model-name\",\"{served_name}\"],\"port\":8000,\"health_path\":\"/health\",\"startup_deadline_secs\":60}"
}

# api METHOD PATH EXPECTED_STATUS [JSON]: one API call with the token; body in $WORK/resp.json.
api() {
    local method=$1 path=$2 expect=$3 body=${4:-} code
    local args=(-sS -o "$WORK/resp.json" -w '%{http_code}' -X "$method" "${AUTH[@]}")
    [[ -n $body ]] && args+=(-H 'content-type: application/json' --data "$body")
    code=$(curl "${args[@]}" "$BASE$path") || die "$method $path: curl failed"
    [[ $code == "$expect" ]] || die "$method $path: HTTP $code, expected $expect: $(cat "$WORK/resp.json")"
}

# wrk_run NAME URL [WRK ARGS...]: warm-up, then measured run with --latency;
# sets RPS, P50_MS, P99_MS, ERRORS.
wrk_run() {
    local name=$1 url=$2 out=$WORK/wrk-$1.txt
    shift 2
    if ((WRK_WARMUP > 0)); then
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_WARMUP}s" "$@" "$url" >/dev/null || die "wrk failed on $url"
    fi
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WRK_SECS}s" --latency "$@" "$url" >"$out" || die "wrk failed on $url"
    cat "$out" >&2
    RPS=$(awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' "$out")
    pct() {
        awk -v p="$1" '$1 == p {
            v = $2; u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
            f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
            if (f < 0) exit 1
            printf "%.3f", v * f }' "$out"
    }
    P50_MS=$(pct 50%) || die "wrk: cannot read p50 in $out"
    P99_MS=$(pct 99%) || die "wrk: cannot read p99 in $out"
    [[ -n $RPS && -n $P99_MS && -n $P50_MS ]] || die "wrk: no Requests/sec or latency lines in $out"
    ERRORS=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) { gsub(/,/, "", $i); if ($i ~ /^[0-9]+$/) n += $i } }
        END { print n + 0 }' "$out")
    log "   $name: $RPS req/s, p50 $P50_MS ms, p99 $P99_MS ms, $ERRORS errors"
}

cpu_busy() {
    local a b
    a=$(awk '$1 == "cpu"' /proc/stat)
    sleep 1
    b=$(awk '$1 == "cpu"' /proc/stat)
    printf '%s\n%s\n' "$a" "$b" | awk '{ t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t; idle[NR] = $5 + $6 }
        END { d = tot[2] - tot[1]; printf "%.0f", (d > 0 ? 100 * (1 - (idle[2] - idle[1]) / d) : 0) }'
}
BUSY_AT_START=$(cpu_busy)
((BUSY_AT_START <= 10)) || log "warning: the CPUs are ${BUSY_AT_START}% busy with other work; that skews the figures"

# header TITLE [NOTE]: the first lines of the table on stdout; NOTE ends the last of them.
header() {
    printf '\n== hangar %s benchmark, %s\n' "$1" "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf '%s, %s cores (shared by client and server), %s MiB RAM, kernel %s; scratch on %s (%s); CPUs busy before start %s%%\n' \
        "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$(nproc)" \
        "$(awk '$1 == "MemTotal:" { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)" \
        "$(df --output=source "$WORK" | tail -n 1)" "$WORK_FS" "$BUSY_AT_START"
    local rev
    rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
    [[ -n ${HANGAR_BIN:-} ]] && rev="binary $BIN (tree at $rev)"
    printf 'hangar %s%s\n\n' "$rev" "${2:+; $2}"
}
