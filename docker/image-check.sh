#!/usr/bin/env bash
# Builds the appliance image with nothing pulled and runs it as docker/compose.yaml does.
#
# 1. A base image from Debian's packages: `debootstrap --variant=minbase` + `docker import`,
#    tagged by the hash of what goes in it (suite, variant, packages), so it is made once.
# 2. The image: docker/Dockerfile's `prebuilt` stage over that base, with the release
#    binary built here (`cargo build --release --locked`, in ${CARGO_TARGET_DIR:-target}).
# 3. The compose service, started with the equivalent `docker run` (this machine's Docker
#    has no compose plugin; with one, `docker compose` reads the same settings): the Docker
#    socket mounted with its group added, the data dir at the same path inside and out, a
#    network of its own in the role of `hangar`, the non-root user of the image.
# 4. From the host: sign in, publish a model, deploy the test model server (built by
#    docker/test-model-server/build-image.sh), chat through the gateway; restart the
#    appliance and see the deployment adopted (same container, same start, same restarts).
# Everything it starts is removed at exit, on failure too. Prints the image size.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=bookworm
variant=minbase
packages=ca-certificates
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
image=hangar-appliance-check:latest
run_id="hangar-check-$$"
password=appliance-check-password
deployment="check$$"

step() { echo "-- image-check: $*"; }
fail() { echo "image-check: $*" >&2; exit 1; }

# ---- 1. the base
# `slim`: documentation (but the copyright files), man pages and locales are left out, as in
# debian:*-slim.
base="hangar-base:$(printf '%s\n' "$suite" "$variant" "$packages" slim | sha256sum | cut -c1-16)"
if docker image inspect "$base" >/dev/null 2>&1; then
    step "base $base (cached)"
else
    if ! command -v debootstrap >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || fail "debootstrap is missing; install it (apt-get install debootstrap)"
        apt-get install -y --no-install-recommends debootstrap >/dev/null
    fi
    step "base $base: debootstrap $variant $suite (+$packages) from $mirror"
    rootfs="$(mktemp -d /var/tmp/hangar-rootfs.XXXXXX)"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant="$variant" --include="$packages" "$suite" "$rootfs" "$mirror" >/dev/null
    # The package lists and caches are not part of the content the tag names.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
    find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

# ---- 2. the image
step "release binary"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release --locked --bin hangar
context="$(mktemp -d)"
cp docker/Dockerfile "$context/Dockerfile"
cp "$target_dir/release/hangar" "$context/hangar"
step "image $image (prebuilt over $base)"
docker build --quiet --target prebuilt --build-arg BASE="$base" --tag "$image" "$context" >/dev/null
rm -rf "$context"
size="$(docker image inspect --format '{{.Size}}' "$image")"
echo "image-check: appliance image size: $((size / 1000000)) MB ($size bytes) over $base"
model_image="$(docker/test-model-server/build-image.sh)"

# ---- 3. the appliance, as compose runs it
data="$(mktemp -d /var/tmp/hangar-check-data.XXXXXX)"
cleanup() {
    local status=$?
    if [ "$status" != 0 ]; then
        echo "image-check: failed; the appliance's log:" >&2
        docker logs --tail 50 "$run_id" >&2 2>&1 || true
    fi
    docker rm -f "$run_id" >/dev/null 2>&1 || true
    # The deployment's containers carry the installation's label; ours are named by the
    # deployment, which is unique to this run.
    docker ps -aq --filter "label=hangar.deployment=$deployment" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network rm "$run_id" >/dev/null 2>&1 || true
    rm -rf "$data"
    exit "$status"
}
trap cleanup EXIT
chown 10001:10001 "$data"
docker network create "$run_id" >/dev/null
step "docker run (compose's service) on network $run_id, data dir $data"
docker run -d --name "$run_id" --restart unless-stopped \
    --group-add "$(stat -c %g /var/run/docker.sock)" \
    --publish 127.0.0.1::8080 \
    --env HANGAR_DATA_DIR="$data" --env HANGAR_HOST_DATA_DIR="$data" \
    --env HANGAR_DOCKER_NETWORK="$run_id" --env HANGAR_ADMIN_PASSWORD="$password" \
    --volume "$data:$data" --volume /var/run/docker.sock:/var/run/docker.sock \
    --network "$run_id" "$image" >/dev/null
[ "$(docker exec "$run_id" id -u)" = 10001 ] || fail "the appliance does not run as uid 10001"
base_url="http://$(docker port "$run_id" 8080/tcp | head -n1)"

wait_ready() {
    for _ in $(seq 1 120); do
        curl -fsS "$base_url/readyz" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    fail "the appliance never became ready at $base_url"
}
wait_ready

# ---- 4. through the API from the host
token="$(curl -fsS "$base_url/api/v1/login" -H 'content-type: application/json' \
    -d "{\"user\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
api() { curl -fsS -H "authorization: Bearer $token" "$@"; }
japi() { api -H 'content-type: application/json' "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

weights="$(mktemp)"
head -c 65536 /dev/urandom >"$weights"
digest="sha256:$(sha256sum "$weights" | cut -d' ' -f1)"
japi "$base_url/api/v1/models" -d '{"name":"m"}' >/dev/null
japi "$base_url/api/v1/models/m/versions" -d '{"version":"1"}' >/dev/null
api -X PUT --data-binary "@$weights" -H 'content-type: application/octet-stream' \
    "$base_url/api/v1/models/m/versions/1/files/weights.bin?digest=$digest" >/dev/null
rm -f "$weights"
api -X POST "$base_url/api/v1/models/m/versions/1/publish" >/dev/null
japi -X PUT "$base_url/api/v1/runtimes/test" -d "{\"image\":\"$model_image\",\"port\":8000,\"health_path\":\"/health\",
    \"args\":[\"--port\",\"{port}\",\"--served-model-name\",\"{served_name}\"],\"startup_deadline_secs\":60}" >/dev/null
step "deploy $deployment (m:1 on $model_image) from inside the appliance"
japi "$base_url/api/v1/deployments" -d "{\"name\":\"$deployment\",\"model\":\"m:1\",\"runtime\":\"test\"}" >/dev/null

deployment_json() { api "$base_url/api/v1/deployments/$deployment"; }
for _ in $(seq 1 120); do
    [ "$(deployment_json | field '["state"]')" = running ] && break
    sleep 0.5
done
before="$(deployment_json)"
[ "$(echo "$before" | field '["state"]')" = running ] || fail "never running: $before"

chat() {
    japi "$base_url/v1/chat/completions" \
        -d "{\"model\":\"$deployment\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
}
answer="$(chat)"
echo "$answer" | grep -q "${digest#sha256:}" || fail "the gateway's answer does not name the weights: $answer"
step "chat completion through the gateway answered"

container="$(echo "$before" | field '["container_id"]')"
restarts="$(echo "$before" | field '["restarts"]')"
started="$(docker inspect --format '{{.State.StartedAt}}' "$container")"
step "restart the appliance (deployment container ${container:0:12}, restarts $restarts)"
docker restart "$run_id" >/dev/null
base_url="http://$(docker port "$run_id" 8080/tcp | head -n1)"
wait_ready
sleep 2 # a reconcile pass after start, which would restart a container it did not adopt
after="$(deployment_json)"
[ "$(echo "$after" | field '["state"]')" = running ] || fail "not running after the restart: $after"
[ "$(echo "$after" | field '["container_id"]')" = "$container" ] || fail "a new container: $after"
[ "$(echo "$after" | field '["restarts"]')" = "$restarts" ] || fail "restarts changed: $after"
[ "$(docker inspect --format '{{.State.StartedAt}}' "$container")" = "$started" ] || fail "the container was restarted"
chat | grep -q "${digest#sha256:}" || fail "no answer after the restart"
step "adopted, not restarted; answers after the restart"

api -X DELETE "$base_url/api/v1/deployments/$deployment" >/dev/null
echo "image-check: ok"
