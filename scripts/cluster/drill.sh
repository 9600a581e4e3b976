# shellcheck shell=bash
# The fault drill of scripts/cluster.sh, which sources this file (it uses
# that script's functions and ports). docs/cluster.md describes it.
#
# While segments-drill sends mixed load through HAProxy (reads over HTTP and
# gRPC, changes with idempotency keys retried until acknowledged, user
# events through the mock), four faults come in turn, each a SIGKILL: a
# server instance, the PostgreSQL primary (Patroni and PostgreSQL), a Kafka
# broker, the etcd leader. For each: the time it was killed, when the
# cluster was whole again without it (healthy), when it was back (rejoined).
# Then the invariants, and the figures per fault.

# run_fault NAME VICTIM: one fault, with the functions fault_<NAME>_kill,
# _healthy (the cluster works without the victim), _restart and _back (the
# victim is back in its role), each given VICTIM; appends its times to
# marks.csv. (NAME's dashes are underscores in the function names.)
run_fault() {
  local name=$1 victim=$2 fn="fault_${1//-/_}" kill_ms healthy_ms rejoined_ms
  kill_ms="$(now_ms)"
  "${fn}_kill" "$victim"
  log "fault $name ($victim): killed"
  WAIT_STEP=0.2 wait_until 90s "${fn}_healthy" "$victim" || die "fault $name: not healthy 90 s after the kill"
  healthy_ms="$(now_ms)"
  log "fault $name: healthy after $((healthy_ms - kill_ms)) ms; holding ${DRILL_HOLD}s"
  sleep "$DRILL_HOLD"
  "${fn}_restart" "$victim"
  WAIT_STEP=0.2 wait_until 180s "${fn}_back" "$victim" || die "fault $name: not back 180 s after the restart"
  rejoined_ms="$(now_ms)"
  log "fault $name: back after $((rejoined_ms - kill_ms)) ms"
  echo "$name,$kill_ms,$healthy_ms,$rejoined_ms" >>"$DRILL_OUT/marks.csv"
  sleep "$DRILL_SETTLE"
}

# --- the four faults -------------------------------------------------------------------
# A server instance (VICTIM: its number): HAProxy takes it out; back once in
# HAProxy's rotation, reading from memory and consuming again.
fault_server_kill() { kill_hard "server$1" "$SERVER_BIN"; }
fault_server_healthy() { haproxy_says servers "server$1" DOWN; }
fault_server_restart() { start_one_server "$1"; }
fault_server_back() { haproxy_says servers "server$1" UP && server_warm "$1" && group_spread; }

# The PostgreSQL primary (VICTIM: its node): Patroni promotes the other node;
# back once the old primary is its synchronous replica.
fault_postgres_primary_kill() { kill_pg_node "$1"; }
fault_postgres_primary_healthy() { patroni_is "$((3 - $1))" primary; }
fault_postgres_primary_restart() { start_patroni "$1"; }
fault_postgres_primary_back() { patroni_is "$1" sync; }

# A Kafka broker (VICTIM: its node id): fenced, its partitions led and
# replicated by the other two; back once nothing is under-replicated.
fault_kafka_broker_kill() { kill_hard "kafka$1" "$JAVA"; }
fault_kafka_broker_healthy() { kafka_without "$1"; }
fault_kafka_broker_restart() { start_kafka "$1"; }
fault_kafka_broker_back() { kafka_started "$1" && kafka_fully_replicated; }

# The etcd leader (VICTIM: its member number): the other two elect a leader.
fault_etcd_leader_kill() { kill_hard "etcd$1" "$ETCD"; }
fault_etcd_leader_healthy() {
  local leader
  leader="$(etcd_leader)" && [[ $leader != "$1" ]]
}
fault_etcd_leader_restart() { start_etcd "$1"; }
fault_etcd_leader_back() { etcd_healthy "$1"; }

# --- checks after the load -------------------------------------------------------------
# Loads the files segments-drill check wrote into the schema drill (user ids
# as text, as the user_id domain: UUIDs or decimal integers).
drill_load_expectations() {
  sql_on_primary segments -c "DROP SCHEMA IF EXISTS drill CASCADE" -c "CREATE SCHEMA drill" \
    -c "CREATE TABLE drill.expected (user_id text, slug text, held boolean)" \
    -c "CREATE TABLE drill.expected_events (user_id text, slug text, acked_adds int, acked_removes int)" \
    -c "CREATE TABLE drill.mock_users (user_id text, state text)" \
    -c "\\copy drill.expected FROM '$DRILL_OUT/expected.csv' CSV HEADER" \
    -c "\\copy drill.expected_events FROM '$DRILL_OUT/expected_events.csv' CSV HEADER" \
    -c "\\copy drill.mock_users FROM '$DRILL_OUT/mock_users.csv' CSV HEADER"
}

# invariants: the invariants' rows (invariant|violations|first) into
# $DRILL_OUT/invariants.csv.
invariants() {
  sql_on_primary segments -tA -f "$ROOT/scripts/cluster/invariants.sql" >"$DRILL_OUT/invariants.csv"
}
# settled: what the invariants compare has settled: the expiry job ended
# every membership past its deadline, the consumer applied every user event
# (the rows "no membership held past its deadline" and "user replica").
settled() {
  invariants && awk -F'|' '/past its deadline|user replica/ && $2 != 0 { bad = 1 } END { exit bad }' \
    "$DRILL_OUT/invariants.csv"
}

cmd_drill() {
  local short=0
  case ${1:-} in
    --short) short=1 ;;
    '') ;;
    *) die "usage: $0 drill [--short]" ;;
  esac
  # Seconds of load: before the first fault, while each fault lasts (after
  # the cluster is healthy without the victim), after each comeback.
  local baseline=20
  DRILL_HOLD=20 DRILL_SETTLE=10
  if ((short)); then
    baseline=5 DRILL_HOLD=4 DRILL_SETTLE=3
  fi
  build_binaries segments-drill
  need_bin "$DRILL_BIN"
  # Starts whatever is not running (a victim of an interrupted drill too).
  cmd_up >/dev/null

  DRILL_OUT="$CL/drill/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$DRILL_OUT"
  echo "fault,kill_ms,healthy_ms,rejoined_ms" >"$DRILL_OUT/marks.csv"
  log "drill: output in $DRILL_OUT"

  local token="$TOKENS_DIR/admin.jwt" load_pid
  on_exit bg_stop segments-drill "$DRILL_OUT/load.pid" "$DRILL_BIN" 150
  bg_start "$DRILL_OUT/load.pid" "$DRILL_OUT/load.log" "$DRILL_BIN" load -http "127.0.0.1:$HTTP" \
    -grpc "127.0.0.1:$GRPC" -usermock "127.0.0.1:$USERMOCK" -token-file "$token" -out "$DRILL_OUT"
  load_pid=$BG_PID
  # The load has begun once a change was acknowledged.
  load_began() {
    pid_alive "$load_pid" || die "the load exited (log: $DRILL_OUT/load.log)"
    grep -qs ',write,ok,' "$DRILL_OUT/requests.csv"
  }
  wait_until 120s load_began || die "the load made no change in 120 s (log: $DRILL_OUT/load.log)"
  sleep "$baseline"

  local primary leader
  run_fault server 2
  primary="$(pg_primary)" || die "no PostgreSQL primary before the database fault"
  run_fault postgres-primary "$primary"
  run_fault kafka-broker 2
  leader="$(etcd_leader)" || die "no etcd leader before the etcd fault"
  run_fault etcd-leader "$leader"

  log "drill: stopping the load (changes not yet acknowledged are retried first)"
  kill -TERM "$load_pid"
  WAIT_STEP=0.2 wait_until 150s eval '! pid_alive '"$load_pid" || die "the load did not stop in 150 s"
  grep -v '^$' "$DRILL_OUT/load.log" | tail -n 3 >&2 || true

  local rc=0 servers=() i
  for i in "${SERVERS[@]}"; do servers+=("$(server_addr "$i")"); done
  local IFS=,
  log "drill: every instance's reads against the acknowledged changes"
  "$DRILL_BIN" check -out "$DRILL_OUT" -instances "${servers[*]}" -token-file "$token" \
    -usermock "127.0.0.1:$USERMOCK" || rc=1
  unset IFS

  drill_load_expectations
  WAIT_STEP=0.5 wait_until 60s settled ||
    warn "60 s after the load, memberships past their deadline remain or the replica differs from the mock"
  invariants || die "the invariants' query failed"
  [[ $(wc -l <"$DRILL_OUT/invariants.csv") == 7 ]] || die "the invariants' query did not give its 7 rows"
  log "drill: invariants (on the primary, pg$(pg_primary))"
  awk -F'|' '{ printf "  %-74s %s%s\n", $1, $2, ($3 == "" ? "" : "   first: " $3) }' "$DRILL_OUT/invariants.csv" |
    tee "$DRILL_OUT/invariants.txt"
  awk -F'|' '$2 != 0 { bad = 1 } END { exit bad }' "$DRILL_OUT/invariants.csv" || rc=1

  log "drill: figures per fault"
  "$DRILL_BIN" figures -out "$DRILL_OUT" -marks "$DRILL_OUT/marks.csv" | tee "$DRILL_OUT/figures.txt"
  if ((rc == 0)); then
    log "drill: PASSED (every invariant holds; files in $DRILL_OUT)"
  else
    log "drill: FAILED (files in $DRILL_OUT)"
  fi
  return "$rc"
}
