#!/usr/bin/env bash
# Cross-builds Hangar for aarch64 and runs it under qemu-user: serve, sign in, create a model
# and version, upload with `?digest=`, publish, download and compare the bytes.
#
# The linker and the C compiler (ring's and SQLite's bundled C code) are Debian's
# gcc-aarch64-linux-gnu; the target dir is outside the clone (HANGAR_AARCH64_TARGET_DIR,
# default /var/tmp/hangar-target-aarch64) so that later runs on this machine are incremental.
# Missing tools are installed with rustup and apt (as root), else it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=aarch64-unknown-linux-gnu
target_dir="${HANGAR_AARCH64_TARGET_DIR:-/var/tmp/hangar-target-aarch64}"
password=arm64-check-password

step() { echo "-- arm64-check: $*"; }
fail() { echo "arm64-check: $*" >&2; exit 1; }

rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "install ${missing[*]} (apt-get install)"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi

step "cargo build --release --target $triple (target dir $target_dir)"
CARGO_TARGET_DIR="$target_dir" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    cargo build --quiet --release --locked --target "$triple" --bin hangar
binary="$target_dir/$triple/release/hangar"
aarch64-linux-gnu-readelf -h "$binary" | grep -q AArch64 || fail "$binary is not an aarch64 binary"
arm() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$binary" "$@"; }
step "$(arm --version)"

work="$(mktemp -d /var/tmp/hangar-arm64-check.XXXXXX)"
server=""
cleanup() {
    local status=$?
    # The server ends by our signal: its status (143) is not this script's.
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$work/serve.log" ]; then
        tail -n 30 "$work/serve.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base_url="http://127.0.0.1:$port"
HANGAR_ADMIN_PASSWORD="$password" arm serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 240); do
    curl -fsS "$base_url/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || fail "serve exited"
    sleep 0.5
done
curl -fsS "$base_url/readyz" >/dev/null || fail "never ready at $base_url"
step "serving under qemu at $base_url"

token="$(curl -fsS "$base_url/api/v1/login" -H 'content-type: application/json' \
    -d "{\"user\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
api() { curl -fsS -H "authorization: Bearer $token" "$@"; }

head -c 3000000 /dev/urandom >"$work/weights.bin"
digest="sha256:$(sha256sum "$work/weights.bin" | cut -d' ' -f1)"
files="$base_url/api/v1/models/m/versions/1/files/weights.bin"
api -H 'content-type: application/json' "$base_url/api/v1/models" -d '{"name":"m"}' >/dev/null
api -H 'content-type: application/json' "$base_url/api/v1/models/m/versions" -d '{"version":"1"}' >/dev/null
api -X PUT --data-binary "@$work/weights.bin" -H 'content-type: application/octet-stream' "$files?digest=$digest" >/dev/null
api -X POST "$base_url/api/v1/models/m/versions/1/publish" >/dev/null
api -o "$work/downloaded.bin" "$files"
cmp "$work/weights.bin" "$work/downloaded.bin" || fail "the downloaded bytes differ"
step "uploaded, published and downloaded 3 MB ($digest): same bytes"
echo "arm64-check: ok"
