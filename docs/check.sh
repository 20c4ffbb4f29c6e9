#!/usr/bin/env bash
# docs/check.sh — does the documentation still match the code?
#   1. README.md stays a one-page summary (at most 12,300 bytes);
#   2. every environment variable the code reads is in docs/environment.md;
#   3. every function declared in include/*.h is named in docs/api.md;
#   4. every relative link in README.md and docs/*.md reaches a file (and heading).
# Run from anywhere: bash docs/check.sh. Exit status 0 when all hold.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0

size=$(wc -c <README.md)
if ((size > 12300)); then echo "README.md: $size bytes (> 12,300)"; fail=1; else echo "README.md: $size bytes: ok"; fi

# variables: string literals given to getenv/secure_getenv/env_* in C, $VAR / ${VAR} in tools' scripts
vars=$( { grep -rhoE '(secure_)?getenv\("[A-Z_][A-Z0-9_]*"|env_[a-z]+\("[A-Z_][A-Z0-9_]*"' src tools 2>/dev/null |
          grep -oE '"[A-Z_][A-Z0-9_]*"' | tr -d '"'
        grep -rhoE '\$\{?GREEN_[A-Z0-9_]+' tools 2>/dev/null | tr -d '${'; } | sort -u)
missing=0
for v in $vars; do
  grep -q "\`$v\`\|^### $v\$" docs/environment.md || { echo "docs/environment.md lacks $v"; missing=1; fail=1; }
done
((missing)) || echo "environment: $(wc -w <<<"$vars") variables read by src/ and tools/, all in docs/environment.md: ok"

# functions: every name followed by '(' at a declaration's start in the public headers
funcs=$(grep -hoE '^(GREEN_[A-Z_]*API )?[a-z_][a-z0-9_ *]*[ *](green_[a-z0-9_]+)\(' include/*.h | grep -oE 'green_[a-z0-9_]+\($' | tr -d '(' | sort -u)
[[ -n $funcs ]] || { echo "api: no function found in include/*.h (the pattern is out of date)"; fail=1; }
missing=0
for f in $funcs; do
  grep -q "\b$f\b" docs/api.md || { echo "docs/api.md lacks $f"; missing=1; fail=1; }
done
((missing)) || echo "api: $(wc -w <<<"$funcs") functions declared in include/*.h, all in docs/api.md: ok"

# links
python3 - <<'EOF' || fail=1
import os, re, sys
def anchors(path):
    out = set()
    for line in open(path, encoding="utf-8"):
        m = re.match(r"#+ (.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(a)
    return out
bad = 0
files = ["README.md"] + sorted("docs/" + f for f in os.listdir("docs") if f.endswith(".md"))
n = 0
for f in files:
    text = re.sub(r"```.*?```", "", open(f, encoding="utf-8").read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        n += 1
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(dest):
            print(f"{f}: link to missing {target}"); bad = 1; continue
        if frag and dest.endswith(".md") and frag not in anchors(dest):
            print(f"{f}: link to missing heading {target}"); bad = 1
if not bad:
    print(f"links: {n} relative links in README.md and docs/*.md, all reach their file and heading: ok")
sys.exit(bad)
EOF
exit $fail
