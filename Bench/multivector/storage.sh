#!/bin/sh
# A second store of the same documents: float16 tokens, the low-memory FDE preset (R=20, k_sim=4,
# d_proj=8: 2,560 dims) under PQ320x8 codes (320 bytes per document), re-ranked with exact
# Chamfer. Reports bytes on disk and the resident set while querying. Run after run.sh.
#
#   sh Bench/multivector/storage.sh [SEXTANT_BINARY] [WORK_DIR]
set -eu
BIN=${1:-.build/release/sextant}
DIR=${2:-/tmp/sextant-mv-bench}
PIN="taskset -c 1"
Q="--queries $DIR/queries.npy --query-counts $DIR/query-counts.npy --truth $DIR/truth.ivecs"
if [ ! -d "$DIR/pq16" ]; then
    "$BIN" create "$DIR/pq16" docs --dim 128 --multi-vector --fde low-memory --token-storage float16 --index PQ320x8 --schema group:int,lang:string
    taskset -c 0 "$BIN" import "$DIR/pq16" docs --vectors "$DIR/tokens.npy" --counts "$DIR/counts.npy" --attributes "$DIR/attributes.jsonl" --no-sync
fi
for s in hnsw pq16; do echo "$s data.mdb bytes: $(stat -c %s "$DIR/$s/data.mdb")"; done
for c in 100 200 400 800; do
    $PIN "$BIN" bench "$DIR/pq16" docs $Q -k 10 --candidates $c --runs 1 --json --threads 1
done
# Resident set while querying (maximum RSS of the process), cold page cache not forced.
for s in hnsw pq16; do
    echo "$s resident:"
    $PIN /usr/bin/time -f "max RSS %M KB" "$BIN" bench "$DIR/$s" docs $Q -k 10 --candidates 200 --runs 1 --json --threads 1
done
