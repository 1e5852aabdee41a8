#!/usr/bin/env bash
# pip-audit over every locked dependency (dev tools included: they run in CI with its
# credentials, so they are attack surface too). A known vulnerability fails CI.
#
# Offline-capable: pip-audit's PyPI service answers a package it cannot look up as
# "skipped" and still reports "No known vulnerabilities found", so reachability is
# proven first on a canary pinned to a release with published advisories. If the
# canary comes back without them, the vulnerability database cannot be reached from
# here and the audit is skipped with a message saying so (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

# A release with several published advisories (CVE-2019-10906, CVE-2024-22195, ...).
CANARY="jinja2==2.10"
SERVICE="${PIP_AUDIT_SERVICE:-pypi}"
TIMEOUT="${PIP_AUDIT_TIMEOUT:-15}"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

audit() {
  # --disable-pip --no-deps: audit exactly the pinned set, without building an environment.
  uv run --frozen pip-audit --disable-pip --no-deps --progress-spinner off \
    --vulnerability-service "$SERVICE" --timeout "$TIMEOUT" --cache-dir "$workdir/cache" "$@"
}

echo "$CANARY" > "$workdir/canary.txt"
# Exit 1 is the expected answer here (the canary is vulnerable); only the report matters.
audit -r "$workdir/canary.txt" -f json -o "$workdir/canary.json" >"$workdir/canary.log" 2>&1 || true
if ! grep -q '"id": *"' "$workdir/canary.json" 2>/dev/null; then
  echo "SKIP pip-audit: the vulnerability database ($SERVICE) cannot be reached from here:"
  echo "  the canary $CANARY, which has published advisories, came back without them:"
  { grep -o '"skip_reason": *"[^"]*"' "$workdir/canary.json" 2>/dev/null \
    || tail -n 2 "$workdir/canary.log"; } | head -n 2 | sed 's/^/  /'
  exit 0
fi

# Workspace members are ours, not on PyPI: leave them out.
uv export --frozen --all-groups --no-hashes --no-emit-workspace --format requirements-txt \
  --output-file "$workdir/requirements.txt" >/dev/null
count="$(grep -c '==' "$workdir/requirements.txt")"
echo "== pip-audit: $count locked packages against $SERVICE"
status=0
audit -r "$workdir/requirements.txt" -f json -o "$workdir/audit.json" || status=$?
# Human-readable summary of the same run (from the JSON, no second lookup).
python3 - "$workdir/audit.json" <<'EOF'
import json
import sys

report = json.load(open(sys.argv[1]))
vulnerable = [dep for dep in report["dependencies"] if dep.get("vulns")]
skipped = [dep for dep in report["dependencies"] if dep.get("skip_reason")]
for dep in vulnerable:
    for vuln in dep["vulns"]:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
        print(f"VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in {fixes})")
for dep in skipped:
    print(f"not audited: {dep['name']}: {dep['skip_reason']}")
audited = len(report["dependencies"]) - len(skipped)
print(f"{audited} audited, {len(vulnerable)} vulnerable, {len(skipped)} not audited")
EOF
exit "$status"
