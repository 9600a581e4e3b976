#!/usr/bin/env bash
# HTTP vs gRPC read benchmark, in one run: seeds segments_bench like
# run_grpc_bench.sh (100,000 users x 5 segments), starts segments-server and
# segments-gateway, then measures with the same concurrency and duration:
#   grpc health   grpc.health.v1 Check          (segments-grpc-load, the ceiling)
#   grpc get      GetUserSegments               (segments-grpc-load)
#   http healthz  GET /healthz                  (wrk, the gateway's ceiling)
#   http get      GET /segments/get-for-user    (wrk + bench/get_for_user.lua)
# and prints the ratio http get / grpc get. See bench/README.md.
#
# Usage: bench/run_http_bench.sh [--duration=10s] [--warmup=2s] [--concurrency=64] [--no-build]
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

duration=10s warmup=2s concurrency=64 build=1 users=100000
while (($#)); do
  case $1 in
    --no-build) build=0 ;;
    *) load_flag "$1" || die "unknown argument: $1" ;;
  esac
  shift
done

PG="$ROOT/scripts/pg.sh"
DB=segments_bench
SERVER_BIN="$ROOT/build/release/server/segments-server"
GATEWAY_BIN="$ROOT/build/release/gateway/segments-gateway"
LOADER_BIN="$ROOT/build/release/bench/segments-grpc-load"
OUT="$STATE/bench-http"
mkdir -p "$OUT"

echo "date: $(date -u +%FT%TZ)  nproc: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
((build)) && "$ROOT/scripts/build.sh" release segments-server segments-gateway segments-grpc-load >/dev/null
pg_ensure_started

log "seeding $DB"
PGOPTIONS='-c client_min_messages=warning' "$PG" psql postgres -X -q -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
PGOPTIONS='-c client_min_messages=warning' "$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 -f "$ROOT/db/schema.sql"
"$PG" psql "$DB" -X -q -v ON_ERROR_STOP=1 -v users="$users" -f "$ROOT/bench/seed.sql" >/dev/null

read -r grpc_port http_port < <(free_ports 2)
on_exit bg_stop segments-server "$OUT/server.pid" "$SERVER_BIN"
start_server "127.0.0.1:$grpc_port" "$OUT/server.pid" "$OUT/server.log" "$SERVER_BIN" \
  --database-url="$("$PG" url "$DB")" --workers=8 --db-pool-size=8
on_exit bg_stop segments-gateway "$OUT/gateway.pid" "$GATEWAY_BIN"
start_gateway "127.0.0.1:$http_port" "127.0.0.1:$grpc_port" "$OUT/gateway.pid" "$OUT/gateway.log" "$GATEWAY_BIN"

rm -f "$OUT/grpc.csv"
"$LOADER_BIN" --target="127.0.0.1:$grpc_port" --mode=health,get --concurrency="$concurrency" \
  --channels=2 --warmup="$warmup" --duration="$duration" --users="$users" --csv="$OUT/grpc.csv" >/dev/null

# wrk: 2 threads, one connection per in-flight request, like the loader.
run_wrk() {
  local path=$1 script=${2:-}
  local args=(-t2 -c"$concurrency" -d"$warmup" --latency)
  [[ -n $script ]] && args+=(-s "$script")
  wrk "${args[@]}" "http://127.0.0.1:$http_port$path" >/dev/null  # warmup
  args=(-t2 -c"$concurrency" -d"$duration" -s "${script:-$ROOT/bench/get_for_user.lua}")
  BENCH_USERS=$users wrk "${args[@]}" "http://127.0.0.1:$http_port$path" | grep '^WRK'
}
# get_for_user.lua's request() builds its own path; for /healthz use a plain script.
cat >"$OUT/healthz.lua" <<'LUA'
function done(summary, latency, requests)
  io.write(string.format("WRK rps=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, summary.requests, summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
http_health="$(run_wrk /healthz "$OUT/healthz.lua")"
http_get="$(BENCH_USERS=$users run_wrk /segments/get-for-user "$ROOT/bench/get_for_user.lua")"

field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }
printf '\n%-14s %10s %10s %10s %10s %8s\n' mode rps p50_us p99_us max_us errors
while IFS=, read -r mode _calls errors rps p50 _p90 p99 max _rest; do
  [[ $mode == mode ]] && continue
  printf '%-14s %10.0f %10s %10s %10s %8s\n' "grpc $mode" "$rps" "$p50" "$p99" "$max" "$errors"
done <"$OUT/grpc.csv"
for pair in "http healthz|$http_health" "http get|$http_get"; do
  name=${pair%%|*} line=${pair#*|}
  printf '%-14s %10s %10s %10s %10s %8s\n' "$name" "$(field rps "$line")" "$(field p50_us "$line")" \
    "$(field p99_us "$line")" "$(field max_us "$line")" "$(field errors "$line")"
done
grpc_get_rps="$(awk -F, '$1=="get"{print $4}' "$OUT/grpc.csv")"
python3 -c "import sys; print(f'\nratio http get / grpc get: {float(sys.argv[1])/float(sys.argv[2]):.2f}')" \
  "$(field rps "$http_get")" "$grpc_get_rps"
[[ $(field errors "$http_get") == 0 && $(field errors "$http_health") == 0 ]] || die "HTTP errors"
