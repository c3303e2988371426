#!/bin/sh
# Builds the DocC documentation of the Sextant library (Sources/Sextant/Sextant.docc and the
# doc comments) and fails on any warning: a broken symbol link, an undocumented parameter in a
# parameter list, or a compiler warning in the documented target.
# Usage: sh Scripts/docs.sh [output-dir]    (default: .build-docs/Sextant.doccarchive)
set -e
cd "$(dirname "$0")/.."
sh Scripts/prerequisites.sh
out="${1:-.build-docs/Sextant.doccarchive}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
swift package --scratch-path .build-docs --allow-writing-to-directory "$(dirname "$out")" \
    generate-documentation --target Sextant --warnings-as-errors --output-path "$out" >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ] || grep -q "warning:" "$log"; then
    grep -A6 "warning:\|error:" "$log" >&2 || cat "$log" >&2
    echo "documentation build failed (exit $status) or warned" >&2
    exit 1
fi
grep -i "documentation archive\|Finished building" "$log" || true
echo "documentation: $out"
