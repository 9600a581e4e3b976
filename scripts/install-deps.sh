#!/usr/bin/env bash
# Install the system packages (apt) and tools (grpcurl) that the project needs.
# Idempotent and fast when everything is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRPCURL_VERSION=v1.9.4

PACKAGES=(
  cmake ninja-build g++ pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libfmt-dev libpq-dev librdkafka-dev catch2
  postgresql postgresql-contrib
  golang-github-gogo-googleapis-dev # google/api + google/rpc .proto files
  grpc-proto # grpc/health/v1/health.proto, for reflection of the health service
  wrk curl ca-certificates
)

# --- apt packages -----------------------------------------------------------
declare -A installed=()
while read -r pkg status; do
  [[ $status == "install ok installed" ]] && installed[$pkg]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for pkg in "${PACKAGES[@]}"; do
  [[ -n ${installed[$pkg]:-} ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- grpcurl (Go module) ----------------------------------------------------
grpcurl="$TOOLS_BIN/grpcurl"
stamp="$TOOLS_BIN/.grpcurl.version"
grpcurl_note="grpcurl $GRPCURL_VERSION present"
if [[ ! -x $grpcurl || "$(cat "$stamp" 2>/dev/null)" != "$GRPCURL_VERSION" ]]; then
  go=/usr/local/go/bin/go
  [[ -x $go ]] || go="$(command -v go)" || die "Go not found (expected $go)"
  log "installing grpcurl $GRPCURL_VERSION (go install)"
  mkdir -p "$TOOLS_BIN"
  GOBIN="$TOOLS_BIN" "$go" install \
    "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" >"$stamp"
  grpcurl_note="grpcurl $GRPCURL_VERSION installed"
fi

log "ok: ${#PACKAGES[@]} apt packages (${#missing[@]} newly installed), $grpcurl_note"
