#!/usr/bin/env bash
# Monthly history report benchmark (see bench/README.md, "The monthly history report"):
# loads 10,000,000 history events of 1,000,000 users over the 12 months of a
# year (bench/history_seed.sql; once, kept for the next run), starts
# segments-server and segments-gateway, and downloads the one-month report of
# every user (~833,000 rows) and of one user (100 rows) through the gateway,
# --runs times each. For every download: rows, bytes, seconds, rows/s, MB/s,
# time to the first byte, and the peak memory growth of the server and the
# gateway (VmHWM after, reset via /proc/PID/clear_refs, minus VmRSS before),
# plus the CPU seconds of each process. To attribute the cost it also reads
# the same month without the gateway (gRPC, bench/report_client.cc) and
# without the server (psql: the server's cursor loop with FETCH_COUNT=1000,
# and COPY), and EXPLAINs the server's report queries.
#
# Usage: bench/run_report_bench.sh [flags]
#   --runs=3              downloads of each kind
#   --year=2023 --month=6 the report month (the data covers --year)
#   --reload              load the data again even if it is there
#   --events=10000000 --users=1000000   data size (a change reloads)
#   --no-build            use the binaries already in the build directory
#   --rev=REV             build server and gateway from git REV (git archive,
#                         bench/ from the working tree) instead of the working
#                         tree: unaffected by uncommitted edits elsewhere
#   --build-dir=DIR       default build/bench-report (tree/, or src/ + rev/)
#   --server-bin=PATH     this segments-server instead of the built one (to
#                         compare a patched server; the rest is built as usual)
#   --workers=8 --db-pool-size=8   segments-server settings
#   --no-baselines        only the downloads through the gateway
#   --csv                 also print every run as CSV at the end
#   --wait-idle=SECONDS   before each download, wait up to SECONDS for the
#                         machine to be idle (< 10% busy over half a second):
#                         for shared machines; 0 (default) does not wait
#   --perf                one more all-users download (mode http-all+perf)
#                         under a system-wide `perf record`; profile by
#                         process and by symbol in $SEGMENTS_STATE_DIR/report-bench
# Env: SEGMENTS_STATE_DIR, default build/bench-report/state: its own
# PostgreSQL cluster (never the shared .state one), logs and results in
# $SEGMENTS_STATE_DIR/report-bench. The cluster is stopped at the end if this
# script started it; the data stays for the next run (~3.4 GB).
# Exit status: 0 target met, 1 something failed (wrong row count, bad plan,
# a process died), 2 target missed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
own_state build/bench-report/state "the report benchmark"

runs=3 year=2023 month=6 reload=0 events=10000000 users=1000000 build=1 rev="" workers=8 pool=8
baselines=1 csv=0 perf=0 wait_idle=0 server_bin="" build_dir="$ROOT/build/bench-report"
chosen_user=11111111-2222-4333-8444-555555555555 chosen_per_month=100
while (($#)); do
  case $1 in
    --runs=*) runs=${1#*=} ;;
    --year=*) year=${1#*=} ;;
    --month=*) month=${1#*=} ;;
    --reload) reload=1 ;;
    --events=*) events=${1#*=} ;;
    --users=*) users=${1#*=} ;;
    --workers=*) workers=${1#*=} ;;
    --db-pool-size=*) pool=${1#*=} ;;
    --no-baselines) baselines=0 ;;
    --csv) csv=1 ;;
    --perf) perf=1 ;;
    --wait-idle=*) wait_idle=${1#*=} ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) build_flag "$1" || die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ $wait_idle =~ ^[0-9]+$ ]] || die "--wait-idle wants whole seconds"
for n in "$runs" "$year" "$month" "$events" "$users" "$workers" "$pool"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
((month <= 12)) || die "--month must be 1..12"

PG="$ROOT/scripts/pg.sh"
DB=segments_report_bench
OUT="$STATE/report-bench"
bench_paths "$rev" "$build_dir" "$server_bin"
GATEWAY_BIN="$BIN/gateway/segments-gateway"
CLIENT_BIN="$BIN/bench/segments-report-client"
RESULTS="$OUT/results.csv"
mkdir -p "$OUT"

psql_db() { "$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }

# --- data ------------------------------------------------------------------
SEED="$SRC/bench/history_seed.sql"
SCHEMA="$SRC/db/schema.sql"
seed_vars=(-v events="$events" -v users="$users" -v year="$year" -v chosen_user="$chosen_user"
  -v chosen_per_month="$chosen_per_month")

meta() { psql_db -tA -c "SELECT value FROM bench_report_meta WHERE key = '$1'" 2>/dev/null; }

load_data() {
  local fingerprint have="" t0
  fingerprint="$(cat "$SCHEMA" "$SEED" | sha256sum | cut -c1-16) events=$events users=$users year=$year"
  fingerprint+=" chosen=$chosen_user/$chosen_per_month"
  if [[ -n $("$PG" psql postgres -XtAc "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
    have="$(meta fingerprint || true)"
  fi
  if ((!reload)) && [[ $have == "$fingerprint" ]]; then
    log "data already loaded ($(meta loaded_at), in $(meta load_seconds) s); --reload loads it again"
    return 0
  fi
  [[ -n $have ]] && log "loaded data differs ($have), loading again"
  log "creating $DB and loading $events events of $users users (takes minutes)"
  PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  PGOPTIONS='-c client_min_messages=warning' psql_db -f "$SCHEMA"
  t0=$(now_ns)
  psql_db "${seed_vars[@]}" -f "$SEED" 2>&1 | tee "$OUT/load.log" | sed 's/^/    /' >&2
  local seconds
  seconds=$(secs_since "$t0")
  log "loaded in $seconds s; counting users"
  psql_db -c "CREATE TABLE bench_report_meta (key text PRIMARY KEY, value text NOT NULL)" \
    -c "INSERT INTO bench_report_meta VALUES
          ('load_seconds', '$seconds'),
          ('loaded_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"')),
          ('rows', (SELECT count(*) FROM history)::text),
          ('distinct_users', (SELECT count(DISTINCT user_id) FROM history)::text),
          ('heap_mb', (pg_relation_size('history') >> 20)::text),
          ('indexes_mb', (pg_indexes_size('history') >> 20)::text),
          ('database_mb', (pg_database_size(current_database()) >> 20)::text),
          ('fingerprint', '$fingerprint')"
  # The load log's steps, for the README.
  awk '/^\[history_seed\]/ { step = $0; sub(/^\[history_seed\] /, "", step) }
       /^Time:/ { t[step] += $2 } END { for (s in t) printf "    %8.1f s  %s\n", t[s] / 1000, s }' \
    "$OUT/load.log" | sort -k3 >"$OUT/load_steps.txt"
}

# --- process probes --------------------------------------------------------
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# sample_begin / sample_end around one download: peak memory growth and CPU.
sample_begin() {
  local p
  ((wait_idle)) && wait_for_idle "$wait_idle"
  for p in "$SERVER" "$GATEWAY"; do
    pid_alive "$p" || die "process $p is gone (logs in $OUT)"
    echo 5 >"/proc/$p/clear_refs"  # VmHWM := VmRSS
  done
  s_rss0=$(status_kb "$SERVER" VmRSS) g_rss0=$(status_kb "$GATEWAY" VmRSS)
  s_t0=$(proc_ticks "$SERVER") g_t0=$(proc_ticks "$GATEWAY") p_t0=$(pg_ticks)
  read -r b_t0 st_t0 < <(cpu_ticks)
}
# sample_end CLIENT_CPU_SECONDS -> S_SAMPLE: "server_rss_mb,server_growth_mb,
# gateway_rss_mb,gateway_growth_mb,server_cpu,gateway_cpu,pg_cpu,client_cpu,other_cpu,steal"
sample_end() {
  local s_hwm g_hwm s_t1 g_t1 p_t1 b_t1 st_t1
  s_hwm=$(status_kb "$SERVER" VmHWM) g_hwm=$(status_kb "$GATEWAY" VmHWM)
  s_t1=$(proc_ticks "$SERVER") g_t1=$(proc_ticks "$GATEWAY") p_t1=$(pg_ticks)
  read -r b_t1 st_t1 < <(cpu_ticks)
  S_SAMPLE=$(awk -v sr="$s_rss0" -v sh="$s_hwm" -v gr="$g_rss0" -v gh="$g_hwm" -v s=$((s_t1 - s_t0)) \
    -v g=$((g_t1 - g_t0)) -v p=$((p_t1 - p_t0)) -v b=$((b_t1 - b_t0)) -v st=$((st_t1 - st_t0)) \
    -v c="$1" -v hz="$CLK_TCK" 'BEGIN {
      other = b / hz - (s + g + p) / hz - c; if (other < 0) other = 0
      # RSS counters are updated lazily: a peak a few pages below the RSS before is 0.
      sg = sh - sr; if (sg < 0) sg = 0; gg = gh - gr; if (gg < 0) gg = 0
      printf "%.1f,%.1f,%.1f,%.1f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f", sr / 1024, sg / 1024, gr / 1024,
        gg / 1024, s / hz, g / hz, p / hz, c, other, st / hz }')
}
# Sum of the user and system seconds that /usr/bin/time wrote to $1.
time_cpu() { awk 'END { printf "%.2f", $1 + $2 }' "$1"; }

# record MODE RUN ROWS BYTES SECONDS TTFB_MS: appends a line to $RESULTS and prints it.
record() {
  local line
  line=$(awk -v m="$1" -v r="$2" -v rows="$3" -v bytes="$4" -v s="$5" -v ttfb="$6" -v x="$S_SAMPLE" 'BEGIN {
    printf "%s,%s,%d,%d,%.3f,%.0f,%.1f,%s,%s", m, r, rows, bytes, s, rows / s, bytes / s / 1e6, ttfb, x }')
  echo "$line" >>"$RESULTS"
  awk -F, '{ printf "  %-11s %-4s %8d rows %10d B %7.3f s %9.0f rows/s %6.1f MB/s  ttfb %7s ms  " \
                    "server +%.1f MB  gateway +%.1f MB  cpu s: server %.2f gateway %.2f pg %.2f client %.2f other %.2f\n",
                    $1, $2, $3, $4, $5, $6, $7, $8, $10, $12, $13, $14, $15, $16, $17 }' <<<"$line" >&2
}

# --- one download of each kind ---------------------------------------------
# http_report RUN [USER]: the link from the gateway, then the file through it.
http_report() {
  local run=$1 user=${2:-} q mode=http-all$mode_suffix expect=$month_rows json link meta head rows code bytes ttfb secs
  q="month=$month&year=$year"
  if [[ -n $user ]]; then q+="&userID=$user" mode=http-user$mode_suffix expect=$user_rows; fi
  json="$(curl -sS --fail-with-body "http://127.0.0.1:$http_port/segments/get-history-report-link?$q")" ||
    die "get-history-report-link failed: $json"
  link="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["reportLink"])' <<<"$json")"
  [[ $link == http://127.0.0.1:$http_port/segments/history-report\?* ]] || die "unexpected report link: $link"
  meta="$OUT/curl.meta" head="$OUT/curl.head"
  sample_begin
  # Rows: the header line is read off first, wc -l counts the rest.
  # shellcheck disable=SC2016  # expanded by the inner bash
  rows=$(/usr/bin/time -f '%U %S' -o "$OUT/client.time" bash -c '
    curl -sS -w "%{stderr}%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n" "$1" 2>"$2" |
      { IFS= read -r first || true; printf "%s\n" "$first" >"$3"; wc -l; }' _ "$link" "$meta" "$head")
  sample_end "$(time_cpu "$OUT/client.time")"
  read -r code bytes ttfb secs < <(tail -n 1 "$meta")
  [[ $code == 200 ]] || { cat "$meta" >&2; die "$mode: HTTP $code"; }
  [[ $(<"$head") == "user_id;segment;operation;datetime" ]] || die "$mode: unexpected first line: $(<"$head")"
  [[ $rows == "$expect" ]] || die "$mode: $rows rows, expected $expect"
  record "$mode" "$run" "$rows" "$bytes" "$secs" "$(awk -v t="$ttfb" 'BEGIN { printf "%.1f", t * 1000 }')"
}

# grpc_report RUN [USER]: straight from the server, no gateway.
grpc_report() {
  local run=$1 user=${2:-} mode=grpc-all expect=$month_rows args out
  args=(--target="127.0.0.1:$grpc_port" --year="$year" --month="$month")
  if [[ -n $user ]]; then args+=(--user="$user") mode=grpc-user expect=$user_rows; fi
  sample_begin
  out="$(/usr/bin/time -f '%U %S' -o "$OUT/client.time" "$CLIENT_BIN" "${args[@]}")" || die "$mode failed"
  sample_end "$(time_cpu "$OUT/client.time")"
  local -A f
  local kv
  for kv in $out; do f[${kv%%=*}]=${kv#*=}; done
  [[ ${f[rows]} == "$expect" ]] || die "$mode: ${f[rows]} rows, expected $expect"
  record "$mode" "$run" "${f[rows]}" "${f[bytes]}" "${f[seconds]}" "${f[first_chunk_ms]}"
}

# psql_report RUN fetch|copy: the month's query without server and gateway.
# fetch: psql's FETCH_COUNT=1000 runs DECLARE CURSOR + FETCH FORWARD 1000,
# the server's own loop; copy: COPY (query) TO STDOUT, PostgreSQL's fastest
# way out. Same SELECT as the server, so the same rows and columns.
psql_report() {
  local run=$1 kind=$2 t0 t1 out rows bytes cmd
  if [[ $kind == fetch ]]; then cmd=(-v FETCH_COUNT=1000 -c "$select_all"); else cmd=(-c "COPY ($select_all) TO STDOUT"); fi
  sample_begin
  t0=$(now_ns)
  out="$(/usr/bin/time -f '%U %S' -o "$OUT/client.time" bash -c '"$@" | wc -lc' _ \
    "$PG" psql "$DB" -X -q -A -t -v ON_ERROR_STOP=1 "${cmd[@]}")"
  t1=$(now_ns)
  sample_end "$(time_cpu "$OUT/client.time")"
  read -r rows bytes <<<"$out"
  [[ $rows == "$month_rows" ]] || die "psql-$kind: $rows rows, expected $month_rows"
  record "psql-$kind" "$run" "$rows" "$bytes" "$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }')" "-"
}

# perf_report: one all-users download through the gateway under perf.
mode_suffix=""
perf_report() {
  command -v perf >/dev/null || { warn "perf not installed, no profile"; return 0; }
  log "profiling one more all-users download (perf record -a)"
  perf record -a -F 999 -o "$OUT/perf.data" -- sleep 3600 2>"$OUT/perf.log" &
  local perf_pid=$!
  sleep 1
  mode_suffix=+perf
  http_report 1
  mode_suffix=""
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  perf report -i "$OUT/perf.data" --no-children --sort comm,dso --percent-limit 0.5 --stdio \
    >"$OUT/perf_by_process.txt" 2>/dev/null
  perf report -i "$OUT/perf.data" --no-children --sort comm,sym --percent-limit 0.4 --stdio \
    >"$OUT/perf_by_symbol.txt" 2>/dev/null
  log "profile: $OUT/perf_by_process.txt, $OUT/perf_by_symbol.txt"
}

# --- EXPLAIN ---------------------------------------------------------------
# The server's DECLARE statements with the month's bounds in place of $n.
explain_queries() {
  local declare_all declare_user from to
  from="'$(printf '%04d-%02d-01T00:00:00Z' "$year" "$month")'"
  to="'$(if ((month == 12)); then printf '%04d-01-01T00:00:00Z' $((year + 1)); else
    printf '%04d-%02d-01T00:00:00Z' "$year" $((month + 1)); fi)'"
  declare_all="$("$CLIENT_BIN" --print-sql=all)"
  declare_user="$("$CLIENT_BIN" --print-sql=user)"
  declare_all=${declare_all//\$1/$from} declare_all=${declare_all//\$2/$to}
  declare_user=${declare_user//\$1/\'$chosen_user\'} declare_user=${declare_user//\$2/$from}
  declare_user=${declare_user//\$3/$to}
  select_all=${declare_all#DECLARE history_report * CURSOR FOR }
  select_user=${declare_user#DECLARE history_report * CURSOR FOR }
  [[ $select_all == SELECT* && $select_user == SELECT* ]] || die "unexpected report SQL: $declare_all"
  month_rows=$(psql_db -tA -c "SELECT count(*) FROM history WHERE at >= $from AND at < $to")
  user_rows=$(psql_db -tA -c "SELECT count(*) FROM history WHERE user_id = '$chosen_user' AND at >= $from AND at < $to")
  # DECLARE is planned for a fast start (cursor_tuple_fraction), so its plan
  # may differ from the bare SELECT's: EXPLAIN ANALYZE both, the DECLARE as the
  # server sends it (EXPLAIN ANALYZE of a DECLARE runs the cursor's query to
  # the end). Only the cursor plans must not scan the table sequentially.
  {
    echo "-- all users, $(printf '%04d-%02d' "$year" "$month"): kDeclareReportAllUsers as the server runs it"
    echo "$declare_all;"
    psql_db -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS) $declare_all" -c "ROLLBACK"
    echo "-- one user ($chosen_user), $(printf '%04d-%02d' "$year" "$month"): kDeclareReportOneUser as the server runs it"
    echo "$declare_user;"
    psql_db -c "BEGIN" -c "EXPLAIN (ANALYZE, BUFFERS) $declare_user" -c "ROLLBACK"
  } >"$OUT/explain.txt" 2>&1
  {
    echo "-- for comparison, the same queries as plain SELECTs (planned for all rows)"
    psql_db -c "EXPLAIN (ANALYZE, BUFFERS) $select_all"
    psql_db -c "EXPLAIN (ANALYZE, BUFFERS) $select_user"
  } >"$OUT/explain_select.txt" 2>&1
  if grep -q 'Seq Scan' "$OUT/explain.txt"; then
    cat "$OUT/explain.txt" >&2
    die "a report query plans a sequential scan (above)"
  fi
}

# "SEQ_SCANS REPORT_IDX_SCANS USER_IDX_SCANS" of history so far. Backends
# flush their counters when idle (up to seconds later) or when they exit.
history_scans() {
  psql_db -tA -F' ' -c "SELECT t.seq_scan, r.idx_scan, u.idx_scan FROM pg_stat_user_tables t,
      pg_stat_user_indexes r, pg_stat_user_indexes u WHERE t.relname = 'history'
      AND r.indexrelname = 'history_report_order_idx' AND u.indexrelname = 'history_user_order_idx'"
}

# --- summary ---------------------------------------------------------------
summary() {
  python3 - "$RESULTS" "$runs" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
modes = []
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
    if r[0] not in modes: modes.append(r[0])
def med(col, rs): return statistics.median(float(r[col]) for r in rs)
def mx(col, rs):
    vals = [float(r[col]) for r in rs if r[col] not in ("", "-")]
    return max(vals) if vals else float("nan")
hdr = ("mode", "runs", "rows", "MB", "seconds", "rows/s", "MB/s", "ttfb_ms", "srv_rss", "srv_peak+", "gw_rss",
       "gw_peak+", "cpu_srv", "cpu_gw", "cpu_pg", "cpu_cli", "other")
print("%-10s %4s %8s %7s %8s %9s %6s %8s %8s %9s %7s %8s %7s %6s %6s %7s %6s" % hdr)
for m in modes:
    rs = by[m]
    ttfb = [float(r[7]) for r in rs if r[7] != "-"]
    print("%-10s %4d %8d %7.1f %8.3f %9.0f %6.1f %8s %8.1f %9.1f %7.1f %8.1f %7.2f %6.2f %6.2f %7.2f %6.2f" % (
        m, len(rs), med(2, rs), med(3, rs) / 1e6, med(4, rs), med(5, rs), med(6, rs),
        "%.1f" % statistics.median(ttfb) if ttfb else "-", med(8, rs), mx(9, rs), med(10, rs), mx(11, rs),
        med(12, rs), med(13, rs), med(14, rs), med(15, rs), med(16, rs)))
print("(median of the runs; srv_peak+ and gw_peak+ are the largest peak growth over the runs, MB;"
      " cpu_* are CPU seconds per download: server, gateway, PostgreSQL cluster, client (curl+wc,"
      " report client or psql+wc), other = rest of the machine)")
PY
}

# ---------------------------------------------------------------------------
print_machine
echo "state: $STATE"

((build)) && build_binaries "$rev" segments-server segments-token segments-gateway segments-report-client
need_binaries "$SERVER_BIN" "$GATEWAY_BIN" "$CLIENT_BIN"
[[ -n $server_bin ]] && echo "server: $SERVER_BIN (--server-bin)"
print_code "$rev" server gateway proto db

pg_ensure_started
load_data
explain_queries
echo "data:  $(meta rows) events, $(meta distinct_users) users, loaded in $(meta load_seconds) s" \
  "($(meta loaded_at)); heap $(meta heap_mb) MB + indexes $(meta indexes_mb) MB, database $(meta database_mb) MB"
[[ -s $OUT/load_steps.txt ]] && cat "$OUT/load_steps.txt"
echo "month: $(printf '%04d-%02d' "$year" "$month"): $month_rows rows for all users, $user_rows for $chosen_user"
echo "plans: (full text in $OUT/explain.txt)"
grep -E '^-- |Scan|Sort|Execution Time' "$OUT/explain.txt" | sed 's/^ */    /'

read -r grpc_port http_port < <(free_ports 2)
log "segments-server --workers=$workers --db-pool-size=$pool"
on_exit bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
start_server "127.0.0.1:$grpc_port" "$OUT/server.pid" "$OUT/server.log" "$SERVER_BIN" \
  --database-url="$("$PG" url "$DB")" --workers="$workers" --db-pool-size="$pool"
SERVER=$BG_PID
on_exit bg_stop segments-gateway "$OUT/gateway.pid" "$GATEWAY_BIN"
start_gateway "127.0.0.1:$http_port" "127.0.0.1:$grpc_port" "$OUT/gateway.pid" "$OUT/gateway.log" "$GATEWAY_BIN"
GATEWAY=$BG_PID

# The month's pages into shared buffers first, so that run 1 is not a cold
# read while the server and the gateway are still fresh processes.
log "warming the month's pages (COPY to /dev/null)"
psql_db -c "COPY ($select_all) TO STDOUT" >/dev/null
read -r seq0 ridx0 uidx0 < <(history_scans)

: >"$RESULTS"
log "downloading: $runs runs of each kind"
for ((run = 1; run <= runs; run++)); do
  http_report "$run"
  http_report "$run" "$chosen_user"
  if ((baselines)); then
    grpc_report "$run"
    grpc_report "$run" "$chosen_user"
    psql_report "$run" fetch
    psql_report "$run" copy
  fi
done
((perf)) && perf_report
# Closing the server's connections flushes their table statistics.
bg_stop segments-gateway "$OUT/gateway.pid" "$GATEWAY_BIN"
bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
sleep 0.5
read -r seq1 ridx1 uidx1 < <(history_scans)

echo
echo "report $(printf '%04d-%02d' "$year" "$month"): $month_rows rows (all users), $user_rows rows (one user); $runs runs;" \
  "segments-server --workers=$workers --db-pool-size=$pool; $(nproc) cores"
summary
echo "scans of history during the downloads: $((seq1 - seq0)) sequential," \
  "$((ridx1 - ridx0)) of history_report_order_idx, $((uidx1 - uidx0)) of history_user_order_idx"
((csv)) && { echo; echo "mode,run,rows,bytes,seconds,rows_per_s,mb_per_s,ttfb_ms,server_rss_mb,server_peak_growth_mb,gateway_rss_mb,gateway_peak_growth_mb,server_cpu_s,gateway_cpu_s,pg_cpu_s,client_cpu_s,other_cpu_s,steal_s"; cat "$RESULTS"; }
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"

((seq1 == seq0)) || { warn "the downloads scanned history sequentially"; exit 1; }
# Target (issue): >= 300,000 rows/s end to end for the all-users report and
# < 50 MB peak growth of each process in every download through the gateway.
verdict=$(python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
rps = statistics.median(float(r[5]) for r in rows if r[0] == "http-all")
growth = max(max(float(r[9]), float(r[11])) for r in rows if r[0].startswith("http-"))
print("met" if rps >= 300000 and growth < 50 else "missed", round(rps), round(growth, 1))
PY
)
read -r verdict median_rps max_growth <<<"$verdict"
echo "target (>= 300000 rows/s for all users through the gateway, < 50 MB peak growth per process): $verdict" \
  "(median $median_rps rows/s, largest growth $max_growth MB)"
[[ $verdict == met ]] || exit 2
