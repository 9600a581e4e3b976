#!/usr/bin/env bash
# REST read benchmark through the gateway, in one run: seeds segments_bench
# like run_grpc_bench.sh (100,000 users x 5 segments), starts segments-server
# (with the membership read model, once it is SERVING) and segments-gateway,
# then measures with the same concurrency, warmup and duration:
#   grpc health   grpc.health.v1 Check straight to the server (segments-grpc-load)
#   grpc get      GetUserSegments straight to the server (segments-grpc-load)
#   http healthz  GET /healthz: the gateway's own ceiling, an HTTP request
#                 that makes one gRPC health Check upstream (wrk)
#   http get      GET /segments/get-for-user (wrk + bench/get_for_user.lua)
# and prints the ratio http get / http healthz (target >= 0.8), and http get /
# grpc get. With --profile, also records where the gateway's CPU goes per
# request, for /healthz and for get-for-user (perf). See bench/README.md.
#
# Usage: bench/run_http_bench.sh [--flag=value ...]
#   --duration=DUR      measured time per mode (default 10s)
#   --warmup=DUR        unmeasured time before each mode (default 2s)
#   --concurrency=N     requests in flight (default 64)
#   --users=N           seeded users (default 100000)
#   --read-model=on|off the server's --read-model (default on)
#   --rounds=N          measure /healthz then get-for-user N times, back to
#                       back, and print each round's ratio and the median
#                       (default 1)
#   --no-grpc           skip the two gRPC modes
#   --profile           after the measured modes, run /healthz and http get
#                       again under `perf record -g` of the gateway (not
#                       measured) and print the gateway's CPU per request
#                       by part of the request, side by side, and its
#                       hottest functions; the data and the full reports stay
#                       in $SEGMENTS_STATE_DIR/bench-http/
#   --no-build          use the existing build/release binaries
# Env: SEGMENTS_STATE_DIR (as the other scripts). Exit status non-zero when
# any request failed or anything else did.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=10s warmup=2s concurrency=64 build=1 users=100000 read_model=on grpc=1 profile=0 rounds=1
while (($#)); do
  case $1 in
    --no-build) build=0 ;;
    --users=*) users=${1#*=} ;;
    --read-model=*) read_model=${1#*=} ;;
    --no-grpc) grpc=0 ;;
    --rounds=*) rounds=${1#*=} ;;
    --profile) profile=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) load_flag "$1" || die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ $read_model == on || $read_model == off ]] || die "--read-model wants on or off, got '$read_model'"
[[ $users =~ ^[0-9]+$ && $concurrency =~ ^[0-9]+$ && $rounds =~ ^[1-9][0-9]*$ ]] ||
  die "--users, --concurrency and --rounds want numbers (--rounds >= 1)"
command -v wrk >/dev/null || die "wrk not found: run scripts/install-deps.sh --tests"
if ((profile)); then
  command -v perf >/dev/null || die "--profile needs perf (linux-perf)"
  [[ $duration =~ ^[0-9]+s$ ]] || die "--profile wants --duration in whole seconds (e.g. 10s)"
fi

PG="$ROOT/scripts/pg.sh"
DB=segments_bench
SERVER_BIN="$ROOT/build/release/server/segments-server"
GATEWAY_BIN="$ROOT/build/release/gateway/segments-gateway"
LOADER_BIN="$ROOT/build/release/bench/segments-grpc-load"
OUT="$STATE/bench-http"
mkdir -p "$OUT"

print_machine
((build)) && "$ROOT/scripts/build.sh" release segments-server segments-token segments-gateway segments-grpc-load >/dev/null
need_binaries "$SERVER_BIN" "$GATEWAY_BIN" "$LOADER_BIN"
pg_ensure_started

log "seeding $DB with $users users x 5 segments"
PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
PGOPTIONS='-c client_min_messages=warning' "$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 -f "$ROOT/db/schema.sql"
"$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 -v users="$users" -f "$ROOT/bench/seed.sql" >/dev/null
"$PG" psql "$DB" -X -q -c CHECKPOINT

read -r grpc_port http_port < <(free_ports 2)
on_exit bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
start_server "127.0.0.1:$grpc_port" "$OUT/server.pid" "$OUT/server.log" "$SERVER_BIN" \
  --database-url="$("$PG" url "$DB")" --workers=8 --db-pool-size=8 --read-model="$read_model"
if [[ $read_model == on ]]; then
  wait_read_model "127.0.0.1:$grpc_port" "$OUT/server.log" 60
  log "$(read_model_loaded "$OUT/server.log"); $READ_MODEL_HEALTH SERVING"
fi
on_exit bg_stop segments-gateway "$OUT/gateway.pid" "$GATEWAY_BIN"
start_gateway "127.0.0.1:$http_port" "127.0.0.1:$grpc_port" "$OUT/gateway.pid" "$OUT/gateway.log" "$GATEWAY_BIN"
gateway_pid=$BG_PID

rm -f "$OUT/grpc.csv"
if ((grpc)); then
  "$LOADER_BIN" --target="127.0.0.1:$grpc_port" --mode=health,get --concurrency="$concurrency" \
    --channels=2 --warmup="$warmup" --duration="$duration" --users="$users" --csv="$OUT/grpc.csv" \
    >"$OUT/grpc.txt" || { cat "$OUT/grpc.txt" >&2; die "segments-grpc-load failed"; }
fi

# The WRK line of a wrk script's done(); get_for_user.lua writes it for
# get-for-user, this one for /healthz.
cat >"$OUT/healthz.lua" <<'LUA'
function done(summary, latency, requests)
  io.write(string.format("WRK rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.requests, summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
# run_wrk PATH SCRIPT DURATION: wrk with 2 threads and one connection per
# request in flight (like the loader), for DURATION; prints the WRK line.
run_wrk() {
  BENCH_USERS=$users wrk -t2 -c"$concurrency" -d"$3" -s "$2" "http://127.0.0.1:$http_port$1" >"$OUT/wrk.txt" ||
    { cat "$OUT/wrk.txt" >&2; die "wrk $1 failed"; }
  grep '^WRK' "$OUT/wrk.txt" || { cat "$OUT/wrk.txt" >&2; die "wrk $1 printed no result"; }
}
# children_ticks FILE: CPU ticks (user+system) of this shell's finished
# children (wrk), from the `times` builtin (run here, not in a subshell,
# whose children would be others), by way of FILE.
children_ticks() {
  times >"$1"
  awk -v hz="$CLK_TCK" 'NR == 2 {
    t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
    printf "%d\n", t * hz }' "$1"
}
# measure PATH SCRIPT: a warmup run, then the measured one; prints its WRK
# line with the cores (CPU time / wall time) of the server, the gateway, wrk
# and the rest of the machine (PostgreSQL included) over the measured run
# appended as server=, gateway=, wrk=, other=.
measure() {
  local s0 g0 w0 b0 t0 s1 g1 w1 b1 t1 line server
  server="$(<"$OUT/server.pid")"
  run_wrk "$1" "$2" "$warmup" >/dev/null
  children_ticks "$OUT/times.txt" >"$OUT/ticks.txt"
  w0=$(<"$OUT/ticks.txt")
  s0=$(proc_ticks "$server") g0=$(proc_ticks "$gateway_pid") t0=$(now_ns)
  read -r b0 _ < <(cpu_ticks)
  line="$(run_wrk "$1" "$2" "$duration")"
  s1=$(proc_ticks "$server") g1=$(proc_ticks "$gateway_pid") t1=$(now_ns)
  children_ticks "$OUT/times.txt" >"$OUT/ticks.txt"
  w1=$(<"$OUT/ticks.txt")
  read -r b1 _ < <(cpu_ticks)
  awk -v l="$line" -v s=$((s1 - s0)) -v g=$((g1 - g0)) -v w=$((w1 - w0)) -v b=$((b1 - b0)) -v ns=$((t1 - t0)) \
    -v hz="$CLK_TCK" 'BEGIN { x = hz * ns / 1e9; o = (b - s - g - w) / x
      printf "%s server=%.2f gateway=%.2f wrk=%.2f other=%.2f\n", l, s / x, g / x, w / x, (o < 0 ? 0 : o) }'
}
field() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" <<<" $2"; }

# Rounds of /healthz then get-for-user, back to back, so that each ratio
# compares two runs a few seconds apart.
log "http: $rounds round(s) of /healthz then /segments/get-for-user, $concurrency connections, $warmup + $duration each"
: >"$OUT/http.txt"
failed=0
for ((r = 1; r <= rounds; r++)); do
  for pair in "healthz|/healthz|$OUT/healthz.lua" "get|/segments/get-for-user|$ROOT/bench/get_for_user.lua"; do
    IFS='|' read -r name path script <<<"$pair"
    line="$(measure "$path" "$script")"
    [[ $(field errors "$line") == 0 ]] || { warn "http $name, round $r: errors ($line)"; failed=1; }
    echo "$r $name $line" >>"$OUT/http.txt"
  done
done

echo
echo "segments-server --read-model=$read_model --workers=8 --db-pool-size=8; $concurrency in flight," \
  "warmup $warmup, duration $duration per mode, $users users"
printf '%-16s %9s %9s %9s %9s %9s %7s  %6s %7s %6s %6s\n' mode rps p50_us p90_us p99_us max_us errors \
  server gateway wrk other
if [[ -s $OUT/grpc.csv ]]; then
  while IFS=, read -r mode _calls errors rps p50 p90 p99 max _rest; do
    printf '%-16s %9.0f %9.0f %9.0f %9.0f %9.0f %7s  %6s %7s %6s %6s\n' "grpc $mode" "$rps" "$p50" "$p90" "$p99" \
      "$max" "$errors" - - - -
  done <"$OUT/grpc.csv"
fi
while read -r r name line; do
  label="http $name"
  ((rounds > 1)) && label+=" #$r"
  printf '%-16s %9s %9s %9s %9s %9s %7s  %6s %7s %6s %6s\n' "$label" \
    "$(field rps "$line")" "$(field p50_us "$line")" "$(field p90_us "$line")" "$(field p99_us "$line")" \
    "$(field max_us "$line")" "$(field errors "$line")" "$(field server "$line")" "$(field gateway "$line")" \
    "$(field wrk "$line")" "$(field other "$line")"
done <"$OUT/http.txt"
echo "(server, gateway, wrk: cores, CPU time / wall time of the measured http run; other: the rest of the"
echo " machine, PostgreSQL included; a high other means a disturbed run)"
sed 's/ WRK rps=\([0-9.]*\).*/ \1/' "$OUT/http.txt" | awk '
  $2 == "healthz" { h[$1] = $3 } $2 == "get" { g[$1] = $3; n++ }
  END {
    for (r = 1; r <= n; r++) { q[r] = g[r] / h[r]; if (n > 1) printf "ratio http get / http healthz, round %d: %.3f\n", r, q[r] }
    for (i = 2; i <= n; i++) for (j = i; j > 1 && q[j - 1] > q[j]; j--) { t = q[j]; q[j] = q[j - 1]; q[j - 1] = t }
    printf "ratio http get / http healthz%s: %.3f   (target >= 0.8)\n", (n > 1 ? " (median of the rounds)" : ""),
      (n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2) }'
if [[ -s $OUT/grpc.csv ]]; then
  awk -F, -v g="$(field rps "$(grep -m1 '^1 get ' "$OUT/http.txt")")" \
    '$1 == "get" { printf "ratio http get / grpc get:     %.3f (first round)\n", g / $4 }' "$OUT/grpc.csv"
fi
if [[ -s $OUT/grpc.csv ]] && awk -F, '$3 > 0 { bad = 1 } END { exit !bad }' "$OUT/grpc.csv"; then
  warn "gRPC errors (see $OUT/grpc.txt)"
  failed=1
fi

if ((profile)); then
  # perf samples the gateway's threads at 999 Hz with call graphs (frame
  # pointers: Go keeps them on amd64), under the same load as measured; one
  # run for /healthz, one for get-for-user, so that the two can be compared
  # per request.
  for pair in "healthz|/healthz|$OUT/healthz.lua" "get|/segments/get-for-user|$ROOT/bench/get_for_user.lua"; do
    IFS='|' read -r name path script <<<"$pair"
    log "profiling the gateway (pid $gateway_pid) during another $path run of $duration"
    perf record -F 999 -g -p "$gateway_pid" -o "$OUT/gateway.$name.perf.data" -- sleep "${duration%s}" \
      >"$OUT/perf-record.txt" 2>&1 &
    perf_pid=$!
    sleep 0.5
    line="$(run_wrk "$path" "$script" "$duration")"
    wait "$perf_pid" || { cat "$OUT/perf-record.txt" >&2; die "perf record failed"; }
    # The requests of the second that perf recorded (it starts 0.5 s late).
    awk -v r="$(field requests "$line")" -v d="${duration%s}" 'BEGIN { printf "%d\n", r * (d - 0.5) / d }' \
      >"$OUT/gateway.$name.requests"
    perf report -i "$OUT/gateway.$name.perf.data" --no-children --sort sym --stdio -g none 2>/dev/null \
      >"$OUT/gateway.$name.self.txt" || die "perf report failed"
    perf report -i "$OUT/gateway.$name.perf.data" --children --sort sym --stdio -g none --percent-limit 0.3 \
      2>/dev/null >"$OUT/gateway.$name.children.txt" || die "perf report failed"
    perf report -i "$OUT/gateway.$name.perf.data" --no-children --sort comm --stdio -g none -n 2>/dev/null |
      awk '/^ +[0-9.]+%/ { n += $2 } END { print n }' >"$OUT/gateway.$name.samples"
  done
  echo
  echo "gateway CPU per request, by part of the request (µs; a part includes its callees; the parts are"
  echo "disjoint subtrees but for the indented ones; 1 sample = 1/999 s of CPU):"
  # A regexp of the symbol | the label, in the order printed.
  awk '
    BEGIN {
      n = split("TOTAL|all of the gateway;" \
        "net/http\\.\\(\\*conn\\)\\.readRequest$|read and parse the HTTP request;" \
        "runtime\\.\\(\\*ServeMux\\)\\.ServeHTTP$|grpc-gateway: route, handler, answer:;" \
        "request_SegmentService_GetUserSegments_0$|  query string to the request message + the upstream call;" \
        "google\\.golang\\.org/grpc\\.invoke$|  the upstream gRPC call (client side, in the handler);" \
        "runtime\\.ForwardResponseMessage$|  the answer as JSON, written (get-for-user);" \
        "gateway\\.\\(\\*compactJSON\\)\\.Marshal$|    of which protojson + json.Compact;" \
        "http2Client\\)\\.reader$|upstream: HTTP/2 frames read (gRPC transport goroutine);" \
        "loopyWriter\\)\\.run$|upstream: HTTP/2 frames written (gRPC transport goroutine);" \
        "log/slog\\.\\(\\*Logger\\)\\.log$|the access log line (slog JSON to stderr);" \
        "net/http\\.\\(\\*response\\)\\.finishRequest$|the HTTP response flushed (write syscall);" \
        "runtime\\.gcBgMarkWorker$|garbage collection, background;" \
        "runtime\\.gcAssistAlloc$|garbage collection, assists;" \
        "runtime\\.mallocgc$|(allocation, anywhere above)", parts, ";")
      for (i = 1; i <= n; i++) { split(parts[i], kv, "|"); re[i] = kv[1]; label[i] = kv[2] }
    }
    FNR == 1 { f++; if (f == 1) { samples[1] = $1 } else if (f == 2) { requests[1] = $1 }
               else if (f == 4) { samples[2] = $1 } else if (f == 5) { requests[2] = $1 } }
    /^ +[0-9.]+%/ { m = (f <= 3 ? 1 : 2); sym = $0; sub(/^ +[0-9.]+% +[0-9.]+% +\[.\] /, "", sym)
      v = $1; sub("%", "", v)
      for (i = 2; i <= n; i++) if (!((m, i) in pct) && sym ~ re[i]) pct[m, i] = v }
    END {
      for (m = 1; m <= 2; m++) { pct[m, 1] = 100; us[m] = samples[m] * 1e6 / 999 / requests[m] }
      printf "  %9s %9s  %s\n", "healthz", "get", ""
      for (i = 1; i <= n; i++) {
        for (m = 1; m <= 2; m++) cell[m] = ((m, i) in pct) ? sprintf("%9.1f", pct[m, i] * us[m] / 100) : sprintf("%9s", "-")
        printf "  %s %s  %s\n", cell[1], cell[2], label[i] }
      printf "(%d and %d samples over %d and %d requests, %.0f and %.0f requests/s: compare with the measured\n",
        samples[1], samples[2], requests[1], requests[2], requests[1] / (d - 0.5), requests[2] / (d - 0.5)
      printf " runs above; a profile run that was disturbed is not a fair comparison)\n" }' d="${duration%s}" \
    "$OUT/gateway.healthz.samples" "$OUT/gateway.healthz.requests" "$OUT/gateway.healthz.children.txt" \
    "$OUT/gateway.get.samples" "$OUT/gateway.get.requests" "$OUT/gateway.get.children.txt"
  echo
  echo "gateway CPU during get-for-user by function, self time (top 15; $OUT/gateway.get.self.txt):"
  grep -E '^ +[0-9.]+%' "$OUT/gateway.get.self.txt" | awk -v n=15 'NR <= n'
  echo "(with callees: $OUT/gateway.{healthz,get}.children.txt)"
fi
echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at end"
exit "$failed"
