# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it, don't run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SEGMENTS_STATE_DIR:-$ROOT/.state}"
[[ $STATE == /* ]] || STATE="$PWD/$STATE"
TOOLS_BIN="$ROOT/.tools/bin"
export ROOT STATE TOOLS_BIN

# Log prefix: the calling script's name without .sh.
_TAG="$(basename "$0" .sh)"
log() { printf '[%s] %s\n' "$_TAG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$_TAG" "$*" >&2; exit 1; }

# Run a command as root (directly if we already are).
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print a random free port in 15000-31999 (below Linux's ephemeral range).
free_port() {
  local p _
  for _ in {1..100}; do
    p=$((15000 + RANDOM % 17000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free TCP port found"
}

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
  # setsid execs in place here, so $! is the pid of CMD itself.
  setsid nohup "$@" >"$logfile" 2>&1 </dev/null &
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
