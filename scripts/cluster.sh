#!/usr/bin/env bash
# The service as a team outgrowing one machine would run it, on this one
# machine (docs/cluster.md): 3 servers and 2 gateways behind HAProxy (HTTP
# and gRPC over h2, with health checks); PostgreSQL as a primary and a
# synchronous streaming replica managed by Patroni on a 3-member etcd; 3
# Kafka brokers (KRaft) with replication factor 3 and min.insync.replicas 2;
# the user-service mock. Everything listens on loopback; data and logs are
# kept in $STATE/cluster (.state/cluster).
#
# As root (it runs PostgreSQL as the user postgres, as scripts/pg.sh does).
# Usage: cluster.sh up|down|status|clean
#        cluster.sh drill [--short]   mixed load through HAProxy while a
#            server, the PostgreSQL primary, a Kafka broker and an etcd
#            member are killed in turn; then the invariants and the figures
#            (exit 1 if an invariant does not hold)
#        cluster.sh url|brokers|env   the database URL, the brokers, every address
#        cluster.sh haproxy-state BACKEND SERVER   UP, DOWN, MAINT... as HAProxy sees it
#
# Env: SEGMENTS_CLUSTER_BIN_DIR (the release build, build/release; given, no
# build is run), SEGMENTS_CLUSTER_HTTP_PORT / _GRPC_PORT / _STATS_PORT
# (HAProxy's fronts; default: free ports, kept for the next start).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CL="$STATE/cluster"
RUN="$CL/run"
LOGS="$CL/log"
PORTS_FILE="$CL/ports"
CONF_SRC="$ROOT/scripts/cluster"
# The build the cluster runs: SEGMENTS_CLUSTER_BIN_DIR, else the one the
# last `up` used (kept in $CL/bin-dir, so that status, down and clean know
# the processes of a cluster started from another build), else build/release.
BIN_DIR="${SEGMENTS_CLUSTER_BIN_DIR:-$(cat "$CL/bin-dir" 2>/dev/null || echo "$ROOT/build/release")}"
SERVER_BIN="$BIN_DIR/server/segments-server"
GATEWAY_BIN="$BIN_DIR/gateway/segments-gateway"
USERMOCK_BIN="$BIN_DIR/usermock/segments-usermock"
DRILL_BIN="$BIN_DIR/tests/cluster/segments-drill"
PG_BIN=/usr/lib/postgresql/15/bin
PYTHON="$(readlink -f /usr/bin/python3)" # what a patroni process runs
HAPROXY=/usr/sbin/haproxy
ETCD=/usr/bin/etcd
# The JVM the brokers run (kafka.sh's choice; empty until Java is installed).
JAVA="$("$ROOT/scripts/kafka.sh" java-path 2>/dev/null || true)"
USER_EVENTS_TOPIC=UserAction
CONSUMER_GROUP=segments # the server's default --user-events-group
SERVERS=(1 2 3)
GATEWAYS=(1 2)
PG_NODES=(1 2)
KAFKA_NODES=(1 2 3)
ETCD_NODES=(1 2 3)

# --- ports -----------------------------------------------------------------------
# Chosen once and kept in $PORTS_FILE: etcd keeps its peers' addresses in
# its data, Kafka its voters', Patroni its members'.
PORT_NAMES=(
  ETCD_CLIENT_1 ETCD_CLIENT_2 ETCD_CLIENT_3 ETCD_PEER_1 ETCD_PEER_2 ETCD_PEER_3
  PG_1 PG_2 PATRONI_1 PATRONI_2
  KAFKA_1 KAFKA_2 KAFKA_3 KAFKA_CONTROLLER_1 KAFKA_CONTROLLER_2 KAFKA_CONTROLLER_3
  SERVER_1 SERVER_2 SERVER_3 METRICS_1 METRICS_2 METRICS_3
  GATEWAY_1 GATEWAY_2 USERMOCK HTTP GRPC STATS
)

load_ports() {
  if [[ ! -s $PORTS_FILE ]]; then
    mkdir -p "$CL"
    local free name i=0
    read -r -a free < <(free_ports "${#PORT_NAMES[@]}")
    free[${#PORT_NAMES[@]} - 3]=${SEGMENTS_CLUSTER_HTTP_PORT:-${free[${#PORT_NAMES[@]} - 3]}}
    free[${#PORT_NAMES[@]} - 2]=${SEGMENTS_CLUSTER_GRPC_PORT:-${free[${#PORT_NAMES[@]} - 2]}}
    free[${#PORT_NAMES[@]} - 1]=${SEGMENTS_CLUSTER_STATS_PORT:-${free[${#PORT_NAMES[@]} - 1]}}
    for name in "${PORT_NAMES[@]}"; do
      echo "$name=${free[i]}"
      i=$((i + 1))
    done >"$PORTS_FILE"
  fi
  # shellcheck disable=SC1090
  source "$PORTS_FILE"
}

port_of() {
  local v="$1_$2"
  echo "${!v}"
}

etcd_hosts() {
  local i out=()
  for i in "${ETCD_NODES[@]}"; do out+=("127.0.0.1:$(port_of ETCD_CLIENT "$i")"); done
  local IFS=,
  echo "${out[*]}"
}

kafka_brokers() {
  local i out=()
  for i in "${KAFKA_NODES[@]}"; do out+=("127.0.0.1:$(port_of KAFKA "$i")"); done
  local IFS=,
  echo "${out[*]}"
}

# The server finds the primary itself: libpq tries the hosts in turn and
# keeps the first that accepts writes (docs/cluster.md says why not a proxy).
database_url() {
  # Keepalives and tcp_user_timeout: a connection to a primary that vanished
  # without a reset (a dead host, not a dead process) fails within seconds.
  echo "postgresql://postgres@127.0.0.1:$PG_1,127.0.0.1:$PG_2/${1:-segments}?target_session_attrs=read-write&connect_timeout=2&keepalives_idle=5&keepalives_interval=1&keepalives_count=3&tcp_user_timeout=5000"
}

# --- processes ---------------------------------------------------------------------
pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOGS/$1.log"; }
running() { bg_pid "$(pidfile "$1")" "$2" >/dev/null; }

# kill_hard NAME EXE: SIGKILL, as a crash; the pid file goes.
kill_hard() {
  local pid
  pid="$(bg_pid "$(pidfile "$1")" "$2")" || return 0
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(pidfile "$1")"
}

# --- etcd --------------------------------------------------------------------------
etcd_endpoint() { echo "http://127.0.0.1:$(port_of ETCD_CLIENT "$1")"; }

etcd_healthy() {
  curl -fsS -m 2 "$(etcd_endpoint "$1")/health" 2>/dev/null | grep -q '"health":"true"'
}

start_etcd() {
  local i=$1 name="etcd$1" peers=() j
  running "$name" "$ETCD" && return 0
  for j in "${ETCD_NODES[@]}"; do peers+=("etcd$j=http://127.0.0.1:$(port_of ETCD_PEER "$j")"); done
  local IFS=,
  log "starting etcd$i on 127.0.0.1:$(port_of ETCD_CLIENT "$i")"
  bg_start "$(pidfile "$name")" "$(logfile "$name")" "$ETCD" --name "$name" --data-dir "$CL/$name" \
    --listen-client-urls "$(etcd_endpoint "$i")" --advertise-client-urls "$(etcd_endpoint "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(port_of ETCD_PEER "$i")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(port_of ETCD_PEER "$i")" \
    --initial-cluster "${peers[*]}" --initial-cluster-token segments-cluster --initial-cluster-state new \
    --heartbeat-interval 100 --election-timeout 1000
}

# The member that leads, by number (empty if none answers).
etcd_leader() {
  local i status
  for i in "${ETCD_NODES[@]}"; do
    status="$(curl -fsS -m 2 -X POST "$(etcd_endpoint "$i")/v3/maintenance/status" -d '{}' 2>/dev/null)" || continue
    if [[ $(jq -r '.header.member_id == .leader' <<<"$status") == true ]]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

# --- PostgreSQL under Patroni --------------------------------------------------------
patroni_url() { echo "http://127.0.0.1:$(port_of PATRONI "$1")"; }
# patroni_is NODE ROLE: Patroni's REST API answers 200 for ROLE (primary,
# replica, sync: a synchronous standby) on NODE.
patroni_is() { [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$(patroni_url "$1")/$2") == 200 ]]; }

pg_primary() {
  local i
  for i in "${PG_NODES[@]}"; do
    if patroni_is "$i" primary; then
      echo "$i"
      return 0
    fi
  done
  return 1
}

write_patroni_conf() {
  local i=$1 dir="$CL/pg$1"
  as_root install -d -o postgres -g postgres -m 700 "$dir" "$dir/run" "$dir/log"
  cat >"$dir/patroni.yml" <<CONF
# Written by scripts/cluster.sh on every start; edit the script, not this file.
scope: segments
name: pg$i
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:$(port_of PATRONI "$i")
  connect_address: 127.0.0.1:$(port_of PATRONI "$i")
etcd3:
  hosts: $(etcd_hosts)
bootstrap:
  dcs:
    # The leader key lives 10 s: a dead primary is replaced within ~10 s.
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    # Commits wait for the replica: only a replica that has every
    # acknowledged commit may be promoted, so a failover loses none.
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 200
        max_wal_senders: 10
        max_replication_slots: 10
        shared_buffers: 256MB
        max_wal_size: 1GB
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
postgresql:
  # Written into pg_hba.conf on every start (bootstrap's copy only at initdb).
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication replicator 127.0.0.1/32 trust
  listen: 127.0.0.1:$(port_of PG "$i")
  connect_address: 127.0.0.1:$(port_of PG "$i")
  data_dir: $dir/data
  bin_dir: $PG_BIN
  pgpass: $dir/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: '$dir/run'
    timezone: UTC
    log_timezone: UTC
    logging_collector: 'on'
    log_directory: '$dir/log'
    log_line_prefix: '%m [%p] %q%u@%d '
CONF
  chown postgres:postgres "$dir/patroni.yml"
}

start_patroni() {
  local i=$1 name="pg$1"
  running "$name" "$PYTHON" && return 0
  write_patroni_conf "$i"
  log "starting Patroni pg$i (PostgreSQL on 127.0.0.1:$(port_of PG "$i"), REST $(patroni_url "$i"))"
  # Patroni runs PostgreSQL, which refuses root; setpriv execs in place, so
  # the pid file holds Patroni's pid.
  bg_start "$(pidfile "$name")" "$(logfile "$name")" env HOME="$CL/pg$i" \
    setpriv --reuid=postgres --regid=postgres --init-groups /usr/bin/patroni "$CL/pg$i/patroni.yml"
}

# The postmaster of node NODE (its data folder's postmaster.pid), if running.
postmaster_pid() {
  local pid
  pid="$(head -n1 "$CL/pg$1/data/postmaster.pid" 2>/dev/null)" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" && echo "$pid"
}

# kill_pg_node NODE: the node dies: Patroni and PostgreSQL, SIGKILL.
kill_pg_node() {
  local pm
  pm="$(postmaster_pid "$1")" || pm=""
  kill_hard "pg$1" "$PYTHON"
  [[ -z $pm ]] || kill -KILL "$pm" 2>/dev/null || true
}

stop_patroni() {
  bg_stop "patroni pg$1" "$(pidfile "pg$1")" "$PYTHON" 60
  # Patroni stops PostgreSQL when it stops; one left by a killed Patroni goes here.
  local pm
  if pm="$(postmaster_pid "$1")"; then
    kill -TERM "$pm" 2>/dev/null || true
    WAIT_STEP=0.2 wait_until 30s eval '! pid_alive '"$pm" || kill -KILL "$pm" 2>/dev/null || true
  fi
}

primary_writable() {
  pg_primary >/dev/null && psql -X -q "$(database_url postgres)" -c "SELECT 1" >/dev/null 2>&1
}

sql_on_primary() {
  psql -X -q -v ON_ERROR_STOP=1 "$(database_url "$1")" "${@:2}"
}

# The database and the schema, on the primary (the schema applies only the
# migrations not applied yet).
prepare_database() {
  local exists
  exists="$(sql_on_primary postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'segments'")" ||
    die "the primary does not answer (logs: $LOGS/pg*.log)"
  if [[ -z $exists ]]; then
    sql_on_primary postgres -c "CREATE DATABASE segments"
  fi
  PGOPTIONS='-c client_min_messages=warning' sql_on_primary segments -f "$ROOT/db/schema.sql"
}

# --- Kafka ---------------------------------------------------------------------------
write_kafka_conf() {
  local i=$1 dir="$CL/kafka$1" voters=() j
  for j in "${KAFKA_NODES[@]}"; do voters+=("$j@127.0.0.1:$(port_of KAFKA_CONTROLLER "$j")"); done
  local IFS=,
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<CONF
# Written by scripts/cluster.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=${voters[*]}
listeners=PLAINTEXT://127.0.0.1:$(port_of KAFKA "$i"),CONTROLLER://127.0.0.1:$(port_of KAFKA_CONTROLLER "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of KAFKA "$i")
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
auto.create.topics.enable=false
# Every topic on all three brokers; a write is acknowledged by two at least.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
# A dead broker is fenced (its partitions' leaders move, it leaves the ISRs)
# after 4 s without heartbeats instead of 9.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
replica.lag.time.max.ms=10000
group.initial.rebalance.delay.ms=0
CONF
}

kafka_cluster_id() {
  local f="$CL/kafka-cluster-id"
  [[ -s $f ]] || "$ROOT/scripts/kafka.sh" cluster-id >"$f"
  cat "$f"
}

start_kafka() {
  local i=$1 name="kafka$1"
  running "$name" "$JAVA" && return 0
  write_kafka_conf "$i"
  if [[ ! -f $CL/$name/data/meta.properties ]]; then
    "$ROOT/scripts/kafka.sh" format "$CL/$name/server.properties" "$(kafka_cluster_id)" ||
      die "formatting $CL/$name failed"
  fi
  log "starting Kafka broker $i on 127.0.0.1:$(port_of KAFKA "$i")"
  bg_start "$(pidfile "$name")" "$(logfile "$name")" "$ROOT/scripts/kafka.sh" broker "$CL/$name/server.properties"
}

kafka_started() {
  grep -q 'Kafka Server started' "$(logfile "kafka$1")" 2>/dev/null && port_in_use "$(port_of KAFKA "$1")"
}

kafka_tool() { KAFKA_BOOTSTRAP="$(kafka_brokers)" "$ROOT/scripts/kafka.sh" "$@"; }

create_topics() {
  local existing name parts
  existing="$(kafka_tool topics --list)" || die "listing topics failed"
  while read -r name parts; do
    grep -qxF "$name" <<<"$existing" && continue
    log "creating topic $name ($parts partitions, 3 replicas, min.insync.replicas 2)"
    kafka_tool topics --create --if-not-exists --topic "$name" --partitions "$parts" \
      --replication-factor 3 --config min.insync.replicas=2 >/dev/null
  done <<<"$USER_EVENTS_TOPIC 6
$USER_EVENTS_TOPIC.dlq 3"
}

# How many members of the servers' consumer group own partitions of the
# events topic (Kafka's own description of the group).
consumers_with_partitions() {
  kafka_tool run org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$(kafka_brokers)" \
    --describe --group "$CONSUMER_GROUP" 2>/dev/null |
    awk -v t="$USER_EVENTS_TOPIC" '$2 == t && $7 != "-" { print $7 }' | sort -u | wc -l
}
# Every instance consumes: the group's partitions are spread over all of them.
group_spread() { [[ $(consumers_with_partitions) == "${#SERVERS[@]}" ]]; }

# Partitions whose leader is broker $1, or that have it in their ISR.
# (Fails if the brokers do not describe the topic.)
kafka_partitions_on() {
  local out
  out="$(kafka_tool topics --describe --topic "$USER_EVENTS_TOPIC" 2>/dev/null)" || return 1
  [[ $out == *Partition:* ]] || return 1
  awk -v b="$1" '/Partition:/ { for (i = 1; i <= NF; i++) { if ($i == "Leader:" && $(i+1) == b) n++; if ($i == "Isr:") { split($(i+1), r, ","); for (k in r) if (r[k] == b) n++ } } } END { print n + 0 }' <<<"$out"
}
kafka_without() {
  local n
  n="$(kafka_partitions_on "$1")" && [[ $n == 0 ]]
}
kafka_fully_replicated() {
  local out
  out="$(kafka_tool topics --describe --under-replicated-partitions 2>/dev/null)" || return 1
  [[ -z $out ]]
}

# --- the service -----------------------------------------------------------------------
server_addr() { echo "127.0.0.1:$(port_of SERVER "$1")"; }

start_one_server() {
  local i=$1 name="server$1"
  running "$name" "$SERVER_BIN" && return 0
  SEGMENTS_REPORT_LINK_KEYS="${SEGMENTS_REPORT_LINK_KEYS:-$(report_link_keys)}" \
    start_server "$(server_addr "$i")" "$(pidfile "$name")" "$(logfile "$name")" "$SERVER_BIN" \
    --database-url="$(database_url)" --kafka-brokers="$(kafka_brokers)" \
    --user-events-topic="$USER_EVENTS_TOPIC" --user-service="127.0.0.1:$USERMOCK" \
    --metrics-listen="127.0.0.1:$(port_of METRICS "$i")"
}

# The instance serves reads from memory (its read model is loaded).
server_warm() { grpc_serving "$(server_addr "$1")" segmentation.v1.MembershipReadModel; }

start_usermock_node() {
  running usermock "$USERMOCK_BIN" && return 0
  mkdir -p "$CL/usermock"
  start_usermock "127.0.0.1:$USERMOCK" "$(pidfile usermock)" "$(logfile usermock)" "$USERMOCK_BIN" \
    --kafka-brokers="$(kafka_brokers)" --topic="$USER_EVENTS_TOPIC" --store="$CL/usermock/users.log"
}

start_one_gateway() {
  local i=$1 name="gateway$1"
  running "$name" "$GATEWAY_BIN" && return 0
  # Each gateway calls the servers through HAProxy, so its calls spread
  # over the instances that are up.
  start_gateway "127.0.0.1:$(port_of GATEWAY "$i")" "127.0.0.1:$GRPC" "$(pidfile "$name")" \
    "$(logfile "$name")" "$GATEWAY_BIN"
}

# --- HAProxy ---------------------------------------------------------------------------
write_haproxy_conf() {
  local i
  {
    cat <<CONF
# Written by scripts/cluster.sh on every start; edit the script, not this file.
global
  maxconn 4096
  stats socket $RUN/haproxy.sock mode 600 level admin
  # The servers' check runs the gRPC health check (grpcurl) in a child process.
  external-check
  insecure-fork-wanted

defaults
  mode http
  timeout connect 2s
  # Long enough for a member stream or a report download.
  timeout client 5m
  timeout server 5m
  timeout check 2s
  # A connection refused by a dead instance is tried again on another one;
  # the calls in flight on an instance marked down are cut at once (their
  # clients retry) instead of waiting for it.
  retries 2
  option redispatch 1
  default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions

frontend http
  bind 127.0.0.1:$HTTP
  default_backend gateways

backend gateways
  balance roundrobin
  option httpchk GET /healthz
CONF
    for i in "${GATEWAYS[@]}"; do echo "  server gateway$i 127.0.0.1:$(port_of GATEWAY "$i") check"; done
    cat <<CONF

frontend grpc
  bind 127.0.0.1:$GRPC proto h2
  default_backend servers

backend servers
  balance roundrobin
  option external-check
  external-check path "/usr/bin:/bin"
  external-check command $CONF_SRC/grpc-health-check.sh
CONF
    for i in "${SERVERS[@]}"; do echo "  server server$i $(server_addr "$i") proto h2 check"; done
    cat <<CONF

frontend stats
  bind 127.0.0.1:$STATS
  stats enable
  stats uri /
  stats refresh 2s
CONF
  } >"$CL/haproxy.cfg"
}

start_haproxy() {
  running haproxy "$HAPROXY" && return 0
  write_haproxy_conf
  "$HAPROXY" -c -q -f "$CL/haproxy.cfg" || die "HAProxy refused $CL/haproxy.cfg"
  log "starting HAProxy: HTTP 127.0.0.1:$HTTP, gRPC 127.0.0.1:$GRPC, stats 127.0.0.1:$STATS"
  bg_start "$(pidfile haproxy)" "$(logfile haproxy)" "$HAPROXY" -db -f "$CL/haproxy.cfg"
  wait_until 10s port_in_use "$HTTP" || die "HAProxy did not start (log: $(logfile haproxy))"
}

# haproxy_state BACKEND SERVER: UP, DOWN, MAINT... as HAProxy's stats say.
haproxy_state() {
  curl -fsS -m 2 "http://127.0.0.1:$STATS/;csv" 2>/dev/null |
    awk -F, -v b="$1" -v s="$2" '$1 == b && $2 == s { print $18 }'
}
# (Exactly: "UP 1/2" is a server on its way down.)
haproxy_says() { [[ $(haproxy_state "$1" "$2") == "$3" ]]; }

# --- up, down, status ---------------------------------------------------------------
build_binaries() {
  [[ $BIN_DIR != "$ROOT/build/release" ]] && return 0
  "$ROOT/scripts/build.sh" release segments-server segments-token segments-gateway segments-usermock "$@"
}

need_bin() { [[ -x $1 ]] || die "$1 not found: build it (scripts/build.sh release) or set SEGMENTS_CLUSTER_BIN_DIR"; }

cmd_up() {
  "$ROOT/scripts/install-deps.sh" --cluster
  JAVA="$("$ROOT/scripts/kafka.sh" java-path)"
  build_binaries
  need_bin "$SERVER_BIN"
  need_bin "$GATEWAY_BIN"
  need_bin "$USERMOCK_BIN"
  "$ROOT/scripts/kafka.sh" install
  load_ports
  mkdir -p "$RUN" "$LOGS"
  echo "$BIN_DIR" >"$CL/bin-dir"
  local i

  for i in "${ETCD_NODES[@]}"; do start_etcd "$i"; done
  for i in "${ETCD_NODES[@]}"; do
    wait_until 30s etcd_healthy "$i" || die "etcd$i not healthy after 30 s (log: $(logfile "etcd$i"))"
  done

  # Kafka's JVMs start while Patroni bootstraps.
  for i in "${KAFKA_NODES[@]}"; do start_kafka "$i"; done
  for i in "${PG_NODES[@]}"; do start_patroni "$i"; done
  # Patroni names the leader before its PostgreSQL accepts writes.
  WAIT_STEP=0.5 wait_until 90s primary_writable ||
    die "no writable PostgreSQL primary after 90 s (logs: $LOGS/pg*.log, $CL/pg*/log)"
  prepare_database
  # The replica must be a synchronous standby before a failover can be
  # lossless.
  local primary
  primary="$(pg_primary)" || die "the PostgreSQL primary stopped answering (logs: $LOGS/pg*.log)"
  WAIT_STEP=0.5 wait_until 120s patroni_is "$((3 - primary))" sync ||
    die "pg$((3 - primary)) is not a synchronous standby after 120 s (log: $(logfile "pg$((3 - primary))"))"

  for i in "${KAFKA_NODES[@]}"; do
    WAIT_STEP=0.2 wait_until 90s kafka_started "$i" || die "Kafka broker $i not ready (log: $(logfile "kafka$i"))"
  done
  create_topics

  start_usermock_node
  for i in "${SERVERS[@]}"; do start_one_server "$i"; done
  # (On a fresh broker the first join also creates the offsets topic.)
  WAIT_STEP=1 wait_until 60s group_spread ||
    die "the consumer group is not spread over the ${#SERVERS[@]} instances after 60 s"
  start_haproxy
  for i in "${GATEWAYS[@]}"; do start_one_gateway "$i"; done
  for i in "${SERVERS[@]}"; do
    WAIT_STEP=0.2 wait_until 30s haproxy_says servers "server$i" UP || die "HAProxy does not see server$i UP"
  done
  for i in "${GATEWAYS[@]}"; do
    WAIT_STEP=0.2 wait_until 30s haproxy_says gateways "gateway$i" UP || die "HAProxy does not see gateway$i UP"
  done
  print_info
}

cmd_down() {
  [[ -s $PORTS_FILE ]] || return 0
  load_ports
  local i
  for i in "${GATEWAYS[@]}"; do bg_stop "gateway$i" "$(pidfile "gateway$i")" "$GATEWAY_BIN"; done
  bg_stop haproxy "$(pidfile haproxy)" "$HAPROXY"
  for i in "${SERVERS[@]}"; do bg_stop "server$i" "$(pidfile "server$i")" "$SERVER_BIN"; done
  bg_stop usermock "$(pidfile usermock)" "$USERMOCK_BIN"
  for i in "${KAFKA_NODES[@]}"; do bg_stop "kafka$i" "$(pidfile "kafka$i")" "$JAVA" 30 & done
  wait
  # The replica first, so the primary does not fail over while stopping.
  local primary
  primary="$(pg_primary)" || primary=""
  for i in "${PG_NODES[@]}"; do [[ $i == "$primary" ]] || stop_patroni "$i"; done
  [[ -z $primary ]] || stop_patroni "$primary"
  for i in "${ETCD_NODES[@]}"; do bg_stop "etcd$i" "$(pidfile "etcd$i")" "$ETCD"; done
}

# status_line NAME EXE ADDR [EXTRA]
status_line() {
  local state=down pid
  if pid="$(bg_pid "$(pidfile "$1")" "$2")"; then state="up (pid $pid)"; fi
  printf '  %-10s %-22s %s%s\n' "$1" "$3" "$state" "${4:+, $4}"
}

cmd_status() {
  [[ -s $PORTS_FILE ]] || {
    echo "no cluster in $CL (scripts/cluster.sh up)"
    return 3
  }
  load_ports
  local i role down=0
  echo "cluster in $CL"
  for i in "${ETCD_NODES[@]}"; do
    status_line "etcd$i" "$ETCD" "127.0.0.1:$(port_of ETCD_CLIENT "$i")" "$([[ $(etcd_leader) == "$i" ]] && echo leader)"
  done
  for i in "${PG_NODES[@]}"; do
    role=""
    if patroni_is "$i" primary; then role=primary; elif patroni_is "$i" sync; then role="synchronous replica"; elif patroni_is "$i" replica; then role=replica; fi
    status_line "pg$i" "$PYTHON" "127.0.0.1:$(port_of PG "$i")" "$role"
  done
  for i in "${KAFKA_NODES[@]}"; do status_line "kafka$i" "$JAVA" "127.0.0.1:$(port_of KAFKA "$i")"; done
  status_line usermock "$USERMOCK_BIN" "127.0.0.1:$USERMOCK"
  for i in "${SERVERS[@]}"; do
    status_line "server$i" "$SERVER_BIN" "$(server_addr "$i")" "HAProxy: $(haproxy_state servers "server$i")"
  done
  for i in "${GATEWAYS[@]}"; do
    status_line "gateway$i" "$GATEWAY_BIN" "127.0.0.1:$(port_of GATEWAY "$i")" "HAProxy: $(haproxy_state gateways "gateway$i")"
  done
  status_line haproxy "$HAPROXY" "127.0.0.1:$HTTP"
  echo "  consumer group $CONSUMER_GROUP: $(consumers_with_partitions) of ${#SERVERS[@]} instances own partitions of $USER_EVENTS_TOPIC"
  for i in "${SERVERS[@]}"; do running "server$i" "$SERVER_BIN" || down=1; done
  running haproxy "$HAPROXY" || down=1
  return $((down ? 3 : 0))
}

print_info() {
  cat <<INFO

segments cluster is up (data and logs: $CL)
  HTTP:      http://127.0.0.1:$HTTP   (HAProxy -> gateway1..2; console: http://127.0.0.1:$HTTP/console/)
  gRPC:      127.0.0.1:$GRPC        (HAProxy, h2 -> server1..3)
  HAProxy stats: http://127.0.0.1:$STATS/
  servers:   $(for i in "${SERVERS[@]}"; do printf '%s ' "$(server_addr "$i")"; done)(metrics: $(for i in "${SERVERS[@]}"; do printf '127.0.0.1:%s ' "$(port_of METRICS "$i")"; done))
  database:  $(database_url)
  Patroni:   $(patroni_url 1), $(patroni_url 2)   etcd: $(etcd_hosts)
  kafka:     $(kafka_brokers) (topic $USER_EVENTS_TOPIC: 6 partitions, 3 replicas, min.insync.replicas 2)
  user-service mock: 127.0.0.1:$USERMOCK
  tokens:    $TOKENS_DIR/{service,support,analyst,admin}.jwt
  status:    scripts/cluster.sh status    stop: scripts/cluster.sh down    drill: scripts/cluster.sh drill
INFO
}

cmd_env() {
  load_ports
  echo "CLUSTER_HTTP=127.0.0.1:$HTTP"
  echo "CLUSTER_GRPC=127.0.0.1:$GRPC"
  echo "CLUSTER_STATS=127.0.0.1:$STATS"
  echo "CLUSTER_DATABASE_URL='$(database_url)'"
  echo "CLUSTER_KAFKA_BROKERS=$(kafka_brokers)"
  echo "CLUSTER_SERVERS=$(for i in "${SERVERS[@]}"; do printf '%s,' "$(server_addr "$i")"; done | sed 's/,$//')"
  echo "CLUSTER_USERMOCK=127.0.0.1:$USERMOCK"
  echo "CLUSTER_PATRONI=127.0.0.1:$PATRONI_1" # any node's REST API; /config is the cluster's
}

# --- the fault drill -------------------------------------------------------------------
source "$CONF_SRC/drill.sh"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# One command at a time per state folder.
lock() {
  mkdir -p "$CL"
  exec 8>"$CL/.lock"
  flock 8
}

[[ $# -ge 1 ]] || usage
# Patroni runs PostgreSQL as the user postgres, with files it owns.
[[ $EUID -eq 0 ]] || die "scripts/cluster.sh runs PostgreSQL as the user postgres: run it as root (sudo)"
cmd=$1
shift
case $cmd in
  up) lock && cmd_up ;;
  down) lock && cmd_down ;;
  clean) lock && cmd_down && rm -rf "$CL" ;;
  status) cmd_status ;;
  drill) lock && cmd_drill "$@" ;;
  url) load_ports && database_url "${1:-segments}" ;;
  brokers) load_ports && kafka_brokers ;;
  env) cmd_env ;;
  haproxy-state) load_ports && haproxy_state "$@" ;;
  *) usage ;;
esac
