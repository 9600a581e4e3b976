#!/usr/bin/env bash
# Automatic assignment and bulk membership at scale (see bench/README.md,
# "Automatic assignment and bulk membership"). For each N of --users: N active
# users (plus 2% excluded ones) seeded in SQL (bench/auto_seed.sql, once per
# N, kept as a template database; not part of the results), then, on a fresh
# copy of that database, through segments-server over gRPC
# (bench/auto_client.cc), timed by the client, each after VACUUM (ANALYZE) of
# the written tables (but the first), no autovacuum running, a CHECKPOINT:
#   create-10%   CreateSegment BENCH_AUTO with percentToFill 10 (members and
#                their history written in the call)
#   raise-20%    UpdateSegmentPercent BENCH_AUTO 10 -> 20
#   bulk-add     AddSegmentToUsers of --bulk users to a new manual segment
#                BENCH_MANUAL (none of them members yet)
#   lower-10%    UpdateSegmentPercent BENCH_AUTO 20 -> 10
# Each is checked (member counts from GetSegment against the share of N, the
# history rows in SQL). Prints a table (seconds, users, rows written =
# memberships + history rows, rows/s, WAL, CPU) and the growth ratio of each
# operation between the largest and the smallest N. For the sizes of
# --explain it runs create-10% once more on its own copy of the seeded
# database with auto_explain loaded, which logs the plan, buffers, WAL and
# trigger counts of every statement the server runs for it: "where the time
# goes" (whatever SQL the revision uses).
#
# Usage: bench/run_auto_bench.sh [flags]
#   --users=1000000,10000000  sizes, run in this order (e.g. --users=100000 for a quick run)
#   --excluded-percent=2   excluded users on top of N, in % of N
#   --bulk=100000          users of AddSegmentToUsers (at most N)
#   --explain=SIZES        sizes to explain create-10% at; default:
#                          the smallest of --users; "none" for none
#   --no-explain           the same as --explain=none
#   --reseed               seed again even if a seeded database of that size is there
#   --keep                 keep each run's database (auto_bench_run_N) for a look
#   --drop-seeds           drop the seeded template databases at the end (frees
#                          the disk; the next run seeds again)
#   --no-build             use the binaries already in the build directory
#   --rev=REV              build the server from git REV (git archive, bench/
#                          from the working tree) instead of the working tree
#   --build-dir=DIR        default build/bench-auto (tree/, or src/ + rev/)
#   --server-bin=PATH      this segments-server instead of the built one
#   --workers=4 --db-pool-size=4   segments-server settings
#   --waldump              after each timed call, pg_waldump --stats=record over
#                          its WAL (top record types in the output, all in
#                          $SEGMENTS_STATE_DIR/auto-bench/waldump_N_OP.txt)
#   --wait-idle=SECONDS    before each timed call, wait up to SECONDS for the
#                          machine to be idle (< 10% busy over half a second)
# Env: SEGMENTS_STATE_DIR, default build/bench-auto/state: its own PostgreSQL
# cluster (never the shared .state one), logs and results in
# $SEGMENTS_STATE_DIR/auto-bench. The cluster is stopped at the end if this
# script started it; the seeded databases stay for the next run unless
# --drop-seeds (1M users: ~0.2 GB, 10M: ~1.5 GB).
# Exit status: 0 every check passed, 1 something failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
own_state build/bench-auto/state "the benchmark"

sizes=1000000,10000000 excluded_pct=2 bulk=100000 explain="" reseed=0 keep=0 drop_seeds=0 build=1 rev=""
build_dir="$ROOT/build/bench-auto" server_bin="" workers=4 pool=4 wait_idle=0 waldump=0
while (($#)); do
  case $1 in
    --users=*) sizes=${1#*=} ;;
    --excluded-percent=*) excluded_pct=${1#*=} ;;
    --bulk=*) bulk=${1#*=} ;;
    --explain=*) explain=${1#*=} ;;
    --no-explain) explain=none ;;
    --reseed) reseed=1 ;;
    --keep) keep=1 ;;
    --drop-seeds) drop_seeds=1 ;;
    --workers=*) workers=${1#*=} ;;
    --db-pool-size=*) pool=${1#*=} ;;
    --wait-idle=*) wait_idle=${1#*=} ;;
    --waldump) waldump=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) build_flag "$1" || die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
IFS=, read -r -a SIZES <<<"$sizes"
((${#SIZES[@]})) || die "--users is empty"
for n in "${SIZES[@]}" "$bulk" "$workers" "$pool"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
[[ $excluded_pct =~ ^[0-9]+$ && $wait_idle =~ ^[0-9]+$ ]] || die "--excluded-percent and --wait-idle want whole numbers"
smallest=$(printf '%s\n' "${SIZES[@]}" | sort -n | head -n 1)
[[ -z $explain ]] && explain=$smallest
[[ $explain == none ]] && explain=""

PG="$ROOT/scripts/pg.sh"
OUT="$STATE/auto-bench"
bench_paths "$rev" "$build_dir" "$server_bin"
CLIENT_BIN="$BIN/bench/segments-auto-client"
RESULTS="$OUT/results.csv"
mkdir -p "$OUT"

psql_in() { local db=$1; shift; "$PG" psql "$db" -X -q -v ON_ERROR_STOP=1 "$@"; }
sql1() { psql_in "$1" -tA -c "$2"; }  # one value

# --- seeding ---------------------------------------------------------------
SEED="$SRC/bench/auto_seed.sql"
SCHEMA="$SRC/db/schema.sql"
db_exists() { [[ -n $(sql1 postgres "SELECT 1 FROM pg_database WHERE datname = '$1'") ]]; }
seed_meta() { sql1 "$1" "SELECT value FROM bench_auto_meta WHERE key = '$2'" 2>/dev/null; }

# seed N: the template database auto_bench_seed_N, unless it is there with the
# same schema, seed and sizes.
seed() {
  local n=$1 db=auto_bench_seed_$1 excluded=$(($1 * excluded_pct / 100)) fingerprint have="" t0 need_mb free_mb
  fingerprint="$(cat "$SCHEMA" "$SEED" | sha256sum | cut -c1-16) users=$n excluded=$excluded"
  db_exists "$db" && have="$(seed_meta "$db" fingerprint || true)"
  if ((!reseed)) && [[ $have == "$fingerprint" ]]; then
    log "N=$n: seeded database $db is there (seeded $(seed_meta "$db" seeded_at) in $(seed_meta "$db" seed_seconds) s)"
    return 0
  fi
  [[ -n $have ]] && log "N=$n: $db differs ($have), seeding again"
  # ~150 bytes per user in the seed, as much again in the run's copy, plus
  # the run's memberships, history and WAL: ask for 600 bytes per user + 2 GB.
  need_mb=$((n * 600 / 1048576 + 2048))
  free_mb=$(df -Pm "$STATE" | awk 'NR == 2 { print $4 }')
  ((free_mb > need_mb)) || die "N=$n needs ~$need_mb MB free on $(df -P "$STATE" | awk 'NR == 2 { print $6 }'), $free_mb MB left"
  log "N=$n: seeding $db: $n active + $excluded excluded users (not timed as a result)"
  PGOPTIONS='-c client_min_messages=warning' psql_in postgres \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
  PGOPTIONS='-c client_min_messages=warning' psql_in "$db" -f "$SCHEMA"
  t0=$(now_ns)
  psql_in "$db" -v users="$n" -v excluded="$excluded" -f "$SEED" >"$OUT/seed_$n.log" 2>&1 ||
    { cat "$OUT/seed_$n.log" >&2; die "seeding failed"; }
  local seconds
  seconds=$(secs_since "$t0")
  psql_in "$db" -c "CREATE TABLE bench_auto_meta (key text PRIMARY KEY, value text NOT NULL)" \
    -c "INSERT INTO bench_auto_meta VALUES
          ('seed_seconds', '$seconds'),
          ('seeded_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')),
          ('fingerprint', '$fingerprint')" \
    -c "VACUUM (ANALYZE) bench_auto_meta"
  log "N=$n: seeded in $seconds s ($(awk '/^\[auto_seed\]/ { s = $2 } /^Time:/ { printf "%s %.1f s, ", s, $2 / 1000 }' "$OUT/seed_$n.log")database $(sql1 "$db" "SELECT pg_size_pretty(pg_database_size(current_database()))"))"
}

# clone N NAME: a fresh copy of the seeded database (file copy: the seed's
# pages as they are, hint bits and visibility map included).
clone() {
  PGOPTIONS='-c client_min_messages=warning' psql_in postgres -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" \
    -c "CREATE DATABASE $2 TEMPLATE auto_bench_seed_$1 STRATEGY FILE_COPY"
}
drop_db() { PGOPTIONS='-c client_min_messages=warning' psql_in postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }

# --- timed calls -----------------------------------------------------------
# timed N DB LABEL USERS ROWS_PER_USER CLIENT_ARGS...: one call, CHECKPOINT
# first; appends to $RESULTS; leaves the client's line in CALL. USERS: the
# field of the client's line that counts the users, or get:SLUG for the
# member count of SLUG after the call.
timed() {
  local n=$1 db=$2 label=$3 field=$4 per_user=$5
  shift 5
  local lsn0 lsn1 s0 s1 p0 p1 b0 b1 st0 st1 line users
  settle "$db"
  ((wait_idle)) && wait_for_idle "$wait_idle"
  lsn0=$(sql1 "$db" "SELECT pg_current_wal_insert_lsn()")
  s0=$(proc_ticks "$SERVER") p0=$(pg_ticks)
  read -r b0 st0 < <(cpu_ticks)
  line=$("$CLIENT_BIN" --target="127.0.0.1:$grpc_port" --deadline=30m "$@") ||
    die "N=$n $label: the call failed (server log: $OUT/server.log)"
  s1=$(proc_ticks "$SERVER") p1=$(pg_ticks)
  read -r b1 st1 < <(cpu_ticks)
  lsn1=$(sql1 "$db" "SELECT pg_current_wal_insert_lsn()")
  CALL=$line
  # CreateSegment answers the segment, not its size: then GetSegment counts.
  if [[ $field == get:* ]]; then users=$(member_count "${field#get:}"); else users=$(field_of "$line" "$field"); fi
  local wal
  wal=$(sql1 "$db" "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
  line=$(awk -v n="$n" -v op="$label" -v s="$(field_of "$line" seconds)" -v u="$users" -v pu="$per_user" \
    -v wal="$wal" -v sv=$((s1 - s0)) -v pg=$((p1 - p0)) -v b=$((b1 - b0)) -v st=$((st1 - st0)) -v hz="$CLK_TCK" '
    BEGIN { rows = u * pu; other = (b - sv - pg) / hz; if (other < 0) other = 0
      printf "%d,%s,%.3f,%d,%d,%.0f,%.1f,%.2f,%.2f,%.2f,%.2f", n, op, s, u, rows, (s > 0 ? rows / s : 0),
        wal / 1048576, sv / hz, pg / hz, other, st / hz }')
  echo "$line" >>"$RESULTS"
  ((waldump)) && wal_stats "$n" "$label" "$lsn0" "$lsn1"
  awk -F, '{ printf "  N=%-9d %-10s %8.3f s  %9d users  %9d rows  %9.0f rows/s  WAL %7.1f MB  cpu s: server %.2f pg %.2f other %.2f\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' <<<"$line" >&2
}
# settle DB: before each timed call, the state a database reaches between
# two such calls in production: tables vacuumed and analysed (after the
# previous call's million inserts, autovacuum would otherwise run during the
# next call, and its WAL and CPU count there), no autovacuum running, and a
# CHECKPOINT, so that every call starts with clean buffers and pays its own
# full-page writes. Not the VACUUM before the first call (settle_vacuum=0):
# its tables are empty and never analysed, as in a database where nothing was
# written yet (an empty table analysed as such makes the planner assume it
# stays empty; see bench/README.md on the quadratic plan this gave).
settle_vacuum=1
settle() {
  local t0 i
  t0=$(now_ns)
  ((settle_vacuum)) && psql_in "$1" -c "VACUUM (ANALYZE) memberships, history, auto_opt_outs, segments"
  for ((i = 0; i < 600; i++)); do
    [[ $(sql1 "$1" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") == 0 ]] && break
    sleep 1
  done
  ((i < 600)) || warn "autovacuum still running after 600 s; measuring anyway"
  psql_in "$1" -c CHECKPOINT
  log "  settled in $(secs_since "$t0") s ($( ((settle_vacuum)) && echo 'VACUUM (ANALYZE), ')no autovacuum running, CHECKPOINT)"
}
# wal_stats N LABEL LSN0 LSN1: the call's WAL by record type (the CHECKPOINT
# before it keeps the segments; the next one may recycle them).
wal_stats() {
  local wf="$OUT/waldump_$1_$2.txt"
  as_pg_cmd /usr/lib/postgresql/15/bin/pg_waldump -p "$STATE/pg/data/pg_wal" -s "$3" -e "$4" --stats=record \
    >"$wf" 2>&1 || { warn "pg_waldump failed ($wf)"; return 0; }
  echo "  WAL of N=$1 $2 by record type, largest first (MB: records + full-page images = combined):" >&2
  sed 's/([^)]*)//g' "$wf" | awk '$1 ~ /\// && NF >= 5 { printf "    %-28s %9d records %8.1f + %8.1f = %8.1f MB\n", $1, $2,
    $3 / 1048576, $4 / 1048576, $5 / 1048576 }' | sort -k8 -g -r | head -n 6 >&2
}
as_pg_cmd() { if [[ $(id -un) == postgres ]]; then "$@"; elif ((EUID == 0)); then runuser -u postgres -- "$@"; else sudo -u postgres -- "$@"; fi; }
field_of() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
member_count() {
  local line
  line=$("$CLIENT_BIN" --target="127.0.0.1:$grpc_port" --op=get --slug="$1") || die "GetSegment $1 failed"
  field_of "$line" member_count
}
# check WHAT GOT EXPECTED [TOLERANCE]
check() {
  local tol=${4:-0}
  if (($2 < $3 - tol || $2 > $3 + tol)); then
    warn "CHECK FAILED: $1: $2, expected $3 ± $tol"
    failures=$((failures + 1))
  else
    log "  ok: $1: $2 (expected $3 ± $tol)"
  fi
}
# Six standard deviations of a binomial(N, p): the bucket counts of a share.
tolerance() { awk -v n="$1" -v p="$2" 'BEGIN { printf "%d", 6 * sqrt(n * p * (1 - p)) + 1 }'; }
history_count() {  # history rows of segment $2 with operation $3, reason $4
  sql1 "$1" "SELECT count(*) FROM history h JOIN segments s ON s.id = h.segment_id
             WHERE s.slug = '$2' AND s.deleted_at IS NULL AND h.operation = '$3' AND h.reason = '$4'"
}

# run_server DB: segments-server on a free port against DB, once SERVING.
run_server() {
  grpc_port="$(free_port)"
  log "segments-server against $1 (--workers=$workers --db-pool-size=$pool --db-set-statement-timeout=30m)"
  start_server "127.0.0.1:$grpc_port" "$OUT/server.pid" "$OUT/server.log" "$SERVER_BIN" \
    --database-url="$("$PG" url "$1")" --workers="$workers" --db-pool-size="$pool" --db-set-statement-timeout=30m
  SERVER=$BG_PID
}
stop_server() { bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"; }

# --- one size ---------------------------------------------------------------
run_size() {
  local n=$1 db=auto_bench_run_$1 t0 m10 m20 added removed h b
  b=$((bulk < n ? bulk : n))
  seed "$n"
  log "N=$n: fresh copy $db of the seeded database"
  t0=$(now_ns)
  clone "$n" "$db"
  log "N=$n: copied in $(secs_since "$t0") s; $(sql1 "$db" "SELECT count(*) FILTER (WHERE state = 'active') || ' active, ' || count(*) FILTER (WHERE state = 'excluded') || ' excluded users' FROM users")"
  # The bulk call's users: every (N / b)-th active user, by seed index.
  sql1 "$db" "SELECT md5('auto-bench-user-' || i)::uuid::text FROM generate_series(0, $n - 1, $((n / b))) AS i LIMIT $b" \
    >"$OUT/bulk_ids.txt"

  run_server "$db"

  settle_vacuum=0
  timed "$n" "$db" create-10% get:BENCH_AUTO 2 --op=create --slug=BENCH_AUTO --percent=10
  settle_vacuum=1
  m10=$(member_count BENCH_AUTO)
  check "N=$n members after create-10% (GetSegment)" "$m10" $((n / 10)) "$(tolerance "$n" 0.1)"
  h=$(history_count "$db" BENCH_AUTO add auto_percent)
  check "N=$n history add/auto_percent rows after create-10%" "$h" "$m10"

  timed "$n" "$db" raise-20% added 2 --op=update-percent --slug=BENCH_AUTO --percent=20
  added=$(field_of "$CALL" added)
  m20=$(member_count BENCH_AUTO)
  check "N=$n members after raise-20% (GetSegment)" "$m20" $((n / 5)) "$(tolerance "$n" 0.2)"
  check "N=$n members after raise-20% = before + added" "$m20" $((m10 + added))
  h=$(history_count "$db" BENCH_AUTO add auto_percent)
  check "N=$n history add/auto_percent rows after raise-20%" "$h" "$m20"

  "$CLIENT_BIN" --target="127.0.0.1:$grpc_port" --op=create --slug=BENCH_MANUAL >/dev/null ||
    die "CreateSegment BENCH_MANUAL failed"
  timed "$n" "$db" bulk-add added 2 --op=bulk-add --slug=BENCH_MANUAL --ids-file="$OUT/bulk_ids.txt"
  log "  bulk-add request: $(field_of "$CALL" request_bytes) bytes"
  check "N=$n bulk-add added" "$(field_of "$CALL" added)" "$b"
  check "N=$n members of BENCH_MANUAL (GetSegment)" "$(member_count BENCH_MANUAL)" "$b"
  h=$(history_count "$db" BENCH_MANUAL add manual)
  check "N=$n history add/manual rows of BENCH_MANUAL" "$h" "$b"

  timed "$n" "$db" lower-10% removed 2 --op=update-percent --slug=BENCH_AUTO --percent=10
  removed=$(field_of "$CALL" removed)
  check "N=$n lower-10% removed = raise-20% added" "$removed" "$added"
  check "N=$n members after lower-10% (GetSegment)" "$(member_count BENCH_AUTO)" "$m10"
  h=$(history_count "$db" BENCH_AUTO remove auto_percent)
  check "N=$n history remove/auto_percent rows after lower-10%" "$h" "$removed"

  stop_server
  log "N=$n: database after the run: $(sql1 "$db" "SELECT pg_size_pretty(pg_database_size(current_database()))")"
  if ((keep)); then log "N=$n: kept $db (--keep)"; else drop_db "$db"; fi
}

# --- where the time goes ------------------------------------------------------
# explain_size N: CreateSegment 10% through the server, on a fresh copy of
# the seeded database whose sessions load auto_explain, so every statement
# the server runs for it (whatever the revision: one statement or several)
# is logged with EXPLAIN ANALYZE, BUFFERS, WAL and trigger counts; twice:
# TIMING OFF (totals as in the measured run) and TIMING ON (per-node times
# and the foreign-key triggers' time, inflated by the clock reads). Then the
# read side alone: the scan of users, the digests, the bucket filter.
PG_LOG="$STATE/pg/log/postgresql.log"
explain_size() {
  local n=$1 db=auto_bench_explain_$1 xf="$OUT/explain_$1.txt" timing offset line salt=0123456789abcdef
  : >"$xf"
  for timing in off on; do
    clone "$n" "$db"
    psql_in postgres -c "ALTER DATABASE $db SET session_preload_libraries = 'auto_explain'" \
      -c "ALTER DATABASE $db SET auto_explain.log_min_duration = '100ms'" \
      -c "ALTER DATABASE $db SET auto_explain.log_analyze = on" \
      -c "ALTER DATABASE $db SET auto_explain.log_buffers = on" \
      -c "ALTER DATABASE $db SET auto_explain.log_wal = on" \
      -c "ALTER DATABASE $db SET auto_explain.log_triggers = on" \
      -c "ALTER DATABASE $db SET auto_explain.log_nested_statements = on" \
      -c "ALTER DATABASE $db SET auto_explain.log_timing = $timing"
    run_server "$db"
    psql_in "$db" -c CHECKPOINT
    offset=$(stat -c %s "$PG_LOG")
    line=$("$CLIENT_BIN" --target="127.0.0.1:$grpc_port" --deadline=30m --op=create --slug=BENCH_AUTO --percent=10) ||
      die "N=$n: create under auto_explain failed"
    stop_server
    log "N=$n: create-10% under auto_explain (TIMING ${timing^^}): $(field_of "$line" seconds) s"
    {
      echo "==== N=$n: CreateSegment 10% through the server under auto_explain (TIMING ${timing^^}):" \
        "$(field_of "$line" seconds) s for the call; statements of 100 ms or more, as logged"
      # auto_explain's entries: the LOG line, then its unprefixed continuation lines.
      tail -c +$((offset + 1)) "$PG_LOG" | awk '
        /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { on = ($0 ~ /LOG:  duration: .* plan:/) }
        on { sub(/^[0-9-]+ [0-9:.]+ UTC \[[0-9]+\] [^ ]* /, ""); print }'
    } >>"$xf"
  done
  {
    echo "==== N=$n: the read side alone: scan of users + segment_digest + bucket filter, 10% (no anti-joins, no writes)"
    psql_in "$db" -At -c "SET jit = off" -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT count(*) FROM (SELECT id,
      segment_digest('$salt', id) AS digest FROM users WHERE state = 'active' OFFSET 0) AS u
      WHERE segment_bucket_of_digest(digest) >= 0 AND segment_bucket_of_digest(digest) < 1000"
    echo "==== N=$n: the scan of users alone"
    psql_in "$db" -At -c "SET jit = off" -c "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT count(*) FROM users WHERE state = 'active'"
  } >>"$xf" 2>&1 || { cat "$xf" >&2; die "EXPLAIN failed"; }
  drop_db "$db"
}

# ---------------------------------------------------------------------------
print_machine
echo "state: $STATE"
((build)) && build_binaries "$rev" segments-server segments-token segments-auto-client
need_binaries "$SERVER_BIN" "$CLIENT_BIN"
[[ -n $server_bin ]] && echo "server: $SERVER_BIN (--server-bin)"
print_code "$rev" server db proto
pg_ensure_started
on_exit bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
echo "pg:    $(sql1 postgres "SELECT split_part(version(), ' ', 2)"), $(sql1 postgres "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'max_wal_size', 'work_mem', 'maintenance_work_mem', 'synchronous_commit', 'wal_compression', 'checkpoint_timeout')")"
echo "disk:  $(df -h "$STATE" | awk 'NR == 2 { print $4 " free of " $2 " on " $6 }')"

# explain_print N: the full text (long lines cut); explain_digest N: the
# statements' durations, query texts (cut) and trigger times only.
explain_print() {
  echo "where the time goes, N=$1 (full text: $OUT/explain_$1.txt):"
  grep -vE '^ *$' "$OUT/explain_$1.txt" | cut -c1-240 | sed 's/^/  /'
}
explain_digest() {
  echo "where the time goes, N=$1 (digest; full text above and in $OUT/explain_$1.txt):"
  grep -E '^====|LOG:  duration|Query Text|Trigger for|Execution Time|^[[:space:]]*(->[[:space:]]*)?(Insert on|Delete on|Seq Scan|Parallel Seq Scan|Subquery Scan on u|Gather|Sort  )' \
    "$OUT/explain_$1.txt" | cut -c1-200 | sed 's/^/  /'
}
in_list() { [[ ,$2, == *,$1,* ]]; }
print_table_head() {
  printf '%-10s %-10s %9s %9s %9s %10s %8s %6s %6s %6s\n' N operation seconds users rows rows/s WAL_MB srv_s pg_s other
}
print_rows() {  # print_rows [N]: the results of N, or all
  awk -F, -v n="${1:-}" 'n == "" || $1 == n { printf "%-10d %-10s %9.3f %9d %9d %10.0f %8.1f %6.2f %6.2f %6.2f\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$RESULTS"
}

failures=0
: >"$RESULTS"
for n in "${SIZES[@]}"; do
  run_size "$n"
  # Each size's numbers as soon as they are there.
  echo
  print_table_head
  print_rows "$n"
  echo
  if in_list "$n" "$explain"; then
    explain_size "$n"
    explain_print "$n"
    echo
  fi
done
for n in ${explain//,/ }; do
  in_list "$n" "$sizes" && continue
  db_exists "auto_bench_seed_$n" || seed "$n"
  explain_size "$n"
  explain_print "$n"
  echo
done
if ((drop_seeds)); then
  for n in "${SIZES[@]}"; do drop_db "auto_bench_seed_$n"; done
fi

echo
echo "results ($(nproc) cores; segments-server --workers=$workers --db-pool-size=$pool; users = memberships added or removed;"
echo "rows = memberships + history rows written; srv_s/pg_s = CPU seconds of the server and of PostgreSQL during the call;"
echo "other = CPU seconds of the rest of the machine meanwhile: well above 0 means the numbers are disturbed):"
print_table_head
print_rows
if ((${#SIZES[@]} > 1)); then
  largest=$(printf '%s\n' "${SIZES[@]}" | sort -n | tail -n 1)
  echo
  echo "growth N=$largest / N=$smallest (N ratio $(awk -v a="$largest" -v b="$smallest" 'BEGIN { printf "%g", a / b }')):"
  awk -F, -v a="$largest" -v b="$smallest" '
    $1 == b { s[$2] = $3; u[$2] = $4; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
    $1 == a { S[$2] = $3; U[$2] = $4 }
    END { for (i = 1; i <= k; i++) { op = order[i]; if (op in S && s[op] > 0 && u[op] > 0)
            printf "  %-10s seconds x%.2f  users x%.2f  seconds per user x%.2f\n", op, S[op] / s[op], U[op] / u[op],
              (S[op] / U[op]) / (s[op] / u[op]) } }' "$RESULTS"
fi
for n in ${explain//,/ }; do
  echo
  explain_digest "$n"
done
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"
((failures == 0)) || die "$failures check(s) failed (above)"
