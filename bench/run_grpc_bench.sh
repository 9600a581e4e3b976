#!/usr/bin/env bash
# End-to-end gRPC benchmark: release build, PostgreSQL, a freshly seeded
# database segments_bench (bench/seed.sql), segments-server on a free port,
# then segments-grpc-load (same warmup and duration each), in one run:
#   with the membership read model (--read-model=on, once it is SERVING):
#     health, get, get at --p99-concurrency calls in flight, update,
#     pg-equiv; then --auth-rounds pairs of get-noauth.R (the server
#     restarted with --auth=off) and get-auth.R (restarted with tokens);
# (get and health carry the service role's token, update an analyst's);
#   without it (server restarted with --read-model=off, same data):
#     get, update, pg-equiv-off;
#   last, with --baseline-server: --metrics-rounds pairs of get-before.R
#     (the baseline binary, fresh) and get-after.R (this tree's, fresh, with
#     --metrics-listen and /metrics scraped every second).
# pg-equiv: pgbench (-M prepared, as many clients as update has calls in
# flight, same warmup and duration, the server idle beside it) running
# bench/pg_equivalent_update.sql on the same database: the transaction one
# toggling UpdateUserSegments needs (lock the user, insert or delete the
# membership, insert the history row, commit), toggling the same users the
# same way (the file says why it is the equivalent and what it leaves out).
# Prints a summary table, the CPU each side used, the ratios get/health and
# update/health with and without the model, update/pg-equivalent (update's
# calls/s over pgbench's transactions/s) with and without the model, and
# get's p99 at --p99-concurrency. See bench/README.md.
#
# Usage: bench/run_grpc_bench.sh [--flag=value ...]
#   --duration=DUR      measured time per mode (default 10s)
#   --warmup=DUR        unmeasured time before each mode (default 2s)
#   --concurrency=N     calls in flight (default 64)
#   --rounds=N          run health and get (with the model) N times, back to
#                       back, and print each round's get/health and the
#                       median (default 1; the rest runs once)
#   --p99-concurrency=N also run get with the model at N calls in flight, for
#                       its latency (default 16; 0: not)
#   --read-model=WHICH  both (default), on (only with the model) or off (only
#                       without it, as before the model existed)
#   --channels=N        client connections (default 2)
#   --workers=N         server --workers (default 8, see README "Server settings")
#   --db-pool-size=N    server --db-pool-size (default 8)
#   --users=N           seeded users (default 100000)
#   --sweep=W:P,W:P...  instead of one run: for each workers:pool pair (and
#                       each --read-model setting), restart the server and
#                       run get and update, then print a table (no pg-equiv)
#   --no-pg-equivalent  skip the pgbench runs (and their ratio)
#   --auth-rounds=N     pairs of get without tokens (--auth=off) and with them,
#                       each on a freshly started server, for the ratio
#                       get-auth/get-noauth per round and its median (what
#                       checking the service token costs the hot read;
#                       default 3; 0: skip)
#   --baseline-server=PATH
#                       a segments-server binary of another revision (e.g. the
#                       one before metrics existed), the "before" of
#                       --metrics-rounds
#   --metrics-rounds=N  pairs of get on a fresh baseline server (get-before.R)
#                       and on a fresh server of this tree with --metrics-listen
#                       on a free loopback port, scraped with curl every second
#                       as Prometheus would (get-after.R), after every other
#                       mode, with the model (unless --read-model=off); prints
#                       get-after/get-before per round and the median (what the
#                       metrics cost the hot read). Default 3 with
#                       --baseline-server, else 0; without it the "before" is
#                       this tree's binary without --metrics-listen
#   --no-build          use the existing build/release binaries
# Env: SEGMENTS_STATE_DIR (as the other scripts). Exit status non-zero when a
# mode had more than 0.1% errors or anything failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=10s warmup=2s concurrency=64 channels=2 workers=8 pool=8 users=100000
sweep="" build=1 p99_concurrency=16 read_model=both rounds=1 pg_equivalent=1 auth_rounds=3
baseline_server="" metrics_rounds=""
while (($#)); do
  case $1 in
    --p99-concurrency=*) p99_concurrency=${1#*=} ;;
    --read-model=*) read_model=${1#*=} ;;
    --rounds=*) rounds=${1#*=} ;;
    --channels=*) channels=${1#*=} ;;
    --workers=*) workers=${1#*=} ;;
    --db-pool-size=*) pool=${1#*=} ;;
    --users=*) users=${1#*=} ;;
    --sweep=*) sweep=${1#*=} ;;
    --no-build) build=0 ;;
    --no-pg-equivalent) pg_equivalent=0 ;;
    --auth-rounds=*) auth_rounds=${1#*=} ;;
    --baseline-server=*) baseline_server=${1#*=} ;;
    --metrics-rounds=*) metrics_rounds=${1#*=} ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) load_flag "$1" || die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
case $read_model in
  both) models=(on off) ;;
  on | off) models=("$read_model") ;;
  *) die "--read-model wants both, on or off, got '$read_model'" ;;
esac
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a number >= 1, got '$rounds'"
if [[ -z $metrics_rounds ]]; then
  metrics_rounds=0 && [[ -n $baseline_server ]] && metrics_rounds=3
fi
for n in "$concurrency" "$p99_concurrency" "$channels" "$workers" "$pool" "$users" "$auth_rounds" "$metrics_rounds"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a number: '$n' (see --help)"
done
# --warmup and --duration in seconds (the loader's forms: 500ms, 10s, 1m, 1.5m).
dur_seconds() {
  awk -v d="$1" 'BEGIN { if (d !~ /^[0-9]+(\.[0-9]+)?(ms|s|m|h)$/) exit 1
    n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
    printf "%.6f", n * (u == "ms" ? 0.001 : u == "s" ? 1 : u == "m" ? 60 : 3600) }'
}
warmup_s=$(dur_seconds "$warmup") || die "--warmup wants e.g. 2s or 500ms, got '$warmup'"
duration_s=$(dur_seconds "$duration") || die "--duration wants e.g. 10s or 1m, got '$duration'"

PG="$ROOT/scripts/pg.sh"
DB=segments_bench
SERVER_BIN="$ROOT/build/release/server/segments-server"
# The binary of the server running now (restart_server_bin), to stop it.
RUNNING_BIN="$SERVER_BIN"
LOADER_BIN="$ROOT/build/release/bench/segments-grpc-load"
PGBENCH=/usr/lib/postgresql/15/bin/pgbench
PG_EQUIVALENT="$ROOT/bench/pg_equivalent_update.sql"
# Users each update slot and pgbench client walks: segments-grpc-load's
# default --update-stripe.
STRIPE=100
BENCH_STATE="$STATE/bench"
SERVER_PID="$BENCH_STATE/server.pid"
SERVER_LOG="$BENCH_STATE/server.log"
RESULTS="$BENCH_STATE/results.csv"
SCRAPER_PID="$BENCH_STATE/scraper.pid"
SCRAPES="$BENCH_STATE/scrapes.txt"
if [[ -n $baseline_server ]]; then
  [[ -x $baseline_server && -f $baseline_server ]] || die "--baseline-server: no executable at $baseline_server"
  baseline_server="$(realpath "$baseline_server")"
fi

# CPU ticks of our PostgreSQL cluster: the postmaster and its children
# (backends, walwriter, checkpointer...). Falls back to every process of user
# postgres when postmaster.pid is not readable. Replaces bench/lib.sh's
# pg_ticks, which has no fallback and also counts exited children.
pg_ticks() {
  local total=0 pid pids postmaster=""
  postmaster="$(head -n 1 "$STATE/pg/data/postmaster.pid" 2>/dev/null)" || true
  if [[ $postmaster =~ ^[0-9]+$ ]]; then
    pids="$postmaster $(pgrep -P "$postmaster" || true)"
  else
    pids="$(pgrep -u postgres || true)"
  fi
  for pid in $pids; do
    total=$((total + $(proc_ticks "$pid")))
  done
  echo "$total"
}

# pg_ticks_reaped: pg_ticks plus what the postmaster's exited children used
# (its cutime and cstime): pgbench's backends exit before the end of its run
# is sampled.
pg_ticks_reaped() {
  local postmaster stat f
  postmaster="$(head -n 1 "$STATE/pg/data/postmaster.pid" 2>/dev/null)" || true
  stat="$(cat "/proc/$postmaster/stat" 2>/dev/null)" || { pg_ticks; return; }
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  echo $(($(pg_ticks) + f[13] + f[14]))
}

# "BUSY STEAL": CPU ticks of the whole machine (all cores) spent running
# something, and stolen by the hypervisor for other guests.

psql_bench() { "$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }

seed() {
  log "creating $DB and seeding $users users x 5 segments"
  PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  PGOPTIONS='-c client_min_messages=warning' psql_bench -f "$ROOT/db/schema.sql"
  local t0=$SECONDS
  psql_bench -v users="$users" -f "$ROOT/bench/seed.sql"
  # Write the seeded pages out now rather than during a measurement.
  psql_bench -c CHECKPOINT
  log "seeded in $((SECONDS - t0)) s"
}

# Back to the seeded state for the update mode: nobody in BENCH_TOGGLE.
reset_toggle() {
  psql_bench -c "DELETE FROM memberships WHERE segment_id IN (SELECT id FROM segments WHERE slug = 'BENCH_TOGGLE')" \
    -c "VACUUM (ANALYZE) memberships"
}

# stop_server: stops the running segments-server, whichever binary it is.
stop_server() { bg_stop segments-server "$SERVER_PID" "$RUNNING_BIN"; }

# restart_server W P MODEL [FLAG...]: segments-server (again) on a free port against
# $DB with --workers=W --db-pool-size=P --read-model=MODEL (and FLAGs), once SERVING (and
# with the model, once the model is SERVING too: reads come from memory);
# SERVER is its pid.
restart_server() { restart_server_bin "$SERVER_BIN" "$@"; }

# restart_server_bin BIN W P MODEL [FLAG...]: restart_server with the
# segments-server binary BIN (e.g. --baseline-server).
restart_server_bin() {
  local bin=$1
  shift
  stop_server
  PORT="$(free_port)"
  local name=segments-server
  [[ $bin == "$SERVER_BIN" ]] || name=$bin
  log "$name --workers=$1 --db-pool-size=$2 --read-model=$3${4:+ ${*:4}}"
  RUNNING_BIN=$bin
  start_server "127.0.0.1:$PORT" "$SERVER_PID" "$SERVER_LOG" "$bin" --database-url="$("$PG" url "$DB")" \
    --workers="$1" --db-pool-size="$2" --read-model="$3" "${@:4}"
  SERVER=$BG_PID
  if [[ $3 == on ]]; then
    wait_read_model "127.0.0.1:$PORT" "$SERVER_LOG" 60
    log "$(read_model_loaded "$SERVER_LOG"); $READ_MODEL_HEALTH SERVING"
  fi
}

# start_scraper HOST:PORT: GET http://HOST:PORT/metrics every second in the
# background, as a Prometheus scrape would, until stop_scraper; each answer's
# HTTP status (000: none) and size in bytes go to $SCRAPES.
start_scraper() {
  : >"$SCRAPES"
  bg_start "$SCRAPER_PID" "$BENCH_STATE/scraper.log" bash -c \
    'while :; do curl -s -o /dev/null -m 2 -w "%{http_code} %{size_download}\n" "http://$1/metrics" >>"$2"; sleep 1; done' \
    scraper "$1" "$SCRAPES"
}

# stop_scraper: ends start_scraper's loop (the whole session setsid made:
# the loop, and a curl or sleep under way).
stop_scraper() {
  local pid
  if pid="$(bg_pid "$SCRAPER_PID" "$(command -v bash)")"; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
  rm -f "$SCRAPER_PID"
}

# scrape_summary: "N scrapes, M answered 200, last B bytes" of $SCRAPES.
scrape_summary() {
  awk '{ n++; if ($1 == 200) { ok++; bytes = $2 } }
    END { printf "%d scrapes, %d answered 200, last %d bytes", n, ok, bytes }' "$SCRAPES"
}

# run_mode LABEL MODE [CONCURRENCY]: one loader run of MODE (default
# concurrency: --concurrency); appends
# "label,calls,errors,rps,p50,p90,p99,max,loader_cpu,errors_by_code,server_cpu,pg_cpu,other_cpu,steal"
# to $RESULTS and returns the loader's exit status.
run_mode() {
  local label=$1 mode=$2 conc=${3:-$concurrency} rc=0 s0 p0 b0 st0 t0 s1 p1 b1 st1 t1 line
  : >"$BENCH_STATE/last.csv"
  s0=$(proc_ticks "$SERVER") p0=$(pg_ticks) t0=$(date +%s%N)
  read -r b0 st0 < <(cpu_ticks)
  # Other services read with the service role's token; writes are an analyst's.
  if [[ $mode == update ]]; then bench_token analyst; else bench_token service; fi
  "$LOADER_BIN" --target="127.0.0.1:$PORT" --mode="$mode" --duration="$duration" --warmup="$warmup" \
    --concurrency="$conc" --channels="$channels" --users="$users" \
    --csv="$BENCH_STATE/last.csv" >"$BENCH_STATE/$label.txt" || rc=$?
  s1=$(proc_ticks "$SERVER") p1=$(pg_ticks) t1=$(date +%s%N)
  read -r b1 st1 < <(cpu_ticks)
  # Cores busy on average over the whole loader run (warmup included); "other"
  # is everything else on the machine and "steal" the CPU the hypervisor gave
  # to other guests: high values mean the numbers are disturbed.
  line="$(tail -n 1 "$BENCH_STATE/last.csv")"
  if [[ -z $line ]]; then
    cat "$BENCH_STATE/$label.txt" >&2
    warn "$label: loader exited with $rc and measured nothing"
    return 1
  fi
  line="$label,${line#*,}"
  awk -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) -v st=$((st1 - st0)) -v ns=$((t1 - t0)) \
    -v hz="$CLK_TCK" -v l="$line" 'BEGIN {
    wall = ns / 1e9; split(l, f, ",")
    other = b / hz / wall - s / hz / wall - p / hz / wall - f[9]
    printf "%s,%.2f,%.2f,%.2f,%.2f\n", l, s / hz / wall, (p < 0 ? 0 : p / hz / wall), (other < 0 ? 0 : other), st / hz / wall }' \
    >>"$RESULTS"
  if ((rc != 0)); then
    warn "$label: loader exited with $rc"
    cat "$BENCH_STATE/$label.txt" >&2
  fi
  return "$rc"
}

# run_pg_equivalent LABEL: pgbench of bench/pg_equivalent_update.sql with
# --concurrency clients for --warmup + --duration (one process, so that each
# client's toggle goes on from the warmup as the loader's does), BENCH_TOGGLE
# emptied first; appends a row as run_mode does, from pgbench's
# per-transaction log: transactions that started in the measured window
# (from --warmup after the first one started), their latencies, pgbench's
# CPU as "loader". errors: clients that pgbench aborted (a failed statement
# ends a client) and failed transactions.
run_pg_equivalent() {
  local label=$1 rc=0 toggle jobs seconds s0 p0 b0 st0 t0 s1 p1 b1 st1 t1 line prefix="$BENCH_STATE/pgbench_$1"
  reset_toggle
  toggle=$(psql_bench -tA -c "SELECT id FROM segments WHERE slug = 'BENCH_TOGGLE' AND deleted_at IS NULL")
  jobs=$(($(nproc) < concurrency ? $(nproc) : concurrency))
  seconds=$(awk -v w="$warmup_s" -v d="$duration_s" 'BEGIN { s = w + d; printf "%d", (s == int(s) ? s : int(s) + 1) + 1 }')
  rm -f "$prefix".*
  s0=$(proc_ticks "$SERVER") p0=$(pg_ticks_reaped) t0=$(date +%s%N)
  read -r b0 st0 < <(cpu_ticks)
  /usr/bin/time -f '%U %S' -o "$BENCH_STATE/$label.cpu" "$PGBENCH" -n -M prepared -c "$concurrency" -j "$jobs" \
    -T "$seconds" -f "$PG_EQUIVALENT" -D toggle="$toggle" -D slug=BENCH_TOGGLE -D stripe="$STRIPE" -D step=0 \
    -l --log-prefix="$prefix" "$("$PG" url "$DB")" >"$BENCH_STATE/$label.txt" 2>&1 || rc=$?
  s1=$(proc_ticks "$SERVER") p1=$(pg_ticks_reaped) t1=$(date +%s%N)
  read -r b1 st1 < <(cpu_ticks)
  # Log lines: client transaction latency_us script end_s end_us (PG 15).
  line=$(cat "$prefix".* 2>/dev/null | awk -v w="$warmup_s" -v d="$duration_s" -v label="$label" '
    $3 !~ /^[0-9]+$/ { failed++; next }
    { start = ($5 * 1e6 + $6) - $3; n++; st[n] = start; lat[n] = $3; if (n == 1 || start < first) first = start }
    END { if (n == 0) exit 1
      from = first + w * 1e6; to = from + d * 1e6
      for (i = 1; i <= n; i++) if (st[i] >= from && st[i] < to) print "L", lat[i]
      print "F", failed + 0 }' | sort -k1,1 -k2,2n | awk -v d="$duration_s" -v label="$label" '
    $1 == "F" { failed = $2; next }
    { v[++n] = $2 }
    function pct(p,  r) { r = int(p / 100 * n); if (r < p / 100 * n) r++; if (r < 1) r = 1; return v[r] }
    END { if (n == 0) exit 1
      printf "%s,%d,%d,%.1f,%.1f,%.1f,%.1f,%.1f", label, n, failed, n / d, pct(50), pct(90), pct(99), v[n] }') ||
    line=""
  if [[ -z $line ]]; then
    cat "$BENCH_STATE/$label.txt" >&2
    warn "$label: pgbench exited with $rc and measured nothing"
    return 1
  fi
  local aborted cpu errors_by_code
  aborted=$(grep -c 'aborted in command' "$BENCH_STATE/$label.txt" || true)
  cpu=$(awk '{ print $1 + $2 }' "$BENCH_STATE/$label.cpu" 2>/dev/null || echo 0)
  errors_by_code=$(awk -F, -v a="$aborted" 'BEGIN { s = "" }
    END { if (a > 0) s = "ABORTED_CLIENTS=" a; if ($3 > 0) s = s (s == "" ? "" : " ") "FAILED=" $3; print (s == "" ? "-" : s) }' <<<"$line")
  line=$(awk -F, -v OFS=, -v a="$aborted" '{ $3 += a; print }' <<<"$line")
  awk -v s=$((s1 - s0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) -v st=$((st1 - st0)) -v ns=$((t1 - t0)) \
    -v hz="$CLK_TCK" -v l="$line" -v cpu="$cpu" -v e="$errors_by_code" 'BEGIN {
    wall = ns / 1e9; lc = cpu / wall
    other = b / hz / wall - s / hz / wall - p / hz / wall - lc
    printf "%s,%.2f,%s,%.2f,%.2f,%.2f,%.2f\n", l, lc, e, s / hz / wall, (p < 0 ? 0 : p / hz / wall),
      (other < 0 ? 0 : other), st / hz / wall }' >>"$RESULTS"
  if ((rc != 0)); then
    warn "$label: pgbench exited with $rc"
    grep -m 5 -E 'aborted|error' "$BENCH_STATE/$label.txt" >&2 || true
  fi
  return "$rc"
}

# print_table CSV: the summary of the labels run_mode wrote: "get" and
# "update" with the model, "get-off" and "update-off" without it, "get@N" at
# N calls in flight; and run_pg_equivalent's "pg-equiv" (beside update) and
# "pg-equiv-off".
print_table() {
  awk -F, -v p99c="$p99_concurrency" '
    BEGIN { printf "%-11s %9s %7s %9s %8s %8s %8s %8s  %6s %6s %6s %6s %6s  %s\n", "mode", "calls", "errors",
              "rps", "p50_us", "p90_us", "p99_us", "max_us", "server", "pg", "loader", "other", "steal",
              "errors_by_code"
            printf "%-11s %9s %7s %9s %8s %8s %8s %8s  %6s %6s %6s %6s %6s\n", "", "", "", "", "", "", "", "",
              "cores", "cores", "cores", "cores", "cores" }
    { printf "%-11s %9d %7d %9.0f %8.0f %8.0f %8.0f %8.0f  %6.2f %6.2f %6.2f %6.2f %6.2f  %s\n",
        $1, $2, $3, $4, $5, $6, $7, $8, $11, $12, $9, $13, $14, $10
      rps[$1] = $4; p99[$1] = $7 }
    function ratio(name, label, target) {
      if ((label in rps) && rps["health"] > 0)
        printf "ratio %-38s %.3f%s\n", name ":", rps[label] / rps["health"], target
    }
    END { for (r = 2; ("get." r) in rps; r++) {
            if (r == 2) printf "ratio get/health    (with the read model), round 1:  %.3f\n", rps["get"] / rps["health"]
            printf "ratio get/health    (with the read model), round %d:  %.3f\n", r, rps["get." r] / rps["health." r]
          }
          if (r > 2) {
            n = 0; for (i = 1; i < r; i++) { s = (i == 1 ? "" : "." i); q[++n] = rps["get" s] / rps["health" s] }
            for (i = 2; i <= n; i++) for (j = i; j > 1 && q[j - 1] > q[j]; j--) { t = q[j]; q[j] = q[j - 1]; q[j - 1] = t }
            printf "ratio %-38s %.3f   (target >= 0.8)\n", "get/health (model), median of rounds:",
              (n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2)
          }
          if (r == 2) ratio("get/health    (with the read model)", "get", "   (target >= 0.8)")
          ratio("get/health    (without it, PostgreSQL)", "get-off", "")
          ratio("update/health (with the read model)", "update", "")
          ratio("update/health (without it)", "update-off", "")
          if (("update" in rps) && rps["pg-equiv"] > 0)
            printf "ratio %-38s %.2f   (target >= 0.7)\n", "update/pg-equivalent (with the model):", rps["update"] / rps["pg-equiv"]
          if (("update-off" in rps) && rps["pg-equiv-off"] > 0)
            printf "ratio %-38s %.2f   (target >= 0.7)\n", "update/pg-equivalent (without it):", rps["update-off"] / rps["pg-equiv-off"]
          if (("get" in rps) && ("get-off" in rps) && rps["get-off"] > 0)
            printf "ratio %-38s %.2f\n", "get with / get without the model:", rps["get"] / rps["get-off"]
          n = 0
          for (r = 1; ("get-noauth." r) in rps && rps["get-noauth." r] > 0; r++) {
            a[++n] = rps["get-auth." r] / rps["get-noauth." r]
            printf "ratio get-auth/get-noauth, round %d:      %.3f\n", r, a[n]
          }
          if (n > 0) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
            printf "ratio %-38s %.3f   (target >= 0.9)\n", "get-auth/get-noauth, median:", (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
          }
          n = 0
          for (r = 1; ("get-before." r) in rps && rps["get-before." r] > 0; r++) {
            m[++n] = rps["get-after." r] / rps["get-before." r]
            printf "ratio get-after/get-before, round %d:    %.3f\n", r, m[n]
          }
          if (n > 0) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (m[j] < m[i]) { x = m[i]; m[i] = m[j]; m[j] = x }
            printf "ratio %-38s %.3f   (target >= 0.95)\n", "get-after/get-before, median:", (n % 2 ? m[(n + 1) / 2] : (m[n / 2] + m[n / 2 + 1]) / 2)
          }
          l = "get@" p99c
          if (l in p99)
            printf "p99 of get at %s in flight (with the model): %.2f ms (target <= 5 ms)\n", p99c, p99[l] / 1000 }' "$1"
}

# ---------------------------------------------------------------------------
print_machine

((build)) && "$ROOT/scripts/build.sh" release segments-server segments-token segments-grpc-load
[[ -x $SERVER_BIN && -x $LOADER_BIN ]] || die "missing $SERVER_BIN or $LOADER_BIN: run without --no-build"
if ((pg_equivalent)) && [[ -z $sweep ]]; then
  [[ -x $PGBENCH ]] || die "missing $PGBENCH (Debian's postgresql-15; or run with --no-pg-equivalent)"
  [[ -x /usr/bin/time ]] || die "missing /usr/bin/time (Debian's time; or run with --no-pg-equivalent)"
  ((concurrency * STRIPE <= users)) || die "pg-equiv needs --concurrency x $STRIPE <= --users"
fi

pg_ensure_started
mkdir -p "$BENCH_STATE"
on_exit stop_server
on_exit stop_scraper
seed

failed=0
if [[ -n $sweep ]]; then
  sweep_csv="$BENCH_STATE/sweep.csv"
  : >"$sweep_csv"
  for pair in ${sweep//,/ }; do
    [[ $pair =~ ^([0-9]+):([0-9]+)$ ]] || die "--sweep wants workers:pool pairs, got '$pair'"
    w=${BASH_REMATCH[1]} p=${BASH_REMATCH[2]}
    for model in "${models[@]}"; do
      restart_server "$w" "$p" "$model"
      reset_toggle
      : >"$RESULTS"
      for mode in get update; do run_mode "$mode" "$mode" || failed=1; done
      sed "s/^/$w,$p,$model,/" "$RESULTS" >>"$sweep_csv"
    done
  done
  echo
  echo "sweep: concurrency $concurrency, channels $channels, warmup $warmup, duration $duration per mode"
  awk -F, 'BEGIN { printf "%7s %5s %5s %-7s %9s %8s %8s %7s  %6s %6s %6s %6s %6s\n", "workers", "pool", "model",
                   "mode", "rps", "p50_us", "p99_us", "errors", "server", "pg", "loader", "other", "steal" }
           { printf "%7d %5d %5s %-7s %9.0f %8.0f %8.0f %7d  %6.2f %6.2f %6.2f %6.2f %6.2f\n", $1, $2, $3, $4, $7,
               $8, $10, $6, $14, $15, $12, $16, $17 }' \
    "$sweep_csv"
else
  : >"$RESULTS"
  for model in "${models[@]}"; do
    restart_server "$workers" "$pool" "$model"
    reset_toggle
    # health: the bare RPC, with the first server (the model plays no part).
    if [[ $model == on ]]; then
      # Round r > 1: the labels health.r and get.r.
      for ((r = 1; r <= rounds; r++)); do
        suffix="" && ((r > 1)) && suffix=".$r"
        run_mode "health$suffix" health || failed=1
        run_mode "get$suffix" get || failed=1
      done
      if ((p99_concurrency > 0)); then run_mode "get@$p99_concurrency" get "$p99_concurrency" || failed=1; fi
      run_mode update update || failed=1
      if ((pg_equivalent)); then run_pg_equivalent pg-equiv || failed=1; fi
      # What checking tokens costs the hot read: get without them and with
      # them, each on a fresh server, in alternating rounds (the machine's
      # noise is larger than the difference).
      for ((r = 1; r <= auth_rounds; r++)); do
        restart_server "$workers" "$pool" on --auth=off
        run_mode "get-noauth.$r" get || failed=1
        restart_server "$workers" "$pool" on
        run_mode "get-auth.$r" get || failed=1
      done
    else
      if [[ $model == "${models[0]}" ]]; then run_mode health health || failed=1; fi
      run_mode get-off get || failed=1
      run_mode update-off update || failed=1
      if ((pg_equivalent)); then run_pg_equivalent pg-equiv-off || failed=1; fi
    fi
  done
  # What the metrics cost the hot read: get on the baseline binary and on
  # this tree's with its metrics port scraped every second, each on a fresh
  # server, in alternating rounds (as the auth rounds, for the same reason).
  if ((metrics_rounds > 0)); then
    before_bin=${baseline_server:-$SERVER_BIN} metrics_model=on
    [[ $read_model == off ]] && metrics_model=off
    # The baseline runs as it always ran (an old one has no metrics port);
    # the after side gets one only if its --help lists the flag.
    with_metrics=0
    if has_flag "$SERVER_BIN" metrics-listen; then with_metrics=1; else
      warn "$SERVER_BIN has no --metrics-listen: get-after.R runs without a metrics port"
    fi
    for ((r = 1; r <= metrics_rounds; r++)); do
      restart_server_bin "$before_bin" "$workers" "$pool" "$metrics_model"
      run_mode "get-before.$r" get || failed=1
      if ((with_metrics)); then
        metrics_addr="127.0.0.1:$(free_port)"
        restart_server "$workers" "$pool" "$metrics_model" --metrics-listen="$metrics_addr"
        start_scraper "$metrics_addr"
        run_mode "get-after.$r" get || failed=1
        stop_scraper
        log "get-after.$r: /metrics on $metrics_addr: $(scrape_summary)"
        scrapes_ok=$(awk '$1 == 200 { n++ } END { print n + 0 }' "$SCRAPES")
        ((scrapes_ok > 0)) || { warn "get-after.$r: /metrics never answered 200"; failed=1; }
      else
        restart_server "$workers" "$pool" "$metrics_model"
        run_mode "get-after.$r" get || failed=1
      fi
    done
  fi
  echo
  echo "segments-server --workers=$workers --db-pool-size=$pool; loader: concurrency $concurrency," \
    "channels $channels, warmup $warmup, duration $duration per mode, $users users"
  echo "get, get@N, update: --read-model=on (from memory); get-off, update-off: --read-model=off (PostgreSQL)"
  if ((metrics_rounds > 0)); then
    echo "get-before.R: ${baseline_server:-$SERVER_BIN (without --metrics-listen)};" \
      "get-after.R: $SERVER_BIN with --metrics-listen, GET /metrics every 1 s"
  fi
  if ((pg_equivalent)); then
    echo "pg-equiv, pg-equiv-off: pgbench -M prepared -c $concurrency of bench/pg_equivalent_update.sql (rps = transactions/s," \
      "loader = pgbench), each right after the update mode above it, that server idle"
  fi
  print_table "$RESULTS"
  while IFS=, read -r label _; do
    [[ $label == update* ]] || continue
    sed -n "s/^ *(update: \\(.*\\))\$/$label: \\1/p" "$BENCH_STATE/$label.txt" 2>/dev/null || true
  done <"$RESULTS"
  echo "(cores: CPU time / wall time of the whole mode incl. warmup; server = segments-server,"
  echo " pg = the PostgreSQL cluster's processes, loader = segments-grpc-load, other = the rest of"
  echo " the machine, steal = taken by the hypervisor; high other/steal = disturbed run; $(nproc) cores)"
fi
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"
exit "$failed"
