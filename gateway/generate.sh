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

# Swagger UI from its npm package, pinned; served next to our initializer.
# UI_FILES are what index.html loads (the gateway's tests check that each
# one is served); fetched again when one is missing.
UI="$GATEWAY/internal/swagger/ui"
UI_FILES=(index.html index.css swagger-ui.css swagger-ui-bundle.js swagger-ui-standalone-preset.js
  favicon-32x32.png favicon-16x16.png)
ui_current() {
  [[ -f $UI/.version && $(<"$UI/.version") == "$SWAGGER_UI_VERSION" ]] || return 1
  for f in "${UI_FILES[@]}"; do [[ -f $UI/$f ]] || return 1; done
}
if ! ui_current; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI_VERSION" >/dev/null && tar -xzf ./*.tgz)
  rm -rf "$UI" && mkdir -p "$UI"
  for f in "${UI_FILES[@]}"; do
    cp "$tmp/package/$f" "$UI/"
  done
  echo "$SWAGGER_UI_VERSION" >"$UI/.version"
  rm -rf "$tmp"
fi
cp "$GEN/openapi/segments.swagger.json" "$GATEWAY/internal/swagger/doc.json"

# uPlot, the web console's charts, from its npm package, pinned: the ES
# module and its stylesheet, served under /console/uplot/.
UPLOT="$GATEWAY/internal/console/uplot"
UPLOT_FILES=(uPlot.esm.js uPlot.min.css)
uplot_current() {
  [[ -f $UPLOT/.version && $(<"$UPLOT/.version") == "$UPLOT_VERSION" ]] || return 1
  for f in "${UPLOT_FILES[@]}"; do [[ -f $UPLOT/$f ]] || return 1; done
}
if ! uplot_current; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null && tar -xzf ./*.tgz)
  rm -rf "$UPLOT" && mkdir -p "$UPLOT"
  for f in "${UPLOT_FILES[@]}"; do
    cp "$tmp/package/dist/$f" "$UPLOT/"
  done
  echo "$UPLOT_VERSION" >"$UPLOT/.version"
  rm -rf "$tmp"
fi
