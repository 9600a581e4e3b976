#!/usr/bin/env bash
# Checks deploy/ with Debian's promtool, nothing started:
#   - the alert rules are valid (promtool check rules) and pass their unit
#     tests (promtool test rules deploy/prometheus/alerts_test.yml);
#   - compose's Prometheus configuration is valid (promtool check config,
#     with the rule file where compose mounts it);
#   - the Grafana dashboard is JSON, every panel queries the datasource of
#     the variable $datasource, and every query, with the dashboard's
#     variables replaced by values, is valid PromQL (checked as a rule);
#   - every runbook annotation names a section of docs/operating.md.
# Usage: tests/ops/monitoring_files.sh   (exit 0: all good)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

command -v promtool >/dev/null || die "promtool not found: run scripts/install-deps.sh --tests (Debian package prometheus)"
PROM_DIR="$ROOT/deploy/prometheus"
DASHBOARDS=("$ROOT"/deploy/grafana/dashboards/*.json)
WORK="$(mktemp -d)"
on_exit rm -rf "$WORK"

log "promtool check rules"
promtool check rules "$PROM_DIR/alerts.yml" >&2
log "promtool test rules"
(cd "$PROM_DIR" && promtool test rules alerts_test.yml) >&2

# The compose configuration names the rule file by its path in the
# container: check a copy that names it here.
log "promtool check config (compose's prometheus.yml)"
sed "s#/etc/prometheus/rules/alerts.yml#$PROM_DIR/alerts.yml#" "$PROM_DIR/prometheus.yml" >"$WORK/prometheus.yml"
grep -q "$PROM_DIR/alerts.yml" "$WORK/prometheus.yml" || die "prometheus.yml does not load /etc/prometheus/rules/alerts.yml"
promtool check config "$WORK/prometheus.yml" >&2

# Every runbook anchor exists: GitHub-style anchors of docs/operating.md's
# headings (lower case, spaces to dashes, other punctuation dropped).
log "runbook links"
python3 - "$PROM_DIR/alerts.yml" "$ROOT/docs/operating.md" <<'PY'
import re, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
anchors = set()
for line in open(sys.argv[2], encoding="utf-8"):
    m = re.match(r"#+\s+(.*?)\s*$", line)
    if m:
        anchors.add(re.sub(r"[^a-z0-9 _-]", "", m.group(1).lower()).replace(" ", "-"))
bad = 0
for group in rules["groups"]:
    for rule in group["rules"]:
        if "alert" not in rule:
            continue
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            if not ann.get(key):
                print(f"alert {rule['alert']}: no {key} annotation"); bad += 1
        if not rule.get("labels", {}).get("severity"):
            print(f"alert {rule['alert']}: no severity label"); bad += 1
        link = ann.get("runbook", "")
        doc, _, anchor = link.partition("#")
        if doc != "docs/operating.md" or anchor not in anchors:
            print(f"alert {rule['alert']}: runbook {link!r} is not a heading of docs/operating.md"); bad += 1
        elif anchor != "alert-" + rule["alert"].lower():
            print(f"alert {rule['alert']}: runbook anchor {anchor!r}, expected alert-{rule['alert'].lower()}"); bad += 1
sys.exit(1 if bad else 0)
PY

# Dashboard queries as recording rules: promtool parses each expression.
log "dashboard queries"
python3 - "$WORK/dashboard-rules.yml" "${DASHBOARDS[@]}" <<'PY'
import json, re, sys
out, files = sys.argv[1], sys.argv[2:]
values = {"__rate_interval": "1m", "__range": "1h", "__interval": "30s",
          "job_server": "segments-server", "job_gateway": "segments-gateway",
          "job_usermock": "segments-usermock", "instance": ".*", "method": ".*"}
rules, bad = [], 0
def walk(panels, name):
    global bad
    for p in panels:
        walk(p.get("panels", []), name)
        if p.get("type") == "row":
            continue
        if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            print(f"{name}: panel {p.get('title')!r}: datasource is not ${{datasource}}"); bad += 1
        if not p.get("targets"):
            print(f"{name}: panel {p.get('title')!r}: no queries"); bad += 1
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            def sub(m):
                global bad
                v = m.group(1) or m.group(2)
                if v not in values:
                    print(f"{name}: panel {p.get('title')!r}: unknown variable ${v}"); bad += 1
                    return "x"
                return values[v]
            rules.append({"record": f"dashboard:check:{len(rules)}", "expr": re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)})
for f in files:
    d = json.load(open(f))
    names = {v["name"] for v in d.get("templating", {}).get("list", [])}
    if "datasource" not in names:
        print(f"{f}: no datasource variable"); bad += 1
    walk(d.get("panels", []), f)
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(out, "w"))
print(f"{len(rules)} queries", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
promtool check rules "$WORK/dashboard-rules.yml" >/dev/null || {
  promtool check rules "$WORK/dashboard-rules.yml" >&2 || true
  die "the dashboard has invalid PromQL (above)"
}
log "ok"
