#!/usr/bin/env bash
# Bring the whole stack up locally: deps, release build, PostgreSQL, Kafka,
# the user-service mock, the server (consuming the mock's events) and the
# REST gateway. Env: SEGMENTS_GRPC_PORT (default 50051), SEGMENTS_HTTP_PORT
# (8080), SEGMENTS_USERMOCK_PORT (50061), SEGMENTS_USERMOCK_RANDOM_RATE
# (random user changes per second, default 0). Stop everything with
# scripts/down.sh; data is kept for the next start.
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
USERMOCK_ADDR="127.0.0.1:${SEGMENTS_USERMOCK_PORT:-50061}"
USERMOCK_BIN="$ROOT/build/release/usermock/segments-usermock"
USERMOCK_PID="$STATE/usermock.pid"
USERMOCK_LOG="$STATE/usermock.log"
USER_EVENTS_TOPIC=UserAction

# Each component is a start_<name> function; add new ones here and to
# COMPONENTS, plus a matching stop_<name> in down.sh.
COMPONENTS=(db kafka usermock server gateway)

start_db() {
  "$ROOT/scripts/pg.sh" start
  DATABASE_URL="$("$ROOT/scripts/pg.sh" url segments)"
}

start_kafka() {
  KAFKA_BROKERS="$(KAFKA_TOPIC=$USER_EVENTS_TOPIC "$ROOT/scripts/kafka.sh" start | tail -n1)"
}

start_usermock() {
  bg_stop usermock "$USERMOCK_PID" "$USERMOCK_BIN"
  if port_in_use "${USERMOCK_ADDR##*:}"; then
    die "$USERMOCK_ADDR is already in use; set SEGMENTS_USERMOCK_PORT to another port"
  fi
  log "starting segments-usermock on $USERMOCK_ADDR"
  mkdir -p "$STATE/usermock"
  bg_start "$USERMOCK_PID" "$USERMOCK_LOG" "$USERMOCK_BIN" \
    --grpc-listen="$USERMOCK_ADDR" --kafka-brokers="$KAFKA_BROKERS" --topic="$USER_EVENTS_TOPIC" \
    --store="$STATE/usermock/users.log" --random-rate="${SEGMENTS_USERMOCK_RANDOM_RATE:-0}"
  wait_serving segments-usermock "$USERMOCK_ADDR" "$USERMOCK_LOG" "$USERMOCK_PID" "$USERMOCK_BIN" usermock.v1.UserMockAdmin
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
    --grpc-listen="$GRPC_ADDR" --database-url="$DATABASE_URL" \
    --kafka-brokers="$KAFKA_BROKERS" --user-events-topic="$USER_EVENTS_TOPIC" --user-service="$USERMOCK_ADDR"
  wait_serving segments-server "$GRPC_ADDR" "$SERVER_LOG" "$SERVER_PID" "$SERVER_BIN"
  # On a fresh broker the first group join also creates the offsets topic:
  # wait until the consumer owns partitions, so events are applied from now on.
  local deadline=$((SECONDS + 60))
  until grep -q "user events: assigned partitions" "$SERVER_LOG"; do
    ((SECONDS < deadline)) || die "the server's Kafka consumer got no partitions in 60 s (log: $SERVER_LOG)"
    sleep 0.2
  done
}

# wait_serving NAME ADDR LOG PIDFILE BIN [SERVICE]: wait up to 30 s for the
# gRPC health check (of SERVICE, default the whole server) to say SERVING.
wait_serving() {
  local name=$1 addr=$2 logfile=$3 pidfile=$4 bin=$5 service=${6:-}
  local deadline=$((SECONDS + 30)) out=""
  while ((SECONDS < deadline)); do
    if ! pid_alive "$BG_PID"; then
      tail -n 30 "$logfile" >&2 || true
      die "$name exited during startup (log: $logfile)"
    fi
    out="$("$GRPCURL" -plaintext -max-time 2 -d "{\"service\":\"$service\"}" "$addr" grpc.health.v1.Health/Check 2>&1 ||
      true)"
    [[ $out == *'"SERVING"'* ]] && return 0
    sleep 0.5
  done
  tail -n 30 "$logfile" >&2 || true
  bg_stop "$name" "$pidfile" "$bin" 5
  die "$name not SERVING after 30 s; last health check: $out"
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
  kafka:     $KAFKA_BROKERS (topic $USER_EVENTS_TOPIC, dead letters $USER_EVENTS_TOPIC.dlq)
  user-service mock: $USERMOCK_ADDR (gRPC: userservice.v1.UserService, usermock.v1.UserMockAdmin)
  logs:      $SERVER_LOG, $GATEWAY_LOG, $USERMOCK_LOG
  stop:      scripts/down.sh

Try:
  $GRPCURL -plaintext $GRPC_ADDR list
  $GRPCURL -plaintext -d '{"slug":"AVITO_VOICE_MESSAGES"}' $GRPC_ADDR segmentation.v1.SegmentService/CreateSegment
  $GRPCURL -plaintext -d '{"userID":"00000000-0000-0000-0000-000000000001"}' $GRPC_ADDR segmentation.v1.SegmentService/GetUserSegments
  curl -i -X POST http://$HTTP_ADDR/segments/create -d '{"slug":"AVITO_DISCOUNT_30"}'
  curl -s 'http://$HTTP_ADDR/segments/get-for-user?userID=00000000-0000-0000-0000-000000000001'
  # a user created in the user service reaches the replica through Kafka:
  $GRPCURL -plaintext -d '{"userID":"00000000-0000-0000-0000-000000000002"}' $USERMOCK_ADDR usermock.v1.UserMockAdmin/CreateUser
  curl -s 'http://$HTTP_ADDR/segments/get-for-user?userID=00000000-0000-0000-0000-000000000002'
INFO
}

"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" release
for c in "${COMPONENTS[@]}"; do
  "start_$c"
done
print_info
