#!/usr/bin/env bash
# The drill's invariants (scripts/cluster/invariants.sql) can fail: on the
# test database, a small consistent history and what its clients saw give
# no violation; then each kind of damage, in a transaction rolled back,
# must be reported by its invariant.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
need_test_env SEGMENTS_TEST_DATABASE_URL
DB=$SEGMENTS_TEST_DATABASE_URL
export PGOPTIONS='-c client_min_messages=warning'
SQL_FILE="$ROOT/scripts/cluster/invariants.sql"

sql() { psql -X -q -v ON_ERROR_STOP=1 "$DB" "$@"; }

# A user kept in S by hand, an excluded user whose TTL membership of S ended
# at its deadline; the drill's files saying the same; the mock's users.
sql <<'SEED'
TRUNCATE history, memberships, auto_opt_outs, segment_tasks, segments, users, membership_changes,
         idempotency_keys RESTART IDENTITY;
INSERT INTO users (id, state, created_at, updated_at) VALUES
  ('00000000-0000-4000-8000-00000000000a', 'active', now() - interval '1 hour', now() - interval '1 hour'),
  ('00000000-0000-4000-8000-00000000000b', 'excluded', now() - interval '1 hour', now() - interval '1 hour');
INSERT INTO segments (slug, salt, created_at) VALUES ('DRILL_S', 'salt', now() - interval '1 hour');
INSERT INTO memberships (user_id, segment_id, added_at)
  VALUES ('00000000-0000-4000-8000-00000000000a', 1, now() - interval '10 minutes');
INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at) VALUES
  ('00000000-0000-4000-8000-00000000000a', 1, 'DRILL_S', 'add', 'manual', now() - interval '10 minutes', NULL),
  ('00000000-0000-4000-8000-00000000000b', 1, 'DRILL_S', 'add', 'manual', now() - interval '10 minutes',
   now() - interval '5 minutes'),
  ('00000000-0000-4000-8000-00000000000b', 1, 'DRILL_S', 'remove', 'ttl', now() - interval '5 minutes', NULL);
DROP SCHEMA IF EXISTS drill CASCADE;
CREATE SCHEMA drill;
CREATE TABLE drill.expected (user_id text, slug text, held boolean);
CREATE TABLE drill.expected_events (user_id text, slug text, acked_adds int, acked_removes int);
CREATE TABLE drill.mock_users (user_id text, state text);
INSERT INTO drill.expected VALUES
  ('00000000-0000-4000-8000-00000000000a', 'DRILL_S', true), ('00000000-0000-4000-8000-00000000000b', 'DRILL_S', false);
INSERT INTO drill.expected_events VALUES
  ('00000000-0000-4000-8000-00000000000a', 'DRILL_S', 1, 0), ('00000000-0000-4000-8000-00000000000b', 'DRILL_S', 1, 0);
INSERT INTO drill.mock_users VALUES
  ('00000000-0000-4000-8000-00000000000a', 'active'), ('00000000-0000-4000-8000-00000000000b', 'excluded');
SEED
on_exit sql -c "DROP SCHEMA IF EXISTS drill CASCADE"

# violations [DAMAGE_SQL]: the invariants' violation counts, in order, one
# line, after DAMAGE_SQL (rolled back afterwards).
violations() {
  { echo "BEGIN;"; echo "${1:-}"; cat "$SQL_FILE"; echo "ROLLBACK;"; } | psql -X -q -v ON_ERROR_STOP=1 -tA "$DB" |
    awk -F'|' 'NF >= 2 { printf "%s%s", sep, $2; sep = " " } END { print "" }'
}

failed=0
# expect NAME WANT DAMAGE_SQL: after DAMAGE_SQL, the counts are WANT.
expect() {
  local got
  got="$(violations "$3")"
  if [[ $got == "$2" ]]; then
    log "ok: $1 ($got)"
  else
    warn "$1: violations $got, expected $2"
    failed=1
  fi
}

A="'00000000-0000-4000-8000-00000000000a'"
B="'00000000-0000-4000-8000-00000000000b'"
# Order: kept, events counted, replayed, duplicated, TTL at deadline, overdue, replica.
expect "consistent" "0 0 0 0 0 0 0" ""
expect "an acknowledged add lost" "1 0 1 0 0 0 0" "DELETE FROM memberships WHERE user_id = $A;"
expect "an add made twice" "0 1 0 1 0 0 0" \
  "INSERT INTO history (user_id, segment_id, slug, operation, reason, at) VALUES ($A, 1, 'DRILL_S', 'add', 'manual', now() - interval '9 minutes');"
expect "a membership the history does not give" "0 0 1 0 0 0 0" \
  "UPDATE memberships SET expires_at = now() + interval '1 hour' WHERE user_id = $A;"
expect "a TTL exit off its deadline" "0 0 0 0 1 0 0" \
  "UPDATE history SET at = at + interval '1 second' WHERE reason = 'ttl';"
expect "a TTL exit never written" "1 1 1 0 0 1 0" \
  "DELETE FROM history WHERE reason = 'ttl'; INSERT INTO memberships (user_id, segment_id, added_at, expires_at) VALUES ($B, 1, now() - interval '10 minutes', now() - interval '5 minutes');"
# (Replayed, an add whose deadline has passed is not held: that invariant
# does not see it, the event count does.)
expect "a remove event lost" "0 1 0 0 0 0 0" "DELETE FROM history WHERE reason = 'ttl';"
expect "a user event not applied" "0 0 0 0 0 0 1" "UPDATE users SET state = 'active' WHERE id = $B;"
expect "a user the user service does not have" "0 0 0 0 0 0 1" \
  "INSERT INTO users (id, state, created_at, updated_at) VALUES ('00000000-0000-4000-8000-00000000000c', 'active', now(), now());"
((failed == 0)) || die "an invariant did not report its damage"
log "every damage reported"
