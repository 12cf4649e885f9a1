#!/usr/bin/env bash
# Benchmark of blobs in an S3-compatible bucket, run by hand (not in CI). See benches/README.md.
#
# Starts s3s-fs (the S3 tests' server, installed as .ci/run installs it) on a free port with
# its root in the scratch dir, writes one file of BENCH_SIZE_MIB random bytes, and in each
# round times, on the same disk:
#   1. the S3 server's own PUT and GET of the file (curl --aws-sigv4, one request each):
#      the reference
#   2. the upload (curl -T …/files/model.bin?digest=…, until the 201) and the download
#      (curl -o /dev/null) through a Hangar whose blob_store is s3://bench/hangar on it
#   3. the same through a Hangar on the local store
# and reports each against the reference, every download checked identical. The exit
# status is 0 whatever the figures; it is non-zero only when the benchmark could not run.
#
# Environment (all optional):
#   BENCH_SIZE_MIB=2048    the file's size
#   BENCH_RUNS=3           rounds; the median is reported
#   S3S_FS=PATH            the s3s-fs binary (default: where .ci/run installs it)
#   BENCH_DIR, BENCH_KEEP, TOKEN, CARGO_TARGET_DIR, HANGAR_BIN, RUST_LOG: as for cli.sh

set -euo pipefail

SCRIPT=s3.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
SIZE_MIB=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-3}
for n in "$SIZE_MIB" "$RUNS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((SIZE_MIB > 0 && RUNS > 0)) || die "BENCH_SIZE_MIB and BENCH_RUNS must be > 0"

VERSION=$(sed -n 's/^pub const S3S_FS_VERSION: &str = "\(.*\)";$/\1/p' "$ROOT/tests/api/machine.rs")
S3S_FS=${S3S_FS:-/var/tmp/s3-server-s3s-fs-$VERSION/bin/s3s-fs}
[[ -x $S3S_FS ]] || die "no s3s-fs at $S3S_FS: run .ci/run once, or set S3S_FS"
curl --help all 2>/dev/null | grep -q -- --aws-sigv4 || die "curl with --aws-sigv4 (7.75 or later) is required"

SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))
# The input, the bucket's copy and its staging object, and a local data dir's blob.
need_free_kib $((SIZE_BYTES * 4 / 1024 + 1024 * 1024))

ACCESS_KEY=bench-access
SECRET_KEY=bench-secret-0123456789
S3_ROOT=$WORK/s3
mkdir -p "$S3_ROOT/bench"
S3_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" "$S3_ROOT" \
    >"$WORK/s3s-fs.log" 2>&1 &
S3_PID=$!
on_cleanup() { kill "$S3_PID" 2>/dev/null || true; }
S3_URL=http://127.0.0.1:$S3_PORT
for ((i = 0; i < 200; i++)); do
    curl -s -o /dev/null "$S3_URL" && break
    sleep 0.1
done
SIGV4=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

SRC=$WORK/model.bin
log "== scratch dir $WORK ($WORK_FS); writing $SIZE_MIB MiB of random bytes"
head -c "${SIZE_MIB}M" /dev/urandom >"$SRC"
DIGEST=sha256:$(sha256sum "$SRC" | cut -d' ' -f1)
sync

s3_put() { curl -sf "${SIGV4[@]}" -T "$SRC" "$S3_URL/bench/reference/model.bin" -o /dev/null; }
s3_get() { curl -sf "${SIGV4[@]}" "$S3_URL/bench/reference/model.bin" -o "$WORK/got.bin"; }
hangar_put() {
    api POST /api/v1/models 201 '{"name": "bench"}'
    api POST /api/v1/models/bench/versions 201 '{"version": "1"}'
    curl -sf "${AUTH[@]}" -T "$SRC" "$BASE/api/v1/models/bench/versions/1/files/model.bin?digest=$DIGEST" -o /dev/null
}
hangar_get() { curl -sf "${AUTH[@]}" "$BASE/api/v1/models/bench/versions/1/files/model.bin" -o "$WORK/got.bin"; }
same() { cmp -s "$SRC" "$WORK/got.bin" || die "$1: the download differs from the file"; }

declare -a REF_PUT REF_GET S3_PUT S3_GET LOCAL_PUT LOCAL_GET
for ((round = 1; round <= RUNS; round++)); do
    settle "$SRC"
    elapsed t s3_put || die "the S3 server's PUT failed"
    REF_PUT+=("$t")
    settle "$SRC"
    elapsed t s3_get || die "the S3 server's GET failed"
    same "S3 GET"
    REF_GET+=("$t")
    rm -f "$WORK/got.bin"

    # A fresh prefix per round: the upload must not find its blob there already.
    rm -rf "$S3_ROOT/bench/hangar"
    export AWS_ENDPOINT_URL=$S3_URL AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY \
        AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
    start_server "$WORK/data-s3-$round" --blob-store s3://bench/hangar
    unset AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ALLOW_HTTP
    settle "$SRC"
    elapsed t hangar_put || die "the upload through Hangar on S3 failed; see $WORK/server.log"
    S3_PUT+=("$t")
    settle "$SRC"
    elapsed t hangar_get || die "the download through Hangar on S3 failed"
    same "Hangar on S3"
    S3_GET+=("$t")
    stop_server
    rm -rf "$WORK/data-s3-$round" "$WORK/got.bin"

    start_server "$WORK/data-local-$round"
    settle "$SRC"
    elapsed t hangar_put || die "the upload through Hangar on the local store failed"
    LOCAL_PUT+=("$t")
    settle "$SRC"
    elapsed t hangar_get || die "the download through Hangar on the local store failed"
    same "Hangar local"
    LOCAL_GET+=("$t")
    stop_server
    rm -rf "$WORK/data-local-$round" "$WORK/got.bin"
    log "round $round: S3 PUT ${REF_PUT[-1]} s GET ${REF_GET[-1]} s | Hangar/S3 up ${S3_PUT[-1]} s down ${S3_GET[-1]} s | Hangar/local up ${LOCAL_PUT[-1]} s down ${LOCAL_GET[-1]} s"
done

header "S3 blob store" "s3s-fs $VERSION on the same disk, one request at a time"
mibs() { calc "%.0f" "$SIZE_MIB / $1"; }
ref_put=$(median "${REF_PUT[@]}")
ref_get=$(median "${REF_GET[@]}")
printf '%-36s %10s %10s %14s\n' "s3.sh: $SIZE_MIB MiB, median of $RUNS" "seconds" "MiB/s" "x reference"
row() { printf '%-36s %10s %10s %14s\n' "$1" "$2" "$(mibs "$2")" "$(calc "%.2f" "$2 / $3")"; }
row "upload: S3 server's own PUT" "$ref_put" "$ref_put"
row "upload: Hangar on S3" "$(median "${S3_PUT[@]}")" "$ref_put"
row "upload: Hangar on the local store" "$(median "${LOCAL_PUT[@]}")" "$ref_put"
row "download: S3 server's own GET" "$ref_get" "$ref_get"
row "download: Hangar on S3" "$(median "${S3_GET[@]}")" "$ref_get"
row "download: Hangar on the local store" "$(median "${LOCAL_GET[@]}")" "$ref_get"
