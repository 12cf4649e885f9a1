#!/usr/bin/env bash
# Catalog on Postgres against SQLite (issue 18), run by hand. See benches/README.md.
#
# Builds `hangar` in release mode and, in one run, serves two fresh data dirs with the same
# seed: one with the catalog in SQLite (the default), one with `--database-url` on a
# throwaway Postgres cluster on this machine (tests/with-postgres.sh starts it; the script
# runs itself under it). Each is seeded through the REST API with BENCH_MODELS (200)
# models, each with a published version, then put under wrk: reads, GET
# /api/v1/models/m-0 (one model with its latest version and aliases) and GET
# /api/v1/models?limit=50 (a page of the list); writes, PATCH /api/v1/models/m-0 (a write
# transaction with its audit event; writers queue on one lock on either database). Each line
# gives Postgres' figure, SQLite's as the reference and the ratio. The issue sets no target,
# so the lines end in `info`; a run with errors or non-2xx answers ends in MISS. Exit status
# 0 whatever the figures, 2 when the benchmark itself could not run.
#
# Environment (all optional): BENCH_MODELS=200, PG_BIN (Postgres' server binaries), and
# those of benches/lib/common.sh: BENCH_WRK_SECS=10, BENCH_WRK_WARMUP=2,
# BENCH_CONNECTIONS=64, BENCH_THREADS=2, BENCH_DIR, BENCH_KEEP=1, HANGAR_BIN, RUST_LOG.

set -euo pipefail

if [[ -z ${HANGAR_TEST_DATABASE_URL:-} && ${1:-} != -h && ${1:-} != --help ]]; then
    # fsync on; commits not waited for, as SQLite's WAL with synchronous=NORMAL does not
    # wait either (both lose at most the last commits to an OS crash, none to a process crash).
    PG_SETTINGS="-c synchronous_commit=off" \
        exec "$(dirname "${BASH_SOURCE[0]}")/../tests/with-postgres.sh" "${BASH_SOURCE[0]}" "$@"
fi

SCRIPT=catalog-pg.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
NMODELS=${BENCH_MODELS:-200}
[[ $NMODELS =~ ^[0-9]+$ ]] && ((NMODELS > 0)) || die "BENCH_MODELS must be a whole number > 0"
RUST_LOG=${RUST_LOG:-warn}

cat >"$WORK/patch.lua" <<'LUA'
wrk.method = "PATCH"
wrk.body = '{"description": "benchmarked"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# seed: NMODELS models m-0…, each with version 1 holding one small file, published.
seed() {
    local i
    for ((i = 0; i < NMODELS; i++)); do
        api POST /api/v1/models 201 "{\"name\": \"m-$i\", \"description\": \"model $i\"}"
        api POST "/api/v1/models/m-$i/versions" 201 '{"version": "1"}'
        printf 'weights of %s\n' "$i" >"$WORK/file"
        local digest
        digest=sha256:$(sha256sum "$WORK/file" | cut -d' ' -f1)
        local code
        code=$(curl -sS -o "$WORK/resp.json" -w '%{http_code}' -X PUT "${AUTH[@]}" --data-binary @"$WORK/file" \
            "$BASE/api/v1/models/m-$i/versions/1/files/model.bin?digest=$digest") || die "upload: curl failed"
        [[ $code == 201 ]] || die "upload to m-$i: HTTP $code: $(cat "$WORK/resp.json")"
        api POST "/api/v1/models/m-$i/versions/1/publish" 200
    done
}

declare -A RPS_OF P99_OF ERR_OF
# measure BACKEND: the three loads against the server at BASE.
measure() {
    local backend=$1
    wrk_run "$backend-model" "$BASE/api/v1/models/m-0" "${AUTH[@]}"
    RPS_OF[$backend-model]=$RPS P99_OF[$backend-model]=$P99_MS ERR_OF[$backend-model]=$ERRORS
    wrk_run "$backend-list" "$BASE/api/v1/models?limit=50" "${AUTH[@]}"
    RPS_OF[$backend-list]=$RPS P99_OF[$backend-list]=$P99_MS ERR_OF[$backend-list]=$ERRORS
    wrk_run "$backend-patch" "$BASE/api/v1/models/m-0" "${AUTH[@]}" -s "$WORK/patch.lua"
    RPS_OF[$backend-patch]=$RPS P99_OF[$backend-patch]=$P99_MS ERR_OF[$backend-patch]=$ERRORS
}

log "== SQLite: seeding $NMODELS models"
start_server "$WORK/sqlite"
seed
measure sqlite
stop_server

log "== Postgres: seeding $NMODELS models"
"$PG_BIN/createdb" --maintenance-db="$HANGAR_TEST_DATABASE_URL/postgres" bench || die "createdb failed"
start_server "$WORK/postgres" --database-url "$HANGAR_TEST_DATABASE_URL/bench"
seed
measure postgres
stop_server

PG_VERSION=$("$PG_BIN/postgres" --version | awk '{ print $3 }')
header "catalog on Postgres" "Postgres $PG_VERSION on this machine (synchronous_commit off), $NMODELS models"
printf '%-40s %14s %14s %8s %s\n' "figure" "postgres" "sqlite (ref)" "ratio" "verdict"
line() {
    local key=$1 label=$2 verdict=info
    ((ERR_OF[postgres-$key] + ERR_OF[sqlite-$key] == 0)) || verdict=MISS
    printf '%-40s %10s r/s %10s r/s %8s %s\n' "$label req/s" "${RPS_OF[postgres-$key]}" "${RPS_OF[sqlite-$key]}" \
        "$(calc '%.2f' "${RPS_OF[postgres-$key]} / ${RPS_OF[sqlite-$key]}")" "$verdict"
    printf '%-40s %11s ms %11s ms %8s %s\n' "$label p99" "${P99_OF[postgres-$key]}" "${P99_OF[sqlite-$key]}" \
        "$(calc '%.2f' "${P99_OF[postgres-$key]} / ${P99_OF[sqlite-$key]}")" "$verdict"
}
line model "GET /api/v1/models/m-0"
line list "GET /api/v1/models?limit=50"
line patch "PATCH /api/v1/models/m-0 (write)"
