#!/usr/bin/env bash
# Time-travel reads benchmark (issue 18; see bench/README.md, "Time travel
# (issue 18)"): the report benchmark's 10,000,000 history events of 1,000,000
# users over 2023 (bench/history_seed.sql) plus one segment AVITO_BIG with
# 1,000,000 members added over the year and ~200,000 of them removed later,
# and `segments` rows for every slug (bench/time_travel_seed.sql); loaded
# once, kept for the next run. Starts segments-server and segments-gateway
# and times each read through the gateway with curl (time_total), --runs
# times, reporting the median and the max:
#   size-year-big    size-history AVITO_BIG 2023-01-01..2024-01-01, step day
#                    (the issue's target: < 1 s)
#   size-year-exp    the same for AVITO_EXPERIMENT_01 (~200k random events)
#   size-month-hour  size-history AVITO_BIG 2023-06, step hour
#   count-at         count-members-at AVITO_BIG at 2023-09-01
#   list-first       list-members-at AVITO_BIG at 2023-09-01, first page of 1000
#   list-deep        the same, a page of 1000 after --deep-pages pages of 10,000
#   user-at          get-for-user-at of the report bench's chosen user (1200 events)
#   explain          explain-for-user of an AVITO_BIG member (every segment held)
#   stream-at        stream-members-at AVITO_BIG at 2023-09-01 (every member)
# Answers are checked first (point counts, count = list = stream = a count
# straight from history). Also: the size of history_segment_member_idx
# against the heap and the other indexes, its build time (the seed builds it
# alone on the loaded table), EXPLAIN (ANALYZE, BUFFERS) of the server's
# statements with custom and generic plans (explain.txt), and the write cost
# of the index: 100,000 rows in one INSERT ... SELECT and 10,000 single-row
# INSERTs in one transaction, with and without it (DROP INDEX inside a
# transaction that is rolled back), in a scratch copy of the database.
#
# Usage: bench/run_time_travel_bench.sh [flags]
#   --runs=5              timed calls of each kind (and write-cost rounds)
#   --stream-runs=N       timed calls of stream-at only (default --runs): the
#                         whole list each time, 5-9 s with f74fc82's server,
#                         150 s with the one before
#   --reload              load the data again even if it is there
#   --events=10000000 --users=1000000 --big-members=1000000   data size (a change reloads)
#   --server-bin=PATH     default build/release/server/segments-server
#                         (segments-token must be beside it)
#   --gateway-bin=PATH    default build/release/gateway/segments-gateway
#   --workers=8 --db-pool-size=8   segments-server settings
#   --deep-pages=40       pages of 10,000 walked before the deep page
#   --no-write-cost       skip the insert measurements
#   --wait-idle=SECONDS   before each timed call, wait up to SECONDS for the
#                         machine to be idle (< 10% busy over half a second)
#   --csv                 also print every run as CSV at the end
# Env: SEGMENTS_STATE_DIR, default build/bench-time-travel/state: its own
# PostgreSQL cluster, logs and results in $SEGMENTS_STATE_DIR/time-travel-bench.
# The cluster is stopped at the end if this script started it; the data
# stays for the next run (database segments_time_travel_bench, 4.8 GB; as
# much again for the scratch copy while the write cost runs).
# Exit status: 0 target met, 1 something failed (wrong answer, a process
# died), 2 target missed (median of size-year-big >= 1 s).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
own_state build/bench-time-travel/state "the time-travel benchmark"

runs=5 reload=0 events=10000000 users=1000000 big_members=1000000 workers=8 pool=8 deep_pages=40
write_cost=1 wait_idle=0 csv=0 stream_runs=""
server_bin="$ROOT/build/release/server/segments-server"
gateway_bin="$ROOT/build/release/gateway/segments-gateway"
year=2023 chosen_user=11111111-2222-4333-8444-555555555555 big_id=51 at="2023-09-01T00:00:00Z"
while (($#)); do
  case $1 in
    --runs=*) runs=${1#*=} ;;
    --stream-runs=*) stream_runs=${1#*=} ;;
    --reload) reload=1 ;;
    --events=*) events=${1#*=} ;;
    --users=*) users=${1#*=} ;;
    --big-members=*) big_members=${1#*=} ;;
    --server-bin=*) server_bin=${1#*=} ;;
    --gateway-bin=*) gateway_bin=${1#*=} ;;
    --workers=*) workers=${1#*=} ;;
    --db-pool-size=*) pool=${1#*=} ;;
    --deep-pages=*) deep_pages=${1#*=} ;;
    --no-write-cost) write_cost=0 ;;
    --wait-idle=*) wait_idle=${1#*=} ;;
    --csv) csv=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ $wait_idle =~ ^[0-9]+$ ]] || die "--wait-idle wants whole seconds"
[[ $deep_pages =~ ^[0-9]+$ ]] || die "--deep-pages wants a whole number"
stream_runs=${stream_runs:-$runs}
[[ $stream_runs =~ ^[0-9]+$ ]] || die "--stream-runs wants a whole number"
for n in "$runs" "$events" "$users" "$big_members" "$workers" "$pool"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
[[ $server_bin == /* ]] || server_bin="$PWD/$server_bin"
[[ $gateway_bin == /* ]] || gateway_bin="$PWD/$gateway_bin"
for b in "$server_bin" "$(dirname "$server_bin")/segments-token" "$gateway_bin"; do
  [[ -x $b ]] || die "missing $b (build it, or pass --server-bin/--gateway-bin)"
done

PG="$ROOT/scripts/pg.sh"
DB=segments_time_travel_bench
OUT="$STATE/time-travel-bench"
RESULTS="$OUT/results.csv"
mkdir -p "$OUT"

psql_db() { "$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }
sql() { psql_db -tA -c "$1"; }

# --- data ------------------------------------------------------------------
HISTORY_SEED="$ROOT/bench/history_seed.sql"
TT_SEED="$ROOT/bench/time_travel_seed.sql"
SCHEMA="$ROOT/db/schema.sql"

meta() { sql "SELECT value FROM bench_time_travel_meta WHERE key = '$1'" 2>/dev/null; }

load_data() {
  local fingerprint have="" t0 seconds
  fingerprint="$(cat "$SCHEMA" "$HISTORY_SEED" "$TT_SEED" | sha256sum | cut -c1-16) events=$events users=$users"
  fingerprint+=" big=$big_members year=$year chosen=$chosen_user"
  if [[ -n $("$PG" psql postgres -XtAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
    have="$(meta fingerprint || true)"
  fi
  if ((!reload)) && [[ $have == "$fingerprint" ]]; then
    log "data already loaded ($(meta loaded_at), in $(meta load_seconds) s); --reload loads it again"
    return 0
  fi
  [[ -n $have ]] && log "loaded data differs ($have), loading again"
  log "creating $DB: $events report events of $users users, then AVITO_BIG with $big_members members (takes minutes)"
  PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  PGOPTIONS='-c client_min_messages=warning' psql_db -f "$SCHEMA"
  t0=$(now_ns)
  {
    psql_db -v events="$events" -v users="$users" -v year="$year" -v chosen_user="$chosen_user" \
      -v chosen_per_month=100 -f "$HISTORY_SEED"
    psql_db -v users="$users" -v year="$year" -v big_members="$big_members" -v big_segment_id="$big_id" \
      -f "$TT_SEED"
  } 2>&1 | tee "$OUT/load.log" | grep '^\[' | sed 's/^/    /' >&2
  seconds=$(secs_since "$t0")
  log "loaded in $seconds s"
  psql_db -c "CREATE TABLE bench_time_travel_meta (key text PRIMARY KEY, value text NOT NULL)" \
    -c "INSERT INTO bench_time_travel_meta VALUES
          ('load_seconds', '$seconds'),
          ('loaded_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')),
          ('rows', (SELECT count(*) FROM history)::text),
          ('fingerprint', '$fingerprint')"
}

# --- sizes and build time ----------------------------------------------------
print_sizes() {
  echo "data:  $(meta rows) history rows, loaded in $(meta load_seconds) s ($(meta loaded_at))"
  echo "relation sizes (pg_relation_size) and build times (bench_time_travel_seed: each index built"
  echo "alone on the loaded table; history_segment_member_idx last, after VACUUM and CHECKPOINT):"
  psql_db -P footer=off -c "
    WITH r AS (
      SELECT c.relname AS relation, pg_relation_size(c.oid) AS bytes, c.relkind
      FROM pg_class c
      WHERE c.oid = 'history'::regclass
         OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'history'::regclass))
    SELECT r.relation, CASE r.relkind WHEN 'r' THEN 'heap' ELSE 'index' END AS kind,
           round(r.bytes / 1048576.0) AS mb,
           round(100.0 * r.bytes / pg_relation_size('history'), 1) AS pct_of_heap,
           round(100.0 * r.bytes / nullif(pg_indexes_size('history') - pg_relation_size('history_segment_member_idx'), 0), 1)
             AS pct_of_other_indexes,
           s.seconds::numeric(8, 1) AS build_s
    FROM r LEFT JOIN bench_time_travel_seed s ON s.step = 'build ' || r.relation
    ORDER BY r.relkind DESC, r.relation"
  echo "load steps: $(sql "SELECT string_agg(step || ' ' || seconds::numeric(8, 1) || ' s', ', ' ORDER BY step)
                           FROM bench_time_travel_seed WHERE step NOT LIKE 'build %'")"
}

# --- the server's statements ------------------------------------------------------
# The SQL of each read is taken from the server itself: right after a call,
# the connection that ran it still shows the statement's text (with its $n
# parameters) in pg_stat_activity. So the plans below are those of the
# binary measured, whatever server/src/storage/pg_time_travel_queries.cc
# says today. They are EXPLAINed through PREPARE/EXECUTE with the
# benchmark's values, as a custom plan (a statement planned per call, or a
# prepared one's first five executions) and as a generic plan (what a
# prepared statement may switch to after that, plan_cache_mode = auto).
declare -A STMT
# capture_sql KEY LIKE_PATTERN: the text of the server's last statement
# matching LIKE_PATTERN into STMT[KEY] (warns if none).
capture_sql() {
  local text limit
  text="$(sql "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend' AND query LIKE '$2' ORDER BY query_start DESC LIMIT 1")"
  if [[ -z $text ]]; then
    warn "no statement like $2 in pg_stat_activity: not EXPLAINed"
    return 0
  fi
  limit="$(sql "SELECT setting FROM pg_settings WHERE name = 'track_activity_query_size'")"
  if ((${#text} >= limit - 1)); then
    warn "the statement like $2 may be cut at track_activity_query_size ($limit): not EXPLAINed"
    return 0
  fi
  STMT[$1]=$text
}

# explain_one TITLE KEY ARGS: EXPLAIN (ANALYZE, BUFFERS) of STMT[KEY]
# executed with ARGS, as a custom plan and as a generic plan.
explain_one() {
  local title=$1 text=${STMT[$2]:-} args=$3 mode
  [[ -n $text ]] || return 0
  for mode in force_custom_plan force_generic_plan; do
    echo "-- $title [$mode]"
    echo "--   EXECUTE ($args)"
    psql_db -c "SET plan_cache_mode = $mode" -c "PREPARE q AS $text" \
      -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q($args)" -c "DEALLOCATE q"
  done
}

explain_queries() {
  local now big_user_after key
  now="'$(date -u +%Y-%m-%dT%H:%M:%SZ)'"
  # The user id after which the deep page starts (about where the deep
  # page's token points), for the EXPLAIN of a deep page.
  big_user_after="$(sql "SELECT user_id FROM (SELECT DISTINCT user_id FROM history WHERE segment_id = $big_id
                          ORDER BY user_id OFFSET $((deep_pages * 10000)) LIMIT 1) u")"
  {
    echo "-- The server's statements as it sent them (pg_stat_activity after a call), with the"
    echo "-- benchmark's values; custom plan = planned for these values, generic = the plan a prepared"
    echo "-- statement may switch to after five executions on one connection (plan_cache_mode = auto)."
    for key in size members count user; do
      echo "-- statement $key: ${STMT[$key]:-(not seen)}"
    done
    echo
    explain_one "size-year-big: AVITO_BIG, 2023 by day" size \
      "'{$big_id}', '2023-01-01T00:00:00Z', '2024-01-01T00:00:00Z', 86400, $now"
    explain_one "size-year-exp: AVITO_EXPERIMENT_01, 2023 by day" size \
      "'{1}', '2023-01-01T00:00:00Z', '2024-01-01T00:00:00Z', 86400, $now"
    explain_one "size-month-hour: AVITO_BIG, 2023-06 by hour" size \
      "'{$big_id}', '2023-06-01T00:00:00Z', '2023-07-01T00:00:00Z', 3600, $now"
    explain_one "list-first: AVITO_BIG at $at, first page (limit 1001)" members "$big_id, '$at', '', 1001"
    explain_one "list-deep: AVITO_BIG at $at, after $big_user_after (limit 1001)" members \
      "$big_id, '$at', '$big_user_after', 1001"
    explain_one "count-at: AVITO_BIG at $at" count "$big_id, '$at'"
    explain_one "user-at: $chosen_user at $at" user "'$chosen_user', '$at'"
  } >"$OUT/explain.txt" 2>&1
}

# "SEQ_SCANS MEMBER_IDX_SCANS" of history so far (flushed by backends when
# idle or when they exit).
history_scans() {
  sql "SELECT t.seq_scan || ' ' || i.idx_scan FROM pg_stat_user_tables t, pg_stat_user_indexes i
       WHERE t.relname = 'history' AND i.indexrelname = 'history_segment_member_idx'"
}

# --- calls through the gateway -------------------------------------------------
AUTH_HEADER=""
# get NAME PATH_AND_QUERY FILE: one GET through the gateway into FILE;
# prints "HTTP_CODE BYTES SECONDS".
get() {
  curl -sS -o "$3" -H "$AUTH_HEADER" -w '%{http_code} %{size_download} %{time_total}\n' \
    "http://127.0.0.1:$http_port$2" || die "$1: curl failed"
}

# json_field FILE EXPR: a Python expression over the parsed JSON `j`.
json_field() { python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"; }

# stream_members FILE: members in a stream-members-at answer (NDJSON), or
# dies on an error line.
stream_members() {
  grep -q '"error"' "$1" && { head -c 600 "$1" >&2; die "stream-members-at answered an error"; }
  grep -o '"userID"' "$1" | wc -l
}

# Cases: NAME and the request.
declare -A REQ
CASES=(size-year-big size-year-exp size-month-hour count-at list-first list-deep user-at explain stream-at)
set_requests() {
  REQ[size-year-big]="/segments/size-history?slug=AVITO_BIG&from=2023-01-01T00:00:00Z&to=2024-01-01T00:00:00Z&step=day"
  REQ[size-year-exp]="/segments/size-history?slug=AVITO_EXPERIMENT_01&from=2023-01-01T00:00:00Z&to=2024-01-01T00:00:00Z&step=day"
  REQ[size-month-hour]="/segments/size-history?slug=AVITO_BIG&from=2023-06-01T00:00:00Z&to=2023-07-01T00:00:00Z&step=hour"
  REQ[count-at]="/segments/count-members-at?slug=AVITO_BIG&at=$at"
  REQ[list-first]="/segments/list-members-at?slug=AVITO_BIG&at=$at&pageSize=1000"
  REQ[list-deep]="/segments/list-members-at?slug=AVITO_BIG&at=$at&pageSize=1000&pageToken=$deep_token"
  REQ[user-at]="/segments/get-for-user-at?userID=$chosen_user&at=$at"
  REQ[explain]="/segments/explain-for-user?userID=$big_user"
  REQ[stream-at]="/segments/stream-members-at?slug=AVITO_BIG&at=$at"
}

# rows_of NAME FILE: what the answer holds (points, members, count, ...).
rows_of() {
  case $1 in
    size-*) json_field "$2" 'len(j["points"])' ;;
    count-at) json_field "$2" 'j["count"]' ;;
    list-*) json_field "$2" 'len(j.get("members", []))' ;;
    user-at) json_field "$2" 'len(j.get("memberships", []))' ;;
    explain) json_field "$2" 'len(j.get("explanations", []))' ;;
    stream-at) stream_members "$2" ;;
  esac
}

# check_answers: one call of each kind (also warms the caches and the
# prepared statements), answers compared with history itself.
check_answers() {
  local f="$OUT/answer.json" code bytes secs n expect_at expect_end token i
  expect_at=$(sql "SELECT count(*) FROM history a WHERE a.segment_id = $big_id AND a.operation = 'add'
                     AND a.at <= '$at' AND (a.expires_at IS NULL OR a.expires_at > '$at')
                     AND NOT EXISTS (SELECT FROM history r WHERE r.segment_id = $big_id AND r.user_id = a.user_id
                                     AND r.operation = 'remove' AND r.at <= '$at')")
  expect_end=$(sql "SELECT count(*) FROM history a WHERE a.segment_id = $big_id AND a.operation = 'add'
                      AND NOT EXISTS (SELECT FROM history r WHERE r.segment_id = $big_id AND r.user_id = a.user_id
                                      AND r.operation = 'remove')")
  set_requests
  log "checking the answers: AVITO_BIG has $expect_at members at $at, $expect_end at the end of $year"
  read -r code bytes secs < <(get size-year-big "${REQ[size-year-big]}" "$f")
  [[ $code == 200 ]] || { head -c 600 "$f" >&2; die "size-year-big: HTTP $code"; }
  n=$(json_field "$f" 'len(j["points"]), int(j.get("sizeAtStart", 0)), int(j["points"][-1]["size"]), int(j["points"][242]["size"])')
  [[ $n == "365 0 $expect_end $expect_at" ]] ||
    die "size-year-big: points, sizeAtStart, last size, size at the end of 2023-08-31: $n; expected 365 0 $expect_end $expect_at"
  log "  size-year-big: $secs s (first call), 365 points, ends at $expect_end"
  read -r code bytes secs < <(get count-at "${REQ[count-at]}" "$f")
  [[ $code == 200 && $(json_field "$f" 'j["count"]') == "$expect_at" ]] ||
    { head -c 600 "$f" >&2; die "count-at: HTTP $code, expected count $expect_at"; }
  log "  count-at: $secs s, $expect_at"
  # The deep page's token: --deep-pages pages of 10,000.
  token=""
  for ((i = 0; i < deep_pages; i++)); do
    read -r code bytes secs < <(get list-walk "/segments/list-members-at?slug=AVITO_BIG&at=$at&pageSize=10000${token:+&pageToken=$token}" "$f")
    [[ $code == 200 ]] || { head -c 600 "$f" >&2; die "list-members-at (walk): HTTP $code"; }
    token=$(json_field "$f" 'j.get("nextPageToken", "") if len(j["members"]) == 10000 else ""')
    [[ -n $token ]] || die "list-members-at (walk): page $((i + 1)) is the last; lower --deep-pages"
    token=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$token")
  done
  deep_token=$token
  log "  walked $deep_pages pages of 10,000 members (last one $secs s)"
  big_user=$(sql "SELECT a.user_id FROM history a WHERE a.segment_id = $big_id AND a.operation = 'add'
                    AND NOT EXISTS (SELECT FROM history r WHERE r.segment_id = $big_id AND r.user_id = a.user_id
                                    AND r.operation = 'remove')
                  ORDER BY a.user_id LIMIT 1")
  set_requests
  for name in "${CASES[@]}"; do
    read -r code bytes secs < <(get "$name" "${REQ[$name]}" "$f")
    [[ $code == 200 ]] || { head -c 600 "$f" >&2; die "$name: HTTP $code"; }
    n=$(rows_of "$name" "$f")
    case $name in
      size-year-*) [[ $n == 365 ]] || die "$name: $n points, expected 365" ;;
      size-month-hour) [[ $n == 720 ]] || die "$name: $n points, expected 720" ;;
      list-*) [[ $n == 1000 ]] || die "$name: $n members, expected 1000" ;;
      count-at | stream-at) [[ $n == "$expect_at" ]] || die "$name: $n members, expected $expect_at" ;;
      explain) ((n > 0)) || die "$name: no explanation" ;;
    esac
    log "  $name: $secs s, $n"
    case $name in
      size-year-big) capture_sql size '%date_bin(%FROM history WHERE segment_id%' ;;
      list-first) capture_sql members '%FROM history%WHERE segment_id = $1 AND user_id > $3%' ;;
      count-at) capture_sql count '%FILTER (WHERE operation%FROM history WHERE segment_id = $1 AND at <= $2%' ;;
      user-at) capture_sql user '%FROM history WHERE user_id = $1::user_id AND at <= $2%' ;;
    esac
  done
  EXPECT_AT=$expect_at
}

# --- timed runs -------------------------------------------------------------------
timed_runs() {
  local f="$OUT/answer.json" run name code bytes secs n
  : >"$RESULTS"
  for ((run = 1; run <= runs; run++)); do
    for name in "${CASES[@]}"; do
      [[ $name == stream-at ]] && ((run > stream_runs)) && continue
      ((wait_idle)) && wait_for_idle "$wait_idle"
      pid_alive "$SERVER" || die "segments-server is gone (log: $OUT/server.log)"
      pid_alive "$GATEWAY" || die "segments-gateway is gone (log: $OUT/gateway.log)"
      read -r code bytes secs < <(get "$name" "${REQ[$name]}" "$f")
      [[ $code == 200 ]] || { head -c 600 "$f" >&2; die "$name: HTTP $code"; }
      n=$(rows_of "$name" "$f")
      echo "$name,$run,$n,$bytes,$secs" >>"$RESULTS"
      printf '  run %d  %-16s %8.3f s  %9d rows  %10d B\n' "$run" "$name" "$secs" "$n" "$bytes" >&2
    done
  done
  rm -f "$f"
}

# --- write cost of the index ---------------------------------------------------------
# 100,000 rows in one INSERT ... SELECT and 10,000 single-row INSERTs in one
# transaction, as new events of random report users in random segments after
# all the data; with the index, and with it dropped in the same transaction;
# rolled back either way. In a scratch copy of the database (CREATE DATABASE
# ... TEMPLATE, dropped after): rolled-back rows still split index pages, and
# the benchmark's own data must stay as loaded. Prints "SECONDS".
write_rows=100000 single_rows=10000 SCRATCH=${DB}_scratch
write_once() {
  local kind=$1 index=$2 run=$3 drop="" body
  [[ $index == without ]] && drop="DROP INDEX history_segment_member_idx;"
  if [[ $kind == bulk ]]; then
    body="INSERT INTO history (user_id, segment_id, slug, operation, reason, at, actor)
          SELECT md5('user-' || abs(hashint8extended(k, $run * 10 + 1) % $users))::uuid::text, s,
                 CASE WHEN s = $big_id THEN 'AVITO_BIG' ELSE 'AVITO_EXPERIMENT_' || lpad(s::text, 2, '0') END,
                 'add', 'manual', timestamptz '2024-01-02 00:00:00+00' + k * interval '1 ms', 'writer@bench'
          FROM generate_series(1, $write_rows) AS k,
               LATERAL (SELECT 1 + abs(hashint8extended(k, $run * 10 + 2) % $big_id) AS s) AS d;"
  else
    body="\\i $OUT/single_inserts_$run.sql"
  fi
  "$PG" psql "$SCRATCH" -X -q -v ON_ERROR_STOP=1 -tA <<SQL | tail -n 1
BEGIN;
$drop
SELECT clock_timestamp() AS t0 \gset
$body
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 4);
ROLLBACK;
SQL
}

write_cost_runs() {
  local run kind index order secs t0 i
  log "write cost: $write_rows rows in one INSERT ... SELECT, $single_rows single-row INSERTs in one transaction;" \
    "with and without history_segment_member_idx, $runs rounds (rolled back), in a copy of $DB"
  t0=$(now_ns)
  on_exit "$PG" psql postgres -X -q -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $SCRATCH WITH (FORCE)"
  # (An autovacuum worker in the template makes CREATE DATABASE fail: retried.)
  for i in 1 2 3 4 5; do
    PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS $SCRATCH WITH (FORCE)" \
      -c "CREATE DATABASE $SCRATCH TEMPLATE $DB STRATEGY FILE_COPY" 2>"$OUT/scratch.err" && break
    ((i < 5)) || { cat "$OUT/scratch.err" >&2; die "could not copy $DB"; }
    sleep 5
  done
  log "  copied in $(secs_since "$t0") s"
  for ((run = 1; run <= runs; run++)); do
    sql "SELECT format('INSERT INTO history (user_id, segment_id, slug, operation, reason, at, actor) VALUES (%L, %s, %L, ''add'', ''manual'', %L, ''writer@bench'');',
                       md5('user-' || abs(hashint8extended(k, $run * 10 + 3) % $users))::uuid::text, s,
                       CASE WHEN s = $big_id THEN 'AVITO_BIG' ELSE 'AVITO_EXPERIMENT_' || lpad(s::text, 2, '0') END,
                       timestamptz '2024-02-01 00:00:00+00' + k * interval '1 ms')
         FROM generate_series(1, $single_rows) AS k,
              LATERAL (SELECT 1 + abs(hashint8extended(k, $run * 10 + 4) % $big_id) AS s) AS d" \
      >"$OUT/single_inserts_$run.sql"
  done
  # One round untimed first: the indexes' pages the inserts touch into the
  # caches (the first round otherwise reads them, several times slower).
  for kind in bulk single; do
    for index in with without; do write_once "$kind" "$index" 1 >/dev/null; done
  done
  for ((run = 1; run <= runs; run++)); do
    # Alternate which goes first.
    if ((run % 2)); then order="with without"; else order="without with"; fi
    for kind in bulk single; do
      for index in $order; do
        ((wait_idle)) && wait_for_idle "$wait_idle"
        secs=$(write_once "$kind" "$index" "$run")
        [[ $secs =~ ^[0-9.]+$ ]] || die "write cost $kind/$index: unexpected output: $secs"
        local rows=$write_rows
        [[ $kind == single ]] && rows=$single_rows
        echo "write-$kind-$index,$run,$rows,0,$secs" >>"$RESULTS"
        printf '  run %d  %-22s %8.3f s  %6d rows  %6.1f us/row\n' "$run" "write-$kind-$index" "$secs" "$rows" \
          "$(awk -v s="$secs" -v r="$rows" 'BEGIN { print s * 1e6 / r }')" >&2
      done
    done
  done
  rm -f "$OUT"/single_inserts_*.sql
  "$PG" psql postgres -X -q -c "DROP DATABASE $SCRATCH WITH (FORCE)"
}

# --- summary -------------------------------------------------------------------------
summary() {
  python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
order, by = [], {}
for r in rows:
    by.setdefault(r[0], []).append(r)
    if r[0] not in order: order.append(r[0])
print("%-22s %4s %10s %9s %9s %9s %11s" % ("case", "runs", "rows", "median_s", "min_s", "max_s", "bytes"))
for m in order:
    rs = by[m]
    s = [float(r[4]) for r in rs]
    b = int(statistics.median(int(r[3]) for r in rs))
    print("%-22s %4d %10d %9.3f %9.3f %9.3f %11s" % (m, len(rs), int(statistics.median(int(r[2]) for r in rs)),
          statistics.median(s), min(s), max(s), b if b else "-"))
med = {m: statistics.median(float(r[4]) for r in by[m]) for m in by}
for kind in ("bulk", "single"):
    w, wo = med.get("write-%s-with" % kind), med.get("write-%s-without" % kind)
    if w and wo:
        n = int(by["write-%s-with" % kind][0][2])
        print("write cost, %-6s: %.3f s with the index, %.3f s without: x%.2f (%.1f vs %.1f us/row, +%.1f us/row)"
              % (kind, w, wo, w / wo, w * 1e6 / n, wo * 1e6 / n, (w - wo) * 1e6 / n))
PY
}

# ---------------------------------------------------------------------------
print_machine
echo "state: $STATE"
echo "server:  $server_bin ($(date -u -r "$server_bin" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$server_bin" | cut -c1-12))"
echo "gateway: $gateway_bin ($(date -u -r "$gateway_bin" '+%Y-%m-%d %H:%M UTC'), sha256 $(sha256sum "$gateway_bin" | cut -c1-12))"
print_code "" server gateway proto db bench/time_travel_seed.sql bench/history_seed.sql

pg_ensure_started
load_data
print_sizes

read -r grpc_port http_port < <(free_ports 2)
log "segments-server --workers=$workers --db-pool-size=$pool"
on_exit bg_stop segments-server "$OUT/server.pid" "$server_bin"
start_server "127.0.0.1:$grpc_port" "$OUT/server.pid" "$OUT/server.log" "$server_bin" \
  --database-url="$("$PG" url "$DB")" --workers="$workers" --db-pool-size="$pool"
SERVER=$BG_PID
on_exit bg_stop segments-gateway "$OUT/gateway.pid" "$gateway_bin"
start_gateway "127.0.0.1:$http_port" "127.0.0.1:$grpc_port" "$OUT/gateway.pid" "$OUT/gateway.log" "$gateway_bin"
GATEWAY=$BG_PID
AUTH_HEADER="$(bearer_of support)"

deep_token="" big_user=""
check_answers
log "EXPLAIN (ANALYZE, BUFFERS) of the server's statements -> $OUT/explain.txt"
explain_queries
echo "plans: (full text in $OUT/explain.txt)"
grep -E '^-- [a-z-]+: |Scan|Sort|Execution Time' "$OUT/explain.txt" | sed 's/^ */    /'
read -r seq0 idx0 < <(history_scans)
log "timing: $runs runs of each kind"
timed_runs
bg_stop segments-gateway "$OUT/gateway.pid" "$gateway_bin"
bg_stop segments-server "$OUT/server.pid" "$server_bin"
sleep 0.5
read -r seq1 idx1 < <(history_scans)
((write_cost)) && write_cost_runs

echo
echo "time travel through the gateway: $runs runs of each; AVITO_BIG at $at: $EXPECT_AT members;" \
  "segments-server --workers=$workers --db-pool-size=$pool; $(nproc) cores"
summary
echo "scans of history during the timed runs: $((seq1 - seq0)) sequential, $((idx1 - idx0)) of history_segment_member_idx"
((csv)) && { echo; echo "case,run,rows,bytes,seconds"; cat "$RESULTS"; }
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"

((seq1 == seq0)) || warn "the timed reads scanned history sequentially ($((seq1 - seq0)) times)"
verdict=$(python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
s = [float(r[4]) for r in csv.reader(open(sys.argv[1])) if r[0] == "size-year-big"]
print("met" if statistics.median(s) < 1.0 else "missed", "%.3f" % statistics.median(s), "%.3f" % max(s))
PY
)
read -r verdict median_s max_s <<<"$verdict"
echo "target (a year of AVITO_BIG at daily step in < 1 s, median through the gateway): $verdict" \
  "(median $median_s s, max $max_s s)"
[[ $verdict == met ]] || exit 2
