# shellcheck shell=bash
# The one shell library of scripts/, tests/ and bench/: source it, don't run
# it. Logging, ports, processes in the background, waiting with a deadline,
# clean-up on exit, and starting the server, the gateway and the mock.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SEGMENTS_STATE_DIR:-$ROOT/.state}"
[[ $STATE == /* ]] || STATE="$PWD/$STATE"
TOOLS_BIN="$ROOT/.tools/bin"
GRPCURL="$TOOLS_BIN/grpcurl"
export ROOT STATE TOOLS_BIN GRPCURL

# Log prefix: the calling script's name without .sh.
_TAG="$(basename "$0" .sh)"
log() { printf '[%s] %s\n' "$_TAG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$_TAG" "$*" >&2; exit 1; }

# Run a command as root (directly if we already are).
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# --- clean-up on exit --------------------------------------------------------
# on_exit CMD [ARG...]: run CMD when the script exits (also on Ctrl-C or
# SIGTERM), after the commands registered later: the last thing started is
# the first stopped. A failing command does not keep the others from running.
_ON_EXIT=()
on_exit() {
  local cmd
  printf -v cmd '%q ' "$@"
  _ON_EXIT+=("$cmd")
  if ((${#_ON_EXIT[@]} == 1)); then
    trap run_on_exit EXIT
    # Without these traps a signal would end the script without the EXIT trap.
    trap 'exit 130' INT
    trap 'exit 143' TERM
  fi
}

# run_on_exit: run the registered commands now (newest first) and forget them.
run_on_exit() {
  local i
  for ((i = ${#_ON_EXIT[@]} - 1; i >= 0; i--)); do
    eval "${_ON_EXIT[i]}" || true
  done
  _ON_EXIT=()
}

# --- time and waiting --------------------------------------------------------
# now_ms: milliseconds since the epoch (EPOCHREALTIME: no fork, any locale).
now_ms() {
  local us=${EPOCHREALTIME//[!0-9]/}
  echo $((10#$us / 1000))
}

# duration_ms DUR: DUR (whole seconds: 30, 30s; or milliseconds: 500ms) in ms.
duration_ms() {
  case $1 in
    *ms) echo $((${1%ms})) ;;
    *s) echo $((${1%s} * 1000)) ;;
    *) echo $(($1 * 1000)) ;;
  esac
}

# wait_until DUR CMD [ARG...]: run CMD every WAIT_STEP seconds (default 0.05)
# until it succeeds; false if it still fails after DUR (see duration_ms).
wait_until() {
  local deadline
  deadline=$(($(now_ms) + $(duration_ms "$1")))
  shift
  until "$@"; do
    (($(now_ms) < deadline)) || return 1
    sleep "${WAIT_STEP:-0.05}"
  done
}

# --- ports -------------------------------------------------------------------
# True if something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: print a random free port in 15000-31999 (below Linux's
# ephemeral range). free_ports N: N different ones, on one line.
free_port() { free_ports 1; }
free_ports() {
  local want=$1 p _ ports=()
  for _ in {1..1000}; do
    if ((${#ports[@]} == want)); then
      echo "${ports[*]}"
      return 0
    fi
    p=$((15000 + RANDOM % 17000))
    [[ " ${ports[*]} " == *" $p "* ]] || port_in_use "$p" || ports+=("$p")
  done
  die "no $want free TCP ports found"
}

# need_free_port HOST:PORT [HINT]: die (with HINT) if something listens there.
need_free_port() {
  if port_in_use "${1##*:}"; then die "$1 is already in use${2:+; $2}"; fi
}

# --- processes in the background ----------------------------------------------
# True if process $1 exists and is not a zombie.
pid_alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ ${stat%% *} != Z ]]
}

# Background processes: the pid file holds the pid; the process must still
# run the expected executable (guards against reused pids and zombies).
# bg_pid PIDFILE EXE -> prints the pid if that process is alive.
bg_pid() {
  local pid exe
  [[ -f $1 ]] || return 1
  pid="$(<"$1")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  # A rebuilt binary shows up as "path (deleted)".
  [[ ${exe% (deleted)} == "$(readlink -f "$2")" ]] || return 1
  echo "$pid"
}

# bg_start PIDFILE LOGFILE CMD... : start CMD detached from this terminal;
# its pid is left in BG_PID.
bg_start() {
  local pidfile=$1 logfile=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  # setsid execs in place here, so $! is the pid of CMD itself. CMD does not
  # keep the scripts' lock files open (fds 8 and 9).
  setsid nohup "$@" >"$logfile" 2>&1 </dev/null 8>&- 9>&- &
  echo "$!" >"$pidfile"
  # shellcheck disable=SC2034  # read by callers
  BG_PID=$!
}

# bg_stop NAME PIDFILE EXE [TIMEOUT]: SIGTERM, wait, then SIGKILL.
bg_stop() {
  local name=$1 pidfile=$2 exe=$3 timeout=${4:-15} pid i
  if ! pid="$(bg_pid "$pidfile" "$exe")"; then
    rm -f "$pidfile"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    bg_pid "$pidfile" "$exe" >/dev/null || break
    sleep 0.1
  done
  if bg_pid "$pidfile" "$exe" >/dev/null; then
    warn "$name did not exit after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# --- health ------------------------------------------------------------------
# grpc_serving HOST:PORT [SERVICE]: the gRPC health check of SERVICE (default:
# the whole server) says SERVING.
grpc_serving() {
  local out
  # Without the tool every check would fail until the deadline: say why now.
  [[ -x $GRPCURL ]] || die "grpcurl not found at $GRPCURL: run scripts/install-deps.sh"
  out="$("$GRPCURL" -plaintext -max-time 2 -d "{\"service\":\"${2:-}\"}" "$1" grpc.health.v1.Health/Check 2>&1)" ||
    return 1
  [[ $out == *'"SERVING"'* ]]
}

# http_ok URL: a GET of URL answers 200.
http_ok() {
  [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1") == 200 ]]
}

# --- the stack's programs ----------------------------------------------------
# serve NAME HOST:PORT PIDFILE LOGFILE CHECK CMD...: starts CMD with bg_start,
# then waits up to SERVE_TIMEOUT seconds (default 30) until `CHECK HOST:PORT`
# succeeds. Dies, with the log's tail, if the port is taken, CMD exits or
# the time is up (then CMD is stopped). CMD's pid is left in BG_PID.
serve() {
  local name=$1 addr=$2 pidfile=$3 logfile=$4 check=$5 pid deadline
  shift 5
  need_free_port "$addr"
  log "starting $name on $addr"
  bg_start "$pidfile" "$logfile" "$@"
  pid=$BG_PID
  deadline=$(($(now_ms) + ${SERVE_TIMEOUT:-30} * 1000))
  until "$check" "$addr"; do
    if ! pid_alive "$pid"; then
      tail -n 30 "$logfile" >&2 || true
      die "$name exited during startup (log: $logfile)"
    fi
    if (($(now_ms) >= deadline)); then
      tail -n 30 "$logfile" >&2 || true
      bg_stop "$name" "$pidfile" "$1" 5
      die "$name not ready on $addr after ${SERVE_TIMEOUT:-30} s (log: $logfile)"
    fi
    sleep 0.1
  done
  BG_PID=$pid
}

_server_ready() { grpc_serving "$1"; }
_usermock_ready() { grpc_serving "$1" usermock.v1.UserMockAdmin; }
_gateway_ready() { http_ok "http://$1/healthz"; }

# --- local authentication -------------------------------------------------------
# Tokens of the local setup: a signing key made once per state folder, its
# JWKS (what the server trusts) and a token per role, valid a year, made with
# segments-token. Deployments use their identity provider instead.
TOKENS_DIR="${SEGMENTS_TOKENS_DIR:-$STATE/tokens}"
LOCAL_ISSUER=segments-local
AUTH_ROLES=(service support analyst admin)

# local_tokens TOKEN_BIN: makes what is missing in $TOKENS_DIR (and tokens
# older than 300 days again).
local_tokens() {
  local tool=$1 role
  mkdir -p "$TOKENS_DIR"
  if [[ ! -s $TOKENS_DIR/signing-key.jwk ]]; then
    "$tool" keygen --kid="local-$(date -u +%Y%m%d%H%M%S)" --out="$TOKENS_DIR/signing-key.jwk"
    "$tool" jwks "$TOKENS_DIR/signing-key.jwk" >"$TOKENS_DIR/jwks.json"
    rm -f "$TOKENS_DIR"/*.jwt
  fi
  find "$TOKENS_DIR" -name '*.jwt' -mtime +300 -delete
  for role in "${AUTH_ROLES[@]}"; do
    [[ -s $TOKENS_DIR/$role.jwt ]] && continue
    (umask 077 && "$tool" mint --key="$TOKENS_DIR/signing-key.jwk" --sub="local-$role" --role="$role" \
      --issuer="$LOCAL_ISSUER" --ttl=8760h >"$TOKENS_DIR/$role.jwt")
  done
}

# token_of ROLE: the local token of ROLE.
token_of() { cat "$TOKENS_DIR/$1.jwt"; }
# bearer_of ROLE: "authorization: Bearer <token>", for grpcurl -H and curl -H.
bearer_of() { printf 'authorization: Bearer %s' "$(token_of "$1")"; }

# has_flag BIN NAME: BIN's --help (stdout or stderr) lists the flag NAME
# (without dashes: -NAME in Go's help, --NAME in the server's). Binaries of
# older revisions, as benchmarks run, lack newer flags (metrics-listen).
# (Not `--help | grep -q`: under pipefail, grep leaving early fails the
# pipeline when the program is still writing.)
has_flag() {
  [[ $("$1" --help 2>&1) == *"-$2"[=[:space:]]* ]]
}

# need_test_env NAME...: each variable set (scripts/test.sh sets them for
# the tests), or die naming the first that is not.
need_test_env() {
  local name
  for name in "$@"; do
    [[ -n ${!name:-} ]] || die "$name is not set; run through scripts/test.sh"
  done
}

# start_server HOST:PORT PIDFILE LOGFILE BIN [FLAG...]: segments-server BIN
# listening on HOST:PORT, until its health check says SERVING. Unless FLAGs
# hold --auth=off, it trusts the local tokens (made first if missing, with
# the segments-token built beside BIN).
start_server() {
  local addr=$1 pidfile=$2 logfile=$3 bin=$4 auth=()
  shift 4
  # (Servers built before authentication existed, as benchmarks of old
  # revisions run, have no such flags.)
  # (Not `--help | grep -q`: under pipefail, grep leaving early fails the
  # pipeline when the server is still writing.)
  if [[ " $* " != *" --auth=off "* && $("$bin" --help) == *--auth-jwks-file* ]]; then
    local_tokens "$(dirname "$bin")/segments-token"
    auth=(--auth-jwks-file="$TOKENS_DIR/jwks.json" --auth-issuer="$LOCAL_ISSUER")
  fi
  serve segments-server "$addr" "$pidfile" "$logfile" _server_ready "$bin" --grpc-listen="$addr" "${auth[@]}" "$@"
}

# report_link_keys: the key that signs report links, made once per state
# folder and kept there, so links stay valid across restarts and every
# instance of a cluster accepts the links of the others. Deployments set
# SEGMENTS_REPORT_LINK_KEYS themselves.
report_link_keys() {
  local file="$STATE/report-link-keys"
  if [[ ! -s $file ]]; then
    mkdir -p "$STATE"
    (umask 077 && echo "local-$(date -u +%Y%m%d):$(head -c 48 /dev/urandom | base64 -w0)" >"$file")
  fi
  cat "$file"
}

# start_gateway HOST:PORT UPSTREAM PIDFILE LOGFILE BIN [FLAG...]: the REST
# gateway BIN on HOST:PORT in front of the server at UPSTREAM, until
# /healthz answers 200.
start_gateway() {
  local addr=$1 upstream=$2 pidfile=$3 logfile=$4 bin=$5
  shift 5
  serve segments-gateway "$addr" "$pidfile" "$logfile" _gateway_ready "$bin" --http-listen="$addr" \
    --upstream="$upstream" "$@"
}

# start_api_on_empty_db WORK DB_URL SERVER_BIN GATEWAY_BIN: for tests of the
# HTTP API: empties the database, then starts the server and the gateway on
# free loopback ports (pid files and logs in WORK, server.log and
# gateway.log), both stopped on exit. Sets GRPC_PORT and HTTP_PORT.
start_api_on_empty_db() {
  local work=$1 db_url=$2 server_bin=$3 gateway_bin=$4
  psql -X -q -v ON_ERROR_STOP=1 "$db_url" -c "TRUNCATE history, memberships, auto_opt_outs, segment_tasks, segments, users, idempotency_keys RESTART IDENTITY"
  read -r GRPC_PORT HTTP_PORT < <(free_ports 2)
  on_exit bg_stop segments-server "$work/server.pid" "$server_bin" 5
  start_server "127.0.0.1:$GRPC_PORT" "$work/server.pid" "$work/server.log" "$server_bin" --database-url="$db_url"
  on_exit bg_stop segments-gateway "$work/gateway.pid" "$gateway_bin" 5
  start_gateway "127.0.0.1:$HTTP_PORT" "127.0.0.1:$GRPC_PORT" "$work/gateway.pid" "$work/gateway.log" "$gateway_bin"
}

# start_usermock HOST:PORT PIDFILE LOGFILE BIN [FLAG...]: the user-service
# mock BIN on HOST:PORT, until its admin service says SERVING.
start_usermock() {
  local addr=$1 pidfile=$2 logfile=$3 bin=$4
  shift 4
  serve segments-usermock "$addr" "$pidfile" "$logfile" _usermock_ready "$bin" --grpc-listen="$addr" "$@"
}

# --- PostgreSQL and Kafka ------------------------------------------------------
# pg_ensure_started: the PostgreSQL cluster of $STATE running; if this call
# started it, it is stopped on exit.
pg_ensure_started() {
  "$ROOT/scripts/pg.sh" status >/dev/null && return 0
  "$ROOT/scripts/pg.sh" start
  on_exit "$ROOT/scripts/pg.sh" stop
}

# kafka_ensure_started: the Kafka broker of $STATE running, its address in
# KAFKA_BROKERS; if this call started it, it is stopped on exit.
kafka_ensure_started() {
  if ! "$ROOT/scripts/kafka.sh" status >/dev/null; then
    "$ROOT/scripts/kafka.sh" start >/dev/null
    on_exit "$ROOT/scripts/kafka.sh" stop
  fi
  # shellcheck disable=SC2034  # read by callers
  KAFKA_BROKERS="$("$ROOT/scripts/kafka.sh" bootstrap)"
}
