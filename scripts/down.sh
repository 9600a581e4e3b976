#!/usr/bin/env bash
# Stop what scripts/up.sh started (newest first). Data is kept.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Mirror of COMPONENTS in up.sh, in stop order.
COMPONENTS=(prometheus gateway server usermock kafka db)

stop_prometheus() {
  "$ROOT/scripts/prometheus.sh" stop
}

stop_gateway() {
  bg_stop gateway "$STATE/gateway.pid" "$ROOT/build/release/gateway/segments-gateway" 15
}

stop_server() {
  bg_stop server "$STATE/server.pid" "$ROOT/build/release/server/segments-server" 15
}

stop_usermock() {
  bg_stop usermock "$STATE/usermock.pid" "$ROOT/build/release/usermock/segments-usermock" 15
}

stop_kafka() {
  "$ROOT/scripts/kafka.sh" stop
}

stop_db() {
  "$ROOT/scripts/pg.sh" stop
}

for c in "${COMPONENTS[@]}"; do
  "stop_$c"
done
log "stopped"
