#!/usr/bin/env bash
# Holds the server to the OpenAPI document the gateway serves: schemathesis
# (pinned in schemathesis-requirements.txt) reads /swagger/doc.json from a
# real gateway in front of a real server on a fresh test database, and sends
# what the document calls valid and invalid requests, in every phase
# (examples, coverage, fuzzing, and stateful scenarios along the document's
# links), with every check. Configuration: schemathesis.toml; the rules JSON
# Schema cannot state and the false positives dropped, each with its reason:
# schemathesis_hooks.py. docs/openapi.md says how to run it alone.
#
# Usage: schemathesis.sh SERVER_BIN GATEWAY_BIN   (needs SEGMENTS_TEST_DATABASE_URL)
# Environment: SCHEMATHESIS_SEED, SCHEMATHESIS_MAX_EXAMPLES override the
# configuration's; SCHEMATHESIS_ARGS adds arguments to `st run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

server_bin=${1:?server binary}
gateway_bin=${2:?gateway binary}
db_url=${SEGMENTS_TEST_DATABASE_URL:?set by scripts/test.sh}
here="$ROOT/tests/e2e"
requirements="$here/schemathesis-requirements.txt"

# The virtualenv, made with Debian's Python (python3-venv, installed by
# scripts/install-deps.sh --tests) and kept in the state directory: made
# again only when the pinned requirements change.
venv="$STATE/venv/schemathesis"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x $venv/bin/st || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "making the schemathesis virtualenv in $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" ||
    die "cannot make a virtualenv with /usr/bin/python3: run scripts/install-deps.sh --tests (python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --requirement "$requirements"
  echo "$want" >"$stamp"
fi

work="$(mktemp -d)"
on_exit rm -rf "$work"
start_api_on_empty_db "$work" "$db_url" "$server_bin" "$gateway_bin"

base="http://127.0.0.1:$HTTP_PORT"
# Every request carries the admin token (the document declares the bearer
# scheme; the ignored_auth check also sends requests without it).
args=(--checks all -H "Authorization: Bearer $(token_of admin)")
[[ -n ${SCHEMATHESIS_SEED:-} ]] && args+=(--seed "$SCHEMATHESIS_SEED")
[[ -n ${SCHEMATHESIS_MAX_EXAMPLES:-} ]] && args+=(--max-examples "$SCHEMATHESIS_MAX_EXAMPLES")
# shellcheck disable=SC2206  # word splitting is the point
[[ -n ${SCHEMATHESIS_ARGS:-} ]] && args+=($SCHEMATHESIS_ARGS)

log "schemathesis $("$venv/bin/st" --version | awk '{print $NF}') against $base/swagger/doc.json"
rc=0
(cd "$work" && SCHEMATHESIS_HOOKS="$here/schemathesis_hooks.py" \
  "$venv/bin/st" --config-file "$here/schemathesis.toml" run "$base/swagger/doc.json" --url "$base" "${args[@]}") ||
  rc=$?
if ((rc != 0)); then
  tail -n 20 "$work/server.log" "$work/gateway.log" >&2 || true
  die "schemathesis found failures (exit $rc)"
fi
log "no failures"
