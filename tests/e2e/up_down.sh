#!/usr/bin/env bash
# The README's run command, as a user runs it: scripts/up.sh brings the whole
# stack up in a state folder of its own; a user created in the mock shows up
# in get-for-user through the gateway within a second; scripts/down.sh stops
# every process; a second up finds the data of the first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

export SEGMENTS_STATE_DIR
SEGMENTS_STATE_DIR="$(mktemp -d /tmp/segments-up-down.XXXXXX)"
chmod 755 "$SEGMENTS_STATE_DIR"  # PostgreSQL runs as its own user
on_exit rm -rf "$SEGMENTS_STATE_DIR"
on_exit "$ROOT/scripts/down.sh"
export SEGMENTS_GRPC_PORT SEGMENTS_HTTP_PORT SEGMENTS_USERMOCK_PORT
read -r SEGMENTS_GRPC_PORT SEGMENTS_HTTP_PORT SEGMENTS_USERMOCK_PORT < <(free_ports 3)
HTTP="http://127.0.0.1:$SEGMENTS_HTTP_PORT"
TOKENS_DIR="$SEGMENTS_STATE_DIR/tokens"  # where up.sh makes them
MOCK="127.0.0.1:$SEGMENTS_USERMOCK_PORT"

segments_of() { curl -s -H "$(bearer_of service)" "$HTTP/segments/get-for-user?userID=$1"; }
has_everyone() { [[ $(segments_of "$1") == '{"segments":["EVERYONE"]}' ]]; }

"$ROOT/scripts/up.sh" >"$SEGMENTS_STATE_DIR/up1.out" 2>&1 || die "up.sh failed: $(tail -n 30 "$SEGMENTS_STATE_DIR/up1.out")"
grep -q "segments is up" "$SEGMENTS_STATE_DIR/up1.out" || die "up.sh did not say where the stack is"
for what in "gRPC:" "HTTP:" "database:" "kafka:" "user-service mock:" "tokens:" "$TOKENS_DIR/admin.jwt"; do
  grep -q "$what" "$SEGMENTS_STATE_DIR/up1.out" || die "up.sh printed no '$what' line"
done
log "stack up"

[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "$HTTP/segments/create" -d '{"slug":"EVERYONE"}') == 401 ]] ||
  die "a call without a token was not refused"
[[ $(curl -s -o /dev/null -w '%{http_code}' -H "$(bearer_of analyst)" -X POST "$HTTP/segments/create" \
  -d '{"slug":"EVERYONE","percentToFill":100}') == 204 ]] || die "create segment failed"
U=00000000-0000-4000-8000-0000000000aa
start=$(now_ms)
"$GRPCURL" -plaintext -d "{\"userID\":\"$U\"}" "$MOCK" usermock.v1.UserMockAdmin/CreateUser >/dev/null
WAIT_STEP=0.02 wait_until 1000ms has_everyone "$U" ||
  die "user not visible through the gateway within 1 s: $(segments_of "$U")"
log "user created in the mock visible after $(($(now_ms) - start)) ms"

"$ROOT/scripts/down.sh" >"$SEGMENTS_STATE_DIR/down.out" 2>&1 || die "down.sh failed: $(cat "$SEGMENTS_STATE_DIR/down.out")"
for pidfile in "$SEGMENTS_STATE_DIR"/{server,gateway,usermock}.pid "$SEGMENTS_STATE_DIR"/kafka/kafka.pid; do
  if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then die "$pidfile: still running after down.sh"; fi
done
if "$ROOT/scripts/pg.sh" status >/dev/null 2>&1; then die "PostgreSQL still running after down.sh"; fi
log "down stopped everything"

"$ROOT/scripts/up.sh" >"$SEGMENTS_STATE_DIR/up2.out" 2>&1 || die "second up.sh failed: $(tail -n 30 "$SEGMENTS_STATE_DIR/up2.out")"
# The tokens of the first up still work: the key was kept.
has_everyone "$U" || die "data lost (or tokens refused) across down/up: $(segments_of "$U")"
"$GRPCURL" -plaintext -d "{\"userID\":\"$U\"}" "$MOCK" userservice.v1.UserService/GetUser | grep -q USER_STATE_ACTIVE ||
  die "the mock lost its users across down/up"
log "ok: data kept across down and up"
