# shellcheck shell=bash
# Helpers of the benchmark runners only, on top of scripts/lib.sh (sourced
# here; what tests and scripts share lives there, not here).
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

CLK_TCK="$(getconf CLK_TCK)"

# cpu_ticks: busy and stolen CPU ticks of the whole machine so far.
cpu_ticks() {
  local _ user nice system irq softirq steal
  read -r _ user nice system _ _ irq softirq steal _ </proc/stat  # cpu user nice system idle iowait irq softirq steal
  echo "$((user + nice + system + irq + softirq)) $steal"
}

# print_machine: date, host and how busy the machine is right now, with a
# warning when something else is using the CPUs.
print_machine() {
  echo "date:  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host:  $(uname -srm), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
  echo "load:  $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
  # The load average trails by minutes; what runs right now is a better hint.
  local b0 b1 busy_pct
  read -r b0 _ < <(cpu_ticks)
  sleep 1
  read -r b1 _ < <(cpu_ticks)
  busy_pct=$(((b1 - b0) * 100 / CLK_TCK / $(nproc)))
  echo "busy:  ${busy_pct}% of the CPUs over the last second"
  if ((busy_pct > 25)); then
    warn "something else is using the CPUs: expect noisy results (see the 'other' column)"
  fi
}

# bench_token ROLE: the bench clients' calls carry ROLE's local token (made
# by start_server); see bench/bearer_token.h.
bench_token() { export SEGMENTS_BENCH_TOKEN_FILE="$TOKENS_DIR/$1.jwt"; }

# own_state DIR WHO: the runner's own cluster, logs and results: STATE and
# SEGMENTS_STATE_DIR (exported, for scripts/pg.sh) are $SEGMENTS_STATE_DIR,
# default $ROOT/DIR; never the shared $ROOT/.state (the test suite restarts
# that one): then it dies, naming WHO.
own_state() {
  if [[ -z ${SEGMENTS_STATE_DIR:-} ]]; then SEGMENTS_STATE_DIR="$ROOT/$1" STATE="$ROOT/$1"; fi
  export SEGMENTS_STATE_DIR STATE
  TOKENS_DIR="${SEGMENTS_TOKENS_DIR:-$STATE/tokens}"
  bench_token admin
  [[ $(realpath -m "$STATE") != "$(realpath -m "$ROOT/.state")" ]] ||
    die "SEGMENTS_STATE_DIR is the shared $ROOT/.state: give $2 a directory of its own"
}

# build_flag ARG: the build flags of the runners that use bench_paths and
# build_binaries (--no-build, --rev=REV, --build-dir=DIR, --server-bin=PATH):
# sets build, rev, build_dir or server_bin; false if ARG is none of them.
# shellcheck disable=SC2034  # read by the runners
build_flag() {
  case $1 in
    --no-build) build=0 ;;
    --rev=*) rev=${1#*=} ;;
    --build-dir=*) build_dir=${1#*=} ;;
    --server-bin=*) server_bin=${1#*=} ;;
    *) return 1 ;;
  esac
}

# load_flag ARG: the load flags of run_grpc_bench.sh and run_http_bench.sh
# (--duration=DUR, --warmup=DUR, --concurrency=N): sets duration, warmup or
# concurrency; false if ARG is none of them.
# shellcheck disable=SC2034  # read by the runners
load_flag() {
  case $1 in
    --duration=*) duration=${1#*=} ;;
    --warmup=*) warmup=${1#*=} ;;
    --concurrency=*) concurrency=${1#*=} ;;
    *) return 1 ;;
  esac
}

now_ns() { date +%s%N; }
# secs_since T0_NS: seconds since T0_NS (from now_ns), one decimal.
secs_since() { awk -v ns=$(($(now_ns) - $1)) 'BEGIN { printf "%.1f", ns / 1e9 }'; }

# --- build -------------------------------------------------------------------
# bench_paths REV BUILD_DIR SERVER_BIN_FLAG: sets SRC (the sources built: the
# working tree, or with REV the export BUILD_DIR/src), BIN (the build
# directory: BUILD_DIR/tree or BUILD_DIR/rev) and SERVER_BIN (absolute;
# SERVER_BIN_FLAG if given, else the built one).
bench_paths() {
  if [[ -n $1 ]]; then SRC="$2/src" BIN="$2/rev"; else SRC="$ROOT" BIN="$2/tree"; fi
  SERVER_BIN="${3:-$BIN/server/segments-server}"
  [[ $SERVER_BIN == /* ]] || SERVER_BIN="$PWD/$SERVER_BIN"
}

# export_rev REV DEST: the files of git REV in DEST, with bench/ from the
# working tree; DEST/.bench-rev holds the commit.
export_rev() {
  local rev=$1 dest=$2 sha stage f
  sha="$(git -C "$ROOT" rev-parse --verify "$rev^{commit}")" || die "no such revision: $rev"
  log "exporting $rev ($sha) to $dest, with bench/ from the working tree"
  stage="$(dirname "$dest")/stage"
  rm -rf "$stage"
  mkdir -p "$stage"
  git -C "$ROOT" archive "$sha" | tar -x -C "$stage"
  rm -rf "$stage/bench"
  cp -a "$ROOT/bench" "$stage/bench"
  # A file the same as in the last export keeps that export's mtime, any
  # other gets the current time: the build directory then rebuilds exactly
  # what differs from the last build, whichever revision that was (a
  # commit's time as mtime would not, as objects built from an older
  # commit can be newer than it).
  while IFS= read -r -d '' f; do
    if [[ -f $dest/$f ]] && cmp -s "$stage/$f" "$dest/$f"; then touch -r "$dest/$f" "$stage/$f"; else touch "$stage/$f"; fi
  done < <(cd "$stage" && find . -type f -print0)
  rm -rf "$dest"
  mv "$stage" "$dest"
  # Pinned code generators, and the ignored Swagger UI assets (otherwise
  # generate.sh fetches them with npm).
  ln -s "$ROOT/.tools" "$dest/.tools"
  if [[ -d $ROOT/gateway/internal/swagger/ui ]]; then
    cp -a "$ROOT/gateway/internal/swagger/ui" "$dest/gateway/internal/swagger/ui"
  fi
  echo "$sha" >"$dest/.bench-rev"
}

# build_binaries REV TARGET...: with REV, export it to $SRC first; then
# configure $SRC in $BIN (RelWithDebInfo) and build the TARGETs; the log
# in $OUT/build.log.
build_binaries() {
  local rev=$1
  shift
  [[ -n $rev ]] && export_rev "$rev" "$SRC"
  # Revisions from before authentication have no token tool (and need none).
  if [[ ! -f $SRC/server/tools/segments_token.cc ]]; then
    local targets=() target
    for target in "$@"; do [[ $target == segments-token ]] || targets+=("$target"); done
    set -- "${targets[@]}"
  fi
  local args=(-G Ninja -S "$SRC" -B "$BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEGMENTS_WERROR=ON)
  if command -v ccache >/dev/null; then
    args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  log "building $(printf '%s, ' "$@" | sed 's/, $//') in $BIN (RelWithDebInfo)"
  cmake "${args[@]}" >"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "cmake failed"; }
  cmake --build "$BIN" -j "$(nproc)" --target "$@" \
    >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; die "build failed (log: $OUT/build.log)"; }
}

# need_binaries BIN...: die unless every BIN is there (built, or --no-build).
need_binaries() {
  local bin
  for bin in "$@"; do
    [[ -x $bin ]] || die "missing $bin: run without --no-build"
  done
}

# print_code REV PATH...: which code runs: the exported commit (REV), or the
# working tree's HEAD and whether PATHs have uncommitted changes.
print_code() {
  local rev=$1
  shift
  if [[ -n $rev ]]; then echo "code:  $(<"$SRC/.bench-rev") (--rev=$rev)"; else
    echo "code:  working tree at $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- "$@" ||
      echo " + uncommitted changes to $(printf '%s/ ' "$@")(diff sha256 $(git -C "$ROOT" diff HEAD -- "$@" | sha256sum | cut -c1-12))")"
  fi
}

# --- probes ------------------------------------------------------------------
# proc_ticks PID: CPU ticks (user+system) of one process; 0 if it is gone.
proc_ticks() {
  local stat f
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  stat=${stat##*) }  # fields after "(comm) "; utime and stime are the 12th and 13th
  read -r -a f <<<"$stat"
  echo $((f[11] + f[12]))
}
# pg_ticks: CPU ticks of our PostgreSQL cluster: the postmaster, its children,
# and its children that exited meanwhile (e.g. psql's backends: the
# postmaster's cutime and cstime).
pg_ticks() {
  local total stat f pid postmaster
  postmaster="$(head -n 1 "$STATE/pg/data/postmaster.pid" 2>/dev/null)" || { echo 0; return; }
  stat="$(cat "/proc/$postmaster/stat" 2>/dev/null)" || { echo 0; return; }
  stat=${stat##*) }
  read -r -a f <<<"$stat"
  total=$((f[11] + f[12] + f[13] + f[14]))
  for pid in $(pgrep -P "$postmaster" || true); do
    total=$((total + $(proc_ticks "$pid")))
  done
  echo "$total"
}
# wait_for_idle SECONDS: waits up to SECONDS for a half second with the
# machine < 10% busy.
wait_for_idle() {
  local deadline=$((SECONDS + $1)) b0 b1
  while ((SECONDS < deadline)); do
    read -r b0 _ < <(cpu_ticks)
    sleep 0.5
    read -r b1 _ < <(cpu_ticks)
    (((b1 - b0) * 200 < CLK_TCK * $(nproc) * 10)) && return 0
  done
  warn "the machine did not become idle within $1s; measuring anyway"
}

# --- the membership read model -------------------------------------------------
READ_MODEL_HEALTH=segmentation.v1.MembershipReadModel

# wait_read_model HOST:PORT LOGFILE SECONDS: waits until the server's log
# says the read model loaded everything and its health service says SERVING
# (reads come from memory from then on); dies after SECONDS. The log first,
# so that the polling (a grpcurl process each time) does not compete with
# the load for the CPUs.
wait_read_model() {
  local addr=$1 logfile=$2 deadline=$((SECONDS + $3))
  until grep -q 'membership read model loaded' "$logfile" 2>/dev/null; do
    ((SECONDS < deadline)) || die "the read model did not load within $3 s (log: $logfile)"
    sleep 0.05
  done
  until grpc_serving "$addr" "$READ_MODEL_HEALTH"; do
    ((SECONDS < deadline)) || die "$READ_MODEL_HEALTH not SERVING within $3 s (log: $logfile)"
    sleep 0.05
  done
}

# read_model_loaded LOGFILE: the log's line saying what the read model
# loaded and in how long, without its timestamp.
read_model_loaded() {
  grep -m1 -o 'membership read model loaded.*' "$1" 2>/dev/null || echo "(no load line in $1)"
}

# By default the clients call as admin; runners that own a state folder set
# it again there (own_state), and may pick another role per run.
bench_token admin
