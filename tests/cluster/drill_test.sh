#!/usr/bin/env bash
# The fault drill, short variant (scripts/cluster.sh drill --short), on a
# cluster of its own: its own state folder and free ports, stopped and
# deleted afterwards. Passes only if every invariant held.
# Usage: drill_test.sh BIN_DIR   (the build: BIN_DIR/server/segments-server...)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
[[ $# -eq 1 ]] || die "usage: $0 BIN_DIR"

SEGMENTS_STATE_DIR="$(mktemp -d /tmp/segments-drill.XXXXXX)"
SEGMENTS_CLUSTER_BIN_DIR=$1
export SEGMENTS_STATE_DIR SEGMENTS_CLUSTER_BIN_DIR
chmod 755 "$SEGMENTS_STATE_DIR" # PostgreSQL runs as postgres in there

# On failure, the logs' tails before they go.
show_logs() {
  local f
  for f in "$SEGMENTS_STATE_DIR"/cluster/log/*.log "$SEGMENTS_STATE_DIR"/cluster/drill/*/load.log; do
    [[ -f $f ]] || continue
    printf '\n--- %s\n' "$f" >&2
    tail -n 15 "$f" >&2
  done
}

on_exit rm -rf "$SEGMENTS_STATE_DIR"
on_exit "$ROOT/scripts/cluster.sh" down
"$ROOT/scripts/cluster.sh" drill --short || { show_logs; exit 1; }
