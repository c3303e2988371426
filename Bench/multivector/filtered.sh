#!/bin/sh
# Filtered multi-vector search per selectivity bucket (predicate group < T on a uniform 0…999
# attribute): truth from Sextant's exact Chamfer plan (tested equal to brute force), then the
# planner's choice with default options. Run after run.sh. One thread pinned to CPU 1.
#
#   sh Bench/multivector/filtered.sh [SEXTANT_BINARY] [WORK_DIR]
set -eu
BIN=${1:-.build/release/sextant}
DIR=${2:-/tmp/sextant-mv-bench}
PIN="taskset -c 1"
Q="--queries $DIR/queries.npy --query-counts $DIR/query-counts.npy"
for t in 1 10 100 500; do
    if [ ! -f "$DIR/truth-group-lt-$t.ivecs" ]; then
        $PIN "$BIN" query "$DIR/hnsw" docs $Q -k 10 --exact --where "group < $t" --threads 1 --out "$DIR/truth-group-lt-$t.ivecs"
    fi
    echo "bucket group < $t"
    for c in 400 600; do
        $PIN "$BIN" bench "$DIR/hnsw" docs $Q --truth "$DIR/truth-group-lt-$t.ivecs" -k 10 --where "group < $t" --candidates $c --ef $((4 * c)) --runs 1 --json --threads 1
    done
    $PIN "$BIN" query "$DIR/hnsw" docs $Q -k 10 --where "group < $t" --threads 1 --explain 2>&1 >/dev/null | head -3
done
