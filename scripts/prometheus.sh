#!/usr/bin/env bash
# Local Prometheus (Debian's prometheus package) for development and tests,
# kept in $STATE/prometheus: it scrapes the stack's programs and evaluates
# the alert rules of deploy/prometheus/alerts.yml. Its web UI and HTTP API
# listen on a free loopback port, kept in $STATE/prometheus/port.
# Usage: prometheus.sh start JOB=HOST:PORT...|stop|status|address
#   start  writes the configuration (a job per JOB=HOST:PORT, e.g.
#          segments-server=127.0.0.1:9464; the targets serve /metrics) and
#          starts Prometheus, or, if it runs, reloads it with the new targets;
#          prints the address (host:port) on stdout once it is ready.
#   address  prints host:port of the running Prometheus.
# Env: PROMETHEUS_SCRAPE_INTERVAL (15s; also the rule evaluation interval),
#      PROMETHEUS_RETENTION (7d), PROMETHEUS_START_TIMEOUT (60 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROM_DIR="$STATE/prometheus"
DATA="$PROM_DIR/data"
CONFIG="$PROM_DIR/prometheus.yml"
PORT_FILE="$PROM_DIR/port"
PID_FILE="$PROM_DIR/prometheus.pid"
LOG_FILE="$PROM_DIR/prometheus.log"
RULES="$ROOT/deploy/prometheus/alerts.yml"
SCRAPE_INTERVAL="${PROMETHEUS_SCRAPE_INTERVAL:-15s}"
START_TIMEOUT="${PROMETHEUS_START_TIMEOUT:-60}"
PROMETHEUS="$(command -v prometheus || true)"

need_binary() {
  [[ -n $PROMETHEUS ]] ||
    die "prometheus not found: install Debian's prometheus package (scripts/install-deps.sh --tests, or SEGMENTS_PROMETHEUS=1 scripts/up.sh)"
}

running_pid() {
  [[ -n $PROMETHEUS ]] && bg_pid "$PID_FILE" "$PROMETHEUS"
}

address() {
  [[ -s $PORT_FILE ]] || die "no port yet: run '$0 start' first"
  echo "127.0.0.1:$(cat "$PORT_FILE")"
}

ready() { http_ok "http://$1/-/ready"; }

# write_config JOB=HOST:PORT...: the configuration, checked by promtool when
# it is there (the package has it).
write_config() {
  local arg job target
  mkdir -p "$PROM_DIR"
  {
    cat <<CONF
# Written by scripts/prometheus.sh on every start; edit the script, not this file.
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
rule_files:
  - $RULES
scrape_configs:
CONF
    for arg in "$@"; do
      job=${arg%%=*} target=${arg#*=}
      [[ $arg == *=* && -n $job && $target == *:* ]] || die "bad target '$arg': expected JOB=HOST:PORT"
      printf '  - job_name: %s\n    static_configs:\n      - targets: ["%s"]\n' "$job" "$target"
    done
  } >"$CONFIG.new"
  # A scrape timeout may not exceed the interval; both the same is fine.
  if command -v promtool >/dev/null && ! promtool check config "$CONFIG.new" >"$PROM_DIR/check.log" 2>&1; then
    cat "$PROM_DIR/check.log" >&2
    die "the generated configuration is invalid (above): $CONFIG.new"
  fi
  mv "$CONFIG.new" "$CONFIG"
}

cmd_start() {
  local pid p addr deadline
  need_binary
  (($#)) || die "usage: $0 start JOB=HOST:PORT..."
  write_config "$@"
  if pid="$(running_pid)"; then
    # Already running: SIGHUP makes Prometheus read the configuration again.
    log "reloading Prometheus (pid $pid) with $*"
    kill -HUP "$pid"
    address
    return 0
  fi
  # Keep the stored port unless something else took it meanwhile.
  p="$(cat "$PORT_FILE" 2>/dev/null || true)"
  if [[ -z $p ]] || port_in_use "$p"; then
    p="$(free_port)"
    echo "$p" >"$PORT_FILE"
  fi
  addr="127.0.0.1:$p"
  mkdir -p "$DATA"
  log "starting Prometheus on $addr (scraping $*)"
  bg_start "$PID_FILE" "$LOG_FILE" "$PROMETHEUS" --config.file="$CONFIG" --storage.tsdb.path="$DATA" \
    --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-7d}" --web.listen-address="$addr" \
    --web.enable-lifecycle
  pid=$BG_PID
  deadline=$(($(now_ms) + START_TIMEOUT * 1000))
  until ready "$addr"; do
    if ! pid_alive "$pid"; then
      tail -n 20 "$LOG_FILE" >&2 || true
      die "Prometheus exited during startup (log: $LOG_FILE)"
    fi
    if (($(now_ms) >= deadline)); then
      tail -n 20 "$LOG_FILE" >&2 || true
      bg_stop prometheus "$PID_FILE" "$PROMETHEUS" 5
      die "Prometheus not ready on $addr after $START_TIMEOUT s (log: $LOG_FILE)"
    fi
    sleep 0.1
  done
  echo "$addr"
}

cmd_stop() {
  [[ -n $PROMETHEUS ]] || return 0
  bg_stop prometheus "$PID_FILE" "$PROMETHEUS" 15
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "Prometheus running on $(address) (pid $pid, data: $DATA, config: $CONFIG)"
  else
    echo "Prometheus not running (data: $DATA)"
    return 3
  fi
}

usage() {
  echo "usage: $0 start JOB=HOST:PORT...|stop|status|address" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
  start) cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  address)
    running_pid >/dev/null || die "Prometheus is not running: run '$0 start'"
    address
    ;;
  *) usage ;;
esac
