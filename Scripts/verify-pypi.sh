#!/bin/sh
# Exactness against real data: imports ../shared/data/pypi-50k and checks that exact search
# reproduces gt-unfiltered.ivecs and gt-filtered.ivecs (top-10) for every query.
# Skips, saying so, when the dataset is absent.
set -e
cd "$(dirname "$0")/.."
D=${PYPI_DIR:-../shared/data/pypi-50k}
if [ ! -f "$D/base.npy" ]; then echo "verify-pypi: $D not found; skipped"; exit 0; fi
sh Scripts/prerequisites.sh
swift build -c release --product sextant >&2
SX=.build/release/sextant
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$SX create "$W/db" items --dim 384 --metric cosine \
    --schema 'name:string,month:int,year:int,rank:int,major_version:int,summary_len:int,tags:[string]'
$SX import "$W/db" items --vectors "$D/base.npy" --attributes "$D/attributes.jsonl"
fail=0
for mode in unfiltered filtered; do
    opt=""; [ $mode = filtered ] && opt="--filters $D/filters.jsonl"
    out=$($SX bench "$W/db" items --queries "$D/queries.fvecs" --truth "$D/gt-$mode.ivecs" -k 10 --runs 1 --json $opt)
    echo "pypi-50k $mode: $out"
    # Ties aside the lists are identical; require full recall and no short result lists.
    echo "$out" | grep -q '"recall":1.0000' || fail=1
    echo "$out" | grep -q '"short_results":0' || fail=1
done
$SX check "$W/db"
exit $fail
