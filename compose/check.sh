#!/usr/bin/env bash
# Checks compose/ without a Docker engine: the compose file is valid
# (`docker-compose config -q`, Debian's docker-compose 1.29), and each
# Dockerfile passes a light lint:
#   - every FROM names an explicit tag (or digest), never `latest`;
#   - the final stage sets USER to a non-root user, and has a HEALTHCHECK and
#     an ENTRYPOINT;
#   - ARG versions of the protoc plugins equal scripts/install-deps.sh's;
#   - each `COPY <path>` from the build context names something that exists.
# And in the compose file: every service has a restart policy, every one but
# the one-shots (restart: "no") a health check, every depends_on a condition,
# every image a tag other than latest, every bind mount of a repository file
# outside compose/ (../db, ../deploy) one that exists (Docker would mount a
# missing one as an empty directory). Nothing is built or run.
# Usage: compose/check.sh   (exit status 0: all good; 1: problems, listed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
COMPOSE_FILE="$HERE/compose.yaml"
problems=0

problem() {
  printf 'compose/check.sh: %s\n' "$*" >&2
  problems=$((problems + 1))
}

# --- the compose file ----------------------------------------------------------
if ! command -v docker-compose >/dev/null; then
  problem "docker-compose not found (Debian: apt-get install docker-compose)"
else
  # An empty environment, so that only the file's own defaults are checked;
  # a scratch HOME, so that no user configuration is read.
  tmp_home="$(mktemp -d)"
  trap 'rm -rf "$tmp_home"' EXIT
  if ! out="$(cd "$HERE" && env -i PATH="$PATH" HOME="$tmp_home" \
    docker-compose --project-directory "$HERE" -f "$COMPOSE_FILE" config -q 2>&1)"; then
    problem "docker-compose config rejects $COMPOSE_FILE:"$'\n'"$out"
  else
    [[ -z $out ]] || problem "docker-compose config warns about $COMPOSE_FILE:"$'\n'"$out"
    # Rules on the file as written (docker-compose config would turn a plain
    # depends_on list into service_started conditions): long-running services
    # have a health check; one-shots say restart: "no"; every depends_on
    # entry names its condition. python3 and its yaml module come with
    # Debian's docker-compose.
    if ! rules="$(python3 - "$COMPOSE_FILE" <<'PY'
import os, sys, yaml
services = (yaml.safe_load(open(sys.argv[1])) or {}).get("services") or {}
for name, svc in services.items():
    svc = svc or {}
    if "restart" not in svc:
        print(f"service {name}: no restart policy")
    if str(svc.get("restart")) != "no" and "healthcheck" not in svc:
        print(f'service {name}: no healthcheck (only one-shots with restart: "no" may skip it)')
    for vol in svc.get("volumes") or []:
        src = vol.get("source", "") if isinstance(vol, dict) else str(vol).split(":")[0]
        if src.startswith("../"):
            path = os.path.normpath(os.path.join(os.path.dirname(sys.argv[1]), src))
            if not os.path.exists(path):
                print(f"service {name}: mounts {src}, which does not exist")
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        print(f"service {name}: depends_on {deps} without conditions")
    else:
        for dep, spec in deps.items():
            if not (spec or {}).get("condition"):
                print(f"service {name}: depends_on {dep} without a condition")
PY
    )"; then
      problem "checking the services of $COMPOSE_FILE failed"
    fi
    while read -r line; do
      [[ -z $line ]] || problem "$line"
    done <<<"$rules"
  fi
fi

# --- the Dockerfiles -------------------------------------------------------------
# install-deps.sh's pinned versions, by variable name.
declare -A pinned=()
while IFS='=' read -r name value; do
  pinned[$name]=$value
done < <(grep -E '^[A-Z_]+_VERSION=' "$ROOT/scripts/install-deps.sh")

shopt -s nullglob
dockerfiles=("$HERE"/*.Dockerfile)
((${#dockerfiles[@]})) || problem "no Dockerfiles in $HERE"
for df in "${dockerfiles[@]}"; do
  name="compose/$(basename "$df")"
  # Logical lines: continuation backslashes joined, comments dropped.
  mapfile -t lines < <(sed -e 's/\r$//' "$df" | awk '
    /^[[:space:]]*#/ { next }
    { line = line $0 }
    /\\$/ { sub(/\\$/, "", line); next }
    { print line; line = "" }
    END { if (line != "") print line }
  ')
  stages=() last_user="" last_health=0 last_entry=0
  for line in "${lines[@]}"; do
    read -r instr rest <<<"$line" || true
    instr=${instr^^}
    case $instr in
      FROM)
        # FROM [--platform=...] image [AS name]
        read -ra words <<<"$rest"
        image=${words[0]}
        [[ $image == --* ]] && image=${words[1]}
        stage_alias=""
        for ((i = 0; i < ${#words[@]}; i++)); do
          [[ ${words[i]^^} == AS ]] && stage_alias=${words[i + 1]:-}
        done
        if [[ " ${stages[*]} " == *" $image "* ]]; then
          : # FROM an earlier stage
        elif [[ $image == *@sha256:* ]]; then
          : # pinned by digest
        elif [[ ${image##*/} != *:* ]]; then
          problem "$name: FROM $image has no tag"
        elif [[ ${image##*:} == latest ]]; then
          problem "$name: FROM $image uses latest"
        fi
        [[ -n $stage_alias ]] && stages+=("$stage_alias")
        last_user="" last_health=0 last_entry=0
        ;;
      USER) last_user=${rest%% *} ;;
      HEALTHCHECK) [[ ${rest^^} == NONE* ]] || last_health=1 ;;
      ENTRYPOINT) last_entry=1 ;;
      ARG)
        var=${rest%%=*}
        if [[ -n ${pinned[$var]:-} && $rest == *=* && ${rest#*=} != "${pinned[$var]}" ]]; then
          problem "$name: ARG $rest, but scripts/install-deps.sh has $var=${pinned[$var]}"
        fi
        ;;
      COPY | ADD)
        [[ $rest == *--from=* ]] && continue
        read -ra words <<<"$rest"
        srcs=()
        for w in "${words[@]}"; do [[ $w == --* ]] || srcs+=("$w"); done
        unset 'srcs[${#srcs[@]}-1]' # the destination
        for src in "${srcs[@]}"; do
          # shellcheck disable=SC2206  # glob on purpose
          matches=("$ROOT"/$src)
          if ((${#matches[@]} == 0)) || [[ ! -e ${matches[0]} ]]; then
            problem "$name: COPY source $src does not exist in the repository"
          fi
        done
        ;;
    esac
  done
  if [[ -z $last_user ]]; then
    problem "$name: the final stage sets no USER (it would run as root)"
  elif [[ $last_user =~ ^(root|0)(:.*)?$ ]]; then
    problem "$name: the final stage runs as $last_user"
  fi
  ((last_health)) || problem "$name: the final stage has no HEALTHCHECK"
  ((last_entry)) || problem "$name: the final stage has no ENTRYPOINT"
done

# Images in the compose file: a tag, not latest (the stack's own builds are
# tagged :dev).
while read -r image; do
  if [[ ${image##*/} != *:* ]]; then
    problem "compose.yaml: image $image has no tag"
  elif [[ ${image##*:} == latest ]]; then
    problem "compose.yaml: image $image uses latest"
  fi
done < <(sed -n 's/^[[:space:]]*image:[[:space:]]*//p' "$COMPOSE_FILE" | tr -d '"'"'" | sort -u)

if ((problems)); then
  echo "compose/check.sh: $problems problem(s)" >&2
  exit 1
fi
echo "compose/check.sh: ok (compose file valid, ${#dockerfiles[@]} Dockerfiles linted)"
