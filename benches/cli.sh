#!/usr/bin/env bash
# Benchmark of the client commands, run by hand (not in CI). See benches/README.md.
#
# Builds `hangar` in release mode and measures, on a directory holding one large file of
# random bytes, each next to a reference taken in the same run on the same machine:
#   1. first `hangar push` to an empty server  vs  openssl dgst -sha256 + curl -T of the
#      file (to another empty server)
#   2. the same push again, unchanged            vs  openssl dgst -sha256 alone
#   3. `hangar pull` into an empty directory     vs  curl -o of the same file
#   4. the client's peak RSS in each of them (GNU time's maximum resident set size)
# Each figure is checked against its target and printed PASS or MISS. The exit status is 0
# whatever the figures; it is non-zero only when the benchmark itself could not run.
#
# Environment (all optional):
#   BENCH_SIZE_MIB=2048    size of the random file
#   BENCH_RUNS=3           rounds; the median is reported (the worst for RSS)
#   BENCH_DIR=DIR          parent of the scratch dir (default /tmp, or the cargo target dir
#                          when /tmp is a tmpfs: the disk is what should be measured)
#   BENCH_KEEP=1           keep the scratch dir (input file, data dirs, logs)
#   TOKEN=hgr_...          the admin token the servers are started with and every request
#                          sends (default: a fixed one; see benches/lib/common.sh)
#   CARGO_TARGET_DIR       where cargo builds (default target/ in the repository)
#   HANGAR_BIN=PATH        benchmark this binary instead of building one
#   RUST_LOG               passed to the server (its default is info: one line a request)

set -euo pipefail

SCRIPT=cli.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
SIZE_MIB=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-3}

# Targets, from issue 7.
PUSH_MAX_RATIO=1.2   # first push <= 1.2x openssl dgst + curl -T
REPUSH_MAX_RATIO=1.2 # unchanged push <= 1.2x openssl dgst
PULL_MAX_RATIO=1.2   # pull <= 1.2x curl -o
RSS_MAX_MIB=64       # client peak RSS

for n in "$SIZE_MIB" "$RUNS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((SIZE_MIB > 0 && RUNS > 0)) || die "BENCH_SIZE_MIB and BENCH_RUNS must be > 0"
for tool in openssl head sync cmp python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time, Debian package 'time') is required for the RSS figure"

SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))
# The input, one blob per server (two at once at most), the curl and the pull copies.
need_kib=$((SIZE_BYTES * 5 / 1024 + 1024 * 1024))
need_free_kib "$need_kib"




# client NAME ARGS...: runs `hangar ARGS` against the server under GNU time; its stdout
# goes to $WORK/NAME.json, and RSS_KIB is set to its peak resident set.
client() {
    local name=$1
    shift
    HANGAR_URL=$BASE HANGAR_TOKEN=$TOKEN /usr/bin/time -f '%M' -o "$WORK/$name.rss" \
        "$BIN" "$@" --json >"$WORK/$name.json" 2>>"$WORK/client.log" ||
        die "hangar $*: failed; see $WORK/client.log (BENCH_KEEP=1 keeps it): $(tail -n 3 "$WORK/client.log")"
    RSS_KIB=$(tail -n 1 "$WORK/$name.rss")
}

# json_field NAME KEY: a top-level number or string of $WORK/NAME.json.
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/$1.json" "$2"; }

# --- input -----------------------------------------------------------------------------

SRC=$WORK/src
INPUT=$SRC/model.bin
mkdir -p "$SRC"
log "== scratch dir $WORK ($WORK_FS on $(df --output=source "$WORK" | tail -n 1))"
log "== writing $SIZE_MIB MiB of random bytes to $INPUT"
head -c "${SIZE_MIB}M" /dev/urandom >"$INPUT"
sync "$INPUT"
HEX=$(openssl dgst -sha256 -r "$INPUT" | awk '{ print $1 }')
[[ $HEX =~ ^[0-9a-f]{64}$ ]] || die "cannot hash $INPUT"
BLOB_REL=blobs/sha256/${HEX:0:2}/$HEX
FILE_URL=/api/v1/models/bench/versions/1/files/model.bin

# --- rounds ----------------------------------------------------------------------------

PUSH=() DGST=() CURL_UP=() REPUSH=() DGST2=() PULL=() CURL_DOWN=()
RSS_PUSH=() RSS_REPUSH=() RSS_PULL=()
for ((r = 1; r <= RUNS; r++)); do
    log "== round $r of $RUNS"

    # Reference 1: openssl dgst, then curl -T with that digest, to an empty server.
    start_server "$WORK/ref-$r"
    api POST /api/v1/models 201 '{"name":"bench"}'
    api POST /api/v1/models/bench/versions 201 '{"version":"1"}'
    settle "$INPUT"
    elapsed t_dgst openssl dgst -sha256 -r -out "$WORK/dgst.txt" "$INPUT"
    [[ $(awk '{ print $1 }' "$WORK/dgst.txt") == "$HEX" ]] || die "openssl gave another digest"
    elapsed t_up curl -sS -o "$WORK/resp.json" -w '%{http_code}' "${AUTH[@]}" -T "$INPUT" \
        "$BASE$FILE_URL?digest=sha256:$HEX" >"$WORK/code.txt" || die "upload: curl failed"
    [[ $(cat "$WORK/code.txt") == 201 ]] || die "upload: HTTP $(cat "$WORK/code.txt"): $(cat "$WORK/resp.json")"
    DGST+=("$t_dgst") CURL_UP+=("$t_up")
    stop_server
    rm -rf "$WORK/ref-$r"

    # 1. The first push, to another empty server.
    DATA=$WORK/data-$r
    start_server "$DATA"
    settle "$INPUT"
    elapsed t client push push "$SRC" --model bench
    [[ $(json_field push uploaded_bytes) == "$SIZE_BYTES" ]] || die "push: $(cat "$WORK/push.json")"
    [[ -f $DATA/$BLOB_REL ]] || die "push: no blob at $DATA/$BLOB_REL"
    PUSH+=("$t") RSS_PUSH+=("$(calc %.1f "$RSS_KIB / 1024")")

    # 2. The same directory again (a new version, nothing to send) vs openssl dgst alone.
    settle "$INPUT"
    elapsed t_dgst openssl dgst -sha256 -r -out "$WORK/dgst.txt" "$INPUT"
    DGST2+=("$t_dgst")
    settle "$INPUT"
    elapsed t client repush push "$SRC" --model bench
    [[ $(json_field repush uploaded_bytes) == 0 && $(json_field repush version) == 2 ]] ||
        die "unchanged push: $(cat "$WORK/repush.json")"
    REPUSH+=("$t") RSS_REPUSH+=("$(calc %.1f "$RSS_KIB / 1024")")

    # 3. curl -o of the file vs hangar pull, each into a new place on the same disk.
    settle "$DATA/$BLOB_REL"
    elapsed t curl -sS -o "$WORK/curl.bin" -w '%{http_code} %{size_download}' "${AUTH[@]}" \
        "$BASE$FILE_URL" >"$WORK/code.txt" || die "download: curl failed"
    [[ $(cat "$WORK/code.txt") == "200 $SIZE_BYTES" ]] || die "download: got '$(cat "$WORK/code.txt")'"
    CURL_DOWN+=("$t")
    rm -f "$WORK/curl.bin"
    settle "$DATA/$BLOB_REL"
    elapsed t client pull pull bench:1 "$WORK/pulled"
    [[ $(json_field pull downloaded_bytes) == "$SIZE_BYTES" ]] || die "pull: $(cat "$WORK/pull.json")"
    PULL+=("$t") RSS_PULL+=("$(calc %.1f "$RSS_KIB / 1024")")
    cmp -s "$INPUT" "$WORK/pulled/model.bin" || die "pull: the pulled file differs from the input"
    rm -rf "$WORK/pulled"

    log "   push ${PUSH[-1]} s (dgst ${DGST[-1]} s + curl -T ${CURL_UP[-1]} s);" \
        "unchanged push ${REPUSH[-1]} s (dgst ${DGST2[-1]} s); pull ${PULL[-1]} s (curl -o ${CURL_DOWN[-1]} s);" \
        "rss ${RSS_PUSH[-1]} / ${RSS_REPUSH[-1]} / ${RSS_PULL[-1]} MiB"
    stop_server
    rm -rf "$DATA"
done

# --- results ---------------------------------------------------------------------------

push=$(median "${PUSH[@]}") dg=$(median "${DGST[@]}") up=$(median "${CURL_UP[@]}")
ref1=$(calc %.3f "$dg + $up")
repush=$(median "${REPUSH[@]}") dg2=$(median "${DGST2[@]}")
pull=$(median "${PULL[@]}") down=$(median "${CURL_DOWN[@]}")
push_ratio=$(calc %.2f "$push / $ref1")
repush_ratio=$(calc %.2f "$repush / $dg2")
pull_ratio=$(calc %.2f "$pull / $down")
rss_push=$(maximum "${RSS_PUSH[@]}") rss_repush=$(maximum "${RSS_REPUSH[@]}") rss_pull=$(maximum "${RSS_PULL[@]}")
rss=$(maximum "$rss_push" "$rss_repush" "$rss_pull")

header cli "$SIZE_MIB MiB file, median of $RUNS rounds, files in the page cache before each step"
printf 'first push %s MiB: %s s; openssl dgst + curl -T: %s s (%s + %s); ratio %sx (target <= %sx) %s\n' \
    "$SIZE_MIB" "$push" "$ref1" "$dg" "$up" "$push_ratio" "$PUSH_MAX_RATIO" "$(verdict "$push_ratio <= $PUSH_MAX_RATIO")"
printf 'unchanged push: %s s; openssl dgst: %s s; ratio %sx (target <= %sx) %s\n' \
    "$repush" "$dg2" "$repush_ratio" "$REPUSH_MAX_RATIO" "$(verdict "$repush_ratio <= $REPUSH_MAX_RATIO")"
printf 'pull %s MiB: %s s (%s MiB/s); curl -o: %s s (%s MiB/s); ratio %sx (target <= %sx) %s\n' \
    "$SIZE_MIB" "$pull" "$(calc %.0f "$SIZE_MIB / $pull")" "$down" "$(calc %.0f "$SIZE_MIB / $down")" \
    "$pull_ratio" "$PULL_MAX_RATIO" "$(verdict "$pull_ratio <= $PULL_MAX_RATIO")"
printf 'client peak RSS: push %s MiB, unchanged push %s MiB, pull %s MiB (target <= %s MiB) %s\n' \
    "$rss_push" "$rss_repush" "$rss_pull" "$RSS_MAX_MIB" "$(verdict "$rss <= $RSS_MAX_MIB")"
