#!/usr/bin/env bash
# Configure and build with CMake + Ninja into build/<kind>.
# Usage: build.sh [release|asan] [--configure-only]   (default: release)
#   --configure-only  only run CMake's configure step (compile_commands.json)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kind=${1:-release}
configure_only=0
case $kind in
  release) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug -DSEGMENTS_SANITIZE=ON) ;;
  *) die "usage: $0 [release|asan] [--configure-only]" ;;
esac
case ${2:-} in
  '') ;;
  --configure-only) configure_only=1 ;;
  *) die "usage: $0 [release|asan] [--configure-only]" ;;
esac
args+=(-DSEGMENTS_WERROR=ON)
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

dir="$ROOT/build/$kind"
log "building $kind in $dir"
cmake -G Ninja -S "$ROOT" -B "$dir" "${args[@]}"
((configure_only)) && exit 0
cmake --build "$dir" -j "$(nproc)"
