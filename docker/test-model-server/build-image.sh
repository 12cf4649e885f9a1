#!/usr/bin/env bash
# Builds the `hangar-test-model:latest` image (FROM scratch + one static binary).
# Idempotent: cargo rebuilds nothing when the sources are unchanged, and docker's layer
# cache then reuses the image (the COPY layer is keyed by the binary's content).
#   IMAGE=name:tag          image to tag (default hangar-test-model:latest)
#   CARGO_TARGET_DIR=dir    cargo's target dir (default: target/ beside this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${IMAGE:-hangar-test-model:latest}"
target="$(rustc -vV | sed -n 's/host: //p')"
target_dir="${CARGO_TARGET_DIR:-$here/target}"

# An explicit --target keeps RUSTFLAGS away from build scripts and gives a binary that
# needs no loader or libc in the image.
RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$target_dir" \
    cargo build --quiet --release --locked --manifest-path "$here/Cargo.toml" --target "$target"
binary="$target_dir/$target/release/hangar-test-model"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/Dockerfile" "$context/Dockerfile"
cp "$binary" "$context/hangar-test-model"

docker build --quiet --tag "$image" "$context" >/dev/null
echo "$image"
