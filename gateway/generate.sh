#!/usr/bin/env bash
# Generates the gateway's Go code, the OpenAPI document, the Swagger UI
# assets and the console's chart library (uPlot) from proto/, the pinned npm
# packages and the pinned tools in .tools/bin (installed by
# scripts/install-deps.sh). Nothing generated is committed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

GATEWAY="$ROOT/gateway"
GEN="$GATEWAY/gen"
SWAGGER_UI_VERSION=5.35.0
UPLOT_VERSION=1.6.32
GOOGLEAPIS=/usr/share/gocode/src/github.com/gogo/googleapis
# google/api protos map to the genproto Go package, whatever go_package the
# Debian copy declares.
GOOGLE_API_GO=google.golang.org/genproto/googleapis/api/annotations
M_OPTS="Mgoogle/api/annotations.proto=$GOOGLE_API_GO,Mgoogle/api/http.proto=$GOOGLE_API_GO"

rm -rf "$GEN"
mkdir -p "$GEN/openapi"
protoc -I "$ROOT/proto" -I "$GOOGLEAPIS" \
  --plugin=protoc-gen-go="$TOOLS_BIN/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$TOOLS_BIN/protoc-gen-go-grpc" \
  --plugin=protoc-gen-grpc-gateway="$TOOLS_BIN/protoc-gen-grpc-gateway" \
  --plugin=protoc-gen-openapiv2="$TOOLS_BIN/protoc-gen-openapiv2" \
  --go_out="$GEN" --go_opt=module=segments/gateway/gen,"$M_OPTS" \
  --go-grpc_out="$GEN" --go-grpc_opt=module=segments/gateway/gen,"$M_OPTS" \
  --grpc-gateway_out="$GEN" --grpc-gateway_opt=module=segments/gateway/gen,allow_delete_body=true,"$M_OPTS" \
  --openapiv2_out="$GEN/openapi" \
  --openapiv2_opt="$M_OPTS",allow_merge=true,merge_file_name=segments,allow_delete_body=true,disable_default_errors=true,disable_default_responses=true,openapi_configuration="$GATEWAY/openapi.yaml" \
  segmentation/v1/segment_service.proto segmentation/v1/user_admin_service.proto \
  segmentation/v1/history_service.proto segmentation/v1/rest_error.proto segmentation/v1/rest_stream.proto

# What the generator's options cannot express (openapi-finish.jq says what).
jq --indent 2 -f "$GATEWAY/openapi-finish.jq" "$GEN/openapi/segments.swagger.json" >"$GEN/openapi/segments.json.tmp"
mv "$GEN/openapi/segments.json.tmp" "$GEN/openapi/segments.swagger.json"

# npm_assets PACKAGE VERSION FROM DEST FILE...: the FILEs of the pinned npm
# PACKAGE@VERSION (under FROM in the package) copied into DEST, fetched again
# when the version changed or a file is missing. The gateway's tests check
# that each file a page loads is served.
npm_assets() {
  local package=$1 version=$2 from=$3 dest=$4 f tmp
  shift 4
  if [[ -f $dest/.version && $(<"$dest/.version") == "$version" ]]; then
    local missing=0
    for f in "$@"; do [[ -f $dest/$f ]] || missing=1; done
    ((missing)) || return 0
  fi
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null && tar -xzf ./*.tgz)
  rm -rf "$dest" && mkdir -p "$dest"
  for f in "$@"; do cp "$tmp/package/$from$f" "$dest/"; done
  echo "$version" >"$dest/.version"
  rm -rf "$tmp"
}

# Swagger UI, served next to our initializer.
npm_assets swagger-ui-dist "$SWAGGER_UI_VERSION" "" "$GATEWAY/internal/swagger/ui" index.html index.css \
  swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js favicon-32x32.png favicon-16x16.png
cp "$GEN/openapi/segments.swagger.json" "$GATEWAY/internal/swagger/doc.json"

# uPlot, the web console's charts: the ES module and its stylesheet, served
# under /console/uplot/.
npm_assets uplot "$UPLOT_VERSION" dist/ "$GATEWAY/internal/console/uplot" uPlot.esm.js uPlot.min.css
