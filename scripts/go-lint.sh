#!/usr/bin/env bash
# gofmt and go vet over our Go modules (generated code excluded from gofmt).
# Run by ctest as go_lint (label lint), after a build: vet type-checks the
# generated code too, and the events probe imports the mock's.
# Usage: go-lint.sh [MODULE_DIR...]   (default: gateway usermock bench/events_probe
#   compose/healthprobe tests/cluster/drill)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($#)) || set -- gateway usermock bench/events_probe compose/healthprobe tests/cluster/drill
failed=0
for module in "$@"; do
  cd "$ROOT/$module"
  mapfile -t files < <(find . -name '*.go' -not -path './gen/*')
  unformatted="$(gofmt -l "${files[@]}")"
  if [[ -n $unformatted ]]; then
    warn "$module: gofmt needed: $unformatted"
    failed=1
  fi
  go vet ./... || { warn "$module: go vet failed"; failed=1; }
done
((failed == 0)) || die "lint failed"
log "ok: $*"
