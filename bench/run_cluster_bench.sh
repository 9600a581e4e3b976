#!/usr/bin/env bash
# Reads through HAProxy with 1, 2 and 3 server instances behind it (issue
# 19), in one run, on a cluster of its own (scripts/cluster.sh in
# $SEGMENTS_STATE_DIR, default .state-cluster-bench; kept for the next run):
#   direct      segments-grpc-load get against server1 itself, no HAProxy
#   haproxy-N   the same load against HAProxy's gRPC front with N servers
#               in service (the others set to maintenance on HAProxy's
#               admin socket), N = 1, 2, 3
# each --rounds times, interleaved; then --write-rounds pairs of writes
# (segments-grpc-load update through HAProxy, 3 instances, analyst token):
#   update-sync   with the synchronous replica (the deployment as it runs)
#   update-async  with Patroni's synchronous_mode off (commits do not wait
#                 for the replica), switched through Patroni's REST API
# which gives what a lossless failover costs the writes of one primary;
# all after seeding --users users with five
# segments each (bench/seed.sql, written straight into the database: these
# users are not in the mock) and waiting until every instance's read model
# holds them. Prints calls/s, per instance (calls/s / N) and the ratio to
# direct, with p50/p99. On 2 cores the instances share the same CPUs as
# HAProxy and the loader: this measures the overhead of the extra hop and of
# more instances, not a speed-up.
#
# Usage: bench/run_cluster_bench.sh [--duration=10s] [--warmup=2s]
#          [--concurrency=64] [--channels=2] [--users=100000] [--rounds=2]
#          [--write-rounds=2] [--write-concurrency=16] [--no-build]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
own_state .state-cluster-bench bench/run_cluster_bench.sh

duration=10s warmup=2s concurrency=64 channels=2 users=100000 rounds=2 build=1 write_rounds=2 write_concurrency=16
for arg in "$@"; do
  case $arg in
    --duration=*) duration=${arg#*=} ;;
    --warmup=*) warmup=${arg#*=} ;;
    --concurrency=*) concurrency=${arg#*=} ;;
    --channels=*) channels=${arg#*=} ;;
    --users=*) users=${arg#*=} ;;
    --rounds=*) rounds=${arg#*=} ;;
    --write-rounds=*) write_rounds=${arg#*=} ;;
    --write-concurrency=*) write_concurrency=${arg#*=} ;;
    --no-build) build=0 ;;
    *) die "unknown argument $arg (see the header of $0)" ;;
  esac
done

LOADER_BIN="$ROOT/build/release/bench/segments-grpc-load"
((build)) && "$ROOT/scripts/build.sh" release segments-server segments-token segments-gateway \
  segments-usermock segments-grpc-load
export SEGMENTS_CLUSTER_BIN_DIR="$ROOT/build/release" # built above
"$ROOT/scripts/cluster.sh" up >/dev/null
eval "$("$ROOT/scripts/cluster.sh" env)"
IFS=, read -r -a servers <<<"$CLUSTER_SERVERS"
sock="$STATE/cluster/run/haproxy.sock"
out="$STATE/cluster-bench"
mkdir -p "$out"

# haproxy_cmd COMMAND: one command on HAProxy's admin socket.
haproxy_cmd() {
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2] + "\n").encode())
print(s.recv(65536).decode(), end="")' "$sock" "$1"
}

server_up() { [[ $("$ROOT/scripts/cluster.sh" haproxy-state servers "server$1") == UP ]]; }

# in_service N: servers 1..N ready in HAProxy, the rest in maintenance.
in_service() {
  local i
  for i in 1 2 3; do
    if ((i <= $1)); then haproxy_cmd "enable server servers/server$i" >/dev/null; else
      haproxy_cmd "disable server servers/server$i" >/dev/null
    fi
  done
  for i in 1 2 3; do
    ((i <= $1)) || continue
    WAIT_STEP=0.2 wait_until 30s server_up "$i" || die "server$i not in service on HAProxy"
  done
}

seeded() {
  local last
  last="$(printf '00000000-0000-4000-8000-%012x' $((users - 1)))"
  [[ $(psql -X -tAc "SELECT count(*) FROM users WHERE id = '$last'" "$CLUSTER_DATABASE_URL") == 1 ]]
}
if ! seeded; then
  log "seeding $users users with 5 segments each"
  psql -X -q -v ON_ERROR_STOP=1 -v users="$users" -f "$ROOT/bench/seed.sql" "$CLUSTER_DATABASE_URL"
fi
# Every instance answers for the last seeded user from memory.
holds_seed() {
  local out
  out="$("$GRPCURL" -plaintext -max-time 2 -H "$(bearer_of service)" \
    -d "{\"userID\":\"$(printf '00000000-0000-4000-8000-%012x' $((users - 1)))\"}" "$1" \
    segmentation.v1.SegmentService/GetUserSegments 2>/dev/null)" || return 1
  [[ $(grep -o BENCH_ <<<"$out" | wc -l) == 5 ]] && grpc_serving "$1" segmentation.v1.MembershipReadModel
}
for s in "${servers[@]}"; do
  WAIT_STEP=0.5 wait_until 120s holds_seed "$s" || die "$s does not hold the seeded users"
done

# run LABEL TARGET [MODE [CONCURRENCY]]: one loader run (default: get at
# --concurrency); appends "label,calls,errors,rps,p50,p90,p99,..." to results.
results="$out/results.csv"
: >"$results"
run() {
  local mode=${3:-get}
  if [[ $mode == update ]]; then bench_token analyst; else bench_token service; fi
  : >"$out/last.csv"
  "$LOADER_BIN" --target="$2" --mode="$mode" --duration="$duration" --warmup="$warmup" \
    --concurrency="${4:-$concurrency}" --channels="$channels" --users="$users" --csv="$out/last.csv" \
    >"$out/$1.txt" || warn "$1: the loader exited with $?"
  echo "$1,$(tail -n1 "$out/last.csv" | cut -d, -f2-)" >>"$results"
}

# synchronous MODE: Patroni's synchronous_mode true or false, applied (the
# primary's synchronous_standby_names follows).
standby_names() { psql -X -tAc "SHOW synchronous_standby_names" "$CLUSTER_DATABASE_URL"; }
synchronous() {
  curl -fsS -m 5 -X PATCH "http://$CLUSTER_PATRONI/config" -d "{\"synchronous_mode\": $1}" >/dev/null
  if [[ $1 == true ]]; then
    WAIT_STEP=0.5 wait_until 60s eval '[[ -n $(standby_names) ]]' || die "synchronous replication did not come back"
  else
    WAIT_STEP=0.5 wait_until 60s eval '[[ -z $(standby_names) ]]' || die "synchronous replication did not stop"
  fi
}
# The toggled segment emptied, so that each update run starts with adds.
reset_toggle() {
  psql -X -q -c "DELETE FROM memberships m USING segments s WHERE s.id = m.segment_id AND s.slug = 'BENCH_TOGGLE'" \
    "$CLUSTER_DATABASE_URL"
}

print_machine
# The cluster is never idle (three JVMs, etcd, Patroni, HAProxy's checks):
# what it uses on its own, before the load.
read -r b0 _ < <(cpu_ticks)
sleep 3
read -r b1 _ < <(cpu_ticks)
echo "the idle cluster: $(((b1 - b0) * 100 / CLK_TCK / 3 / $(nproc)))% of the cores"
for ((r = 1; r <= rounds; r++)); do
  in_service 3
  run "direct.$r" "${servers[0]}"
  for n in 1 2 3; do
    in_service "$n"
    run "haproxy-$n.$r" "$CLUSTER_GRPC"
  done
done
in_service 3
on_exit synchronous true
for ((r = 1; r <= write_rounds; r++)); do
  for m in sync async; do
    if [[ $m == sync ]]; then synchronous true; else synchronous false; fi
    reset_toggle
    run "update-$m.$r" "$CLUSTER_GRPC" update "$write_concurrency"
  done
done
synchronous true

echo
echo "GetUserSegments, $concurrency calls in flight over $channels connections, $duration each ($rounds rounds)"
awk -F, '{
    split($1, l, "."); mode = l[1]; n = (mode ~ /^haproxy-/) ? substr(mode, 9) + 0 : 1
    rps[mode] += $4; p50[mode] += $5; p99[mode] += $7; errs[mode] += $3; k[mode]++; inst[mode] = n
  } END {
    printf "%-10s %10s %14s %8s %9s %9s %7s\n", "mode", "calls/s", "per instance", "vs direct", "p50 ms", "p99 ms", "errors"
    d = rps["direct"] / k["direct"]
    split("direct haproxy-1 haproxy-2 haproxy-3", order, " ")
    for (i = 1; i <= 4; i++) { m = order[i]; if (!k[m]) continue
      r = rps[m] / k[m]
      printf "%-10s %10.0f %14.0f %8.2fx %9.2f %9.2f %7d\n", m, r, r / inst[m], r / d, p50[m] / k[m] / 1000, p99[m] / k[m] / 1000, errs[m] }
  }' "$results"
if ((write_rounds > 0)); then
  echo
  echo "UpdateUserSegments through HAProxy (3 instances), $write_concurrency calls in flight, $duration each ($write_rounds rounds)"
  awk -F, '$1 ~ /^update-/ { split($1, l, "."); m = l[1]; rps[m] += $4; p50[m] += $5; p99[m] += $7; errs[m] += $3; k[m]++ }
    END {
      printf "%-13s %10s %9s %9s %7s\n", "mode", "calls/s", "p50 ms", "p99 ms", "errors"
      split("update-sync update-async", order, " ")
      for (i = 1; i <= 2; i++) { m = order[i]; if (!k[m]) continue
        printf "%-13s %10.0f %9.2f %9.2f %7d\n", m, rps[m] / k[m], p50[m] / k[m] / 1000, p99[m] / k[m] / 1000, errs[m] }
      if (k["update-sync"] && k["update-async"])
        printf "sync/async: %.2f (what waiting for the replica costs the writes)\n", (rps["update-sync"] / k["update-sync"]) / (rps["update-async"] / k["update-async"])
    }' "$results"
fi
echo "(rows: $results; the cluster stays up: scripts/cluster.sh down with SEGMENTS_STATE_DIR=$STATE)"
