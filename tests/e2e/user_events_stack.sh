#!/usr/bin/env bash
# The whole chain with real processes: user-service mock -> real Kafka broker
# -> segments-server (consumer) -> PostgreSQL -> REST gateway. A user created
# in the mock must be readable through the gateway within a second; a state
# change and a deletion follow; while the user service is down (an outage,
# then the process killed and restarted) events wait and are applied after.
# Usage: user_events_stack.sh SERVER_BIN GATEWAY_BIN USERMOCK_BIN
# Needs SEGMENTS_TEST_DATABASE_URL and SEGMENTS_TEST_KAFKA_BROKERS (test.sh).
set -euo pipefail

die() { printf 'user_events_stack: FAIL: %s\n' "$*" >&2; exit 1; }
note() { printf 'user_events_stack: %s\n' "$*" >&2; }

[[ $# -eq 3 ]] || die "usage: $0 SERVER_BIN GATEWAY_BIN USERMOCK_BIN"
SERVER=$1 GATEWAY=$2 USERMOCK=$3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GRPCURL="$ROOT/.tools/bin/grpcurl"
[[ -n ${SEGMENTS_TEST_DATABASE_URL:-} ]] || die "SEGMENTS_TEST_DATABASE_URL is not set; run through scripts/test.sh"
[[ -n ${SEGMENTS_TEST_KAFKA_BROKERS:-} ]] || die "SEGMENTS_TEST_KAFKA_BROKERS is not set; run through scripts/test.sh"
BROKERS=$SEGMENTS_TEST_KAFKA_BROKERS

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
psql_test() { psql "$SEGMENTS_TEST_DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 -c "$1"; }

# eventually TIMEOUT_MS CMD...: retries CMD every 50 ms until it succeeds.
eventually() {
  local until=$(($(now_ms) + $1))
  shift
  until "$@"; do
    (($(now_ms) < until)) || return 1
    sleep 0.05
  done
}

# --- a topic of our own, and a clean database
TOPIC="UserAction-stack-$$-$(now_ms)"
for t in "$TOPIC:3" "$TOPIC.dlq:1"; do
  "$ROOT/scripts/kafka.sh" run org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" \
    --create --topic "${t%:*}" --partitions "${t##*:}" --replication-factor 1 >/dev/null
done
psql_test "TRUNCATE users, segments, memberships, history, auto_opt_outs RESTART IDENTITY"

MOCK_PORT="$(free_port)"
MOCK_ADDR="127.0.0.1:$MOCK_PORT"
start_mock() {
  "$USERMOCK" --grpc-listen="$MOCK_ADDR" --kafka-brokers="$BROKERS" --topic="$TOPIC" --store="$WORK/users.log" \
    >>"$WORK/usermock.log" 2>&1 </dev/null &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  eventually 10000 grep -q "serving gRPC on $MOCK_ADDR" "$WORK/usermock.log" || die "mock did not start: $(cat "$WORK/usermock.log")"
}
mock() { "$GRPCURL" -plaintext -max-time 15 -d "$2" "$MOCK_ADDR" "usermock.v1.UserMockAdmin/$1" >/dev/null; }
start_mock

GRPC_PORT="$(free_port)"
SEGMENTS_DATABASE_URL="$SEGMENTS_TEST_DATABASE_URL" "$SERVER" --grpc-listen="127.0.0.1:$GRPC_PORT" \
  --kafka-brokers="$BROKERS" --user-events-topic="$TOPIC" --user-events-dlq-topic="$TOPIC.dlq" \
  --user-events-group="segments-stack-$$" --user-service="$MOCK_ADDR" --user-service-max-wait=300ms \
  --user-events-stall-after=500ms --health-check-period=100ms \
  >"$WORK/server.log" 2>&1 </dev/null &
PIDS+=($!)
HTTP_PORT="$(free_port)"
"$GATEWAY" --http-listen="127.0.0.1:$HTTP_PORT" --upstream="127.0.0.1:$GRPC_PORT" >"$WORK/gateway.log" 2>&1 </dev/null &
PIDS+=($!)
HTTP="http://127.0.0.1:$HTTP_PORT"
healthy() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$HTTP/healthz") == 200 ]]; }
eventually 30000 healthy || die "stack not healthy: $(tail -n 20 "$WORK/server.log")"
assigned() { grep -q "user events: assigned partitions" "$WORK/server.log"; }
eventually 30000 assigned || die "consumer got no partitions: $(tail -n 20 "$WORK/server.log")"
note "stack up (mock $MOCK_ADDR, server :$GRPC_PORT, gateway :$HTTP_PORT, topic $TOPIC)"

[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "$HTTP/segments/create" -d '{"slug":"EVERYONE","percentToFill":100}') == 204 ]] ||
  die "create segment failed"

segments_of() { curl -s "$HTTP/segments/get-for-user?userID=$1"; }
state_of() { psql_test "SELECT state FROM users WHERE id = '$1'"; }

# --- created in the mock: visible through the gateway within a second
A=00000000-0000-4000-8000-00000000000a
start=$(now_ms)
mock CreateUser "{\"userID\":\"$A\"}"
has_everyone() { [[ $(segments_of "$1") == '{"segments":["EVERYONE"]}' ]]; }
eventually 1000 has_everyone "$A" || die "user $A not visible within 1 s of its creation: $(segments_of "$A")"
note "created user visible through the gateway after $(($(now_ms) - start)) ms"

# --- a state change
mock UpdateUser "{\"userID\":\"$A\",\"state\":\"USER_STATE_EXCLUDED\"}"
is_state() { [[ $(state_of "$1") == "$2" ]]; }
eventually 5000 is_state "$A" excluded || die "state change not applied: '$(state_of "$A")'"

# user_events_health: SERVING or NOT_SERVING, the consumer's health status.
user_events_health() {
  "$GRPCURL" -plaintext -max-time 2 -d '{"service":"segmentation.v1.UserEvents"}' "127.0.0.1:$GRPC_PORT" \
    grpc.health.v1.Health/Check | sed -n 's/.*"status": "\(.*\)".*/\1/p'
}
health_is() { [[ $(user_events_health) == "$1" ]]; }
eventually 5000 health_is SERVING || die "user events health: '$(user_events_health)', expected SERVING"

# --- the user service down: first an outage, then the process killed
B=00000000-0000-4000-8000-00000000000b
mock SetOutage '{"down":true}'
mock CreateUser "{\"userID\":\"$B\"}"
sleep 2
[[ -z $(state_of "$B") ]] || die "user $B applied during the outage"
kill -KILL "$MOCK_PID"
wait "$MOCK_PID" 2>/dev/null || true
sleep 1
[[ -z $(state_of "$B") ]] || die "user $B applied while the user service was gone"
grep -q "retrying in" "$WORK/server.log" || die "the server did not report retries: $(tail -n 20 "$WORK/server.log")"
health_is NOT_SERVING || die "user events health during the outage: '$(user_events_health)', expected NOT_SERVING"
start_mock  # same store: the user is there, and the outage is over
eventually 15000 has_everyone "$B" || die "user $B not applied after the user service came back"
eventually 5000 health_is SERVING || die "user events health after the outage: '$(user_events_health)'"
note "events waited through the outage and the restart of the user service"

# --- a deletion ends the memberships, with history
mock DeleteUser "{\"userID\":\"$B\"}"
gone() { [[ -z $(state_of "$1") ]]; }
eventually 5000 gone "$B" || die "deletion not applied"
[[ $(segments_of "$B") == '{"segments":[]}' ]] || die "deleted user still has segments: $(segments_of "$B")"
history="$(psql_test "SELECT string_agg(operation || ' ' || reason, ',' ORDER BY id) FROM history WHERE user_id = '$B'")"
[[ $history == "add auto_percent,remove user_deleted" ]] ||
  die "history of $B: $history"
note "ok"
