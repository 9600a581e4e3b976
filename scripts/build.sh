#!/usr/bin/env bash
# Configure and build with CMake + Ninja into build/<kind>.
# Usage: build.sh [release|asan] [TARGET...]   (default: release, every target)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kind=${1:-release}
shift || true
case $kind in
  release) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DSEGMENTS_SANITIZE=ON) ;;
  *) die "usage: $0 [release|asan] [TARGET...]" ;;
esac
args+=(-DSEGMENTS_WERROR=ON)
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
targets=()
(($#)) && targets=(--target "$@")

dir="$ROOT/build/$kind"
log "building $kind in $dir${targets[*]:+ (${*})}"
cmake -G Ninja -S "$ROOT" -B "$dir" "${args[@]}"
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
