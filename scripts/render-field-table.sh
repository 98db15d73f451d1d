#!/usr/bin/env bash
# Rewrites the request-field table in docs/providers.md from the code
# (render_field_table(), printed by the unit test that compares the two).
# Usage: scripts/render-field-table.sh   (after building the unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."
table=$(./build/bin/l04_unit_tests -tc="request fields: docs*" 2>&1 | grep -E '^\|' || true)
[[ -n "$table" ]] || { echo "render-field-table: the docs already match (or the test binary is missing)"; exit 0; }
python3 - "$table" <<'PY'
import sys
table = sys.argv[1].strip() + "\n"
p = "docs/providers.md"
s = open(p).read()
start = s.index("| field | cache key |")
end = s.index("\n\n", start) + 1
open(p, "w").write(s[:start] + table + s[end:])
print("render-field-table: docs/providers.md updated")
PY
