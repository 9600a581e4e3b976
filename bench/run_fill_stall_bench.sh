#!/usr/bin/env bash
# Hand writes while a segment fills (issue 15, "no global stall"; see
# bench/README.md, "Writes during a fill"). N users x 5 segments seeded
# with bench/seed.sql (once per N, kept as a template database), a fresh
# copy of it, segments-server on it (release build); then, in one run:
#   a steady stream of UpdateUserSegments, each toggling the hand segment
#   BENCH_TOGGLE for one random seeded user (segments-grpc-load --mode=update
#   --update-users=random --rate=R: open loop, at most --concurrency in
#   flight, each latency counted from when the call was due, so a stall
#   shows in every call due meanwhile), and beside it a stream of
#   CreateUser calls of new users (--user-rate per second; the write of a
#   user event, which evaluates the new user against every automatic
#   segment, BENCH_FILL included once it is published); while they run:
#     baseline    --baseline seconds of the stream alone (after 2 s warmup)
#     fill        CreateSegment BENCH_FILL with percentToFill 100 (every
#                 user becomes a member, with history, in the call), or with
#                 --fill=raise CreateSegment without a share, then
#                 UpdateSegmentPercent 0 -> 100 (only the latter timed)
#     after-fill  --after seconds
#     delete      DeleteSegment BENCH_FILL (its N memberships end, with history)
#     after-delete --after seconds
# For each window: the writes (calls, errors, p50, p90, p99 and max latency)
# and the CPU of the server, PostgreSQL, the loader and the rest. baseline:
# the calls that started and ended before the fill; fill and delete: every
# call in flight at some moment of the operation (due before its end, done
# after its start); after-*: the calls that started (were due) in the window.
# Checks: every user (seeded or created by the stream, before or during the
# fill) is a member of BENCH_FILL after it, with one add event each; the
# deletion left no membership and a remove event for each add; no write
# failed. Target of the issue: write p99 during a 1M-user fill <= 50 ms.
#
# Usage: bench/run_fill_stall_bench.sh [flags]
#   --users=N           seeded users (default 1000000; 100000 for a quick run)
#   --rate=R            hand writes due per second (default 200)
#   --user-rate=R       user creations due per second (default 20; 0: none)
#   --concurrency=N     at most N writes in flight (default 64)
#   --baseline=SECONDS  the stream alone before the fill (default 10)
#   --after=SECONDS     the windows after the fill and after the deletion (default 10)
#   --fill=create|raise how to fill (default create, see above)
#   --no-delete         no deletion (and no delete, after-delete windows)
#   --keyed             the fill and the deletion carry idempotency keys
#   --read-model=on|off segments-server --read-model (default on, its default)
#   --workers=N --db-pool-size=N   segments-server settings (default 8, 8, as run_grpc_bench.sh)
#   --reseed            seed again even if a seeded database of that size is there
#   --keep              keep the run's database (fill_bench_run) for a look
#   --no-build          use the binaries already in the build directory
#   --rev=REV           build from git REV (git archive, bench/ from the working
#                       tree) instead of the working tree
#   --build-dir=DIR     default build/bench-fill (tree/, or src/ + rev/)
#   --server-bin=PATH   this segments-server instead of the built one
# Env: SEGMENTS_STATE_DIR, default build/bench-fill/state: its own PostgreSQL
# cluster (never the shared .state one), stopped at the end if this script
# started it; logs, the per-call latency log and results in
# $SEGMENTS_STATE_DIR/fill-bench. Seeded templates stay (1M users: ~1.5 GB).
# Exit status: 0 every check passed, 1 something failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
own_state build/bench-fill/state "the benchmark"

users=1000000 rate=200 user_rate=20 concurrency=64 baseline=10 after=10 fill=create delete=1 read_model=on workers=8 pool=8
keyed=0
reseed=0 keep=0 build=1 rev="" build_dir="$ROOT/build/bench-fill" server_bin=""
while (($#)); do
  case $1 in
    --users=*) users=${1#*=} ;;
    --rate=*) rate=${1#*=} ;;
    --user-rate=*) user_rate=${1#*=} ;;
    --concurrency=*) concurrency=${1#*=} ;;
    --baseline=*) baseline=${1#*=} ;;
    --after=*) after=${1#*=} ;;
    --fill=*) fill=${1#*=} ;;
    --no-delete) delete=0 ;;
    --keyed) keyed=1 ;;
    --read-model=*) read_model=${1#*=} ;;
    --workers=*) workers=${1#*=} ;;
    --db-pool-size=*) pool=${1#*=} ;;
    --reseed) reseed=1 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) build_flag "$1" || die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for n in "$users" "$rate" "$concurrency" "$baseline" "$after" "$workers" "$pool"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n (see --help)"
done
[[ $user_rate =~ ^[0-9]+$ ]] || die "--user-rate wants a whole number, got '$user_rate'"
[[ $fill == create || $fill == raise ]] || die "--fill wants create or raise, got '$fill'"
[[ $read_model == on || $read_model == off ]] || die "--read-model wants on or off, got '$read_model'"
((concurrency * 2 <= users)) || die "--users must be at least twice --concurrency"

PG="$ROOT/scripts/pg.sh"
OUT="$STATE/fill-bench"
bench_paths "$rev" "$build_dir" "$server_bin"
LOADER_BIN="$BIN/bench/segments-grpc-load"
CLIENT_BIN="$BIN/bench/segments-auto-client"
LAT="$OUT/latency.txt"
LAT_USERS="$OUT/latency-users.txt"
RUN_DB=fill_bench_run
SEED_DB=fill_bench_seed_$users
WARMUP=2
mkdir -p "$OUT"

psql_in() { local db=$1; shift; "$PG" psql "$db" -X -q -v ON_ERROR_STOP=1 "$@"; }
sql1() { psql_in "$1" -tA -c "$2"; }
db_exists() { [[ -n $(sql1 postgres "SELECT 1 FROM pg_database WHERE datname = '$1'") ]]; }
field_of() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
now_us() { local us=${EPOCHREALTIME//[!0-9]/}; echo $((10#$us)); }

# seed: the template database SEED_DB, unless it is there with the same
# schema, seed file and size.
seed() {
  local fingerprint have="" t0 need_mb free_mb
  fingerprint="$(cat "$SRC/db/schema.sql" "$SRC/bench/seed.sql" | sha256sum | cut -c1-16) users=$users"
  if db_exists "$SEED_DB"; then
    have=$(sql1 "$SEED_DB" "SELECT value FROM bench_fill_meta WHERE key = 'fingerprint'" 2>/dev/null || true)
  fi
  if ((!reseed)) && [[ $have == "$fingerprint" ]]; then
    log "seeded database $SEED_DB is there ($(sql1 "$SEED_DB" "SELECT value FROM bench_fill_meta WHERE key = 'seeded'"))"
    return 0
  fi
  # ~1.3 KB per user in the seed (5 memberships and their indexes), as much
  # again in the run's copy, plus the fill's memberships, history and WAL.
  need_mb=$((users * 4000 / 1048576 + 2048))
  free_mb=$(df -Pm "$STATE" | awk 'NR == 2 { print $4 }')
  ((free_mb > need_mb)) || die "N=$users needs ~$need_mb MB free, $free_mb MB left"
  log "seeding $SEED_DB: $users users x 5 segments (bench/seed.sql; not part of the results)"
  PGOPTIONS='-c client_min_messages=warning' psql_in postgres \
    -c "DROP DATABASE IF EXISTS $SEED_DB WITH (FORCE)" -c "CREATE DATABASE $SEED_DB"
  PGOPTIONS='-c client_min_messages=warning' psql_in "$SEED_DB" -f "$SRC/db/schema.sql"
  t0=$(now_ns)
  psql_in "$SEED_DB" -v users="$users" -f "$SRC/bench/seed.sql" >"$OUT/seed.log" 2>&1 ||
    { cat "$OUT/seed.log" >&2; die "seeding failed"; }
  psql_in "$SEED_DB" -c "CREATE TABLE bench_fill_meta (key text PRIMARY KEY, value text NOT NULL)" \
    -c "INSERT INTO bench_fill_meta VALUES ('fingerprint', '$fingerprint'),
          ('seeded', 'seeded ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"') || ' in $(secs_since "$t0") s')"
  log "seeded in $(secs_since "$t0") s, $(sql1 "$SEED_DB" "SELECT pg_size_pretty(pg_database_size(current_database()))")"
}

# CPU ticks so far: "server pg loader busy steal".
ticks() {
  local b st
  read -r b st < <(cpu_ticks)
  echo "$(proc_ticks "$SERVER") $(pg_ticks) $(proc_ticks "$LOADER") $b $st"
}
# mark NAME: the time (Unix us) and CPU ticks at a window boundary.
declare -A AT=() CPU=()
mark() { AT[$1]=$(now_us); CPU[$1]=$(ticks); }

# window LABEL KIND FROM_US TO_US CPU_FROM CPU_TO [LOG]: one row of the
# table, from the latency log LOG (default: the hand writes'). KIND: inside
# (started and ended in [FROM, TO)), overlap (in flight at some moment of
# [FROM, TO]) or start (started in [FROM, TO)).
window() {
  local label=$1 kind=$2 from=$3 to=$4 log=${7:-$LAT} stats
  stats=$(awk -v k="$kind" -v a="$from" -v b="$to" '
    { s = $2; e = $2 + $3
      if (k == "inside" ? (s >= a && e < b) : k == "overlap" ? (s <= b && e >= a) : (s >= a && s < b))
        print $3, ($4 == "OK" ? 0 : 1) }' "$log" | sort -n | awk '
    { v[++n] = $1; err += $2 }
    function pct(p,  r) { r = int(p / 100 * n); if (r < p / 100 * n) r++; if (r < 1) r = 1; return v[r] / 1000 }
    END { if (n == 0) print "0 0 0 0 0 0"; else printf "%d %d %.1f %.1f %.1f %.1f\n", n, err, pct(50), pct(90), pct(99), v[n] / 1000 }')
  awk -v l="$label" -v a="$from" -v b="$to" -v t0="$T0" -v s="$stats" -v c0="$5" -v c1="$6" -v hz="$CLK_TCK" 'BEGIN {
    split(s, x, " "); split(c0, p, " "); split(c1, q, " "); wall = (b - a) / 1e6
    for (i = 1; i <= 5; i++) d[i] = (q[i] - p[i]) / hz / (wall > 0 ? wall : 1)
    other = d[4] - d[1] - d[2] - d[3]
    printf "%-13s %7.1f %7.1f %7d %6d %8.1f %8.1f %8.1f %8.1f  %6.2f %6.2f %6.2f %6.2f %6.2f\n", l, (a - t0) / 1e6,
      (b - t0) / 1e6, x[1], x[2], x[3], x[4], x[5], x[6], d[1], d[2], d[3], (other < 0 ? 0 : other), d[5] }' |
    tee -a "$OUT/windows.txt"
  read -r W_CALLS _ _ _ W_P99 W_MAX <<<"$stats"
}

failures=0
check() {
  if [[ $2 != "$3" ]]; then
    warn "CHECK FAILED: $1: $2, expected $3"
    failures=$((failures + 1))
  else
    log "ok: $1: $2"
  fi
}

# ---------------------------------------------------------------------------
print_machine
echo "state: $STATE"
((build)) && build_binaries "$rev" segments-server segments-token segments-grpc-load segments-auto-client
need_binaries "$SERVER_BIN" "$LOADER_BIN" "$CLIENT_BIN"
[[ -n $server_bin ]] && echo "server: $SERVER_BIN (--server-bin)"
print_code "$rev" server db proto
pg_ensure_started
on_exit bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
on_exit bg_stop segments-grpc-load "$OUT/loader.pid" "$LOADER_BIN"
on_exit bg_stop segments-grpc-load "$OUT/user-loader.pid" "$LOADER_BIN"
echo "pg:    $(sql1 postgres "SELECT split_part(version(), ' ', 2)"), $(sql1 postgres "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'max_wal_size', 'synchronous_commit', 'checkpoint_timeout')")"

seed
log "fresh copy $RUN_DB of $SEED_DB"
t0=$(now_ns)
PGOPTIONS='-c client_min_messages=warning' psql_in postgres -c "DROP DATABASE IF EXISTS $RUN_DB WITH (FORCE)" \
  -c "CREATE DATABASE $RUN_DB TEMPLATE $SEED_DB STRATEGY FILE_COPY"
psql_in "$RUN_DB" -c CHECKPOINT
log "copied in $(secs_since "$t0") s"

PORT=$(free_port)
log "segments-server --workers=$workers --db-pool-size=$pool --read-model=$read_model"
start_server "127.0.0.1:$PORT" "$OUT/server.pid" "$OUT/server.log" "$SERVER_BIN" \
  --database-url="$("$PG" url "$RUN_DB")" --workers="$workers" --db-pool-size="$pool" --read-model="$read_model" \
  --db-set-statement-timeout=30m
SERVER=$BG_PID
if [[ $read_model == on ]]; then
  wait_read_model "127.0.0.1:$PORT" "$OUT/server.log" 300
  log "$(read_model_loaded "$OUT/server.log")"
fi
if [[ $fill == raise ]]; then
  "$CLIENT_BIN" --target="127.0.0.1:$PORT" --op=create --slug=BENCH_FILL >/dev/null || die "CreateSegment BENCH_FILL failed"
fi

# The stream: runs until SIGINT; calls may wait for minutes in a stall.
rm -f "$LAT" "$LAT_USERS"
log "writes: $rate/s due, at most $concurrency in flight, random users of $users, toggling BENCH_TOGGLE"
bg_start "$OUT/loader.pid" "$OUT/loader.txt" "$LOADER_BIN" --target="127.0.0.1:$PORT" --mode=update \
  --update-users=random --rate="$rate" --concurrency="$concurrency" --users="$users" --warmup="${WARMUP}s" \
  --duration=24h --timeout=30m --latency-log="$LAT" --max-error-rate=0
LOADER=$BG_PID
USER_LOADER=""
if ((user_rate > 0)); then
  log "user creations: $user_rate/s due, at most $concurrency in flight"
  bg_start "$OUT/user-loader.pid" "$OUT/user-loader.txt" "$LOADER_BIN" --target="127.0.0.1:$PORT" --mode=create-user \
    --rate="$user_rate" --concurrency="$concurrency" --warmup="${WARMUP}s" --duration=24h --timeout=30m \
    --latency-log="$LAT_USERS" --max-error-rate=0
  USER_LOADER=$BG_PID
fi
sleep "$WARMUP"
mark start
T0=${AT[start]}
sleep "$baseline"

fill_op=(--op=create --slug=BENCH_FILL --percent=100)
[[ $fill == raise ]] && fill_op=(--op=update-percent --slug=BENCH_FILL --percent=100)
((keyed)) && fill_op+=(--idempotency-key="fill-$RANDOM$RANDOM")
log "fill: ${fill_op[*]}"
mark fill0
fill_line=$("$CLIENT_BIN" --target="127.0.0.1:$PORT" --deadline=30m "${fill_op[@]}") || die "the fill failed"
mark fill1
log "fill: $fill_line"
sleep "$after"
mark fill_after
# Every committed user is a member: the seeded ones by the fill, those
# created meanwhile by their own evaluation (their transactions are atomic,
# so this holds at any instant, the stream still running).
outside=$(sql1 "$RUN_DB" "SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM memberships m
  JOIN segments s ON s.id = m.segment_id WHERE s.slug = 'BENCH_FILL' AND s.deleted_at IS NULL AND m.user_id = u.id)")

if ((delete)); then
  log "delete: DeleteSegment BENCH_FILL"
  mark del0
  delete_op=(--op=delete --slug=BENCH_FILL)
  ((keyed)) && delete_op+=(--idempotency-key="delete-$RANDOM$RANDOM")
  del_line=$("$CLIENT_BIN" --target="127.0.0.1:$PORT" --deadline=30m "${delete_op[@]}") || die "the deletion failed"
  mark del1
  log "delete: $del_line"
  sleep "$after"
  mark del_after
fi

kill -INT "$LOADER"
loader_rc=0
wait "$LOADER" || loader_rc=$?
rm -f "$OUT/loader.pid"
user_loader_rc=0
if [[ -n $USER_LOADER ]]; then
  kill -INT "$USER_LOADER"
  wait "$USER_LOADER" || user_loader_rc=$?
  rm -f "$OUT/user-loader.pid"
fi

echo
echo "N=$users users x 5 segments; segments-server --workers=$workers --db-pool-size=$pool --read-model=$read_model;"
echo "writes: UpdateUserSegments toggling BENCH_TOGGLE for random users, $rate/s due, at most $concurrency in flight,"
echo "latency from when each call was due; fill: ${fill_op[*]}"
sed -n '2,$p' "$OUT/loader.txt"
: >"$OUT/windows.txt"
printf '%-13s %7s %7s %7s %6s %8s %8s %8s %8s  %6s %6s %6s %6s %6s\n' window from_s to_s calls errors p50_ms p90_ms \
  p99_ms max_ms server pg loader other steal
# The end of baseline: the fill's own start (the client's clock, as the log's).
f0=$(field_of "$fill_line" start_unix_us) f1=$(field_of "$fill_line" end_unix_us)
window baseline inside "$T0" "$f0" "${CPU[start]}" "${CPU[fill0]}"
read -r base_p99 base_max <<<"$W_P99 $W_MAX"
window fill overlap "$f0" "$f1" "${CPU[fill0]}" "${CPU[fill1]}"
read -r fill_p99 fill_max fill_calls <<<"$W_P99 $W_MAX $W_CALLS"
window after-fill start "$f1" "${AT[fill_after]}" "${CPU[fill1]}" "${CPU[fill_after]}"
if ((delete)); then
  d0=$(field_of "$del_line" start_unix_us) d1=$(field_of "$del_line" end_unix_us)
  window delete overlap "$d0" "$d1" "${CPU[del0]}" "${CPU[del1]}"
  read -r del_p99 del_max del_calls <<<"$W_P99 $W_MAX $W_CALLS"
  window after-delete start "$d1" "${AT[del_after]}" "${CPU[del1]}" "${CPU[del_after]}"
fi
echo "(windows: seconds from the end of the warmup; baseline = calls that started and ended before the fill; fill,"
echo " delete = calls in flight at some moment of the operation; after-* = calls due in the window. cores: CPU time /"
echo " wall time of the window; other = the rest of the machine, steal = taken by the hypervisor; $(nproc) cores)"
echo
if [[ -n $USER_LOADER ]]; then
  echo
  echo "user creations: CreateUser of new users, $user_rate/s due, latency from when each call was due"
  sed -n '2,$p' "$OUT/user-loader.txt"
  printf '%-13s %7s %7s %7s %6s %8s %8s %8s %8s  %6s %6s %6s %6s %6s\n' window from_s to_s calls errors p50_ms \
    p90_ms p99_ms max_ms server pg loader other steal
  window baseline inside "$T0" "$f0" "${CPU[start]}" "${CPU[fill0]}" "$LAT_USERS"
  window fill overlap "$f0" "$f1" "${CPU[fill0]}" "${CPU[fill1]}" "$LAT_USERS"
  read -r user_fill_p99 user_fill_max user_fill_calls <<<"$W_P99 $W_MAX $W_CALLS"
  window after-fill start "$f1" "${AT[fill_after]}" "${CPU[fill1]}" "${CPU[fill_after]}" "$LAT_USERS"
  if ((delete)); then
    window delete overlap "$d0" "$d1" "${CPU[del0]}" "${CPU[del1]}" "$LAT_USERS"
    window after-delete start "$d1" "${AT[del_after]}" "${CPU[del1]}" "${CPU[del_after]}" "$LAT_USERS"
  fi
fi
echo
fill_s=$(field_of "$fill_line" seconds)
printf 'fill:   %s of %d users in %s s; write p99 %s ms, max %s ms over %s calls (baseline p99 %s ms, max %s ms); target p99 <= 50 ms: %s\n' \
  "$fill" "$users" "$fill_s" "$fill_p99" "$fill_max" "$fill_calls" "$base_p99" "$base_max" \
  "$(awk -v p="$fill_p99" 'BEGIN { print (p <= 50 ? "met" : "NOT met") }')"
if [[ -n $USER_LOADER ]]; then
  printf 'fill:   user creation p99 %s ms, max %s ms over %s calls\n' "$user_fill_p99" "$user_fill_max" "$user_fill_calls"
fi
if ((delete)); then
  printf 'delete: DeleteSegment of %d members in %s s; write p99 %s ms, max %s ms over %s calls\n' \
    "$(field_of "$del_line" removed)" "$(field_of "$del_line" seconds)" "$del_p99" "$del_max" "$del_calls"
fi

events_of() {
  sql1 "$RUN_DB" "SELECT count(*) FROM history h JOIN segments s ON s.id = h.segment_id
    WHERE s.slug = 'BENCH_FILL' AND h.operation = '$1' AND h.reason = '$2'"
}
check "users outside BENCH_FILL after the fill" "$outside" 0
check "users with other than one add event of BENCH_FILL" "$(sql1 "$RUN_DB" "SELECT count(*) FROM (SELECT h.user_id
  FROM history h JOIN segments s ON s.id = h.segment_id WHERE s.slug = 'BENCH_FILL' AND h.operation = 'add'
  GROUP BY h.user_id HAVING count(*) <> 1) x")" 0
check "seeded users' add events of BENCH_FILL" "$(sql1 "$RUN_DB" "SELECT count(*) FROM history h JOIN segments s
  ON s.id = h.segment_id WHERE s.slug = 'BENCH_FILL' AND h.operation = 'add' AND h.user_id < '1'")" "$users"
if ((delete)); then
  check "memberships of BENCH_FILL after DeleteSegment" "$(sql1 "$RUN_DB" "SELECT count(*) FROM memberships m
    JOIN segments s ON s.id = m.segment_id WHERE s.slug = 'BENCH_FILL'")" 0
  check "remove/segment_deleted events of BENCH_FILL (one per add)" "$(events_of remove segment_deleted)" \
    "$(events_of add auto_percent)"
  check "memberships DeleteSegment reports ended (every add event)" "$(field_of "$del_line" removed)" \
    "$(events_of add auto_percent)"
fi
check "segments-grpc-load exit status (0: no write failed)" "$loader_rc" 0
check "segments-grpc-load create-user exit status (0: no creation failed)" "$user_loader_rc" 0

bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
if ((keep)); then log "kept $RUN_DB (--keep)"; else
  PGOPTIONS='-c client_min_messages=warning' psql_in postgres -c "DROP DATABASE IF EXISTS $RUN_DB WITH (FORCE)"
fi
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"
((failures == 0)) || die "$failures check(s) failed (above)"
