#!/bin/sh
# End-to-end demo: build, generate a dataset, create a store, import, run a filtered query and a
# batch of filtered queries, show the planner's choices on a graph-indexed copy, print results,
# check the store. Everything lands in ./demo-store/.
set -e
cd "$(dirname "$0")/.."
sh Scripts/prerequisites.sh
swift build -c release --product sextant >&2
SX=.build/release/sextant
DIR=demo-store
rm -rf "$DIR"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }
step $SX generate "$DIR/data" --rows 20000 --dim 64 --queries 200
step $SX create "$DIR/db" products --dim 64 --metric l2 \
    --schema 'category:string,price:double,date:int,tags:[string],in_stock:bool'
step $SX import "$DIR/db" products --vectors "$DIR/data/base.fvecs" --attributes "$DIR/data/attributes.jsonl"
step $SX count "$DIR/db" products --where "tags CONTAINS 'sale' AND in_stock = TRUE"
step $SX explain "$DIR/db" products --where "tags CONTAINS 'sale' AND in_stock = TRUE"
echo 'the 5 nearest in-stock products on sale, for the first query:' >&2
$SX query "$DIR/db" products --queries "$DIR/data/queries.fvecs" -k 5 \
    --where "tags CONTAINS 'sale' AND in_stock = TRUE" --out "$DIR/filtered.jsonl" >&2
head -n 1 "$DIR/filtered.jsonl"
FIRST=$(head -n 1 "$DIR/filtered.jsonl" | sed 's/.*"ids":\[\([0-9]*\).*/\1/')
step $SX get "$DIR/db" products "$FIRST"
echo 'a batch of 200 queries, each with its own predicate (filters.jsonl):' >&2
head -n 3 "$DIR/data/filters.jsonl" >&2
step $SX query "$DIR/db" products --queries "$DIR/data/queries.fvecs" -k 10 \
    --filters "$DIR/data/filters.jsonl" --out "$DIR/batch.jsonl"
head -n 3 "$DIR/batch.jsonl"
echo 'the same rows with an HNSW graph: the planner picks a plan per predicate' >&2
step $SX create "$DIR/db" graph --dim 64 --metric l2 --index HNSW16 \
    --schema 'category:string,price:double,date:int,tags:[string],in_stock:bool'
step $SX import "$DIR/db" graph --vectors "$DIR/data/base.fvecs" --attributes "$DIR/data/attributes.jsonl"
step $SX explain "$DIR/db" graph --queries "$DIR/data/queries.fvecs" --row 0 -k 5 --where "tags CONTAINS 'sale' AND in_stock = TRUE"
step $SX explain "$DIR/db" graph --queries "$DIR/data/queries.fvecs" --row 0 -k 5 --where "in_stock = TRUE"
echo 'lay the graph collection out for the workload of filters.jsonl (a qd-tree of its predicates):' >&2
step $SX partition "$DIR/db" graph --workload "$DIR/data/filters.jsonl" --max-partitions 8
step $SX stat "$DIR/db"
step $SX check "$DIR/db"
