#!/usr/bin/env bash
# Install the system packages (apt) and tools (grpcurl, protoc plugins) that
# the project needs to build and run; with --tests, also what only the tests,
# the lint gate and the benches use; with --prometheus, also Prometheus (what
# SEGMENTS_PROMETHEUS=1 scripts/up.sh runs); with --cluster, also what
# scripts/cluster.sh runs (--tests includes it: the fault drill is a test).
# Idempotent and fast when everything is already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRPCURL_VERSION=v1.9.4
PROTOBUF_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GRPC_GATEWAY_VERSION=v2.33.0

PACKAGES=(
  cmake ninja-build g++ pkg-config ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libfmt-dev libpq-dev librdkafka-dev catch2
  libcjose-dev libjansson-dev # auth/: JWT (JWS) verification, JWKS keys, and the claims' JSON
  postgresql postgresql-contrib
  golang-github-gogo-googleapis-dev # google/api + google/rpc .proto files
  grpc-proto # grpc/health/v1/health.proto, for reflection of the health service
  curl ca-certificates jq
  chromium # tests/e2e/console.sh: the web console in a real browser (puppeteer-core drives it)
  maven openjdk-17-jre-headless # scripts/kafka.sh: Kafka's jars via Maven, Java 17+
)
TEST_PACKAGES=(
  wrk # bench/run_http_bench.sh
  docker-compose # compose/check.sh validates compose/compose.yaml (no engine needed)
  clang-format clang-tidy # scripts/lint.sh; Debian 12's are version 14, which the tree is formatted with
  python3-venv # tests/e2e/schemathesis.sh: schemathesis from PyPI in a virtualenv
  prometheus # promtool (tests/ops: alert rules and their unit tests; tests/e2e/metrics.sh: check metrics) and a real Prometheus (2.42)
)
CLUSTER_PACKAGES=(
  haproxy # the load balancer in front of the gateways and the servers
  patroni etcd-server # PostgreSQL failover, and the store of its leader key
)
case ${1:-} in
  '') ;;
  --tests) PACKAGES+=("${TEST_PACKAGES[@]}" "${CLUSTER_PACKAGES[@]}") ;;
  --prometheus) PACKAGES+=(prometheus) ;;
  --cluster) PACKAGES+=("${CLUSTER_PACKAGES[@]}") ;;
  *) die "usage: $0 [--tests|--prometheus|--cluster]" ;;
esac

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

# --- Go tools (Go module proxy), pinned --------------------------------------
# Each is installed into .tools/bin once per version (a stamp file remembers).
GO_TOOLS=(
  "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  "protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOBUF_GO_VERSION"
  "protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  "protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$GRPC_GATEWAY_VERSION"
  "protoc-gen-openapiv2 github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$GRPC_GATEWAY_VERSION"
)
go=/usr/local/go/bin/go
[[ -x $go ]] || go="$(command -v go)" || die "Go not found (expected $go)"
fresh_tools=0
for entry in "${GO_TOOLS[@]}"; do
  name=${entry%% *} module=${entry#* }
  stamp="$TOOLS_BIN/.$name.version"
  if [[ ! -x $TOOLS_BIN/$name || "$(cat "$stamp" 2>/dev/null)" != "$module" ]]; then
    log "installing $module (go install)"
    mkdir -p "$TOOLS_BIN"
    GOBIN="$TOOLS_BIN" "$go" install "$module"
    echo "$module" >"$stamp"
    fresh_tools=$((fresh_tools + 1))
  fi
done

log "ok: ${#PACKAGES[@]} apt packages (${#missing[@]} newly installed), ${#GO_TOOLS[@]} Go tools ($fresh_tools newly installed)"
