#!/bin/sh
# Multi-vector (MUVERA) benchmark: synthetic late-interaction set, exact Chamfer truth by brute
# force, FDE candidates from an HNSW graph over the encodings — traversed with PQ code distances
# (PQ2560x4: 1,280 bytes per document instead of 40 KB) or with the full encodings — re-ranked
# with exact Chamfer, vs Sextant's own exact Chamfer scan. One thread pinned to CPU 1.
#
#   sh Bench/multivector/run.sh [SEXTANT_BINARY] [WORK_DIR] [DOCS]
#
# ZIPF=0.8 reproduces data set A of Bench/README.md (default 0: data set U).
#
# Build first: swift build -c release (no CPU flags).
set -eu
BIN=${1:-.build/release/sextant}
DIR=${2:-/tmp/sextant-mv-bench}
DOCS=${3:-50000}
PIN="taskset -c 1"
mkdir -p "$DIR"
if [ ! -f "$DIR/truth.ivecs" ]; then
    $PIN "$BIN" generate "$DIR" --multi-vector --rows "$DOCS" --dim 128 --queries 100 --tokens 32,128 --query-tokens 32 --zipf "${ZIPF:-0}" --truth 100
fi
# Standard FDE (R=20, k_sim=5, d_proj=16: 10,240 dims), float32 tokens, HNSW and 4-bit PQ codes
# (4 dimensions per sub-quantizer) over the encodings.
if [ ! -d "$DIR/hnsw" ]; then
    "$BIN" create "$DIR/hnsw" docs --dim 128 --multi-vector --fde standard --index HNSW16_100,PQ2560x4,Refine --schema group:int,lang:string
    $PIN "$BIN" import "$DIR/hnsw" docs --vectors "$DIR/tokens.npy" --counts "$DIR/counts.npy" --attributes "$DIR/attributes.jsonl" --no-sync
fi
du -b "$DIR/hnsw/data.mdb"
"$BIN" stat "$DIR/hnsw" --json
# Exact Chamfer scan (the baseline): 10 queries.
$PIN "$BIN" bench "$DIR/hnsw" docs --queries "$DIR/queries.npy" --query-counts "$DIR/query-counts.npy" --truth "$DIR/truth.ivecs" \
    -k 10 --exact --runs 1 --limit 10 --json --threads 1
# Recall vs candidates, beam 4x the candidates (the default): the graph over codes (the beam
# re-scored with full encodings), then over full encodings, then the planner's choice.
for c in 200 400 600; do
    $PIN "$BIN" bench "$DIR/hnsw" docs --queries "$DIR/queries.npy" --query-counts "$DIR/query-counts.npy" --truth "$DIR/truth.ivecs" \
        -k 10 --candidates $c --plan graph-over-codes --runs 1 --json --threads 1
done
for c in 400 600; do
    $PIN "$BIN" bench "$DIR/hnsw" docs --queries "$DIR/queries.npy" --query-counts "$DIR/query-counts.npy" --truth "$DIR/truth.ivecs" \
        -k 10 --candidates $c --plan filtered-graph --runs 1 --json --threads 1
done
$PIN "$BIN" bench "$DIR/hnsw" docs --queries "$DIR/queries.npy" --query-counts "$DIR/query-counts.npy" --truth "$DIR/truth.ivecs" \
    -k 10 --runs 1 --json --threads 1
# The exact scan again: the ratio is taken against both measurements.
$PIN "$BIN" bench "$DIR/hnsw" docs --queries "$DIR/queries.npy" --query-counts "$DIR/query-counts.npy" --truth "$DIR/truth.ivecs" \
    -k 10 --exact --runs 1 --limit 10 --json --threads 1
