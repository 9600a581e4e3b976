#!/usr/bin/env bash
# Memory and warm start of the membership read model, at 10M memberships by
# default: seeds the database segments_rm_bench with bench/read_model_seed.sql
# (2,000,000 users x 5 segments, 20% of the memberships with a deadline),
# then
#   1. starts segments-server with --read-model=off, waits for SERVING and
#      reads its VmRSS (/proc/PID/status): the server without the model;
#   2. --starts times: starts it with --read-model=on and times the warm
#      start, from the process's start to the health service
#      segmentation.v1.MembershipReadModel answering SERVING (reads come from
#      memory from then on), with the load time the server logs; then reads
#      its VmRSS once it has settled.
# Prints RSS growth over memberships (bytes per membership, target <= 32)
# and the warm start (target <= 10 s). See bench/README.md.
#
# Usage: bench/run_read_model_memory.sh [--flag=value ...]
#   --users=N           seeded users, 5 memberships each (default 2000000)
#   --expiring-pct=P    percent of memberships with a deadline (default 20)
#   --starts=N          warm starts with the model (default 3)
#   --settle=SECONDS    wait after SERVING before reading RSS (default 3)
#   --reuse-data        keep segments_rm_bench if it holds N users x 5 already
#                       (the seed of 10M takes ~3 min)
#   --profile           record the machine's CPU (perf record -a -g) during
#                       the last warm start, and print the hottest functions
#                       of the server and of PostgreSQL (the data and the
#                       reports stay in $SEGMENTS_STATE_DIR/bench-read-model/)
#   --no-build          use the existing build/release/server/segments-server
# Env: SEGMENTS_STATE_DIR (as the other scripts). Exit status non-zero when a
# server failed to start or serve, or anything else failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

users=2000000 expiring_pct=20 starts=3 settle=3 reuse=0 build=1 profile=0
while (($#)); do
  case $1 in
    --users=*) users=${1#*=} ;;
    --expiring-pct=*) expiring_pct=${1#*=} ;;
    --starts=*) starts=${1#*=} ;;
    --settle=*) settle=${1#*=} ;;
    --reuse-data) reuse=1 ;;
    --profile) profile=1 ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
for n in "$users" "$expiring_pct" "$starts" "$settle"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a number: '$n' (see --help)"
done
((users > 0 && starts > 0 && expiring_pct <= 100)) || die "--users and --starts must be positive, --expiring-pct 0..100"
((profile)) && { command -v perf >/dev/null || die "--profile needs perf (linux-perf)"; }

PG="$ROOT/scripts/pg.sh"
DB=segments_rm_bench
SERVER_BIN="$ROOT/build/release/server/segments-server"
OUT="$STATE/bench-read-model"
SERVER_PID="$OUT/server.pid"
mkdir -p "$OUT"

psql_db() { "$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }

seed() {
  if ((reuse)) && [[ $("$PG" psql postgres -X -qtA -c "SELECT 1 FROM pg_database WHERE datname = '$DB'") == 1 ]] &&
    [[ $(psql_db -tA -c "SELECT (SELECT count(*) FROM users) || ' ' || (SELECT count(*) FROM memberships)") == "$users $((users * 5))" ]]; then
    log "reusing $DB ($users users, $((users * 5)) memberships)"
    return
  fi
  log "creating $DB and seeding $users users x 5 segments ($expiring_pct% with a deadline)"
  PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  PGOPTIONS='-c client_min_messages=warning' psql_db -f "$ROOT/db/schema.sql"
  local t0=$SECONDS
  psql_db -v users="$users" -v expiring_pct="$expiring_pct" -f "$ROOT/bench/read_model_seed.sql"
  psql_db -c CHECKPOINT
  log "seeded in $((SECONDS - t0)) s"
}

# status_kb PID FIELD: a field of /proc/PID/status in kB (VmRSS, VmHWM, RssAnon).
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
# log_ms LOGFILE PATTERN: the server log's timestamp (UTC, ms) of the first
# line matching PATTERN, as milliseconds since the epoch; dies if none.
log_ms() {
  local ts
  ts="$(grep -m1 -- "$2" "$1" | cut -d' ' -f1)" || die "no '$2' in $1"
  date -u -d "$ts" +%s%3N || die "not a time: '$ts' in $1"
}

# start MODEL: segments-server --read-model=MODEL on a free port, without
# the polling of lib.sh's serve (one grpcurl process every 0.1 s would
# compete with the load for the CPUs); sets SERVER, PORT, LOGFILE and
# T0_NS (just before the exec).
start() {
  PORT="$(free_port)" LOGFILE="$OUT/server-$1.log"
  T0_NS=$(now_ns)
  bg_start "$SERVER_PID" "$LOGFILE" "$SERVER_BIN" --grpc-listen="127.0.0.1:$PORT" \
    --database-url="$("$PG" url "$DB")" --workers=8 --db-pool-size=8 --read-model="$1"
  SERVER=$BG_PID
}
# await STEP CHECK...: polls CHECK every STEP seconds until it succeeds
# (true) or the server exits or 300 s pass (dies, with the log's tail).
await() {
  local deadline=$((SECONDS + 300)) step=$1
  shift
  until "$@"; do
    if ! pid_alive "$SERVER" || ((SECONDS >= deadline)); then
      tail -n 20 "$LOGFILE" >&2
      die "segments-server did not get to '$*' (log: $LOGFILE)"
    fi
    sleep "$step"
  done
}
loaded_in_log() { grep -q 'membership read model loaded' "$LOGFILE"; }
stop() { bg_stop segments-server "$SERVER_PID" "$SERVER_BIN" 30; }

# ---------------------------------------------------------------------------
print_machine
((build)) && "$ROOT/scripts/build.sh" release segments-server segments-token >/dev/null
need_binaries "$SERVER_BIN"
if grep -q 'TEMPORARY stand-in' "$ROOT/server/src/readmodel/membership_table.h" 2>/dev/null; then
  table="the placeholder table (membership_table.h: TEMPORARY stand-in)"
else
  table="the table of membership_table.h at $(git -C "$ROOT" log -1 --format=%h -- server/src/readmodel/membership_table.h)"
fi
echo "code:  $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server || echo ' + uncommitted server changes'), $table"
pg_ensure_started
on_exit stop
seed
probe_user="$(psql_db -tA -c "SELECT id FROM users ORDER BY id LIMIT 1")"

# 1. Without the model.
log "segments-server --read-model=off"
start off
await 0.1 grpc_serving "127.0.0.1:$PORT"
sleep "$settle"
off_rss=$(status_kb "$SERVER" VmRSS) off_anon=$(status_kb "$SERVER" RssAnon) off_hwm=$(status_kb "$SERVER" VmHWM)
stop

# 2. With it, --starts times.
results="$OUT/starts.txt"
: >"$results"
for ((i = 1; i <= starts; i++)); do
  wait_for_idle 20
  log "segments-server --read-model=on, start $i of $starts"
  read -r b0 _ < <(cpu_ticks)
  p0=$(pg_ticks)
  start on
  perf_pid=""
  if ((profile && i == starts)); then
    # The whole machine (attaching to the pid races with its exec), then
    # the server's and PostgreSQL's samples apart.
    perf record -F 499 -a -g -o "$OUT/load.perf.data" >"$OUT/perf-record.txt" 2>&1 &
    perf_pid=$!
  fi
  # The log first, every 0.1 s (a process each time: the polling should take
  # little from the load), then the health service, as a client sees it.
  await 0.1 loaded_in_log
  await 0.02 grpc_serving "127.0.0.1:$PORT" "$READ_MODEL_HEALTH"
  t_health=$((($(now_ns) - T0_NS) / 1000000))
  if [[ -n $perf_pid ]]; then
    # Our cluster's processes (the model's backend is still connected);
    # other clusters on the machine are not ours to count.
    pg_pids="$(pgrep -d, -P "$(head -n 1 "$STATE/pg/data/postmaster.pid")")"
    kill -INT "$perf_pid"
    # perf exits non-zero when interrupted; what counts is what it wrote.
    wait "$perf_pid" || true
    grep -q 'Captured and wrote' "$OUT/perf-record.txt" || { cat "$OUT/perf-record.txt" >&2; die "perf record failed"; }
  fi
  read -r b1 _ < <(cpu_ticks)
  s_ticks=$(proc_ticks "$SERVER") p_ticks=$(($(pg_ticks) - p0))
  t0_ms=$((T0_NS / 1000000))
  t_grpc=$(($(log_ms "$LOGFILE" 'serving gRPC on port') - t0_ms))
  t_serving=$(($(log_ms "$LOGFILE" 'membership read model is serving') - t0_ms))
  line="$(read_model_loaded "$LOGFILE")"
  [[ $line =~ loaded\ ([0-9]+)\ memberships\ of\ ([0-9]+)\ users\ in\ (.*)$ ]] || die "cannot read '$line'"
  memberships=${BASH_REMATCH[1]} model_users=${BASH_REMATCH[2]} load_time=${BASH_REMATCH[3]}
  ((memberships == users * 5)) || die "the model loaded $memberships memberships, the database has $((users * 5))"
  # The model answers (from memory, it is SERVING): the user's 5 segments.
  answer="$("$GRPCURL" -plaintext -d "{\"userID\":\"$probe_user\"}" "127.0.0.1:$PORT" \
    segmentation.v1.SegmentService/GetUserSegments)" || die "GetUserSegments failed"
  [[ $(grep -c '"BENCH_' <<<"$answer") == 5 ]] || die "GetUserSegments of $probe_user: $answer"
  sleep "$settle"
  on_rss=$(status_kb "$SERVER" VmRSS) on_anon=$(status_kb "$SERVER" RssAnon) on_hwm=$(status_kb "$SERVER" VmHWM)
  awk -v wall_ms="$t_health" -v b=$((b1 - b0)) -v s="$s_ticks" -v p="$p_ticks" -v hz="$CLK_TCK" 'BEGIN {
    w = wall_ms / 1000; other = (b - s - p) / hz / w
    printf "cpu %.2f %.2f %.2f\n", s / hz / w, p / hz / w, (other < 0 ? 0 : other) }' >"$OUT/cpu.txt"
  read -r _ cpu_server cpu_pg cpu_other <"$OUT/cpu.txt"
  echo "$i $t_grpc $t_serving $t_health $load_time $on_rss $on_anon $on_hwm $cpu_server $cpu_pg $cpu_other" >>"$results"
  stop
done

# ---------------------------------------------------------------------------
echo
echo "$memberships memberships of $model_users users ($expiring_pct% with a deadline); $starts warm starts;" \
  "RSS read $settle s after SERVING"
echo "server --read-model=off: VmRSS $((off_rss / 1024)) MiB, RssAnon $((off_anon / 1024)) MiB, VmHWM $((off_hwm / 1024)) MiB"
printf '%5s %10s %12s %12s %16s %9s %9s %9s  %6s %6s %6s\n' start "gRPC up" "model (log)" "health" "load (log)" \
  "VmRSS" RssAnon VmHWM server pg other
printf '%5s %10s %12s %12s %16s %9s %9s %9s  %6s %6s %6s\n' "" "s" "s" "s" "" MiB MiB MiB cores cores cores
while read -r i t_grpc t_serving t_health load_time rss anon hwm cs cp co; do
  awk -v i="$i" -v g="$t_grpc" -v sv="$t_serving" -v h="$t_health" -v l="$load_time" -v r="$rss" -v a="$anon" \
    -v m="$hwm" -v cs="$cs" -v cp="$cp" -v co="$co" 'BEGIN {
    printf "%5d %10.2f %12.2f %12.2f %16s %9.0f %9.0f %9.0f  %6.2f %6.2f %6.2f\n", i, g / 1000, sv / 1000, h / 1000, l,
      r / 1024, a / 1024, m / 1024, cs, cp, co }'
done <"$results"
echo "(from the process's start: gRPC up = the log's 'serving gRPC', model = the log's 'read model is serving',"
echo " health = $READ_MODEL_HEALTH SERVING seen by a client; load = the log's 'loaded ... in';"
echo " cores = CPU time / wall time from start to health: server, PostgreSQL, the rest of the machine)"
sort -n -k4 "$results" | awk -v n="$starts" -v m="$memberships" -v off="$off_rss" -v offa="$off_anon" '
  { h[NR] = $4; r[NR] = $6; a[NR] = $7 }
  END {
    mid = int((n + 1) / 2)
    # RSS: the median of the starts, in the order of their RSS.
    for (i = 1; i <= n; i++) rs[i] = r[i]; asort_n(rs, n); for (i = 1; i <= n; i++) as[i] = a[i]; asort_n(as, n)
    printf "RSS growth with the model: %.0f MiB VmRSS = %.1f bytes per membership (target <= 32); RssAnon: %.1f\n",
      (rs[mid] - off) / 1024, (rs[mid] - off) * 1024 / m, (as[mid] - offa) * 1024 / m
    printf "warm start, process start to health SERVING: median %.2f s, max %.2f s (target <= 10 s)\n",
      h[mid] / 1000, h[n] / 1000 }
  function asort_n(x, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { t = x[j]; x[j] = x[j - 1]; x[j - 1] = t } }'
if ((profile)); then
  for comm in segments-server postgres; do
    filter=(--comm segments-server)
    [[ $comm == postgres ]] && filter=(--pid "$pg_pids")
    perf report -i "$OUT/load.perf.data" "${filter[@]}" --no-children --sort dso,sym --stdio -g none 2>/dev/null \
      >"$OUT/load.$comm.self.txt" || die "perf report failed"
    perf report -i "$OUT/load.perf.data" "${filter[@]}" --children --sort sym --stdio -g none --percent-limit 3 \
      2>/dev/null >"$OUT/load.$comm.children.txt" || die "perf report failed"
  done
  echo
  perf report -i "$OUT/load.perf.data" --sort comm --stdio -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | awk -v n=6 'NR <= n' |
    sed 's/^/samples by process name (all clusters): /'
  for comm in segments-server postgres; do
    echo
    echo "$comm during start $starts (postgres: our cluster's processes), self time (% of all samples, top 20; $OUT/load.$comm.self.txt):"
    grep -E '^ +[0-9.]+%' "$OUT/load.$comm.self.txt" | awk -v n=20 'NR <= n'
  done
  echo
  echo "segments-server, including callees (>= 3%; $OUT/load.segments-server.children.txt):"
  grep -E '^ +[0-9.]+%' "$OUT/load.segments-server.children.txt" | awk -v n=40 'NR <= n'
fi
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"
