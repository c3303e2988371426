#!/bin/bash
# Batch workload figures: one store per recipe (and partitioned twins), then rounds that
# interleave every store and mode: batch on 1 thread, the same with --plan exact, one by one on
# 1 thread, batch on 2 threads. Prints "store mode qps recall short_results" lines.
#
#   Bench/scripts/batch-workload.sh SEXTANT [DATA_DIR] [WORK_DIR] [ROUNDS]
#   e.g. Bench/scripts/batch-workload.sh .build/release/sextant ../shared/data/pypi-50k /tmp/bw 3
#
# DATA_DIR holds base.npy, attributes.jsonl, meta.json (dim, metric, schema), queries.npy,
# workload-batch.jsonl and gt-batch.ivecs (pypi-50k's layout). Stores are built once and reused;
# each is calibrated with the workload's query vectors (`calibrate --queries`), and `partition`
# keeps that recall model.
set -e
S=$1; D=${2:-../shared/data/pypi-50k}; W=${3:-/tmp/sextant-batch-workload}; R=${4:-3}
[ -x "$S" ] || { echo "usage: $0 SEXTANT [DATA_DIR] [WORK_DIR] [ROUNDS]" >&2; exit 64; }
read -r DIM METRIC SCHEMA < <(python3 - "$D/meta.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
types = {"str": "string", "int": "int", "float": "double", "list": "[string]"}
print(m["dim"], m["metric"], ",".join(f"{k}:{types[v]}" for k, v in m["schema"].items()))
PY
)
RECIPES="Flat HNSW16 HNSW16,PQ48x8,Refine HNSW16,PQ96x4fs,Refine"
PARTITIONED="Flat HNSW16,PQ48x8,Refine"
mkdir -p "$W"
for r in $RECIPES; do
    n=$(echo "$r" | tr ',' '_')
    if [ ! -d "$W/$n" ]; then
        "$S" create "$W/$n" c --dim "$DIM" --metric "$METRIC" --schema "$SCHEMA" --index "$r" >/dev/null
        "$S" import "$W/$n" c --vectors "$D/base.npy" --attributes "$D/attributes.jsonl" --no-sync >/dev/null 2>&1
        # The workload's own vectors calibrate the recall model (as scale.py does at 1M).
        "$S" calibrate "$W/$n" c --queries "$D/queries.npy" >/dev/null 2>&1
    fi
done
for r in $PARTITIONED; do
    n=$(echo "$r" | tr ',' '_')
    if [ ! -d "$W/$n-part" ]; then
        cp -r "$W/$n" "$W/$n-part"
        "$S" partition "$W/$n-part" c --workload "$D/workload-batch.jsonl" >/dev/null 2>&1
    fi
done
STORES="$(for r in $RECIPES; do echo "$r" | tr ',' '_'; done) $(for r in $PARTITIONED; do echo "$(echo "$r" | tr ',' '_')-part"; done)"
for round in $(seq "$R"); do
    for n in $STORES; do
        for mode in batch1 exact1 obo1 batch2; do
            case $mode in
                batch1) pre="taskset -c 1"; extra="--threads 1";;
                exact1) pre="taskset -c 1"; extra="--threads 1 --plan exact";;
                obo1) pre="taskset -c 1"; extra="--threads 1 --one-by-one";;
                batch2) pre="taskset -c 0,1"; extra="--threads 2";;
            esac
            case $n in *-part) [ $mode = obo1 ] && continue;; esac
            # The summary is parsed after the run: a parser starting in the pipe would take a core
            # from a 2-thread batch while it runs.
            line=$($pre "$S" batch "$W/$n" c --workload "$D/workload-batch.jsonl" --queries "$D/queries.npy" --out "$W/out.ivecs" \
                --truth "$D/gt-batch.ivecs" --json $extra 2>/dev/null | tail -1)
            echo "$line" | python3 -c "import json,sys; j=json.load(sys.stdin); print('$n $mode', round(j['qps']), j.get('recall'), j.get('short_results'))"
        done
    done
done
