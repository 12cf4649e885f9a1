#!/usr/bin/env bash
# Deploy benchmark (issue 4), run by hand. See benches/README.md.
#   1. time from POST /api/v1/deployments to observed state `running` (polled every 5 ms),
#      vs `docker run -d -p 127.0.0.1::8000` of the same image until /health answers 200
#      (polled every 5 ms); median of BENCH_RUNS; target overhead <= 250 ms
#   2. snapshot of a version with 1,000 files: time-to-running of a 1,000-file version minus
#      that of a 1-file version (the server logs no snapshot timing); target < 1 s
# Env: BENCH_RUNS=5, BENCH_FILES=1000, IMAGE=hangar-test-model:latest, HANGAR_BIN, BENCH_KEEP.
set -euo pipefail
SCRIPT=deploy.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
RUNS=${BENCH_RUNS:-5}
NFILES=${BENCH_FILES:-1000}
IMAGE=${IMAGE:-hangar-test-model:latest}
OVERHEAD_MAX_MS=250
SNAPSHOT_MAX_MS=1000
command -v docker >/dev/null || die "docker is required"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE; run docker/test-model-server/build-image.sh"
export TOKEN
remove_bench_containers

start_server "$WORK/data"
api PUT /api/v1/runtimes/bench 201 "{\"image\":\"$IMAGE\",\"args\":[\"--port\",\"{port}\",\"--served-model-name\",\"{served_name}\"],\"port\":8000,\"health_path\":\"/health\",\"startup_deadline_secs\":60}"
log "== seeding model one (1 file) and many ($NFILES files)"
python3 "$LIB/bench.py" files "$BASE" one 1
python3 "$LIB/bench.py" files "$BASE" many "$NFILES"
mkdir -p "$WORK/refmodel"
echo "file 0 of ref" >"$WORK/refmodel/shard-0000.txt"

HANGAR=() DOCKER=() MANY=()
for ((r = 1; r <= RUNS; r++)); do
    read -r t _ < <(python3 "$LIB/bench.py" deploy "$BASE" "bench-one-$r" one bench) || die "deploy one failed"
    HANGAR+=("$t")
    python3 "$LIB/bench.py" stop "$BASE" "bench-one-$r"
    read -r t _ < <(python3 "$LIB/bench.py" docker "$IMAGE" "$WORK/refmodel" "hangar-ref-bench-$r") || die "docker run failed"
    DOCKER+=("$t")
    docker rm -f -v "hangar-ref-bench-$r" >/dev/null
    read -r t _ < <(python3 "$LIB/bench.py" deploy "$BASE" "bench-many-$r" many bench) || die "deploy many failed"
    MANY+=("$t")
    python3 "$LIB/bench.py" stop "$BASE" "bench-many-$r"
    log "   round $r: hangar 1 file ${HANGAR[-1]} s, docker run ${DOCKER[-1]} s, hangar $NFILES files ${MANY[-1]} s"
done
stop_server

h=$(median "${HANGAR[@]}") d=$(median "${DOCKER[@]}") m=$(median "${MANY[@]}")
over=$(calc %.0f "($h - $d) * 1000")
snap=$(calc %.0f "($m - $h) * 1000")
header deploy
printf 'rounds (s): hangar 1 file %s; docker run %s; hangar %s files %s\n' "${HANGAR[*]}" "${DOCKER[*]}" "$NFILES" "${MANY[*]}"
printf 'deploy to running: %s ms; docker run to /health 200: %s ms; overhead %s ms, ratio %sx (target overhead <= %s ms) %s\n' \
    "$(calc %.0f "$h * 1000")" "$(calc %.0f "$d * 1000")" "$over" "$(calc %.2f "$h / $d")" "$OVERHEAD_MAX_MS" \
    "$(verdict "$over <= $OVERHEAD_MAX_MS")"
printf 'snapshot of %s files (deploy of %s-file version minus 1-file version, medians of %s): %s ms; %s ms vs %s ms (target < %s ms) %s\n' \
    "$NFILES" "$NFILES" "$RUNS" "$snap" "$(calc %.0f "$m * 1000")" "$(calc %.0f "$h * 1000")" "$SNAPSHOT_MAX_MS" \
    "$(verdict "$snap < $SNAPSHOT_MAX_MS")"
