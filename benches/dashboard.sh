#!/usr/bin/env bash
# Dashboard page benchmark (issue 6), run by hand. See benches/README.md.
#
# Builds `hangar` in release mode, serves a fresh data dir seeded through the REST API with
# BENCH_MODELS (1,000) models and BENCH_VERSIONS (10,000) versions in all (model 0 has
# BENCH_BIG (1,000) of them), signs in through the real login form, and puts each main page
# under wrk with the session cookie: the models list, a search, the model with many
# versions, a version of it, a version compared with another, deployments, system,
# activity. Reference: GET /healthz under the same load in the same run. Target: p99 < 20 ms
# for every page, no errors or non-2xx. Each line ends PASS or MISS; the exit status is 0
# whatever the figures, 2 when the benchmark itself could not run. Under wrk the server
# answers repeated views from what it kept of each page (until the catalog changes), so
# each line also gives, for information, the first view after a write: BENCH_COLD (50)
# views, each right after a PATCH of the big model, on an otherwise idle server.
#
# Environment (all optional): BENCH_MODELS=1000, BENCH_VERSIONS=10000, BENCH_BIG=1000,
# BENCH_DEPLOYMENTS=10 (rows on the deployments page, created stopped; 0 without Docker),
# BENCH_COLD=50 (views after a write, per page; 0 skips them),
# and those of benches/lib/common.sh: BENCH_WRK_SECS=10, BENCH_WRK_WARMUP=2,
# BENCH_CONNECTIONS=64, BENCH_THREADS=2, BENCH_DIR, BENCH_KEEP=1, HANGAR_BIN, RUST_LOG.

set -euo pipefail

SCRIPT=dashboard.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
NMODELS=${BENCH_MODELS:-1000}
NVERSIONS=${BENCH_VERSIONS:-10000}
BIG=${BENCH_BIG:-1000}
NDEPLOY=${BENCH_DEPLOYMENTS:-10}
NCOLD=${BENCH_COLD:-50}
P99_MAX_MS=20
for n in "$NMODELS" "$NVERSIONS" "$BIG" "$NDEPLOY" "$NCOLD"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
command -v python3 >/dev/null || die "python3 is required"
if ((NDEPLOY > 0)) && ! docker version >/dev/null 2>&1; then
    log "note: Docker does not answer; the deployments page is measured with no rows"
    NDEPLOY=0
fi
export TOKEN

start_server "$WORK/data"
log "== seeding $NMODELS models, $NVERSIONS versions (model 0: $BIG), $NDEPLOY deployments"
t0=$EPOCHREALTIME
read -r BIG_MODEL BIG_COUNT < <(python3 "$LIB/bench.py" seed "$BASE" "$NMODELS" "$NVERSIONS" "$BIG" "$NDEPLOY") ||
    die "seeding failed"
SEED_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
api GET /api/v1/system 200
COUNTS=$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["counts"]; print(c["models"], c["versions"])' \
    "$WORK/resp.json") || die "GET /api/v1/system: no counts in $(cat "$WORK/resp.json")"
[[ $COUNTS == "$NMODELS $NVERSIONS" ]] || die "the seeded catalog has $COUNTS models and versions, not $NMODELS $NVERSIONS"
log "   seeded in $SEED_SECS s"

# Sign in as a person does: the login form, answered with a redirect and the session cookie.
code=$(curl -sS -o /dev/null -D "$WORK/login.headers" -w '%{http_code}' \
    --data-urlencode user=admin --data-urlencode "password=$ADMIN_PASSWORD" --data-urlencode next=/ \
    "$BASE/login") || die "POST /login: curl failed"
[[ $code == 303 ]] || die "POST /login: HTTP $code, expected 303"
SESSION=$(tr -d '\r' <"$WORK/login.headers" | awk -F'[:;] *' 'tolower($1) == "set-cookie" && $2 ~ /^hangar_session=/ { print $2 }')
[[ -n $SESSION ]] || die "POST /login set no hangar_session cookie"
COOKIE=(-H "Cookie: $SESSION")

# page NAME PATH: checks PATH answers 200 with a page (not the sign-in form), then loads it.
LINES=()
page() {
    local name=$1 path=$2 code
    code=$(curl -sS -o "$WORK/page.html" -w '%{http_code}' "${COOKIE[@]}" "$BASE$path") || die "GET $path: curl failed"
    [[ $code == 200 ]] || die "GET $path: HTTP $code, expected 200"
    grep -q 'action="/logout"' "$WORK/page.html" || die "GET $path: not a signed-in page"
    local bytes
    bytes=$(wc -c <"$WORK/page.html")
    wrk_run "$name" "$BASE$path" "${COOKIE[@]}"
    local v note="" cold=""
    v=$(verdict "$P99_MS < $P99_MAX_MS && $ERRORS == 0")
    ((ERRORS == 0)) || note=" ($ERRORS errors or non-2xx)"
    if ((NCOLD > 0)); then
        local median max
        read -r median max < <(python3 "$LIB/bench.py" cold "$BASE" "$SESSION" "$BIG_MODEL" "$path" "$NCOLD") ||
            die "GET $path after a write failed"
        cold="; first view after a write: median $median ms, max $max ms"
    fi
    LINES+=("$(printf '%-11s GET %s (%s KiB): %s req/s, p50 %s ms, p99 %s ms; ratio p99 %sx, req/s %sx of /healthz%s (target p99 < %s ms) %s%s' \
        "$name" "$path" "$(calc %.0f "$bytes / 1024")" "$RPS" "$P50_MS" "$P99_MS" \
        "$(calc %.2f "$P99_MS / $REF_P99")" "$(calc %.2f "$RPS / $REF_RPS")" "$cold" "$P99_MAX_MS" "$v" "$note")")
}

log "== pages: wrk -t$WRK_THREADS -c$WRK_CONNS -d${WRK_SECS}s (after ${WRK_WARMUP}s warm-up), signed in as admin"
wrk_run healthz "$BASE/healthz"
REF_RPS=$RPS REF_P50=$P50_MS REF_P99=$P99_MS REF_ERR=$ERRORS
page models /
page search "/?q=chat"
page model "/models/$BIG_MODEL"
page version "/models/$BIG_MODEL/versions/$BIG_COUNT"
page diff "/models/$BIG_MODEL/versions/$BIG_COUNT?against=1"
page deployments /deployments
page system /system
page activity /activity
stop_server

header dashboard "$NMODELS models, $NVERSIONS versions ($BIG_MODEL has $BIG_COUNT), $NDEPLOY deployments; seeded in $SEED_SECS s"
printf '%-11s GET /healthz: %s req/s, p50 %s ms, p99 %s ms (the reference: same server, same load, no page)%s\n' \
    healthz "$REF_RPS" "$REF_P50" "$REF_P99" "$( ((REF_ERR == 0)) || echo " ($REF_ERR errors or non-2xx)")"
printf '%s\n' "${LINES[@]}"
