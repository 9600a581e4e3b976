#!/usr/bin/env bash
# Generates the mock's Go code from proto/userservice and proto/usermock into
# gen/, with the pinned plugins in .tools/bin (installed by
# scripts/install-deps.sh). Nothing generated is committed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

GEN="$ROOT/usermock/gen"
for tool in protoc-gen-go protoc-gen-go-grpc; do
  [[ -x $TOOLS_BIN/$tool ]] || die "$TOOLS_BIN/$tool is missing: run scripts/install-deps.sh"
done

rm -rf "$GEN"
mkdir -p "$GEN"
protoc -I "$ROOT/proto" \
  --plugin=protoc-gen-go="$TOOLS_BIN/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$TOOLS_BIN/protoc-gen-go-grpc" \
  --go_out="$GEN" --go_opt=module=segments/usermock/gen \
  --go-grpc_out="$GEN" --go-grpc_opt=module=segments/usermock/gen \
  userservice/v1/user_service.proto usermock/v1/user_mock_admin.proto
