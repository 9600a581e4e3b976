#!/usr/bin/env bash
# Metrics of the three programs, checked by real tools: the server (with
# --metrics-listen), the gateway (/metrics on its HTTP port) and the
# user-service mock (--metrics-listen) run against PostgreSQL and a real
# Kafka broker; a few calls go through the gateway and a user comes through
# Kafka; then
#   - a request's X-Request-Id comes back, and is in the gateway's access log
#     and in the server's JSON log line of that (slow) call;
#   - `promtool check metrics` accepts each live /metrics (format and lint);
#   - every segments_* name that the alert rules and the dashboard use is
#     exposed by one of them (so deploy/ and the programs agree on names);
#   - a real Prometheus (scripts/prometheus.sh, Debian's) scraping all three
#     every second answers, through its HTTP API, up == 1 for each job, the
#     hot read counted by code, the gateway's requests by route, the mock's
#     users and the consumer's applied events; and has the alert rules loaded.
# Nothing waits a fixed time: every expectation is polled until a deadline.
# Usage: metrics.sh SERVER_BIN GATEWAY_BIN USERMOCK_BIN
# Needs SEGMENTS_TEST_DATABASE_URL and SEGMENTS_TEST_KAFKA_BROKERS (test.sh),
# and promtool and prometheus (Debian package prometheus).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

[[ $# -eq 3 ]] || die "usage: $0 SERVER_BIN GATEWAY_BIN USERMOCK_BIN"
SERVER=$1 GATEWAY=$2 USERMOCK=$3
need_test_env SEGMENTS_TEST_DATABASE_URL SEGMENTS_TEST_KAFKA_BROKERS
BROKERS=$SEGMENTS_TEST_KAFKA_BROKERS
for tool in promtool prometheus jq; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh --tests"
done
for bin in "$SERVER" "$USERMOCK"; do
  has_flag "$bin" metrics-listen || die "$bin has no --metrics-listen flag"
done

WORK="$(mktemp -d)"
on_exit rm -rf "$WORK"
WAIT_STEP=0.2

# --- a topic of our own, a clean database
TOPIC="UserAction-metrics-$$-$(now_ms)"
for t in "$TOPIC:3" "$TOPIC.dlq:1"; do
  "$ROOT/scripts/kafka.sh" run org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" \
    --create --topic "${t%:*}" --partitions "${t##*:}" --replication-factor 1 >/dev/null
done
psql "$SEGMENTS_TEST_DATABASE_URL" -XtAq -v ON_ERROR_STOP=1 -c \
  "TRUNCATE history, memberships, auto_opt_outs, segment_tasks, segments, users, idempotency_keys RESTART IDENTITY"

# --- the stack, each program with its metrics
read -r MOCK_PORT MOCK_METRICS_PORT GRPC_PORT METRICS_PORT HTTP_PORT < <(free_ports 5)
MOCK_ADDR="127.0.0.1:$MOCK_PORT"
MOCK_METRICS="127.0.0.1:$MOCK_METRICS_PORT"
SERVER_METRICS="127.0.0.1:$METRICS_PORT"
HTTP_ADDR="127.0.0.1:$HTTP_PORT"
on_exit bg_stop segments-usermock "$WORK/usermock.pid" "$USERMOCK" 5
start_usermock "$MOCK_ADDR" "$WORK/usermock.pid" "$WORK/usermock.log" "$USERMOCK" \
  --kafka-brokers="$BROKERS" --topic="$TOPIC" --store="$WORK/users.log" --metrics-listen="$MOCK_METRICS"
on_exit bg_stop segments-server "$WORK/server.pid" "$SERVER" 5
SEGMENTS_DATABASE_URL="$SEGMENTS_TEST_DATABASE_URL" start_server "127.0.0.1:$GRPC_PORT" "$WORK/server.pid" \
  "$WORK/server.log" "$SERVER" --metrics-listen="$SERVER_METRICS" --log-format=json --slow-call-threshold=1ms \
  --kafka-brokers="$BROKERS" --user-events-topic="$TOPIC" --user-events-dlq-topic="$TOPIC.dlq" \
  --user-events-group="segments-metrics-$$" --user-service="$MOCK_ADDR"
on_exit bg_stop segments-gateway "$WORK/gateway.pid" "$GATEWAY" 5
start_gateway "$HTTP_ADDR" "127.0.0.1:$GRPC_PORT" "$WORK/gateway.pid" "$WORK/gateway.log" "$GATEWAY"
assigned() { grep -q "user events: assigned partitions" "$WORK/server.log"; }
wait_until 30s assigned || die "consumer got no partitions: $(tail -n 20 "$WORK/server.log")"
log "stack up (server :$GRPC_PORT metrics $SERVER_METRICS, gateway $HTTP_ADDR, mock $MOCK_ADDR metrics $MOCK_METRICS)"

# --- some traffic: a segment for everyone, a user through Kafka, reads
HTTP="http://$HTTP_ADDR"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$(bearer_of analyst)" -X POST "$HTTP/segments/create" \
  -d '{"slug":"METRICS_EVERYONE","percentToFill":100}')
[[ $code == 204 ]] || die "create segment: HTTP $code"
U=00000000-0000-4000-8000-0000000000e1
"$GRPCURL" -plaintext -max-time 15 -d "{\"userID\":\"$U\"}" "$MOCK_ADDR" usermock.v1.UserMockAdmin/CreateUser >/dev/null
segments_of() { curl -s -H "$(bearer_of service)" "$HTTP/segments/get-for-user?userID=$1"; }
has_everyone() { [[ $(segments_of "$U") == '{"segments":["METRICS_EVERYONE"]}' ]]; }
wait_until 15s has_everyone || die "user $U not visible through the gateway: $(segments_of "$U")"
for _ in 1 2 3; do segments_of "$U" >/dev/null; done
# This month's history report, downloaded through its link.
link="$(curl -s -H "$(bearer_of admin)" \
  "$HTTP/segments/get-history-report-link?month=$(date -u +%-m)&year=$(date -u +%Y)" | jq -r .reportLink)"
[[ $link == http* ]] || die "no report link: $link"
report="$(curl -s -f "$link")" || die "report download failed: $link"
[[ $report == *METRICS_EVERYONE* ]] || die "the report lacks the segment: $report"
# A refused call: a code other than OK, and a 401 on the route.
code=$(curl -s -o /dev/null -w '%{http_code}' "$HTTP/segments/get-for-user?userID=$U")
[[ $code == 401 ]] || die "a call without a token: HTTP $code, expected 401"

# --- a request id from the HTTP client to the server's log: every write is
# slower than the server's 1 ms threshold, so its "slow call" line has it
RID="metrics-e2e-$$-$(now_ms)"
curl -s -o /dev/null -D "$WORK/rid.headers" -H "$(bearer_of analyst)" -H "X-Request-Id: $RID" \
  -X POST "$HTTP/segments/create" -d '{"slug":"METRICS_REQUEST_ID"}'
grep -qi "^x-request-id: $RID" "$WORK/rid.headers" || die "the gateway did not echo X-Request-Id: $(cat "$WORK/rid.headers")"
jq -e . "$WORK/server.log" >/dev/null || die "server.log (--log-format=json) has a line that is not JSON"
slow_line() {
  jq -ce --arg rid "$RID" 'select(.message == "slow call" and .request_id == $rid
    and .method == "/segmentation.v1.SegmentService/CreateSegment" and .code == "OK")' "$WORK/server.log"
}
slow_line >/dev/null || die "no slow-call line with request_id $RID in the server's JSON log"
grep -q "$RID" "$WORK/gateway.log" || die "the gateway's access log lacks request id $RID"
log "request id $RID: echoed, in the gateway's access log and the server's JSON log line"

# --- promtool check metrics on each live /metrics
ENDPOINTS=(
  "segments-server http://$SERVER_METRICS/metrics"
  "segments-gateway $HTTP/metrics"
  "segments-usermock http://$MOCK_METRICS/metrics"
)
for entry in "${ENDPOINTS[@]}"; do
  job=${entry%% *} url=${entry#* }
  code=$(curl -s -o "$WORK/$job.prom" -D "$WORK/$job.headers" -w '%{http_code}' -m 10 "$url")
  [[ $code == 200 ]] || die "$url: HTTP $code"
  grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/$job.headers" ||
    die "$url: Content-Type is not Prometheus' text format 0.0.4: $(grep -i '^content-type' "$WORK/$job.headers")"
  rc=0
  promtool check metrics <"$WORK/$job.prom" >"$WORK/$job.check" 2>&1 || rc=$?
  if ((rc != 0)) || [[ -s $WORK/$job.check ]]; then
    cat "$WORK/$job.check" >&2
    die "promtool check metrics on $url: exit $rc (above)"
  fi
  log "promtool check metrics: $job ok ($(grep -vc '^#' "$WORK/$job.prom") samples)"
done

# --- every segments_* name of deploy/ is exposed by one of the programs
# (a histogram's _bucket/_sum/_count by its family's TYPE line); series the
# alerts watch exist from the start, before their first event.
exposed="$(cat "$WORK"/segments-*.prom | sed -n 's/^# TYPE \([^ ]*\) .*/\1/p; s/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p' | sort -u)"
used="$(cat "$ROOT/deploy/prometheus/alerts.yml" "$ROOT"/deploy/grafana/dashboards/*.json |
  grep -o 'segments_[a-z0-9_]*' | sed 's/_\(bucket\|sum\|count\)$//' | sort -u)"
missing="$(comm -23 <(echo "$used") <(echo "$exposed"))"
[[ -z $missing ]] || die "used in deploy/ but exposed by no program: $(echo $missing)"
log "the $(echo "$used" | wc -l) segments_* names of the alerts and the dashboard are all exposed"

# --- a real Prometheus scraping the three every second
PROM_ENV=(env SEGMENTS_STATE_DIR="$WORK/state" PROMETHEUS_SCRAPE_INTERVAL=1s)
on_exit "${PROM_ENV[@]}" "$ROOT/scripts/prometheus.sh" stop
PROM="$("${PROM_ENV[@]}" "$ROOT/scripts/prometheus.sh" start \
  "segments-server=$SERVER_METRICS" "segments-gateway=$HTTP_ADDR" "segments-usermock=$MOCK_METRICS")"
log "Prometheus on $PROM"

# query EXPR: the instant query's result (a JSON array) on stdout.
query() {
  curl -sf -m 5 "http://$PROM/api/v1/query" --data-urlencode "query=$1" | jq -c '.data.result'
}
# has_result EXPR: the query returns at least one series.
has_result() {
  local r
  r="$(query "$1")" || return 1
  [[ -n $r && $r != '[]' ]]
}
expect() {
  wait_until 60s has_result "$1" || die "Prometheus: no result for $1 within 60 s (now: $(query "$1" || true))"
  log "Prometheus: $1"
}
for job in segments-server segments-gateway segments-usermock; do
  expect "up{job=\"$job\"} == 1"
done
expect 'segments_grpc_server_handled_total{job="segments-server",grpc_service="segmentation.v1.SegmentService",grpc_method="GetUserSegments",grpc_code="OK"} > 0'
expect 'segments_grpc_server_handled_total{job="segments-server",grpc_method="GetUserSegments",grpc_code="UNAUTHENTICATED"} > 0'
expect 'segments_grpc_server_handling_seconds_count{job="segments-server",grpc_method="GetUserSegments"} > 0'
expect 'segments_gateway_http_requests_total{job="segments-gateway",route="/segments/get-for-user",method="GET",code="200"} > 0'
expect 'segments_gateway_http_requests_total{job="segments-gateway",route="/segments/get-for-user",code="401"} > 0'
expect 'segments_usermock_users{job="segments-usermock"} >= 1'
expect 'segments_user_events_applied_total{job="segments-server"} >= 1'
expect 'segments_user_events_assigned_partitions{job="segments-server"} > 0'
expect 'segments_build_info{job="segments-server"} == 1'
expect 'segments_reports_total{job="segments-server",result="ok"} >= 1'

# The alert rules are loaded, all of them, and evaluated without errors.
want_alerts="$(sed -n 's/^ *- alert: *//p' "$ROOT/deploy/prometheus/alerts.yml" | sort)"
loaded_alerts() {
  curl -sf -m 5 "http://$PROM/api/v1/rules?type=alert" |
    jq -r '.data.groups[].rules[] | select(.health == "ok") | .name' | sort
}
rules_loaded() { [[ $(loaded_alerts) == "$want_alerts" ]]; }
wait_until 30s rules_loaded ||
  die "Prometheus's alert rules (healthy): $(loaded_alerts | tr '\n' ' '); expected: $(echo $want_alerts)"
log "Prometheus has the $(echo "$want_alerts" | wc -l) alert rules loaded and evaluated"
log "ok"
