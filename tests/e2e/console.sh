#!/usr/bin/env bash
# The web console in a real browser: Debian's chromium, driven by
# puppeteer-core (tests/e2e/console/, pinned in its package-lock.json), reads
# known data through the real gateway and server. The data is made through
# the REST API in three rounds, and between rounds everything the database
# remembers is moved 10 days into the past, so the console has a past to
# show: round 1 happened 20 days ago, round 2 10 days ago, round 3 now.
# console/console.test.mjs holds the numbers this data must show.
#
# Usage: console.sh SERVER_BIN GATEWAY_BIN   (needs SEGMENTS_TEST_DATABASE_URL)
# Environment: SEGMENTS_CONSOLE_SCREENSHOTS, a directory: the screenshots go
# there (docs/console/ keeps them) instead of a temporary one.
# SEGMENTS_CONSOLE_HOLD=1: no browser; the stack stays up with the data, to
# look at the console by hand, until Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

server_bin=${1:?server binary}
gateway_bin=${2:?gateway binary}
db_url=${SEGMENTS_TEST_DATABASE_URL:?set by scripts/test.sh}
here="$ROOT/tests/e2e/console"
chromium=${SEGMENTS_CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || die "$chromium not found: run scripts/install-deps.sh (chromium)"
command -v node >/dev/null || die "node not found"

# puppeteer-core from npm into the folder's node_modules (gitignored), again
# only when the lock file changes; it drives the system chromium, so no
# browser is downloaded.
stamp="$here/node_modules/.lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "installing puppeteer-core (npm ci) in $here/node_modules"
  (cd "$here" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --silent --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

work="$(mktemp -d)"
on_exit rm -rf "$work"
start_api_on_empty_db "$work" "$db_url" "$server_bin" "$gateway_bin"
base="http://127.0.0.1:$HTTP_PORT"
# A token that expires in a second (the browser test waits out the server's
# clock skew before it uses it).
expiring_token="$("$(dirname "$server_bin")/segments-token" mint --key="$TOKENS_DIR/signing-key.jwk" \
  --sub=local-expiring --role=support --issuer="$LOCAL_ISSUER" --ttl=1s)"

# call ROLE METHOD PATH [BODY]: the answer's body; dies unless it is 2xx.
call() {
  local role=$1 method=$2 path=$3 body=${4:-} out code
  out="$(curl -sS -X "$method" -H "Authorization: Bearer $(token_of "$role")" ${body:+-d "$body"} \
    -w '\n%{http_code}' "$base$path")" || die "$method $path: curl failed"
  code="${out##*$'\n'}"
  [[ $code == 2* ]] || die "$method $path: HTTP $code ${out%$'\n'*}"
  printf '%s' "${out%$'\n'*}"
}
remove_from() { call analyst POST /segments/change-for-user "{\"userID\":\"$1\",\"segmentsToRemove\":[{\"segmentSlug\":\"$2\"}]}" >/dev/null; }

# into_the_past DAYS: every timestamp of every table (history, memberships
# with their deadlines, segments, users, tasks, opt-outs, ...) DAYS days
# earlier, so the data stays what it was, only older. The server is stopped
# meanwhile and started again after, so that what it holds in memory (the
# hot read's memberships) is read again from the moved rows; memberships
# whose deadline has now passed end by its expiry job, at their deadline.
into_the_past() {
  bg_stop segments-server "$work/server.pid" "$server_bin" 5
  psql -X -q -v ON_ERROR_STOP=1 "$db_url" <<SQL
DO \$\$
DECLARE c record;
BEGIN
  FOR c IN
    SELECT table_name, string_agg(format('%I = %I - interval ''$1 days''', column_name, column_name), ', ') AS sets
    FROM information_schema.columns JOIN information_schema.tables USING (table_schema, table_name)
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND data_type = 'timestamp with time zone'
      AND table_name <> 'schema_migrations'
    GROUP BY table_name
  LOOP
    EXECUTE format('UPDATE %I SET %s', c.table_name, c.sets);
  END LOOP;
END
\$\$;
SQL
  start_server "127.0.0.1:$GRPC_PORT" "$work/server.pid" "$work/server-$1.log" "$server_bin" \
    --database-url="$db_url" --expiry-period=1s
  wait_until 30s _gateway_ready "127.0.0.1:$HTTP_PORT" || die "the gateway did not reach the restarted server"
}

# --- round 1, 20 days ago: ten users; AVITO_VOICE_MESSAGES by hand (1001-1006),
# AVITO_TRIAL automatic for everyone (100 %, members for 30 days).
for id in {1001..1010}; do call admin POST /segments/create-user "{\"userID\":\"$id\"}" >/dev/null; done
call analyst POST /segments/create '{"slug":"AVITO_VOICE_MESSAGES","description":"Voice messages in chat"}' >/dev/null
call analyst POST /segments/bulk-add \
  '{"slug":"AVITO_VOICE_MESSAGES","userIDs":["1001","1002","1003","1004","1005","1006"]}' >/dev/null
call analyst POST /segments/create \
  '{"slug":"AVITO_TRIAL","percentToFill":100,"autoSecondsToBeInSegment":2592000,"description":"Trial of paid services"}' >/dev/null
into_the_past 10

# --- round 2, 10 days ago: 1007 and 1008 join AVITO_VOICE_MESSAGES and 1003
# leaves it; 1001 gets AVITO_DISCOUNT_30 for 5 days (so it ended 5 days
# ago, by TTL); 1002 is taken out of AVITO_TRIAL.
call analyst POST /segments/bulk-add '{"slug":"AVITO_VOICE_MESSAGES","userIDs":["1007","1008"]}' >/dev/null
remove_from 1003 AVITO_VOICE_MESSAGES
call analyst POST /segments/create '{"slug":"AVITO_DISCOUNT_30","description":"30% discount"}' >/dev/null
call analyst POST /segments/change-for-user \
  '{"userID":"1001","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30","secondsToBeInSegment":432000}]}' >/dev/null
remove_from 1002 AVITO_TRIAL
into_the_past 10

# --- round 3, now: 1004 leaves AVITO_VOICE_MESSAGES, 1009 gets
# AVITO_DISCOUNT_30 for a day, user 1010 is deleted, AVITO_CHAT_BOTS is
# everyone not in AVITO_TRIAL (that is 1002).
remove_from 1004 AVITO_VOICE_MESSAGES
call analyst POST /segments/change-for-user \
  '{"userID":"1009","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30","secondsToBeInSegment":86400}]}' >/dev/null
call admin DELETE /segments/remove-user '{"userID":"1010"}' >/dev/null
call analyst POST /segments/create '{"slug":"AVITO_CHAT_BOTS","percentToFill":100,"excludeSegments":["AVITO_TRIAL"]}' >/dev/null

# The expiry job ends 1001's AVITO_DISCOUNT_30 once the server is back.
ttl_ended() {
  [[ $(call support GET '/segments/get-user-history?userID=1001&segment=AVITO_DISCOUNT_30') == *'"reason":"ttl"'* ]]
}
WAIT_STEP=0.2 wait_until 30s ttl_ended || die "1001's AVITO_DISCOUNT_30 did not end by TTL"
log "data made"

if [[ -n ${SEGMENTS_CONSOLE_HOLD:-} ]]; then
  log "holding: the console is at $base/console/ with this data, tokens in $TOKENS_DIR; Ctrl-C ends"
  while sleep 3600; do :; done
fi

shots=${SEGMENTS_CONSOLE_SCREENSHOTS:-$work/screenshots}
mkdir -p "$shots"
rc=0
CONSOLE_BASE="$base" CHROMIUM="$chromium" SCREENSHOTS="$shots" \
  TOKEN_SERVICE="$(token_of service)" TOKEN_SUPPORT="$(token_of support)" TOKEN_EXPIRED="$expiring_token" \
  node "$here/console.test.mjs" || rc=$?
if ((rc != 0)); then
  tail -n 20 "$work"/server*.log "$work/gateway.log" >&2 || true
  die "the console test failed (screenshots: $shots)"
fi
log "the console shows what it should (screenshots: $shots)"
