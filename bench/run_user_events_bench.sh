#!/usr/bin/env bash
# User events from Kafka (issue 6): --events changes of the user-service mock
# through the real broker (scripts/kafka.sh, Kafka 4.4, one KRaft node, G1 GC)
# into segments-server's consumer, which looks every user up in the mock and
# applies the batch in PostgreSQL; events applied per second and the lag.
# Target: at least 5,000 events/s. See bench/README.md, "User events from
# Kafka". Two phases, on a fresh topic (6 partitions), group and database:
#   backlog  with the server stopped, the mock makes N random changes
#            (MakeRandomChanges, rate 0, --seed; its generator's mix: 50%
#            create, 35% state flip, 15% delete), then the server starts with
#            the consumer on: the time from its start until the committed
#            offsets of group `segments` reach the end offsets (lag 0)
#   live     with the server running, the mock makes N more changes at full
#            speed (--seed + 1): the lag when the mock has them all
#            acknowledged, the time from then to lag 0, and N / (time from the
#            first change to lag 0)
# Before both, automatic segments (--percents, default 10% and 50%) are made
# through the server (consumer off), so that new and returning users get real
# automatic assignment. Lag = sum over partitions of (high watermark -
# committed offset), polled every --interval by bench/events_probe (Go,
# franz-go kadm); ConsumerGroupCommand cross-checks it at the end.
# Checks (exit 1 if any fails), after each phase: the replica's users (id and
# state, SQL) are exactly the mock's (ListUsers); the topic holds exactly the
# changes made; every active user whose bucket an automatic segment covers is
# its member, and every member is covered (after the backlog also: no excluded
# member, as each user was seen in its final state only).
#
# Usage: bench/run_user_events_bench.sh [flags]
#   --events=100000     changes per phase (also --events N)
#   --seed=42           the backlog's seed; the live phase uses seed + 1
#   --batch=1000        segments-server --user-events-batch
#   --percents=10,50    automatic segments made first ("" for none)
#   --interval=100ms    lag polling period
#   --timeout=30m       give up a phase when the lag is not 0 by then
#   --target=5000       events/s to compare with (a verdict only)
#   --explain=MS        where PostgreSQL's time goes: the database's sessions load
#                       auto_explain (ANALYZE, TIMING OFF, BUFFERS) and log every
#                       statement of MS ms or more; per phase, the statements of
#                       the consumer's window grouped by query: count, total,
#                       mean and max ms, the tables they scan sequentially
#                       ($SEGMENTS_STATE_DIR/events-bench/explain_PHASE.txt). Slows
#                       the run a little: not for the headline numbers
#   --wait-idle=SECONDS before each phase, wait up to SECONDS for the machine
#                       to be idle (< 10% busy over half a second)
#   --server-arg=ARG    one more segments-server flag (repeatable), e.g.
#                       --server-arg=--kafka-settings=fetch.wait.max.ms=10
#   --db-set=NAME=VALUE a PostgreSQL setting for the database's sessions
#                       (ALTER DATABASE ... SET; repeatable), for experiments, e.g.
#                       --db-set=plan_cache_mode=force_custom_plan
#   --keep              keep the database events_bench (dropped and made again by the next run)
#   --no-build          use the binaries already in the build directory
#   --rev=REV           build from git REV (git archive, bench/ from the working tree)
#   --build-dir=DIR     default build/bench-events (tree/, or src/ + rev/)
#   --server-bin=PATH   this segments-server instead of the built one
# Env: SEGMENTS_STATE_DIR, default /tmp/segments-bench-events: its own
# PostgreSQL cluster and Kafka broker (never the shared .state ones), each
# started if not running and then stopped at the end; files of the run in
# $SEGMENTS_STATE_DIR/events-bench. KAFKA_JVM_OPTS, default -XX:+UseG1GC (the
# broker under load; kafka.sh's default is tuned for a fast start).
# The server runs with --health-check-period=10m --expiry-period=10m, so that the
# database's commit counter counts the consumer's transactions (one per batch).
# Exit status: 0 every check passed (whatever the speed), 1 something failed.
set -euo pipefail
export SEGMENTS_STATE_DIR="${SEGMENTS_STATE_DIR:-/tmp/segments-bench-events}"
export KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
own_state build/bench-events/state "the benchmark"

events=100000 seed=42 batch=1000 percents=10,50 interval=100ms timeout=30m target=5000 wait_idle=0 keep=0 explain=""
build=1 rev="" build_dir="$ROOT/build/bench-events" server_bin="" server_args=() db_sets=()
while (($#)); do
  case $1 in
    --events=*) events=${1#*=} ;;
    --events) events=${2:?--events wants a number}; shift ;;
    --seed=*) seed=${1#*=} ;;
    --batch=*) batch=${1#*=} ;;
    --percents=*) percents=${1#*=} ;;
    --interval=*) interval=${1#*=} ;;
    --timeout=*) timeout=${1#*=} ;;
    --target=*) target=${1#*=} ;;
    --wait-idle=*) wait_idle=${1#*=} ;;
    --explain=*) explain=${1#*=} ;;
    --server-arg=*) server_args+=("${1#*=}") ;;
    --db-set=*) db_sets+=("${1#*=}") ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) build_flag "$1" || die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for n in "$events" "$seed" "$batch" "$target"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
[[ $wait_idle =~ ^[0-9]+$ ]] || die "--wait-idle wants whole seconds"
[[ -z $explain || $explain =~ ^[0-9]+$ ]] || die "--explain wants whole milliseconds"
IFS=, read -r -a PERCENTS <<<"$percents"
for p in "${PERCENTS[@]}"; do
  { [[ $p =~ ^[0-9]+$ ]] && ((p >= 1 && p <= 100)); } || die "--percents: not a whole percentage 1..100: $p"
done

PG="$ROOT/scripts/pg.sh"
KAFKA="$ROOT/scripts/kafka.sh"
OUT="$STATE/events-bench"
DB=events_bench
TOPIC=UserAction
GROUP=segments
bench_paths "$rev" "$build_dir" "$server_bin"
MOCK_BIN="$BIN/usermock/segments-usermock"
PROBE_BIN="$BIN/bench/segments-events-probe"
CLIENT_BIN="$BIN/bench/segments-auto-client"
RESULTS="$OUT/results.csv"
mkdir -p "$OUT"

SERVER=0 MOCK=0 KAFKA_PID=0 WATCH=0

psql_in() { local db=$1; shift; "$PG" psql "$db" -X -q -v ON_ERROR_STOP=1 "$@"; }
sql1() { psql_in "$1" -tA -c "$2"; }
field_of() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
ms_to_s() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
failures=0
# check WHAT GOT EXPECTED
check() {
  if [[ $2 != "$3" ]]; then
    warn "CHECK FAILED: $1: $2, expected $3"
    failures=$((failures + 1))
  else
    log "  ok: $1: $2"
  fi
}

# --- processes -------------------------------------------------------------------
# broker_ensure_started: the broker (started, and then stopped on exit, unless
# it runs) at BROKERS, its pid KAFKA_PID.
broker_ensure_started() {
  kafka_ensure_started
  BROKERS=$KAFKA_BROKERS
  KAFKA_PID="$(<"$STATE/kafka/kafka.pid")"
  [[ $(tr '\0' ' ' <"/proc/$KAFKA_PID/cmdline") == *-XX:+UseG1GC* ]] ||
    warn "the broker (pid $KAFKA_PID) was started before without -XX:+UseG1GC: stop it ($KAFKA stop) for comparable numbers"
}

# run_server consumer|plain: segments-server on $grpc_port against $DB, with
# or without the user-event consumer, once SERVING; SERVER is its pid.
run_server() {
  local args=(--database-url="$("$PG" url "$DB")" --health-check-period=10m --expiry-period=10m)
  if [[ $1 == consumer ]]; then
    args+=(--kafka-brokers="$BROKERS" --user-events-topic="$TOPIC" --user-events-group="$GROUP"
      --user-events-batch="$batch" --user-service="$MOCK_ADDR")
  fi
  args+=("${server_args[@]}")
  log "segments-server ($1)"
  start_server "127.0.0.1:$grpc_port" "$OUT/server.pid" "$OUT/server-$1.log" "$SERVER_BIN" "${args[@]}"
  SERVER=$BG_PID
}
stop_server() { bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"; SERVER=0; }

# start_mock: the user-service mock, in memory, on a free port: MOCK_ADDR.
start_mock() {
  MOCK_ADDR="127.0.0.1:$(free_port)"
  start_usermock "$MOCK_ADDR" "$OUT/usermock.pid" "$OUT/usermock.log" "$MOCK_BIN" \
    --kafka-brokers="$BROKERS" --topic="$TOPIC"
  MOCK=$BG_PID
}
# stop_watch: the lag probe of watch_lag, if it still runs.
stop_watch() {
  if ((WATCH)) && pid_alive "$WATCH"; then kill "$WATCH" 2>/dev/null || true; fi
}

probe() { "$PROBE_BIN" "$@"; }
kafka_flags() { echo "--brokers=$BROKERS --topic=$TOPIC --group=$GROUP"; }

# --- measurements ----------------------------------------------------------------
# snap: CPU ticks of the server, PostgreSQL, the mock, the broker, the whole
# machine (busy) and stolen.
snap() {
  local b st
  read -r b st < <(cpu_ticks)
  echo "$(proc_ticks "$SERVER") $(pg_ticks) $(proc_ticks "$MOCK") $(proc_ticks "$KAFKA_PID") $b $st"
}
# db_counters: commits, rollbacks, rows inserted, updated, deleted of $DB and
# the WAL insert position. A backend's counters reach pg_stat_database up to
# 10 s after its last transaction (PGSTAT_IDLE_INTERVAL): read them after a
# quiet 11 s.
db_counters() {
  sql1 postgres "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, pg_current_wal_insert_lsn()
                 FROM pg_stat_database WHERE datname = '$DB'" | tr '|' ' '
}
# cpu_row LABEL SECONDS SNAP0 SNAP1 DB0 DB1 EVENTS: one line of $OUT/cpu.csv.
cpu_row() {
  local wal="" c0 c1
  read -r -a c0 <<<"$5"
  read -r -a c1 <<<"$6"
  wal=$(sql1 postgres "SELECT pg_wal_lsn_diff('${c1[5]}', '${c0[5]}')")
  awk -v label="$1" -v s="$2" -v a="$3" -v b="$4" -v hz="$CLK_TCK" -v ncpu="$(nproc)" -v ev="$7" \
    -v commits=$((c1[0] - c0[0])) -v rb=$((c1[1] - c0[1])) -v ins=$((c1[2] - c0[2])) -v upd=$((c1[3] - c0[3])) \
    -v del=$((c1[4] - c0[4])) -v wal="$wal" 'BEGIN {
      split(a, x, " "); split(b, y, " ")
      for (i = 1; i <= 6; i++) d[i] = (y[i] - x[i]) / hz
      other = d[5] - d[1] - d[2] - d[3] - d[4]; if (other < 0) other = 0
      printf "%s,%.2f,%d,%.1f,%d,%d,%d,%d,%.1f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.0f\n", label, s, commits,
        (commits > 0 ? ev / commits : 0), rb, ins, upd, del, wal / 1048576, d[1], d[2], d[3], d[4], other, d[6],
        (s > 0 ? 100 * d[5] / s / ncpu : 0) }' >>"$OUT/cpu.csv"
}

# watch_lag FILE UNTIL_END: the probe polling the lag into FILE, in the
# background (WATCH is its pid), until the lag is 0 with UNTIL_END records.
watch_lag() {
  # shellcheck disable=SC2046  # kafka_flags: several words on purpose
  "$PROBE_BIN" lag $(kafka_flags) --watch --interval="$interval" --until-end="$2" --timeout="$timeout" \
    >"$1" 2>"$1.err" &
  WATCH=$!
}
# wait_lag NAME: until the watch ends; dies if it failed or the server exited.
wait_lag() {
  while pid_alive "$WATCH"; do
    if ! pid_alive "$SERVER"; then
      kill "$WATCH" 2>/dev/null || true
      tail -n 30 "$OUT/server-consumer.log" >&2
      die "$1: segments-server exited (log: $OUT/server-consumer.log)"
    fi
    sleep 0.1
  done
  wait "$WATCH" || { cat "$OUT/lag_$1.txt.err" >&2; die "$1: the lag did not reach 0 (samples: $OUT/lag_$1.txt)"; }
  WATCH=0
  [[ -s $OUT/lag_$1.txt.err ]] && warn "$1: lag polls that failed: $(wc -l <"$OUT/lag_$1.txt.err") ($OUT/lag_$1.txt.err)"
  return 0
}
# per_second FILE FROM_MS: events committed in each second after FROM_MS
# (the last one partial), from the samples.
per_second() {
  awk -v t0="$2" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (NR == 1) base = v["committed"]
      s = int((v["t_ms"] - t0) / 1000); if (s < 0) { base = v["committed"]; next }
      last[s] = v["committed"]; if (s > max) max = s }
    END { prev = base; out = ""
      for (s = 0; s <= max; s++) { if (!(s in last)) continue; out = out " " (last[s] - prev); prev = last[s] }
      print substr(out, 2) }' "$1"
}
sample_field() { field_of "$(grep -m1 "$2" "$1" || true)" "$3"; }  # first sample matching, one field

# settle: the tables vacuumed and analysed (not before the backlog: its
# tables start empty and never analysed, as in a new deployment), no
# autovacuum running, a CHECKPOINT, and maybe an idle machine.
settle() {
  local i
  [[ $1 == vacuum ]] && psql_in "$DB" -c "VACUUM (ANALYZE) users, memberships, history"
  for ((i = 0; i < 300; i++)); do
    [[ $(sql1 postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") == 0 ]] && break
    sleep 1
  done
  psql_in "$DB" -c CHECKPOINT
  ((wait_idle)) && wait_for_idle "$wait_idle"
  return 0
}

# autovacuum_note T0_MS T1_MS: the automatic VACUUMs and ANALYZEs of the
# written tables that ended within the window (an ANALYZE replans the
# server's prepared statements; see bench/README.md).
autovacuum_note() {
  local note
  note=$(sql1 "$DB" "SELECT string_agg(relname || ' ' || kind || ' at +' || round(extract(epoch FROM t)::numeric - $1 / 1000.0, 1) || ' s', ', ' ORDER BY t)
    FROM (SELECT relname, 'analyze' AS kind, last_autoanalyze AS t FROM pg_stat_user_tables
          UNION ALL SELECT relname, 'vacuum', last_autovacuum FROM pg_stat_user_tables) x
    WHERE relname IN ('users', 'memberships', 'history') AND t BETWEEN to_timestamp($1 / 1000.0) AND to_timestamp($2 / 1000.0)")
  echo "${note:-none}"
}

# PostgreSQL's log, for --explain: log_offset, and explain_digest PHASE FROM
# TO: the auto_explain entries between two offsets into
# $OUT/explain_PHASE.txt, and per query (its first line) the count, total,
# mean and max duration, and the tables scanned sequentially.
PG_LOG="$STATE/pg/log/postgresql.log"
log_offset() { stat -c %s "$PG_LOG"; }
explain_digest() {
  local xf="$OUT/explain_$1.txt"
  # head first: the other way round, tail gets SIGPIPE when head has enough
  # (a long log), and pipefail stops the run.
  head -c "$3" "$PG_LOG" | tail -c +$(($2 + 1)) | awk '
    /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] / { on = ($0 ~ /LOG:  duration: .* plan:/) }
    on { print }' >"$xf"
  echo "where PostgreSQL's time goes, $1 (statements of ${explain} ms or more in the window; plans: $xf):"
  printf '  %6s %9s %8s %8s  %-16s %s\n' count total_ms mean_ms max_ms seq_scans_on "query (first line)"
  awk '
    function flush(  t) {
      if (key != "") {
        gsub(/[ \t]+/, " ", key); sub(/^ /, "", key)
        n[key]++; tot[key] += dur; if (dur > mx[key]) mx[key] = dur
        for (t in seen) if (index(" " seq[key] " ", " " t " ") == 0) seq[key] = seq[key] (seq[key] == "" ? "" : ",") t
      }
      key = ""; want = 0; delete seen
    }
    /^[0-9][0-9][0-9][0-9]-/ { flush(); match($0, /duration: [0-9.]+ ms/); dur = substr($0, RSTART + 10, RLENGTH - 13) + 0; next }
    /Query Text:/ { q = $0; sub(/.*Query Text: */, "", q); if (q ~ /^[ \t]*$/) want = 1; else key = q; next }
    want && $0 !~ /^[ \t]*$/ { key = $0; want = 0; next }
    /Seq Scan on / { t = $0; sub(/.*Seq Scan on /, "", t); sub(/ .*/, "", t); seen[t] = 1 }
    END { flush()
      for (k in n) printf "  %6d %9.0f %8.2f %8.1f  %-16s %s\n", n[k], tot[k], tot[k] / n[k], mx[k], (seq[k] == "" ? "-" : seq[k]), substr(k, 1, 110) }' "$xf" |
    sort -k2 -g -r
  awk '/LOG:  duration: [0-9.]+ ms/ { match($0, /duration: [0-9.]+ ms/); s += substr($0, RSTART + 10, RLENGTH - 13); c++ }
       END { printf "  all: %d statements, %.0f ms\n", c, s }' "$xf"
}

# --- checks ------------------------------------------------------------------------
# verify PHASE CHANGES_TOTAL: the replica against the mock, the topic, and
# the automatic segments; appends to $OUT/checks.csv.
verify() {
  local phase=$1 total=$2 mock_f="$OUT/users_mock_$1.txt" db_f="$OUT/users_replica_$1.txt" diff end p line
  probe users --mock="$MOCK_ADDR" | LC_ALL=C sort >"$mock_f" || die "listing the mock's users failed"
  psql_in "$DB" -tA -F ' ' -c "SELECT id, state FROM users" | LC_ALL=C sort >"$db_f"
  diff=$(LC_ALL=C comm -3 "$mock_f" "$db_f" | wc -l)
  check "$phase: users differing between the mock and the replica (id, state)" "$diff" 0
  if ((diff)); then
    { echo "  first differences (mock | replica):"; LC_ALL=C comm -3 "$mock_f" "$db_f" | head -n 10; } >&2
  fi
  # shellcheck disable=SC2046
  end=$(field_of "$(probe lag $(kafka_flags))" end)
  check "$phase: records in $TOPIC" "$end" "$total"
  local auto=""
  for p in "${PERCENTS[@]}"; do
    line=$(sql1 "$DB" "
      WITH s AS (SELECT id, salt, round(percent_to_fill * 100)::int AS cut FROM segments
                 WHERE slug = 'BENCH_EVENTS_$p' AND deleted_at IS NULL),
           m AS (SELECT user_id FROM memberships WHERE segment_id = (SELECT id FROM s)),
           c AS (SELECT u.id, u.state FROM users u, s WHERE segment_bucket(s.salt, u.id) < s.cut)
      SELECT (SELECT count(*) FROM m) || ' ' ||
             (SELECT count(*) FROM c WHERE state = 'active') || ' ' ||
             (SELECT count(*) FROM c WHERE state = 'active' AND NOT EXISTS (SELECT 1 FROM m WHERE m.user_id = c.id)) || ' ' ||
             (SELECT count(*) FROM m WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.id = m.user_id)) || ' ' ||
             (SELECT count(*) FROM m JOIN users u ON u.id = m.user_id WHERE u.state = 'excluded')")
    read -r members covered missing stray excluded <<<"$line"
    check "$phase: BENCH_EVENTS_$p: covered active users that are not members" "$missing" 0
    check "$phase: BENCH_EVENTS_$p: members not covered (or gone)" "$stray" 0
    [[ $phase == backlog ]] && check "$phase: BENCH_EVENTS_$p: excluded members" "$excluded" 0
    auto+="${auto:+ }$p%:$members/$covered/$excluded"
  done
  echo "$phase,$(wc -l <"$mock_f"),$(grep -c ' active$' "$mock_f" || true),$(grep -c ' excluded$' "$mock_f" || true),$(wc -l <"$db_f"),$(grep -c ' active$' "$db_f" || true),$(grep -c ' excluded$' "$db_f" || true),$diff,$end,$auto" >>"$OUT/checks.csv"
}

# --- run -------------------------------------------------------------------------
print_machine
echo "state: $STATE"
((build)) && build_binaries "$rev" segments-server segments-token segments-usermock segments-auto-client segments-events-probe
need_binaries "$SERVER_BIN" "$MOCK_BIN" "$PROBE_BIN" "$CLIENT_BIN"
[[ -n $server_bin ]] && echo "server: $SERVER_BIN (--server-bin)"
print_code "$rev" server usermock db proto
pg_ensure_started
broker_ensure_started
on_exit bg_stop segments-usermock "$OUT/usermock.pid" "$MOCK_BIN"
on_exit bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
on_exit stop_watch
echo "pg:    $(sql1 postgres "SELECT split_part(version(), ' ', 2)"), $(sql1 postgres "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'max_wal_size')")"
echo "kafka: $(basename "$(ls "$STATE"/kafka/lib/kafka-clients-*.jar)" .jar | sed 's/kafka-clients-//') on $BROKERS, pid $KAFKA_PID, JVM $(tr '\0' '\n' <"/proc/$KAFKA_PID/cmdline" | grep -E -- '^-Xm|GC|Tiered' | tr '\n' ' ')"
echo "run:   $events events per phase, seed $seed, --user-events-batch=$batch, automatic segments: ${percents:-none}$( ((${#server_args[@]})) && echo ", server: ${server_args[*]}")$( ((${#db_sets[@]})) && echo ", database: ${db_sets[*]}")$([[ -n $explain ]] && echo ", --explain=$explain")"

: >"$OUT/cpu.csv"
: >"$OUT/checks.csv"
rm -f "$OUT"/lag_*.txt*

# shellcheck disable=SC2046
probe reset $(kafka_flags) --partitions=6 >/dev/null || die "resetting topic $TOPIC and group $GROUP failed"
log "fresh topic $TOPIC (6 partitions, empty), no group $GROUP, fresh database $DB"
PGOPTIONS='-c client_min_messages=warning' psql_in postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
PGOPTIONS='-c client_min_messages=warning' psql_in "$DB" -f "$SRC/db/schema.sql"
for setting in "${db_sets[@]}"; do
  [[ $setting =~ ^[a-z_.]+=[^\']*$ ]] || die "--db-set: not NAME=VALUE: $setting"
  psql_in postgres -c "ALTER DATABASE $DB SET ${setting%%=*} = '${setting#*=}'"
  log "--db-set: $DB: ${setting%%=*} = '${setting#*=}'"
done
if [[ -n $explain ]]; then
  psql_in postgres -c "ALTER DATABASE $DB SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER DATABASE $DB SET auto_explain.log_min_duration = '${explain}ms'" \
    -c "ALTER DATABASE $DB SET auto_explain.log_analyze = on" \
    -c "ALTER DATABASE $DB SET auto_explain.log_timing = off" \
    -c "ALTER DATABASE $DB SET auto_explain.log_buffers = on"
  log "--explain: sessions of $DB log the plans of statements of $explain ms or more"
fi

grpc_port="$(free_port)"
if ((${#PERCENTS[@]})); then
  run_server plain
  for p in "${PERCENTS[@]}"; do
    "$CLIENT_BIN" --target="127.0.0.1:$grpc_port" --op=create --slug="BENCH_EVENTS_$p" --percent="$p" >/dev/null ||
      die "CreateSegment BENCH_EVENTS_$p failed"
  done
  log "automatic segments: $(sql1 "$DB" "SELECT string_agg(slug || ' ' || percent_to_fill || '%', ', ' ORDER BY slug) FROM segments")"
  stop_server
fi
start_mock
log "mock on $MOCK_ADDR"

# Phase 1: backlog.
settle novacuum
log "backlog: the mock makes $events changes (server stopped)"
s0=$(snap) d0=$(db_counters)
# shellcheck disable=SC2046
produce=$(probe changes --mock="$MOCK_ADDR" --count="$events" --rate=0 --seed="$seed" $(kafka_flags)) ||
  die "MakeRandomChanges failed (log: $OUT/usermock.log)"
s1=$(snap) d1=$(db_counters)
p_seconds=$(field_of "$produce" seconds)
log "backlog: produced in $p_seconds s ($(field_of "$produce" created) created, $(field_of "$produce" updated) updated, $(field_of "$produce" deleted) deleted), lag $(field_of "$produce" lag)"
cpu_row backlog-produce "$p_seconds" "$s0" "$s1" "$d0" "$d1" 0
b_created=$(field_of "$produce" created) b_updated=$(field_of "$produce" updated) b_deleted=$(field_of "$produce" deleted)
b_lag_end=$(field_of "$produce" lag)

settle novacuum
log "backlog: starting the server with the consumer; polling the lag every $interval"
d0=$(db_counters) s0=$(snap) x0=$(log_offset)
watch_lag "$OUT/lag_backlog.txt" "$events"
t0=$(now_ms)
run_server consumer
wait_lag backlog
s1=$(snap) x1=$(log_offset)
t_zero=$(field_of "$(tail -n 1 "$OUT/lag_backlog.txt")" t_ms)
b_total=$((t_zero - t0))
t_first=$(sample_field "$OUT/lag_backlog.txt" 'committed=[1-9]' t_ms)
c_first=$(sample_field "$OUT/lag_backlog.txt" 'committed=[1-9]' committed)
b_first=$((t_first - t0))
log "backlog: lag 0 after $(ms_to_s "$b_total") s (first commit after $(ms_to_s "$b_first") s); applied per second: $(per_second "$OUT/lag_backlog.txt" "$t0")"
sleep 11
d1=$(db_counters)
cpu_row backlog-drain "$(ms_to_s "$b_total")" "$s0" "$s1" "$d0" "$d1" "$events"
b_autovacuum=$(autovacuum_note "$t0" "$t_zero")
log "backlog: autovacuum in the window: $b_autovacuum"
[[ -n $explain ]] && explain_digest backlog "$x0" "$x1" >"$OUT/explain_digest_backlog.txt"
verify backlog "$events"

# Phase 2: live.
settle vacuum
log "live: the mock makes $events more changes with the server running"
d0=$(db_counters) s0=$(snap) x0=$(log_offset)
watch_lag "$OUT/lag_live.txt" $((2 * events))
# shellcheck disable=SC2046
live=$(probe changes --mock="$MOCK_ADDR" --count="$events" --rate=0 --seed=$((seed + 1)) $(kafka_flags)) ||
  die "MakeRandomChanges failed (log: $OUT/usermock.log)"
wait_lag live
s1=$(snap) x1=$(log_offset)
l_t0=$(field_of "$live" t0_ms) l_t1=$(field_of "$live" t1_ms) l_lag_end=$(field_of "$live" lag)
t_zero=$(field_of "$(tail -n 1 "$OUT/lag_live.txt")" t_ms)
# The watch may have seen lag 0 just before the changes call returned.
((t_zero < l_t1)) && t_zero=$l_t1
l_total=$((t_zero - l_t0)) l_catchup=$((t_zero - l_t1))
l_max_lag=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^lag=/) { v = substr($i, 5) + 0; if (v > m) m = v } } END { print m + 0 }' "$OUT/lag_live.txt")
log "live: produced in $(field_of "$live" seconds) s, lag then $l_lag_end (max seen $l_max_lag), lag 0 $(ms_to_s "$l_catchup") s later; applied per second: $(per_second "$OUT/lag_live.txt" "$l_t0")"
sleep 11
d1=$(db_counters)
cpu_row live "$(ms_to_s "$l_total")" "$s0" "$s1" "$d0" "$d1" "$events"
l_autovacuum=$(autovacuum_note "$l_t0" "$t_zero")
log "live: autovacuum in the window: $l_autovacuum"
[[ -n $explain ]] && explain_digest live "$x0" "$x1" >"$OUT/explain_digest_live.txt"
verify live $((2 * events))

# Cross-check of the lag with Kafka's own tool (a JVM: ~2 s, so not for polling).
log "cross-check: ConsumerGroupCommand --describe --group $GROUP"
if "$KAFKA" run org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BROKERS" \
  --describe --group "$GROUP" >"$OUT/describe.txt" 2>"$OUT/describe.err"; then
  cg_lag=$(awk -v t="$TOPIC" '$2 == t && $6 ~ /^[0-9]+$/ { s += $6; n++ } END { printf "%d over %d partitions", s, n }' "$OUT/describe.txt")
  log "  ConsumerGroupCommand: lag $cg_lag"
  check "ConsumerGroupCommand lag at the end" "${cg_lag%% *}" 0
else
  warn "ConsumerGroupCommand failed ($OUT/describe.err)"
fi
stop_server
((keep)) || PGOPTIONS='-c client_min_messages=warning' psql_in postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"

# --- results ---------------------------------------------------------------------
b_rate=$(awk -v n="$events" -v ms="$b_total" 'BEGIN { printf "%.0f", n * 1000 / ms }')
b_steady=$(awk -v n="$events" -v c="$c_first" -v ms=$((b_total - b_first)) 'BEGIN { printf "%.0f", (ms > 0 ? (n - c) * 1000 / ms : 0) }')
l_rate=$(awk -v n="$events" -v ms="$l_total" 'BEGIN { printf "%.0f", n * 1000 / ms }')
verdict() { if (($1 >= target)); then echo ok; else echo BELOW; fi; }
{
  echo "backlog,$events,$b_created,$b_updated,$b_deleted,$p_seconds,$b_lag_end,$(ms_to_s "$b_total"),$(ms_to_s "$b_total"),$b_rate,$(ms_to_s "$b_first"),$b_steady,$(verdict "$b_rate")"
  echo "live,$events,$(field_of "$live" created),$(field_of "$live" updated),$(field_of "$live" deleted),$(field_of "$live" seconds),$l_lag_end,$(ms_to_s "$l_catchup"),$(ms_to_s "$l_total"),$l_rate,-,-,$(verdict "$l_rate")"
} >"$RESULTS"

echo
echo "results ($(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg) at end; --user-events-batch=$batch; target $target events/s):"
echo "  produce_s = MakeRandomChanges until every event acknowledged; lag_end = lag right then (backlog: server stopped);"
echo "  drain_s = from then (backlog: from the server's start) to lag 0; total_s = first change (backlog: server start) to lag 0;"
echo "  events/s = events / total_s; first_commit_s = server start to the first commit; steady/s = the rate after it"
printf '%-8s %7s %7s %7s %7s %9s %8s %8s %8s %9s %12s %9s %6s\n' phase events created updated deleted produce_s \
  lag_end drain_s total_s events/s first_commit_s steady/s target
awk -F, '{ printf "%-8s %7d %7d %7d %7d %9.2f %8d %8.2f %8.2f %9d %12s %9s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 }' "$RESULTS"
echo
echo "work and CPU seconds in each window (commits = transactions of $DB, one per consumer batch; other = the rest of"
echo "the machine, the lag probe included; busy = the whole machine, % of $(nproc) cores):"
printf '%-16s %8s %7s %9s %5s %8s %8s %8s %7s %7s %7s %7s %7s %7s %6s %5s\n' window seconds commits ev/commit rb \
  rows_ins rows_upd rows_del WAL_MB server pg mock kafka other steal busy%
awk -F, '{ printf "%-16s %8.2f %7d %9.1f %5d %8d %8d %8d %7.1f %7.2f %7.2f %7.2f %7.2f %7.2f %6.2f %5d\n",
  $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 }' "$OUT/cpu.csv"
echo "autovacuum/autoanalyze of users, memberships, history ending in the window (seconds after its start):"
echo "  backlog-drain: $b_autovacuum"
echo "  live:          $l_autovacuum"
echo
echo "checks (users: mock vs replica, total/active/excluded; auto: members/covered active/excluded members per segment):"
awk -F, '{ printf "  %-8s mock %d/%d/%d  replica %d/%d/%d  differing %d  records %d  auto %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$OUT/checks.csv"
if [[ -n $explain ]]; then
  echo
  cat "$OUT/explain_digest_backlog.txt" "$OUT/explain_digest_live.txt"
fi
echo "files: $OUT (lag samples lag_*.txt, server and mock logs)"
((failures == 0)) || die "$failures check(s) failed (above)"
