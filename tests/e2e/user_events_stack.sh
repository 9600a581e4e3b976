#!/usr/bin/env bash
# The whole chain with real processes: user-service mock -> real Kafka broker
# -> segments-server (consumer) -> PostgreSQL -> REST gateway. A user created
# in the mock must be readable through the gateway within a second; a state
# change and a deletion follow; while the user service is down (an outage,
# then the process killed and restarted) events wait and are applied after.
# Usage: user_events_stack.sh SERVER_BIN GATEWAY_BIN USERMOCK_BIN
# Needs SEGMENTS_TEST_DATABASE_URL and SEGMENTS_TEST_KAFKA_BROKERS (test.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

[[ $# -eq 3 ]] || die "usage: $0 SERVER_BIN GATEWAY_BIN USERMOCK_BIN"
SERVER=$1 GATEWAY=$2 USERMOCK=$3
need_test_env SEGMENTS_TEST_DATABASE_URL SEGMENTS_TEST_KAFKA_BROKERS
BROKERS=$SEGMENTS_TEST_KAFKA_BROKERS

WORK="$(mktemp -d)"
on_exit rm -rf "$WORK"

psql_test() { psql "$SEGMENTS_TEST_DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 -c "$1"; }

# --- a topic of our own, and a clean database
TOPIC="UserAction-stack-$$-$(now_ms)"
for t in "$TOPIC:3" "$TOPIC.dlq:1"; do
  "$ROOT/scripts/kafka.sh" run org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" \
    --create --topic "${t%:*}" --partitions "${t##*:}" --replication-factor 1 >/dev/null
done
psql_test "TRUNCATE users, segment_tasks, segments, memberships, history, auto_opt_outs RESTART IDENTITY"

read -r MOCK_PORT GRPC_PORT HTTP_PORT < <(free_ports 3)
MOCK_ADDR="127.0.0.1:$MOCK_PORT"
on_exit bg_stop segments-usermock "$WORK/usermock.pid" "$USERMOCK" 5
# start_mock LOG: the mock on MOCK_ADDR, its users kept in $WORK/users.log.
start_mock() {
  start_usermock "$MOCK_ADDR" "$WORK/usermock.pid" "$1" "$USERMOCK" \
    --kafka-brokers="$BROKERS" --topic="$TOPIC" --store="$WORK/users.log"
  MOCK_PID=$BG_PID
}
mock() { "$GRPCURL" -plaintext -max-time 15 -d "$2" "$MOCK_ADDR" "usermock.v1.UserMockAdmin/$1" >/dev/null; }
start_mock "$WORK/usermock.log"

on_exit bg_stop segments-server "$WORK/server.pid" "$SERVER" 5
SEGMENTS_DATABASE_URL="$SEGMENTS_TEST_DATABASE_URL" start_server "127.0.0.1:$GRPC_PORT" "$WORK/server.pid" \
  "$WORK/server.log" "$SERVER" \
  --kafka-brokers="$BROKERS" --user-events-topic="$TOPIC" --user-events-dlq-topic="$TOPIC.dlq" \
  --user-events-group="segments-stack-$$" --user-service="$MOCK_ADDR" --user-service-max-wait=300ms \
  --user-events-stall-after=500ms --health-check-period=100ms
on_exit bg_stop segments-gateway "$WORK/gateway.pid" "$GATEWAY" 5
start_gateway "127.0.0.1:$HTTP_PORT" "127.0.0.1:$GRPC_PORT" "$WORK/gateway.pid" "$WORK/gateway.log" "$GATEWAY"
HTTP="http://127.0.0.1:$HTTP_PORT"
assigned() { grep -q "user events: assigned partitions" "$WORK/server.log"; }
wait_until 30s assigned || die "consumer got no partitions: $(tail -n 20 "$WORK/server.log")"
log "stack up (mock $MOCK_ADDR, server :$GRPC_PORT, gateway :$HTTP_PORT, topic $TOPIC)"

[[ $(curl -s -o /dev/null -w '%{http_code}' -H "$(bearer_of analyst)" -X POST "$HTTP/segments/create" -d '{"slug":"EVERYONE","percentToFill":100}') == 204 ]] ||
  die "create segment failed"

segments_of() { curl -s -H "$(bearer_of service)" "$HTTP/segments/get-for-user?userID=$1"; }
state_of() { psql_test "SELECT state FROM users WHERE id = '$1'"; }

# --- created in the mock: visible through the gateway within a second
A=00000000-0000-4000-8000-00000000000a
start=$(now_ms)
mock CreateUser "{\"userID\":\"$A\"}"
has_everyone() { [[ $(segments_of "$1") == '{"segments":["EVERYONE"]}' ]]; }
wait_until 1000ms has_everyone "$A" || die "user $A not visible within 1 s of its creation: $(segments_of "$A")"
log "created user visible through the gateway after $(($(now_ms) - start)) ms"

# --- a state change
mock UpdateUser "{\"userID\":\"$A\",\"state\":\"USER_STATE_EXCLUDED\"}"
is_state() { [[ $(state_of "$1") == "$2" ]]; }
wait_until 5000ms is_state "$A" excluded || die "state change not applied: '$(state_of "$A")'"

# user_events_health: SERVING or NOT_SERVING, the consumer's health status.
user_events_health() {
  "$GRPCURL" -plaintext -max-time 2 -d '{"service":"segmentation.v1.UserEvents"}' "127.0.0.1:$GRPC_PORT" \
    grpc.health.v1.Health/Check | sed -n 's/.*"status": "\(.*\)".*/\1/p'
}
health_is() { [[ $(user_events_health) == "$1" ]]; }
wait_until 5000ms health_is SERVING || die "user events health: '$(user_events_health)', expected SERVING"

# --- the user service down: first an outage, then the process killed
# Absence is asserted only after the server has visibly tried (a failed
# attempt logged), never after a fixed sleep: on a slow machine the event
# might not even have been read by then.
retries() { grep -c "retrying in" "$WORK/server.log" || true; }
retried_more_than() { (($(retries) > $1)); }
B=00000000-0000-4000-8000-00000000000b
tried=$(retries)
mock SetOutage '{"down":true}'
mock CreateUser "{\"userID\":\"$B\"}"
# Nothing failed before, so a new failed attempt is the one of B's event.
wait_until 15s retried_more_than "$tried" ||
  die "no failed attempt logged during the outage: $(tail -n 20 "$WORK/server.log")"
[[ -z $(state_of "$B") ]] || die "user $B applied during the outage"
kill -KILL "$MOCK_PID"
wait "$MOCK_PID" 2>/dev/null || true
# Two more failed attempts: the second one began after the kill.
tried=$(retries)
wait_until 30s retried_more_than $((tried + 1)) ||
  die "no failed attempts logged with the user service gone: $(tail -n 20 "$WORK/server.log")"
[[ -z $(state_of "$B") ]] || die "user $B applied while the user service was gone"
grep -q "retrying in" "$WORK/server.log" || die "the server did not report retries: $(tail -n 20 "$WORK/server.log")"
health_is NOT_SERVING || die "user events health during the outage: '$(user_events_health)', expected NOT_SERVING"
start_mock "$WORK/usermock-2.log" # same store: the user is there, and the outage is over
wait_until 15000ms has_everyone "$B" || die "user $B not applied after the user service came back"
wait_until 5000ms health_is SERVING || die "user events health after the outage: '$(user_events_health)'"
log "events waited through the outage and the restart of the user service"

# --- a deletion ends the memberships, with history
mock DeleteUser "{\"userID\":\"$B\"}"
gone() { [[ -z $(state_of "$1") ]]; }
wait_until 5000ms gone "$B" || die "deletion not applied"
[[ $(segments_of "$B") == '{"segments":[]}' ]] || die "deleted user still has segments: $(segments_of "$B")"
history="$(psql_test "SELECT string_agg(operation || ' ' || reason, ',' ORDER BY id) FROM history WHERE user_id = '$B'")"
[[ $history == "add auto_percent,remove user_deleted" ]] ||
  die "history of $B: $history"
log "ok"
