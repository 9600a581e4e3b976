#!/usr/bin/env bash
# Keeps the documented HTTP examples true: runs every "$ curl ..." line of the
# "Examples" section of docs/http-api.md (its ### subsections included), in
# order, against a fresh database through the real server and the real
# gateway, and compares each output with the lines printed under it there.
# In those lines a placeholder such as <time> or <signature> (lowercase
# letters and dashes in angle brackets) stands for any text that changes from
# run to run. (The examples used to live in the README, hence the name.)
# Usage: readme_examples.sh SERVER_BIN GATEWAY_BIN   (needs SEGMENTS_TEST_DATABASE_URL)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

server_bin=${1:?server binary}
gateway_bin=${2:?gateway binary}
db_url=${SEGMENTS_TEST_DATABASE_URL:?set by scripts/test.sh}
work="$(mktemp -d)"
on_exit rm -rf "$work"

start_api_on_empty_db "$work" "$db_url" "$server_bin" "$gateway_bin"
# The examples' token, as the docs tell readers to set it (tokens made by
# start_server in $TOKENS_DIR, which the examples call .state/tokens).
SEG_TOKEN="$(token_of admin)"
export SEG_TOKEN

# Pull (command, expected output) pairs out of the docs section.
python3 - "$ROOT/docs/http-api.md" "$work/cases" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
section = "\n".join(text.split("\n## " + title, 1)[1].split("\n## ", 1)[0]
                    for title in ("Examples",))
cases, current, in_block = [], None, False
for line in section.splitlines():
    if line.startswith("```"):
        in_block = not in_block
        if not in_block and current:
            cases.append(current)
            current = None
        continue
    if not in_block:
        continue
    if line.startswith("$ curl "):
        if current:
            cases.append(current)
        current = {"cmd": line[2:], "want": []}
    elif current is not None:
        current["want"].append(line)
json.dump(cases, open(sys.argv[2], "w"))
PY

count="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/cases")"
((count >= 10)) || die "found only $count examples in the Examples section of docs/http-api.md"
failed=0
for ((i = 0; i < count; i++)); do
  cmd="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])]["cmd"])' "$work/cases" "$i")"
  want="$(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[int(sys.argv[2])]["want"]))' "$work/cases" "$i")"
  run="${cmd//localhost:8080/127.0.0.1:$HTTP_PORT}"
  got="$(eval "${run//.state\/tokens\//$TOKENS_DIR/}")"
  if ! python3 - "$want" "$got" <<'PY'; then
import re, sys
want, got = sys.argv[1], sys.argv[2]
parts = re.split(r"<[a-z-]+>", want)
# A placeholder stands for text within one JSON string or CSV field: it
# never spans a quote, so an added or missing field is caught.
pattern = "(?s)" + '[^"]+?'.join(re.escape(p) for p in parts)
sys.exit(0 if re.fullmatch(pattern, got) else 1)
PY
    failed=$((failed + 1))
    printf 'docs/http-api.md example differs:\n  $ %s\n  want: %s\n  got:  %s\n' "$cmd" "$want" "$got" >&2
  fi
done
((failed == 0)) || die "$failed of $count docs/http-api.md examples differ"
log "all $count docs/http-api.md examples match"
