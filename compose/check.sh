#!/usr/bin/env bash
# Checks compose/ without a Docker engine: the compose files (compose.yaml,
# the single-node stack, and cluster/compose.yaml, the cluster) are valid
# (`docker-compose config -q`, Debian's docker-compose 1.29), and each
# Dockerfile (compose/*.Dockerfile, compose/cluster/*.Dockerfile) passes a
# light lint:
#   - every FROM names an explicit tag (or digest), never `latest`;
#   - the final stage sets USER to a non-root user, and has a HEALTHCHECK and
#     an ENTRYPOINT;
#   - ARG versions of the protoc plugins equal scripts/install-deps.sh's;
#   - each `COPY <path>` from the build context names something that exists.
# And in each compose file: every service has a restart policy, every one but
# the one-shots (restart: "no") a health check, every depends_on a condition,
# every image a tag other than latest, every bind mount of a repository file
# one that exists (Docker would mount a missing one as an empty directory;
# compose/tokens/ is made by the tokens service, so it is not required), and
# every host:port in an environment value names a service of the file.
# The cluster's own files: HAProxy accepts cluster/haproxy.cfg (`haproxy -c`,
# Debian's 2.6; the container names it balances do not resolve here, which
# is allowed), its servers and Patroni's etcd hosts are services of the
# file, the command of its external check is in the HAProxy image, and
# cluster/patroni.yml keeps the rules a failover without lost writes needs.
# Nothing is built or run.
# Usage: compose/check.sh   (exit status 0: all good; 1: problems, listed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
COMPOSE_FILES=("$HERE/compose.yaml" "$HERE/cluster/compose.yaml")
CLUSTER="$HERE/cluster"
problems=0

problem() {
  printf 'compose/check.sh: %s\n' "$*" >&2
  problems=$((problems + 1))
}

# rel PATH: PATH relative to the repository root, for messages.
rel() { printf '%s' "${1#"$ROOT"/}"; }

# --- the compose files -----------------------------------------------------------
# check_compose_file FILE: docker-compose accepts FILE without a warning, and
# its services follow the rules above.
check_compose_file() {
  local file=$1 name out rules
  name="$(rel "$file")"
  # An empty environment, so that only the file's own defaults are checked;
  # a scratch HOME, so that no user configuration is read; the file's folder
  # as the project folder, as `docker compose -f FILE` would have it.
  if ! out="$(cd "$(dirname "$file")" && env -i PATH="$PATH" HOME="$tmp_home" \
    docker-compose --project-directory "$(dirname "$file")" -f "$file" config -q 2>&1)"; then
    problem "docker-compose config rejects $name:"$'\n'"$out"
    return
  fi
  [[ -z $out ]] || problem "docker-compose config warns about $name:"$'\n'"$out"
  # Rules on the file as written (docker-compose config would turn a plain
  # depends_on list into service_started conditions): long-running services
  # have a health check; one-shots say restart: "no"; every depends_on
  # entry names its condition. python3 and its yaml module come with
  # Debian's docker-compose. YAML merge keys (<<: *anchor) are resolved.
  if ! rules="$(python3 - "$file" "$HERE/tokens" <<'PY'
import os, re, sys, yaml
path, tokens = sys.argv[1], sys.argv[2]
services = (yaml.safe_load(open(path)) or {}).get("services") or {}
# host:port after the start of a value, a "/", "@", ",", "=" or a space;
# hosts starting with a digit are addresses, not names.
HOST_PORT = re.compile(r"(?:^|[/@,=\s])([A-Za-z][A-Za-z0-9.-]*):(\d{2,5})(?!\d)")
for name, svc in services.items():
    svc = svc or {}
    if "restart" not in svc:
        print(f"service {name}: no restart policy")
    if str(svc.get("restart")) != "no" and "healthcheck" not in svc:
        print(f'service {name}: no healthcheck (only one-shots with restart: "no" may skip it)')
    for vol in svc.get("volumes") or []:
        src = vol.get("source", "") if isinstance(vol, dict) else str(vol).split(":")[0]
        if src.startswith("./") or src.startswith("../"):
            full = os.path.normpath(os.path.join(os.path.dirname(path), src))
            if full == tokens or full.startswith(tokens + os.sep):
                continue  # made by the tokens service
            if not os.path.exists(full):
                print(f"service {name}: mounts {src}, which does not exist")
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        print(f"service {name}: depends_on {deps} without conditions")
    else:
        for dep, spec in deps.items():
            if not (spec or {}).get("condition"):
                print(f"service {name}: depends_on {dep} without a condition")
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    for key, value in env.items():
        for host, _ in HOST_PORT.findall(str(value or "")):
            if host != "localhost" and host not in services:
                print(f"service {name}: {key} names {host}, which is not a service")
PY
  )"; then
    problem "checking the services of $name failed"
  fi
  while read -r line; do
    [[ -z $line ]] || problem "$name: $line"
  done <<<"$rules"
}

if ! command -v docker-compose >/dev/null; then
  problem "docker-compose not found (Debian: apt-get install docker-compose)"
else
  tmp_home="$(mktemp -d)"
  trap 'rm -rf "$tmp_home"' EXIT
  for file in "${COMPOSE_FILES[@]}"; do
    check_compose_file "$file"
  done
fi

# --- the Dockerfiles -------------------------------------------------------------
# install-deps.sh's pinned versions, by variable name.
declare -A pinned=()
while IFS='=' read -r name value; do
  pinned[$name]=$value
done < <(grep -E '^[A-Z_]+_VERSION=' "$ROOT/scripts/install-deps.sh")

shopt -s nullglob
dockerfiles=("$HERE"/*.Dockerfile "$CLUSTER"/*.Dockerfile)
((${#dockerfiles[@]})) || problem "no Dockerfiles in $HERE"
for df in "${dockerfiles[@]}"; do
  name="$(rel "$df")"
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

# Images in the compose files: a tag, not latest (the stack's own builds are
# tagged :dev).
for file in "${COMPOSE_FILES[@]}"; do
  while read -r image; do
    if [[ ${image##*/} != *:* ]]; then
      problem "$(rel "$file"): image $image has no tag"
    elif [[ ${image##*:} == latest ]]; then
      problem "$(rel "$file"): image $image uses latest"
    fi
  done < <(sed -n 's/^[[:space:]]*image:[[:space:]]*//p' "$file" | tr -d '"'"'" | sort -u)
done

# --- the cluster's HAProxy and Patroni configuration -------------------------------
# HAProxy's own check. The servers' names resolve only inside Docker; with
# init-addr none they start down instead of failing, which `haproxy -c`
# reports as a warning: only other warnings are problems.
if ! command -v haproxy >/dev/null; then
  problem "haproxy not found (Debian: apt-get install haproxy, or scripts/install-deps.sh --tests)"
elif ! out="$(haproxy -c -f "$CLUSTER/haproxy.cfg" 2>&1)"; then
  problem "haproxy -c rejects $(rel "$CLUSTER/haproxy.cfg"):"$'\n'"$out"
else
  while read -r line; do
    if [[ $line == *WARNING* && $line != *"could not resolve address"* ]]; then
      problem "haproxy -c warns about $(rel "$CLUSTER/haproxy.cfg"): $line"
    fi
  done <<<"$out"
fi

# What the compose file cannot say: the names in haproxy.cfg and
# patroni.yml are its services; the external check's command is copied into
# the HAProxy image; Patroni's timing rule (loop_wait + 2 * retry_timeout <=
# ttl) holds; synchronous mode is on (only a replica with every acknowledged
# commit may be promoted); use_pg_rewind has what pg_rewind needs
# (wal_log_hints or data checksums).
if ! rules="$(python3 - "$CLUSTER" <<'PY'
import os, re, sys, yaml
d = sys.argv[1]
services = yaml.safe_load(open(os.path.join(d, "compose.yaml")))["services"]
cfg = open(os.path.join(d, "haproxy.cfg")).read()
for m in re.finditer(r"^\s*server\s+(\S+)\s+([^\s:]+):(\d+)", cfg, re.M):
    if m.group(2) not in services:
        print(f"haproxy.cfg: server {m.group(1)} is at {m.group(2)}, which is not a service")
dockerfile = open(os.path.join(d, "haproxy.Dockerfile")).read()
for cmd in re.findall(r"^\s*external-check\s+command\s+(\S+)", cfg, re.M):
    if not re.search(r"^COPY\s.*\s" + re.escape(cmd) + r"\s*$", dockerfile, re.M):
        print(f"haproxy.cfg: external-check command {cmd} is not copied by haproxy.Dockerfile")
p = yaml.safe_load(open(os.path.join(d, "patroni.yml")))
for hp in str(p["etcd3"]["hosts"]).split(","):
    if hp.strip().split(":")[0] not in services:
        print(f"patroni.yml: etcd3 host {hp.strip()} is not a service")
dcs = p["bootstrap"]["dcs"]
ttl, loop_wait, retry = dcs.get("ttl", 30), dcs.get("loop_wait", 10), dcs.get("retry_timeout", 10)
if loop_wait + 2 * retry > ttl:
    print(f"patroni.yml: loop_wait + 2 * retry_timeout = {loop_wait + 2 * retry} exceeds ttl = {ttl}")
if dcs.get("synchronous_mode") is not True:
    print("patroni.yml: synchronous_mode is not true (a failover could lose acknowledged writes)")
pg = dcs.get("postgresql") or {}
if pg.get("use_pg_rewind"):
    hints = str((pg.get("parameters") or {}).get("wal_log_hints", "")).lower() in ("on", "true", "1")
    checksums = "data-checksums" in (p["bootstrap"].get("initdb") or [])
    if not (hints or checksums):
        print("patroni.yml: use_pg_rewind without wal_log_hints or data checksums")
PY
)"; then
  problem "checking compose/cluster's configuration failed"
fi
while read -r line; do
  [[ -z $line ]] || problem "compose/cluster/$line"
done <<<"$rules"

if ((problems)); then
  echo "compose/check.sh: $problems problem(s)" >&2
  exit 1
fi
echo "compose/check.sh: ok (${#COMPOSE_FILES[@]} compose files valid, ${#dockerfiles[@]} Dockerfiles linted, haproxy.cfg and patroni.yml checked)"
