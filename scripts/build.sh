#!/usr/bin/env bash
# Configure and build with CMake + Ninja into build/<kind>.
# Usage: build.sh [release|asan] [--configure-only | TARGET...]   (default: release, every target)
#   --configure-only  only run CMake's configure step (compile_commands.json)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kind=${1:-release}
shift || true
case $kind in
  release) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DSEGMENTS_SANITIZE=ON) ;;
  *) die "usage: $0 [release|asan] [--configure-only | TARGET...]" ;;
esac
configure_only=0
if [[ ${1:-} == --configure-only ]]; then
  configure_only=1
  shift
fi
args+=(-DSEGMENTS_WERROR=ON)
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
targets=()
(($#)) && targets=(--target "$@")

dir="$ROOT/build/$kind"
log "building $kind in $dir${targets[*]:+ (${*})}"
cmake -G Ninja -S "$ROOT" -B "$dir" "${args[@]}"
((configure_only)) && exit 0
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
