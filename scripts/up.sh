#!/usr/bin/env bash
# Bring the service up locally: deps, release build, PostgreSQL, server.
# Env: SEGMENTS_GRPC_PORT (default 50051). Stop everything with scripts/down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRPC_ADDR="127.0.0.1:${SEGMENTS_GRPC_PORT:-50051}"
SERVER_BIN="$ROOT/build/release/server/segments-server"
SERVER_PID="$STATE/server.pid"
SERVER_LOG="$STATE/server.log"
GRPCURL="$TOOLS_BIN/grpcurl"

# Each component is a start_<name> function; add new ones (gateway, kafka)
# here and to COMPONENTS, plus a matching stop_<name> in down.sh.
COMPONENTS=(db server)

start_db() {
  "$ROOT/scripts/pg.sh" start
  DATABASE_URL="$("$ROOT/scripts/pg.sh" url segments)"
}

start_server() {
  bg_stop server "$SERVER_PID" "$SERVER_BIN"
  if port_in_use "${GRPC_ADDR##*:}"; then
    die "$GRPC_ADDR is already in use; set SEGMENTS_GRPC_PORT to another port"
  fi
  log "starting segments-server on $GRPC_ADDR"
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

print_info() {
  cat <<INFO

segments is up
  gRPC:      $GRPC_ADDR
  database:  $DATABASE_URL
  log:       $SERVER_LOG
  stop:      scripts/down.sh

Try:
  $GRPCURL -plaintext $GRPC_ADDR list
  $GRPCURL -plaintext -d '{"slug":"AVITO_VOICE_MESSAGES"}' $GRPC_ADDR segmentation.v1.SegmentService/CreateSegment
  $GRPCURL -plaintext -d '{"userID":"00000000-0000-0000-0000-000000000001"}' $GRPC_ADDR segmentation.v1.SegmentService/GetUserSegments
INFO
}

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" release
for c in "${COMPONENTS[@]}"; do
  "start_$c"
done
print_info
