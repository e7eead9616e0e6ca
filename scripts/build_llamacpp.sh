#!/usr/bin/env bash
# Build llama.cpp's `llama-server` for the sampling benchmark's batched peer
# (scripts/bench_student.py --llamacpp-server). Bench-only: tripost itself
# never needs it. The source comes from the PyPI sdist of llama-cpp-python,
# which vendors a whole llama.cpp tree, so the build needs no other network
# than the package registry. Needs cmake and a C++ compiler; ~10 min on 2
# cores. Prints the binary's path on its last line.
#
#   bash scripts/build_llamacpp.sh [VERSION]     # default: 0.3.36
set -euo pipefail
version="${1:-0.3.36}"
cache="${TRIPOST_LLAMACPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tripost/llamacpp}/$version"
bin="$cache/build/bin/llama-server"
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
command -v cmake >/dev/null || { echo "build_llamacpp: cmake is not installed (apt-get install cmake g++)" >&2; exit 2; }
mkdir -p "$cache"
if [[ ! -d "$cache/src" ]]; then
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$tmp"
  tar xzf "$tmp"/llama_cpp_python-"$version".tar.gz -C "$tmp"
  mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp" "$cache/src"
  rm -rf "$tmp"
fi
# GGML_NATIVE: build for this CPU (AVX2 / AVX512-BF16 / AMX as it has them),
# as a user compiling llama.cpp here would.
cmake -S "$cache/src" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$cache/build" --target llama-server -j "$(nproc)" >&2
echo "$bin"
