#!/usr/bin/env bash
# Bring the whole stack up locally: deps, a release build of the three
# programs that run (server, gateway, mock; no tests, no bench tools),
# PostgreSQL, Kafka, the user-service mock, the server (consuming the mock's
# events) and the REST gateway. Env: SEGMENTS_GRPC_PORT (default 50051), SEGMENTS_HTTP_PORT
# (8080), SEGMENTS_USERMOCK_PORT (50061), SEGMENTS_USERMOCK_RANDOM_RATE
# (random user changes per second, default 0), SEGMENTS_METRICS_PORT and
# SEGMENTS_USERMOCK_METRICS_PORT (the server's and the mock's /metrics; by
# default free ports, kept in .state for the next start), SEGMENTS_PROMETHEUS=1
# (also a local Prometheus scraping the three, with the alert rules; Debian's
# prometheus package, installed if missing). Stop everything with
# scripts/down.sh; data is kept for the next start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRPC_ADDR="127.0.0.1:${SEGMENTS_GRPC_PORT:-50051}"
SERVER_BIN="$ROOT/build/release/server/segments-server"
SERVER_PID="$STATE/server.pid"
SERVER_LOG="$STATE/server.log"
HTTP_ADDR="127.0.0.1:${SEGMENTS_HTTP_PORT:-8080}"
GATEWAY_BIN="$ROOT/build/release/gateway/segments-gateway"
GATEWAY_PID="$STATE/gateway.pid"
GATEWAY_LOG="$STATE/gateway.log"
USERMOCK_ADDR="127.0.0.1:${SEGMENTS_USERMOCK_PORT:-50061}"
USERMOCK_BIN="$ROOT/build/release/usermock/segments-usermock"
USERMOCK_PID="$STATE/usermock.pid"
USERMOCK_LOG="$STATE/usermock.log"
USER_EVENTS_TOPIC=UserAction
# /metrics of the server and the mock (empty: their binaries have no
# --metrics-listen), and the local Prometheus (SEGMENTS_PROMETHEUS=1).
METRICS_ADDR=""
USERMOCK_METRICS_ADDR=""
PROMETHEUS_ADDR=""

# Each component is an up_<name> function; add new ones here and to
# COMPONENTS, plus a matching stop_<name> in down.sh.
COMPONENTS=(db kafka usermock server gateway prometheus)

# kept_port NAME [PORT]: PORT if given; else the port kept in $STATE/NAME.port
# if it is still free, else a new free one (then kept).
kept_port() {
  local file="$STATE/$1.port" p=${2:-}
  if [[ -n $p ]]; then
    echo "$p"
    return 0
  fi
  p="$(cat "$file" 2>/dev/null || true)"
  if [[ -z $p ]] || port_in_use "$p"; then
    p="$(free_port)"
    echo "$p" >"$file"
  fi
  echo "$p"
}

up_db() {
  "$ROOT/scripts/pg.sh" start
  DATABASE_URL="$("$ROOT/scripts/pg.sh" url segments)"
}

up_kafka() {
  KAFKA_BROKERS="$(KAFKA_TOPIC=$USER_EVENTS_TOPIC "$ROOT/scripts/kafka.sh" start | tail -n1)"
}

up_usermock() {
  bg_stop usermock "$USERMOCK_PID" "$USERMOCK_BIN"
  need_free_port "$USERMOCK_ADDR" "set SEGMENTS_USERMOCK_PORT to another port"
  mkdir -p "$STATE/usermock"
  local metrics=()
  if has_flag "$USERMOCK_BIN" metrics-listen; then
    USERMOCK_METRICS_ADDR="127.0.0.1:$(kept_port usermock-metrics "${SEGMENTS_USERMOCK_METRICS_PORT:-}")"
    need_free_port "$USERMOCK_METRICS_ADDR" "set SEGMENTS_USERMOCK_METRICS_PORT to another port"
    metrics=(--metrics-listen="$USERMOCK_METRICS_ADDR")
  fi
  start_usermock "$USERMOCK_ADDR" "$USERMOCK_PID" "$USERMOCK_LOG" "$USERMOCK_BIN" \
    --kafka-brokers="$KAFKA_BROKERS" --topic="$USER_EVENTS_TOPIC" \
    --store="$STATE/usermock/users.log" --random-rate="${SEGMENTS_USERMOCK_RANDOM_RATE:-0}" "${metrics[@]}"
}

consumer_assigned() { grep -q "user events: assigned partitions" "$SERVER_LOG"; }

up_server() {
  bg_stop server "$SERVER_PID" "$SERVER_BIN"
  need_free_port "$GRPC_ADDR" "set SEGMENTS_GRPC_PORT to another port"
  local metrics=()
  if has_flag "$SERVER_BIN" metrics-listen; then
    METRICS_ADDR="127.0.0.1:$(kept_port server-metrics "${SEGMENTS_METRICS_PORT:-}")"
    need_free_port "$METRICS_ADDR" "set SEGMENTS_METRICS_PORT to another port"
    metrics=(--metrics-listen="$METRICS_ADDR")
  fi
  SEGMENTS_REPORT_LINK_KEYS="${SEGMENTS_REPORT_LINK_KEYS:-$(report_link_keys)}" \
    start_server "$GRPC_ADDR" "$SERVER_PID" "$SERVER_LOG" "$SERVER_BIN" \
    --database-url="$DATABASE_URL" --kafka-brokers="$KAFKA_BROKERS" --user-events-topic="$USER_EVENTS_TOPIC" \
    --user-service="$USERMOCK_ADDR" "${metrics[@]}"
  # On a fresh broker the first group join also creates the offsets topic:
  # wait until the consumer owns partitions, so events are applied from now on.
  wait_until 60s consumer_assigned ||
    die "the server's Kafka consumer got no partitions in 60 s (log: $SERVER_LOG)"
}

up_gateway() {
  bg_stop gateway "$GATEWAY_PID" "$GATEWAY_BIN"
  need_free_port "$HTTP_ADDR" "set SEGMENTS_HTTP_PORT to another port"
  start_gateway "$HTTP_ADDR" "$GRPC_ADDR" "$GATEWAY_PID" "$GATEWAY_LOG" "$GATEWAY_BIN"
}

# The local Prometheus, on request: scrapes what serves /metrics.
up_prometheus() {
  if [[ ${SEGMENTS_PROMETHEUS:-0} != 1 ]]; then
    # Not wanted this time: one left from an earlier start would scrape
    # targets that may have moved.
    "$ROOT/scripts/prometheus.sh" stop
    return 0
  fi
  command -v prometheus >/dev/null || "$ROOT/scripts/install-deps.sh" --prometheus
  local targets=()
  [[ -z $METRICS_ADDR ]] || targets+=("segments-server=$METRICS_ADDR")
  http_ok "http://$HTTP_ADDR/metrics" && targets+=("segments-gateway=$HTTP_ADDR")
  [[ -z $USERMOCK_METRICS_ADDR ]] || targets+=("segments-usermock=$USERMOCK_METRICS_ADDR")
  ((${#targets[@]})) || die "SEGMENTS_PROMETHEUS=1, but nothing serves metrics (binaries without --metrics-listen)"
  PROMETHEUS_ADDR="$("$ROOT/scripts/prometheus.sh" start "${targets[@]}")"
}

# metrics_info: the lines about metrics and Prometheus, if there are any,
# each ending in a newline.
metrics_info() {
  local m=()
  [[ -z $METRICS_ADDR ]] || m+=("server http://$METRICS_ADDR/metrics")
  http_ok "http://$HTTP_ADDR/metrics" && m+=("gateway http://$HTTP_ADDR/metrics")
  [[ -z $USERMOCK_METRICS_ADDR ]] || m+=("mock http://$USERMOCK_METRICS_ADDR/metrics")
  if ((${#m[@]})); then
    printf '  metrics:   %s' "${m[0]}"
    printf ', %s' "${m[@]:1}"
    printf '\n'
  fi
  if [[ -n $PROMETHEUS_ADDR ]]; then
    printf '  prometheus: http://%s (alerts: http://%s/alerts; data: %s)\n' "$PROMETHEUS_ADDR" "$PROMETHEUS_ADDR" "$STATE/prometheus"
  fi
}

print_info() {
  local METRICS_INFO
  METRICS_INFO="$(metrics_info)"
  [[ -z $METRICS_INFO ]] || METRICS_INFO+=$'\n'
  cat <<INFO

segments is up
  gRPC:      $GRPC_ADDR
  HTTP:      http://$HTTP_ADDR   (Swagger UI: http://$HTTP_ADDR/swagger/index.html, console: http://$HTTP_ADDR/console/)
  database:  $DATABASE_URL
  kafka:     $KAFKA_BROKERS (topic $USER_EVENTS_TOPIC, dead letters $USER_EVENTS_TOPIC.dlq)
  user-service mock: $USERMOCK_ADDR (gRPC: userservice.v1.UserService, usermock.v1.UserMockAdmin)
  logs:      $SERVER_LOG, $GATEWAY_LOG, $USERMOCK_LOG
${METRICS_INFO}  tokens:    $TOKENS_DIR/{service,support,analyst,admin}.jwt (a year each; the key: $TOKENS_DIR/signing-key.jwk)
  stop:      scripts/down.sh

Try (every call but health needs a token; SEG_TOKEN holds the admin one):
  export SEG_TOKEN=\$(cat $TOKENS_DIR/admin.jwt)
  $GRPCURL -plaintext $GRPC_ADDR list
  $GRPCURL -plaintext -H "authorization: Bearer \$SEG_TOKEN" -d '{"slug":"AVITO_VOICE_MESSAGES"}' $GRPC_ADDR segmentation.v1.SegmentService/CreateSegment
  $GRPCURL -plaintext -H "authorization: Bearer \$SEG_TOKEN" -d '{"userID":"00000000-0000-0000-0000-000000000001"}' $GRPC_ADDR segmentation.v1.SegmentService/GetUserSegments
  curl -i -H "Authorization: Bearer \$SEG_TOKEN" -X POST http://$HTTP_ADDR/segments/create -d '{"slug":"AVITO_DISCOUNT_30"}'
  curl -s -H "Authorization: Bearer \$(cat $TOKENS_DIR/service.jwt)" 'http://$HTTP_ADDR/segments/get-for-user?userID=00000000-0000-0000-0000-000000000001'
  # a user created in the user service reaches the replica through Kafka:
  $GRPCURL -plaintext -d '{"userID":"00000000-0000-0000-0000-000000000002"}' $USERMOCK_ADDR usermock.v1.UserMockAdmin/CreateUser
  curl -s -H "Authorization: Bearer \$SEG_TOKEN" 'http://$HTTP_ADDR/segments/get-for-user?userID=00000000-0000-0000-0000-000000000002'
INFO
}

"$ROOT/scripts/install-deps.sh"
# While the programs build (CPU), PostgreSQL starts and Kafka is installed
# (Maven downloads; on a fresh state also the class data archive): on a fresh
# machine this overlaps minutes. Their output is shown once they are done.
mkdir -p "$STATE"
"$ROOT/scripts/pg.sh" start >"$STATE/up-pg.log" 2>&1 &
pg_job=$!
"$ROOT/scripts/kafka.sh" install >"$STATE/up-kafka.log" 2>&1 &
kafka_job=$!
build_rc=0
"$ROOT/scripts/build.sh" release segments-server segments-token segments-gateway segments-usermock || build_rc=$?
for job in "$pg_job pg" "$kafka_job kafka"; do
  rc=0
  wait "${job% *}" || rc=$?
  cat "$STATE/up-${job#* }.log" >&2
  ((rc == 0)) || die "scripts/${job#* }.sh failed (above)"
done
((build_rc == 0)) || die "the build failed (above)"
for c in "${COMPONENTS[@]}"; do
  "up_$c"
done
print_info
