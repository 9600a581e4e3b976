#!/usr/bin/env bash
# Local PostgreSQL 15 cluster for development and tests, kept in $STATE/pg.
# Usage: pg.sh start|stop|restart|status|url [db]|psql [db] [args...]|apply-schema [db...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR="$STATE/pg"
DATA="$PG_DIR/data"
RUN_DIR="$PG_DIR/run"
LOG_FILE="$PG_DIR/log/postgresql.log"
PORT_FILE="$PG_DIR/port"
DATABASES=(segments segments_test)
SCHEMA="$ROOT/db/schema.sql"

# initdb/pg_ctl refuse root: run them as the postgres user.
as_pg() {
  if [[ $(id -un) == postgres ]]; then
    "$@"
  elif [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres -- "$@"
  fi
}

is_running() {
  [[ -f $DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

port() {
  [[ -s $PORT_FILE ]] || die "no port yet: run '$0 start' first"
  cat "$PORT_FILE"
}

# psql as the calling user over TCP (trust auth), so file arguments and
# ~/.psqlrc are the caller's.
run_psql() {
  local db=$1
  shift
  "$PG_BIN/psql" -h 127.0.0.1 -p "$(port)" -U postgres -d "$db" "$@"
}

apply_schema() {
  local db
  if [[ ! -f $SCHEMA ]]; then
    warn "$SCHEMA not found, schema not applied"
    return 0
  fi
  for db in "$@"; do
    PGOPTIONS='-c client_min_messages=warning' \
      run_psql "$db" -X -v ON_ERROR_STOP=1 -q -f "$SCHEMA" ||
      die "applying $SCHEMA to $db failed"
  done
}

create_databases() {
  local db
  for db in "${DATABASES[@]}"; do
    if [[ -z $(run_psql postgres -XtAc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
      run_psql postgres -Xq -c "CREATE DATABASE $db"
    fi
  done
}

# Settings are regenerated on every start (the port may change).
write_conf() {
  as_pg tee "$DATA/segments.conf" >/dev/null <<CONF
# Written by scripts/pg.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$RUN_DIR'
max_connections = 200
# Filling a segment writes millions of rows at once: room for the indexes it
# walks, and checkpoints spaced out enough not to land in the middle of it.
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 15min
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
CONF
}

cmd_start() {
  if is_running; then
    return 0
  fi
  as_root install -d -o postgres -g postgres -m 755 "$PG_DIR" "$RUN_DIR" "$PG_DIR/log"
  as_pg test -w "$PG_DIR" ||
    die "user postgres cannot reach $PG_DIR; set SEGMENTS_STATE_DIR to a directory it can traverse"

  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "initdb $DATA"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$PG_DIR/log/initdb.log" 2>&1 ||
      { cat "$PG_DIR/log/initdb.log" >&2; die "initdb failed"; }
    echo "include_if_exists = 'segments.conf'" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
  fi

  # Keep the stored port unless something else took it meanwhile.
  local p
  p="$(cat "$PORT_FILE" 2>/dev/null || true)"
  if [[ -z $p ]] || port_in_use "$p"; then
    p="$(free_port)"
    echo "$p" >"$PORT_FILE"
  fi
  write_conf "$p"

  log "starting PostgreSQL on 127.0.0.1:$p"
  if ! as_pg "$PG_BIN/pg_ctl" start -D "$DATA" -l "$LOG_FILE" -w -t 60 >/dev/null 9>&-; then
    tail -n 20 "$LOG_FILE" >&2 || true
    die "PostgreSQL failed to start (log: $LOG_FILE)"
  fi
  create_databases
  apply_schema "${DATABASES[@]}"
}

cmd_stop() {
  if is_running; then
    log "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null
  fi
}

cmd_status() {
  if is_running; then
    echo "PostgreSQL running on 127.0.0.1:$(port) (data: $DATA)"
  else
    echo "PostgreSQL not running (data: $DATA)"
    return 3
  fi
}

# Serialise start/stop between concurrent callers (fd 9, not passed to postgres).
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/pg.lock"
  flock 9
}

require_running() {
  is_running || die "PostgreSQL is not running: run '$0 start'"
}

usage() {
  echo "usage: $0 start|stop|restart|status|url [db]|psql [db] [args...]|apply-schema [db...]" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
  start) lock && cmd_start ;;
  stop) lock && cmd_stop ;;
  restart) lock && cmd_stop && cmd_start ;;
  status) cmd_status ;;
  url) echo "postgresql://postgres@127.0.0.1:$(port)/${1:-segments}" ;;
  psql)
    require_running
    db=segments
    if [[ $# -gt 0 && $1 != -* ]]; then
      db=$1
      shift
    fi
    run_psql "$db" "$@"
    ;;
  apply-schema)
    require_running
    if [[ $# -eq 0 ]]; then set -- "${DATABASES[@]}"; fi
    apply_schema "$@"
    ;;
  *) usage ;;
esac
