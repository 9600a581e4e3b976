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

# run_fault NAME KILL HEALTHY RESTART REJOINED: one fault; each argument
# after NAME is a command (a function and its arguments, one word each,
# split on spaces).
run_fault() {
  # shellcheck disable=SC2206  # split on purpose
  local name=$1 kill=($2) healthy=($3) restart=($4) rejoined=($5) kill_ms healthy_ms rejoined_ms
  log "fault $name: ${kill[*]}"
  kill_ms="$(now_ms)"
  "${kill[@]}"
  WAIT_STEP=0.2 wait_until 90s "${healthy[@]}" || die "fault $name: not healthy 90 s after the kill (${healthy[*]})"
  healthy_ms="$(now_ms)"
  log "fault $name: healthy after $((healthy_ms - kill_ms)) ms; holding ${DRILL_HOLD}s"
  sleep "$DRILL_HOLD"
  "${restart[@]}"
  WAIT_STEP=0.2 wait_until 180s "${rejoined[@]}" || die "fault $name: not back 180 s after the restart (${rejoined[*]})"
  rejoined_ms="$(now_ms)"
  log "fault $name: back after $((rejoined_ms - kill_ms)) ms"
  echo "$name,$kill_ms,$healthy_ms,$rejoined_ms" >>"$DRILL_OUT/marks.csv"
  sleep "$DRILL_SETTLE"
}

# --- the four faults: kill, healthy without it, restart, back ------------------------
drill_server_down() { haproxy_says servers "server$1" DOWN; }
# Back: in HAProxy's rotation, reading from memory, and consuming again.
drill_server_back() { haproxy_says servers "server$1" UP && server_warm "$1" && group_spread; }

drill_pg_other_primary() { patroni_is "$((3 - $1))" primary; }
drill_pg_back() { patroni_is "$1" sync; }

drill_kafka_back() { kafka_started "$1" && kafka_fully_replicated; }

drill_etcd_other_leader() {
  local leader
  leader="$(etcd_leader)" && [[ $leader != "$1" ]]
}

# --- checks after the load -------------------------------------------------------------
drill_sql() { psql -X -q -v ON_ERROR_STOP=1 "$(database_url)" "$@"; }

# Loads the files segments-drill check wrote into the schema drill.
drill_load_expectations() {
  drill_sql -c "DROP SCHEMA IF EXISTS drill CASCADE" -c "CREATE SCHEMA drill" \
    -c "CREATE TABLE drill.expected (user_id uuid, slug text, held boolean)" \
    -c "CREATE TABLE drill.expected_events (user_id uuid, slug text, acked_adds int, acked_removes int)" \
    -c "CREATE TABLE drill.mock_users (user_id uuid, state text)" \
    -c "\\copy drill.expected FROM '$DRILL_OUT/expected.csv' CSV HEADER" \
    -c "\\copy drill.expected_events FROM '$DRILL_OUT/expected_events.csv' CSV HEADER" \
    -c "\\copy drill.mock_users FROM '$DRILL_OUT/mock_users.csv' CSV HEADER"
}

no_overdue_memberships() {
  [[ $(drill_sql -tAc "SELECT count(*) FROM memberships WHERE expires_at <= now()") == 0 ]]
}
replica_caught_up() {
  [[ $(drill_sql -tAc "SELECT count(*) FROM users u FULL JOIN drill.mock_users m ON m.user_id = u.id::uuid
        WHERE u.id IS NULL OR m.user_id IS NULL OR u.state::text <> m.state") == 0 ]]
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
  if ! cmd_status >/dev/null 2>&1; then cmd_up; fi
  load_ports

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
  wait_until 120s grep -q ',write,ok,' "$DRILL_OUT/requests.csv" ||
    die "the load made no change in 120 s (log: $DRILL_OUT/load.log)"
  sleep "$baseline"

  run_fault server "kill_hard server2 $SERVER_BIN" "drill_server_down 2" "start_one_server 2" "drill_server_back 2"
  local primary
  primary="$(pg_primary)" || die "no PostgreSQL primary before the database fault"
  run_fault postgres-primary "kill_pg_node $primary" "drill_pg_other_primary $primary" \
    "start_patroni $primary" "drill_pg_back $primary"
  run_fault kafka-broker "kill_hard kafka2 $JAVA" "kafka_without 2" "start_kafka 2" "drill_kafka_back 2"
  local leader
  leader="$(etcd_leader)" || die "no etcd leader before the etcd fault"
  run_fault etcd-leader "kill_hard etcd$leader $ETCD" "drill_etcd_other_leader $leader" \
    "start_etcd $leader" "etcd_healthy $leader"

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
  # What the invariants compare must have settled: the expiry job ended every
  # membership past its deadline, the consumer applied every user event.
  WAIT_STEP=0.5 wait_until 60s no_overdue_memberships || warn "memberships past their deadline remain after 60 s"
  WAIT_STEP=0.5 wait_until 60s replica_caught_up || warn "the user replica differs from the mock after 60 s"
  log "drill: invariants (on the primary, pg$(pg_primary))"
  drill_sql -P footer=off -f "$ROOT/scripts/cluster/invariants.sql" | tee "$DRILL_OUT/invariants.txt"
  local violations
  violations="$(drill_sql -tA -f "$ROOT/scripts/cluster/invariants.sql" | awk -F'|' '{ s += $2 } END { print s + 0 }')"
  ((violations == 0)) || rc=1

  log "drill: figures per fault"
  "$DRILL_BIN" figures -out "$DRILL_OUT" -marks "$DRILL_OUT/marks.csv" | tee "$DRILL_OUT/figures.txt"
  if ((rc == 0)); then
    log "drill: PASSED (every invariant holds; files in $DRILL_OUT)"
  else
    log "drill: FAILED (files in $DRILL_OUT)"
  fi
  return "$rc"
}
