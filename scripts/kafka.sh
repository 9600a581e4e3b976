#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft: broker and controller in one JVM) for
# development and tests, kept in $STATE/kafka. Its jars come from Maven
# Central through Maven (scripts/kafka/pom.xml), copied into $STATE/kafka/lib.
# Usage: kafka.sh install|start|stop|restart|status|bootstrap|create-topics|clean
#        kafka.sh topics [args...]|produce TOPIC|consume TOPIC [max-messages]|run MAIN [args...]
#        kafka.sh cluster-id|format CONFIG CLUSTER_ID|broker CONFIG|java-path
#            (the nodes of scripts/cluster.sh: a new cluster id, a node's
#            storage formatted, a node run in the foreground, the JVM used)
# start prints the bootstrap address (host:port) on stdout. With
# KAFKA_BOOTSTRAP set, the tools (topics, produce, consume) talk to that
# cluster instead of this single node.
# Env: KAFKA_TOPIC (UserAction), KAFKA_TOPIC_PARTITIONS (6),
#      KAFKA_DLQ_TOPIC ($KAFKA_TOPIC.dlq), KAFKA_DLQ_PARTITIONS (3),
#      KAFKA_HEAP_OPTS (-Xmx512m), KAFKA_JVM_OPTS (fast start, see below),
#      KAFKA_START_TIMEOUT (60 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$ROOT/scripts/kafka/pom.xml"
CONF_SRC="$ROOT/scripts/kafka"
KAFKA_DIR="$STATE/kafka"
LIB="$KAFKA_DIR/lib"
STAMP="$LIB/.installed"
CDS="$KAFKA_DIR/classes.jsa"
DATA="$KAFKA_DIR/data"
CONFIG="$KAFKA_DIR/server.properties"
PORTS_FILE="$KAFKA_DIR/ports"
PID_FILE="$KAFKA_DIR/kafka.pid"
LOG_FILE="$KAFKA_DIR/log/server.log"

TOPIC="${KAFKA_TOPIC:-UserAction}"
TOPIC_PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-6}"
DLQ_TOPIC="${KAFKA_DLQ_TOPIC:-$TOPIC.dlq}"
DLQ_PARTITIONS="${KAFKA_DLQ_PARTITIONS:-3}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"

if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA="$(command -v java)" || die "java not found (Kafka 4 needs Java 17+): run scripts/install-deps.sh"
fi

# Start time matters more than peak throughput for a test broker: the serial
# GC and C1 only (no C2) halve the CPU spent starting a JVM; with the class
# data archive made at install, start takes ~3 s instead of ~9 s on 2 cores.
# Set KAFKA_JVM_OPTS="-XX:+UseG1GC" for a broker under real load.
# shellcheck disable=SC2206  # split on purpose
HEAP_OPTS=(${KAFKA_HEAP_OPTS:--Xmx512m})
# shellcheck disable=SC2206
JVM_OPTS=(${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1})
CP="$LIB/*"

# JVM options shared by the broker and the tools, in COMMON_OPTS. The class
# data archive only fits this exact class path and JVM; on a mismatch the JVM
# ignores it (the cds log is off, so silently) and just starts slower.
set_common_opts() {
  COMMON_OPTS=(-Djava.awt.headless=true '-Xlog:cds*=off')
  if [[ -f $CDS ]]; then COMMON_OPTS+=("-XX:SharedArchiveFile=$CDS"); fi
}
set_common_opts

# --- install -------------------------------------------------------------------

install_key() {
  { cat "$POM"; readlink -f "$JAVA"; } | sha256sum | cut -d' ' -f1
}

installed() {
  [[ -f $STAMP && "$(cat "$STAMP")" == "$(install_key)" ]]
}

check_java() {
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  if [[ ! ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    die "Kafka 4 needs Java 17 or newer; $JAVA is '${v:-unknown}'"
  fi
}

cmd_install() {
  installed && return 0
  if running_pid >/dev/null; then die "Kafka is running on other jars: run '$0 stop' first"; fi
  command -v mvn >/dev/null || die "mvn not found: run scripts/install-deps.sh"
  check_java
  log "resolving Kafka jars with Maven into $LIB"
  rm -rf "$LIB" "$CDS"
  mkdir -p "$KAFKA_DIR/log"
  if ! mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIB" >"$KAFKA_DIR/log/mvn.log" 2>&1; then
    tail -n 30 "$KAFKA_DIR/log/mvn.log" >&2
    rm -rf "$LIB"
    die "mvn failed (log: $KAFKA_DIR/log/mvn.log)"
  fi
  make_cds || warn "no class data archive made (start will be slower); see $KAFKA_DIR/cds/server.log"
  set_common_opts
  install_key >"$STAMP"
  log "installed Kafka ($(find "$LIB" -name '*.jar' | wc -l) jars)"
}

# A dynamic AppCDS archive of the classes the broker loads, dumped when a
# throwaway broker exits. Java 17 has no -XX:+AutoCreateSharedArchive.
make_cds() {
  local dir="$KAFKA_DIR/cds" bp cp pid i
  log "making the class data archive (starts a throwaway broker)"
  rm -rf "$dir"
  mkdir -p "$dir"
  bp="$(free_port)"
  while cp="$(free_port)" && [[ $cp == "$bp" ]]; do :; done
  write_conf "$dir/server.properties" "$bp" "$cp" "$dir/data"
  format_storage "$dir/server.properties" "$dir/format.log" || return 1
  rm -f "$dir/classes.jsa"
  "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" -Djava.awt.headless=true \
    '-Xlog:cds*=off' -XX:ArchiveClassesAtExit="$dir/classes.jsa" \
    -Dlog4j2.configurationFile="$CONF_SRC/log4j2-broker.properties" \
    -cp "$CP" kafka.Kafka "$dir/server.properties" >"$dir/server.log" 2>&1 </dev/null 9>&- &
  pid=$!
  wait_ready "$pid" "$dir/server.log" "$bp" || { kill -KILL "$pid" 2>/dev/null; return 1; }
  kill -TERM "$pid"
  # Dumping the archive at exit takes a few seconds.
  for ((i = 0; i < 1200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
  [[ -s $dir/classes.jsa ]] || return 1
  mv "$dir/classes.jsa" "$CDS"
  rm -rf "$dir"
}

# --- broker --------------------------------------------------------------------

# write_conf FILE BROKER_PORT CONTROLLER_PORT LOG_DIR
write_conf() {
  cat >"$1" <<CONF
# Written by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: the controller port may change between starts.
controller.quorum.voters=1@127.0.0.1:$3
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$4
# Topics are created by 'kafka.sh create-topics'; a misspelt name fails.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
# One node: internal topics with one replica, and few partitions.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests: consumer groups start consuming at once.
group.initial.rebalance.delay.ms=0
CONF
}

# A random cluster id in Kafka's Uuid format (22 chars of URL-safe base64);
# like Uuid.randomUuid(), never one that starts with '-'.
cluster_id() {
  local id
  while id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" && [[ $id == -* ]]; do :; done
  echo "$id"
}

# format_storage CONFIG LOG [CLUSTER_ID]: the equivalent of
# 'kafka-storage.sh format' (with a new cluster id unless one is given).
format_storage() {
  if ! "$JAVA" "${JVM_OPTS[@]}" "${COMMON_OPTS[@]}" \
    -Dlog4j2.configurationFile="$CONF_SRC/log4j2-tools.properties" \
    -cp "$CP" kafka.tools.StorageTool format --config "$1" --cluster-id "${3:-$(cluster_id)}" \
    >"$2" 2>&1 9>&-; then
    cat "$2" >&2
    return 1
  fi
}

# wait_ready PID LOG PORT: until the broker logs that it started (it has
# registered and been unfenced by then) and accepts connections.
wait_ready() {
  local pid=$1 logf=$2 port=$3 deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! pid_alive "$pid"; then
      tail -n 30 "$logf" >&2 || true
      warn "Kafka exited during startup (log: $logf)"
      return 1
    fi
    if grep -q 'Kafka Server started' "$logf" 2>/dev/null && port_in_use "$port"; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 30 "$logf" >&2 || true
  warn "Kafka not ready after ${START_TIMEOUT}s (log: $logf)"
  return 1
}

running_pid() {
  bg_pid "$PID_FILE" "$JAVA"
}

ports() {
  [[ -s $PORTS_FILE ]] || die "no port yet: run '$0 start' first"
  cat "$PORTS_FILE"
}

bootstrap() {
  if [[ -n ${KAFKA_BOOTSTRAP:-} ]]; then
    echo "$KAFKA_BOOTSTRAP"
    return 0
  fi
  local p
  p="$(ports)"
  echo "127.0.0.1:${p%% *}"
}

cmd_start() {
  if running_pid >/dev/null; then
    bootstrap
    return 0
  fi
  cmd_install
  mkdir -p "$KAFKA_DIR/log" "$DATA"

  # Keep the stored ports unless something else took them meanwhile.
  local bp="" cp=""
  [[ -s $PORTS_FILE ]] && read -r bp cp <"$PORTS_FILE"
  if [[ -z $bp ]] || port_in_use "$bp"; then bp="$(free_port)"; fi
  if [[ -z $cp || $cp == "$bp" ]] || port_in_use "$cp"; then
    while cp="$(free_port)" && [[ $cp == "$bp" ]]; do :; done
  fi
  echo "$bp $cp" >"$PORTS_FILE"
  write_conf "$CONFIG" "$bp" "$cp" "$DATA"

  local topics_mode=quick
  if [[ ! -f $DATA/meta.properties ]]; then
    log "formatting $DATA"
    format_storage "$CONFIG" "$KAFKA_DIR/log/format.log" || die "formatting $DATA failed"
    topics_mode=fresh
  fi

  [[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  log "starting Kafka on 127.0.0.1:$bp (controller 127.0.0.1:$cp)"
  bg_start "$PID_FILE" "$LOG_FILE" "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" "${COMMON_OPTS[@]}" \
    -Dlog4j2.configurationFile="$CONF_SRC/log4j2-broker.properties" \
    -cp "$CP" kafka.Kafka "$CONFIG" 9>&-
  if ! wait_ready "$BG_PID" "$LOG_FILE" "$bp"; then
    bg_stop kafka "$PID_FILE" "$JAVA" 10
    die "Kafka failed to start (log: $LOG_FILE)"
  fi
  create_topics "$topics_mode"
  log "Kafka ready on 127.0.0.1:$bp"
  bootstrap
}

cmd_stop() {
  bg_stop kafka "$PID_FILE" "$JAVA" 30
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "Kafka running on $(bootstrap) (pid $pid, data: $DATA)"
  else
    echo "Kafka not running (data: $DATA)"
    return 3
  fi
}

cmd_clean() {
  cmd_stop
  log "deleting $DATA"
  rm -rf "$DATA" "$CONFIG" "$PORTS_FILE" "$KAFKA_DIR/log"
}

# --- tools ---------------------------------------------------------------------

# run_tool MAIN [args...]: a Kafka main class with the broker's jars; its
# log4j output (warnings only) goes to stderr.
run_tool() {
  [[ -f $STAMP ]] || die "Kafka is not installed: run '$0 install'"
  "$JAVA" -Xmx256m "${JVM_OPTS[@]}" "${COMMON_OPTS[@]}" \
    -Dlog4j2.configurationFile="$CONF_SRC/log4j2-tools.properties" \
    -cp "$CP" "$@"
}

topics() {
  run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" "$@"
}

# create_topics [fresh|quick]: creates the missing topics (in parallel: one
# JVM each). A JVM costs ~1.5 s, so start skips asking the broker: 'fresh'
# (just formatted) has none yet; 'quick' trusts the partition directories
# that this single node keeps in $DATA for every topic.
create_topics() {
  local mode=${1:-} existing="" name parts pids=() pid failed=0
  if [[ $mode == quick && -d $DATA/$TOPIC-0 && -d $DATA/$DLQ_TOPIC-0 ]]; then
    return 0
  fi
  if [[ $mode != fresh ]]; then
    existing="$(topics --list)" || die "listing topics failed"
  fi
  while read -r name parts; do
    grep -qxF "$name" <<<"$existing" && continue
    log "creating topic $name ($parts partitions)"
    topics --create --if-not-exists --topic "$name" --partitions "$parts" \
      --replication-factor 1 >/dev/null &
    pids+=($!)
  done <<<"$TOPIC $TOPIC_PARTITIONS
$DLQ_TOPIC $DLQ_PARTITIONS"
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
  done
  ((failed == 0)) || die "creating topics failed"
}

require_running() {
  [[ -n ${KAFKA_BOOTSTRAP:-} ]] && return 0
  running_pid >/dev/null || die "Kafka is not running: run '$0 start'"
}

# Serialise install/start/stop between concurrent callers (fd 9, not passed
# to the broker).
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/kafka.lock"
  flock 9
}

usage() {
  cat >&2 <<USAGE
usage: $0 install|start|stop|restart|status|bootstrap|create-topics|clean
       $0 topics [args...]|produce TOPIC|consume TOPIC [max-messages]|run MAIN [args...]
       $0 cluster-id|format CONFIG CLUSTER_ID|broker CONFIG|java-path
USAGE
  exit 2
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
  install) lock && cmd_install ;;
  start) lock && cmd_start ;;
  stop) lock && cmd_stop ;;
  restart) lock && cmd_stop && cmd_start ;;
  status) cmd_status ;;
  bootstrap) bootstrap ;;
  clean) lock && cmd_clean ;;
  create-topics) require_running && create_topics ;;
  topics) require_running && topics "$@" ;;
  produce)
    [[ $# -eq 1 ]] || usage
    require_running
    run_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$(bootstrap)" --topic "$1"
    ;;
  consume)
    # From the beginning; stops after max-messages, or once no message came
    # for KAFKA_CONSUME_TIMEOUT_MS (default 5000).
    [[ $# -ge 1 && $# -le 2 ]] || usage
    require_running
    max=()
    [[ $# -eq 2 ]] && max=(--max-messages "$2")
    run_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$(bootstrap)" \
      --topic "$1" --from-beginning --timeout-ms "${KAFKA_CONSUME_TIMEOUT_MS:-5000}" "${max[@]}"
    ;;
  run)
    [[ $# -ge 1 ]] || usage
    run_tool "$@"
    ;;
  # One node of a cluster that scripts/cluster.sh configures, runs and stops:
  # format its storage once, then run the broker in the foreground (exec, so
  # the caller's pid is the JVM's).
  cluster-id) cluster_id ;;
  java-path) readlink -f "$JAVA" ;;
  format)
    [[ $# -eq 2 ]] || usage
    lock && cmd_install
    format_storage "$1" "$(dirname "$1")/format.log" "$2"
    ;;
  broker)
    [[ $# -eq 1 ]] || usage
    [[ -f $STAMP ]] || die "Kafka is not installed: run '$0 install'"
    exec 9>&-
    exec "$JAVA" "${HEAP_OPTS[@]}" "${JVM_OPTS[@]}" "${COMMON_OPTS[@]}" \
      -Dlog4j2.configurationFile="$CONF_SRC/log4j2-broker.properties" -cp "$CP" kafka.Kafka "$1"
    ;;
  *) usage ;;
esac
