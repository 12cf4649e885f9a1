#!/usr/bin/env bash
# Builds a CPU-only upstream llama.cpp server image, `hangar-llama-server:<version>`, from the
# llama.cpp tree vendored in the llama-cpp-python sdist on PyPI (no container registry needed).
# Idempotent: the sources, the build and the host tools are cached outside the repository in
#   /var/tmp/hangar-llama-<version>/   (src/, build/, bin/{llama-server,test-llama-archs,llama-gguf-split})
# so a machine compiles once (~10-25 min at -j2); later runs only re-tag the image.
#   LLAMA_CPP_PYTHON_VERSION=x.y.z  sdist to build from (default 0.3.36: llama.cpp of 2026-10-01)
#   HANGAR_LLAMA_CACHE=dir          cache dir (default /var/tmp/hangar-llama-<version>)
#   IMAGE=name:tag                  image to tag (default hangar-llama-server:<version>)
# Prints two lines on stdout: the image name, and the folder with the host tools
# (test-llama-archs writes small random-weight GGUFs; llama-gguf-split splits them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
cache="${HANGAR_LLAMA_CACHE:-/var/tmp/hangar-llama-$version}"
image="${IMAGE:-hangar-llama-server:$version}"
tools=(llama-server test-llama-archs llama-gguf-split)

mkdir -p "$cache/bin"
# Two test runs at once build once: the second waits for the first.
exec 9>"$cache/.lock"
flock 9

have_tools() {
    local t
    for t in "${tools[@]}"; do [ -x "$cache/bin/$t" ] || return 1; done
}

if ! have_tools; then
    if [ ! -f "$cache/src/CMakeLists.txt" ]; then
        rm -rf "$cache/unpack" "$cache/src"
        if [ ! -f "$cache/download/llama_cpp_python-$version.tar.gz" ]; then
            # The sdist only: its build dependencies may come as wheels (pip still prepares
            # its metadata), and nothing of it is built by pip.
            python3 -m pip download --quiet --disable-pip-version-check --no-deps \
                --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$cache/download" >&2
        fi
        mkdir -p "$cache/unpack"
        tar -xzf "$cache"/download/llama_cpp_python-"$version".tar.gz -C "$cache/unpack"
        mv "$cache/unpack/llama_cpp_python-$version/vendor/llama.cpp" "$cache/src"
        rm -rf "$cache/unpack"
    fi
    if ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
        if [ "$(id -u)" != 0 ]; then
            echo "building llama.cpp needs cmake and g++: sudo apt-get install cmake g++" >&2
            exit 1
        fi
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null
    fi
    # Static and CPU-only, so the binary runs FROM scratch; no web UI, so no npm or download.
    cmake -S "$cache/src" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DGGML_STATIC=ON -DCMAKE_EXE_LINKER_FLAGS=-static \
        -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=OFF -DGGML_OPENMP=OFF -DLLAMA_OPENSSL=OFF \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=ON \
        -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF >&2
    cmake --build "$cache/build" -j "${LLAMA_BUILD_JOBS:-2}" \
        --target "${tools[@]}" >&2
    for t in "${tools[@]}"; do
        cp "$(find "$cache/build" -type f -name "$t" -perm -u+x | head -n 1)" "$cache/bin/$t"
    done
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/Dockerfile" "$context/Dockerfile"
cp "$cache/bin/llama-server" "$context/llama-server"
docker build --quiet --tag "$image" "$context" >/dev/null
echo "$image"
echo "$cache/bin"
