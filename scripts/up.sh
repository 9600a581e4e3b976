#!/usr/bin/env bash
# Bring the service up locally: deps, release build, PostgreSQL, server, REST
# gateway. Env: SEGMENTS_GRPC_PORT (default 50051), SEGMENTS_HTTP_PORT
# (default 8080). Stop everything with scripts/down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRPC_ADDR="127.0.0.1:${SEGMENTS_GRPC_PORT:-50051}"
SERVER_BIN="$ROOT/build/release/server/segments-server"
SERVER_PID="$STATE/server.pid"
SERVER_LOG="$STATE/server.log"
GRPCURL="$TOOLS_BIN/grpcurl"
HTTP_ADDR="127.0.0.1:${SEGMENTS_HTTP_PORT:-8080}"
GATEWAY_BIN="$ROOT/build/release/gateway/segments-gateway"
GATEWAY_PID="$STATE/gateway.pid"
GATEWAY_LOG="$STATE/gateway.log"

# Each component is a start_<name> function; add new ones (gateway, kafka)
# here and to COMPONENTS, plus a matching stop_<name> in down.sh.
COMPONENTS=(db server gateway)

start_db() {
  "$ROOT/scripts/pg.sh" start
  DATABASE_URL="$("$ROOT/scripts/pg.sh" url segments)"
}

# A report link key made once per checkout and kept in .state, so links stay
# valid across restarts. Deployments set SEGMENTS_REPORT_LINK_KEYS themselves.
report_link_keys() {
  local file="$STATE/report-link-keys"
  if [[ ! -s $file ]]; then
    (umask 077 && echo "local-$(date -u +%Y%m%d):$(head -c 48 /dev/urandom | base64 -w0)" >"$file")
  fi
  cat "$file"
}

start_server() {
  bg_stop server "$SERVER_PID" "$SERVER_BIN"
  if port_in_use "${GRPC_ADDR##*:}"; then
    die "$GRPC_ADDR is already in use; set SEGMENTS_GRPC_PORT to another port"
  fi
  log "starting segments-server on $GRPC_ADDR"
  SEGMENTS_REPORT_LINK_KEYS="${SEGMENTS_REPORT_LINK_KEYS:-$(report_link_keys)}" \
    bg_start "$SERVER_PID" "$SERVER_LOG" "$SERVER_BIN" \
    --grpc-listen="$GRPC_ADDR" --database-url="$DATABASE_URL"
  wait_serving
}

# Wait up to 30 s for the gRPC health check to report SERVING.
wait_serving() {
  local deadline=$((SECONDS + 30)) out=""
  while ((SECONDS < deadline)); do
    if ! pid_alive "$BG_PID"; then
      tail -n 30 "$SERVER_LOG" >&2 || true
      die "segments-server exited during startup (log: $SERVER_LOG)"
    fi
    out="$("$GRPCURL" -plaintext -max-time 2 "$GRPC_ADDR" grpc.health.v1.Health/Check 2>&1 || true)"
    [[ $out == *'"SERVING"'* ]] && return 0
    sleep 0.5
  done
  tail -n 30 "$SERVER_LOG" >&2 || true
  bg_stop server "$SERVER_PID" "$SERVER_BIN" 5
  die "segments-server not SERVING after 30 s; last health check: $out"
}

start_gateway() {
  bg_stop gateway "$GATEWAY_PID" "$GATEWAY_BIN"
  if port_in_use "${HTTP_ADDR##*:}"; then
    die "$HTTP_ADDR is already in use; set SEGMENTS_HTTP_PORT to another port"
  fi
  log "starting segments-gateway on $HTTP_ADDR"
  bg_start "$GATEWAY_PID" "$GATEWAY_LOG" "$GATEWAY_BIN" \
    --http-listen="$HTTP_ADDR" --upstream="$GRPC_ADDR"
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    pid_alive "$BG_PID" || { tail -n 30 "$GATEWAY_LOG" >&2; die "segments-gateway exited (log: $GATEWAY_LOG)"; }
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://$HTTP_ADDR/healthz") == 200 ]] && return 0
    sleep 0.3
  done
  die "segments-gateway not healthy after 30 s (log: $GATEWAY_LOG)"
}

print_info() {
  cat <<INFO

segments is up
  gRPC:      $GRPC_ADDR
  HTTP:      http://$HTTP_ADDR   (Swagger UI: http://$HTTP_ADDR/swagger/index.html)
  database:  $DATABASE_URL
  logs:      $SERVER_LOG, $GATEWAY_LOG
  stop:      scripts/down.sh

Try:
  $GRPCURL -plaintext $GRPC_ADDR list
  $GRPCURL -plaintext -d '{"slug":"AVITO_VOICE_MESSAGES"}' $GRPC_ADDR segmentation.v1.SegmentService/CreateSegment
  $GRPCURL -plaintext -d '{"userID":"00000000-0000-0000-0000-000000000001"}' $GRPC_ADDR segmentation.v1.SegmentService/GetUserSegments
  curl -i -X POST http://$HTTP_ADDR/segments/create -d '{"slug":"AVITO_DISCOUNT_30"}'
  curl -s 'http://$HTTP_ADDR/segments/get-for-user?userID=00000000-0000-0000-0000-000000000001'
INFO
}

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" release
for c in "${COMPONENTS[@]}"; do
  "start_$c"
done
print_info
