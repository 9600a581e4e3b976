#!/usr/bin/env bash
# Smoke test of the real segments-server binary, driven with grpcurl through
# server reflection (no local proto files), against SEGMENTS_TEST_DATABASE_URL.
# Usage: server_binary_smoke.sh PATH/TO/segments-server
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

[[ $# -eq 1 ]] || die "usage: $0 PATH/TO/segments-server"
SERVER=$1
[[ -x $SERVER ]] || die "server binary '$SERVER' is not executable"
[[ -x $GRPCURL ]] || die "$GRPCURL is missing: run scripts/install-deps.sh"
need_test_env SEGMENTS_TEST_DATABASE_URL

WORK="$(mktemp -d)"
LOG="$WORK/server.log"
SERVER_PID=""
on_exit rm -rf "$WORK"
# The server is a child of this shell (not bg_start): its exit status is tested.
kill_server() {
  if [[ -n $SERVER_PID ]] && pid_alive "$SERVER_PID"; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
on_exit kill_server

# --- a bad setting is refused at start, naming itself
rc=0
SEGMENTS_DATABASE_URL="$SEGMENTS_TEST_DATABASE_URL" timeout 10 "$SERVER" --db-pool-size=0 \
  >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || die "--db-pool-size=0: expected a non-zero exit, got $rc"
grep -q -- 'db-pool-size' "$WORK/bad.err" ||
  die "--db-pool-size=0: stderr does not name the setting: $(cat "$WORK/bad.err")"
log "bad flag refused (exit $rc)"

# --- authentication is on by default: without keys the server does not start
rc=0
SEGMENTS_DATABASE_URL="$SEGMENTS_TEST_DATABASE_URL" timeout 10 "$SERVER" >"$WORK/nokeys.out" 2>"$WORK/nokeys.err" || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || die "no token keys: expected a non-zero exit, got $rc"
grep -q -- '--auth-jwks-file' "$WORK/nokeys.err" || die "no token keys: stderr says $(cat "$WORK/nokeys.err")"
log "no token keys: refused (exit $rc)"

# --- start on a port of the kernel's choosing; the server logs which. It
# trusts tokens made with the segments-token built beside it.
TOKENS_DIR="$WORK/tokens"
local_tokens "$(dirname "$SERVER")/segments-token"
SEGMENTS_DATABASE_URL="$SEGMENTS_TEST_DATABASE_URL" "$SERVER" \
  --grpc-listen=127.0.0.1:0 --health-check-period=100ms --shutdown-grace=5s --log-level=info \
  --auth-jwks-file="$TOKENS_DIR/jwks.json" --auth-issuer="$LOCAL_ISSUER" \
  >"$LOG" 2>&1 </dev/null &
SERVER_PID=$!

# port_logged: the server is alive and has logged its port (in PORT).
port_logged() {
  pid_alive "$SERVER_PID" || die "server exited at start: $(cat "$LOG")"
  PORT="$(sed -n 's/.*serving gRPC on port \([0-9][0-9]*\).*/\1/p' "$LOG" | head -n1)"
  [[ -n $PORT ]]
}
wait_until 10s port_logged || die "server did not report its port within 10 s: $(cat "$LOG")"
ADDR="127.0.0.1:$PORT"
log "server pid $SERVER_PID on $ADDR"

# call METHOD JSON [ROLE]: prints grpcurl's output (as ROLE, default admin;
# "none": no token); its exit status is grpcurl's.
call() {
  local auth=()
  [[ ${3:-admin} == none ]] || auth=(-H "$(bearer_of "${3:-admin}")")
  "$GRPCURL" -plaintext -max-time 5 "${auth[@]}" -d "$2" "$ADDR" "$1" 2>&1
}

# flat TEXT: TEXT without whitespace, for comparisons.
flat() { tr -d ' \t\n' <<<"$1"; }

# --- health SERVING (the database is up); health needs no token
serving() { [[ $(flat "$(call grpc.health.v1.Health/Check '{}' none || true)") == '{"status":"SERVING"}' ]]; }
wait_until 10s serving || die "health not SERVING within 10 s: $(call grpc.health.v1.Health/Check '{}' || true)"
log "health SERVING"

# --- reflection lists the services
services="$("$GRPCURL" -plaintext -max-time 5 "$ADDR" list)" || die "grpcurl list failed: $services"
for service in segmentation.v1.SegmentService segmentation.v1.UserAdminService segmentation.v1.HistoryService \
  grpc.health.v1.Health; do
  grep -qx "$service" <<<"$services" || die "'$service' not listed by reflection: $services"
done
log "reflection lists every service"

# --- one pass through the API with the contract's JSON names
USER_ID="$(cat /proc/sys/kernel/random/uuid)"
USER_UPPER="${USER_ID^^}"
SUFFIX="${USER_ID//-/}"
SLUG_A="SMOKE_A_${SUFFIX:0:12}"
SLUG_B="SMOKE_B_${SUFFIX:0:12}"

out="$(call segmentation.v1.UserAdminService/CreateUser "{\"userID\": \"$USER_UPPER\"}")" || die "CreateUser: $out"
[[ $(flat "$out") == '{}' ]] || die "CreateUser: unexpected output: $out"

for slug in "$SLUG_B" "$SLUG_A"; do
  out="$(call segmentation.v1.SegmentService/CreateSegment "{\"slug\": \"$slug\", \"description\": \"smoke\"}")" ||
    die "CreateSegment $slug: $out"
  [[ $(flat "$out") == *"\"slug\":\"$slug\""* && $(flat "$out") == *'"createdAt":"'* ]] ||
    die "CreateSegment $slug: unexpected output: $out"
done

out="$(call segmentation.v1.SegmentService/CreateSegment "{\"slug\": \"$SLUG_A\"}")" &&
  die "CreateSegment twice succeeded: $out"
grep -q 'Code: AlreadyExists' <<<"$out" || die "CreateSegment twice: expected AlreadyExists: $out"

ADD_A="{\"segmentSlug\": \"$SLUG_A\", \"secondsToBeInSegment\": 3600}"
ADD_B_TOO_LATE="{\"segmentSlug\": \"$SLUG_B\", \"deadlineForStayingInSegment\": \"2099-01-01T00:00:00Z\"}"
out="$(call segmentation.v1.SegmentService/UpdateUserSegments \
  "{\"userID\": \"$USER_ID\", \"segmentsToAdd\": [$ADD_A, $ADD_B_TOO_LATE]}")" &&
  die "UpdateUserSegments with a deadline 70 years ahead succeeded: $out"
grep -q 'Code: InvalidArgument' <<<"$out" || die "UpdateUserSegments: expected InvalidArgument: $out"
grep -q 'segmentsToAdd\[1\].deadlineForStayingInSegment' <<<"$out" ||
  die "UpdateUserSegments: field path missing: $out"

out="$(call segmentation.v1.SegmentService/UpdateUserSegments \
  "{\"userID\": \"$USER_ID\", \"segmentsToAdd\": [$ADD_A, {\"segmentSlug\": \"$SLUG_B\"}]}")" ||
  die "UpdateUserSegments: $out"
[[ $(flat "$out") == '{}' ]] || die "UpdateUserSegments: unexpected output: $out"

out="$(call segmentation.v1.SegmentService/UpdateUserSegments \
  "{\"userID\": \"$USER_ID\", \"segmentsToRemove\": [{\"segmentSlug\": \"SMOKE_NOPE_${SUFFIX:0:12}\"}]}")" &&
  die "UpdateUserSegments with an unknown slug succeeded: $out"
grep -q 'Code: NotFound' <<<"$out" || die "UpdateUserSegments unknown slug: expected NotFound: $out"
grep -q 'segmentsToRemove\[0\].segmentSlug' <<<"$out" ||
  die "UpdateUserSegments unknown slug: field path missing: $out"

out="$(call segmentation.v1.SegmentService/GetUserSegments "{\"userID\": \"$USER_UPPER\"}")" ||
  die "GetUserSegments: $out"
[[ $(flat "$out") == "{\"segments\":[\"$SLUG_A\",\"$SLUG_B\"]}" ]] || die "GetUserSegments: unexpected output: $out"

STRANGER="$(cat /proc/sys/kernel/random/uuid)"
out="$(call segmentation.v1.SegmentService/GetUserSegments "{\"userID\": \"$STRANGER\"}")" ||
  die "GetUserSegments of an unknown user: $out"
[[ $(flat "$out") == '{}' ]] || die "GetUserSegments of an unknown user: unexpected output: $out"
log "CreateUser, CreateSegment, UpdateUserSegments, GetUserSegments ok"

# --- tokens: none is unauthenticated; the service role reads, and only reads
out="$(call segmentation.v1.SegmentService/GetUserSegments "{\"userID\": \"$USER_ID\"}" none)" &&
  die "GetUserSegments without a token succeeded: $out"
grep -q 'Code: Unauthenticated' <<<"$out" || die "GetUserSegments without a token: expected Unauthenticated: $out"
out="$(call segmentation.v1.SegmentService/GetUserSegments "{\"userID\": \"$USER_ID\"}" service)" ||
  die "GetUserSegments as service: $out"
out="$(call segmentation.v1.SegmentService/DeleteSegment "{\"slug\": \"$SLUG_A\"}" service)" &&
  die "DeleteSegment as service succeeded: $out"
grep -q 'Code: PermissionDenied' <<<"$out" || die "DeleteSegment as service: expected PermissionDenied: $out"
grep -q 'unauthenticated call of /segmentation.v1.SegmentService/GetUserSegments' "$LOG" ||
  die "the refused call is not logged: $(tail -n 5 "$LOG")"
grep -qF "$(token_of service)" "$LOG" && die "a token was written to the log"
log "no token: Unauthenticated; service: reads, PermissionDenied on DeleteSegment; refusals logged without tokens"

# --- history: the user's events, a report link and its download
out="$(call segmentation.v1.HistoryService/ListUserHistory "{\"userID\": \"$USER_ID\"}")" || die "ListUserHistory: $out"
[[ $(grep -o '"operation": "add"' <<<"$out" | wc -l) -eq 2 ]] || die "ListUserHistory: expected two adds: $out"
out="$(call segmentation.v1.HistoryService/GetHistoryReportLink \
  "{\"userID\": \"$USER_ID\", \"month\": $(date -u +%-m), \"year\": $(date -u +%Y)}")" || die "GetHistoryReportLink: $out"
request="$(python3 -c '
import json, sys, urllib.parse as up
link = json.loads(sys.argv[1])["reportLink"]
assert link.startswith("/segments/history-report?"), link
q = dict(up.parse_qsl(up.urlparse(link).query))
print(json.dumps({k: (int(v) if k in ("month", "year") else v) for k, v in q.items()}))' "$out")" ||
  die "GetHistoryReportLink: unexpected link: $out"
# The link is the capability: its download needs no token.
out="$(call segmentation.v1.HistoryService/DownloadHistoryReport "$request" none)" || die "DownloadHistoryReport: $out"
csv="$(python3 -c '
import base64, json, sys
decoder, text, pos = json.JSONDecoder(), sys.argv[1], 0
while pos < len(text):
    chunk, pos = decoder.raw_decode(text, pos)
    sys.stdout.write(base64.b64decode(chunk.get("data", "")).decode())
    while pos < len(text) and text[pos].isspace():
        pos += 1' "$out")"
[[ $(head -n1 <<<"$csv") == 'user_id;segment;operation;datetime' ]] || die "report: bad header: $csv"
grep -Eq "^$USER_ID;$SLUG_A;add;[0-9-]{10}T[0-9:]{8}\.[0-9]{6}Z\$" <<<"$csv" || die "report: no add of $SLUG_A: $csv"
[[ $(wc -l <<<"$csv") -eq 3 ]] || die "report: expected a header and 2 lines: $csv"
log "ListUserHistory, GetHistoryReportLink, DownloadHistoryReport ok"

# --- SIGTERM: a clean exit within 15 s
kill -TERM "$SERVER_PID"
exited() { ! pid_alive "$SERVER_PID"; }
wait_until 15s exited || die "server still running 15 s after SIGTERM: $(tail -n 20 "$LOG")"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
[[ $rc -eq 0 ]] || die "server exited with $rc after SIGTERM: $(tail -n 20 "$LOG")"
log "SIGTERM: exit 0"
log "PASS"
