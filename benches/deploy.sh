#!/usr/bin/env bash
# Deploy benchmark (issue 4), run by hand. See benches/README.md.
#   1. time from POST /api/v1/deployments to observed state `running` (polled every 5 ms),
#      vs `docker run -d -p 127.0.0.1::8000` of the same image until /health answers 200
#      (polled every 5 ms); median of BENCH_RUNS; target overhead <= 250 ms
#   2. snapshot of a version with 1,000 files, as the server logs it when a first deploy
#      builds it ("built snapshot ... took_ms=…"), next to that of a 1-file version; target < 1 s
# Env: BENCH_RUNS=5, BENCH_FILES=1000, IMAGE=hangar-test-model:latest, HANGAR_BIN, BENCH_KEEP.
set -euo pipefail
SCRIPT=deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
RUNS=${BENCH_RUNS:-5}
NFILES=${BENCH_FILES:-1000}
OVERHEAD_MAX_MS=250
SNAPSHOT_MAX_MS=1000
need_test_image

start_server "$WORK/data"
put_bench_runtime
log "== seeding model one (1 file) and many ($NFILES files)"
python3 "$LIB/bench.py" files "$BASE" one 1
python3 "$LIB/bench.py" files "$BASE" many "$NFILES"
mkdir -p "$WORK/refmodel"
echo "file 0 of ref" >"$WORK/refmodel/shard-0000.txt"

# snapshot_ms MODEL: the build time the server logged for MODEL's snapshot (built once, by
# the first deploy of the version; later deploys reuse it).
snapshot_ms() {
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" |
        awk -v m="model=$1" '/built snapshot/ && index($0, m " ") { for (i = 1; i <= NF; i++) if ($i ~ /^took_ms=/) { sub(/^took_ms=/, "", $i); t = $i } }
            END { if (t == "") exit 1; printf "%.1f", t }'
}

HANGAR=() DOCKER=()
for ((r = 1; r <= RUNS; r++)); do
    read -r t _ < <(python3 "$LIB/bench.py" deploy "$BASE" "bench-one-$r" one bench) || die "deploy one failed"
    HANGAR+=("$t")
    python3 "$LIB/bench.py" stop "$BASE" "bench-one-$r"
    read -r t _ < <(python3 "$LIB/bench.py" docker "$IMAGE" "$WORK/refmodel" "hangar-ref-bench-$r") || die "docker run failed"
    DOCKER+=("$t")
    docker rm -f -v "hangar-ref-bench-$r" >/dev/null
    log "   round $r: hangar ${HANGAR[-1]} s, docker run ${DOCKER[-1]} s"
done
read -r many _ < <(python3 "$LIB/bench.py" deploy "$BASE" bench-many many bench) || die "deploy many failed"
python3 "$LIB/bench.py" stop "$BASE" bench-many
stop_server
snap_one=$(snapshot_ms one) || die "no 'built snapshot' line for model one in $WORK/server.log"
snap_many=$(snapshot_ms many) || die "no 'built snapshot' line for model many in $WORK/server.log"

h=$(median "${HANGAR[@]}") d=$(median "${DOCKER[@]}")
over=$(calc %.0f "($h - $d) * 1000")
header deploy "median of $RUNS rounds"
printf 'rounds (s): hangar %s; docker run %s\n' "${HANGAR[*]}" "${DOCKER[*]}"
printf 'deploy to running: %s ms; docker run to /health 200: %s ms; overhead %s ms, ratio %sx (target overhead <= %s ms) %s\n' \
    "$(calc %.0f "$h * 1000")" "$(calc %.0f "$d * 1000")" "$over" "$(calc %.2f "$h / $d")" "$OVERHEAD_MAX_MS" \
    "$(verdict "$over <= $OVERHEAD_MAX_MS")"
printf 'snapshot of %s files: %s ms (1 file: %s ms; first deploy of the %s-file version to running %s ms) (target < %s ms) %s\n' \
    "$NFILES" "$snap_many" "$snap_one" "$NFILES" "$(calc %.0f "$many * 1000")" "$SNAPSHOT_MAX_MS" \
    "$(verdict "$snap_many < $SNAPSHOT_MAX_MS")"
