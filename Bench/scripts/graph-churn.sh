#!/bin/sh
# HNSW under churn on pypi-50k: build, then three rounds of "delete a random 50 %, insert as
# many new rows", each followed by recall@10 against fresh ground truth (the exact plan on the
# same store); then compact and compare the store's size with a fresh build of the same rows.
#   sh Bench/scripts/graph-churn.sh [DATA_DIR] [WORK_DIR]     (numpy via $PY)
set -e
DATA=${1:-../shared/data/pypi-50k}
WORK=${2:-/tmp/sextant-churn}
PY=${PY:-/tmp/peers-venv/bin/python}
SX=${SX:-.build/release/sextant}
EF=${EF:-64}
SCHEMA='name:string,month:int,year:int,rank:int,major_version:int,summary_len:int,tags:[string]'
rm -rf "$WORK"; mkdir -p "$WORK"
$SX create "$WORK/db" items --dim 384 --metric cosine --index HNSW16 --schema "$SCHEMA" >/dev/null
$SX import "$WORK/db" items --vectors "$DATA/base.npy" >/dev/null
echo "round 0: $($SX stat "$WORK/db" | grep 'collection items')"
for round in 1 2 3; do
  # Which ids are live now, which half goes, and the rows coming in (base vectors under new ids).
  $SX dump "$WORK/db" items --out "$WORK/live.jsonl" >/dev/null
  $PY - "$WORK" "$DATA" "$round" <<'PYEOF'
import json, sys, numpy as np
work, data, rnd = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids = [json.loads(l)["id"] for l in open(work + "/live.jsonl") if '"vector"' in l]
rng = np.random.default_rng(1000 + rnd)
gone = rng.choice(np.array(ids), size=len(ids) // 2, replace=False)
open(work + "/delete.txt", "w").write(" ".join(str(int(i)) for i in gone))
base = np.load(data + "/base.npy").astype(np.float32)
src = rng.choice(len(base), size=len(gone), replace=False)
base[src].tofile(work + "/new.f32")
with open(work + "/new.fvecs", "wb") as f:
    for row in base[src]:
        np.array([384], dtype=np.int32).tofile(f); row.tofile(f)
open(work + "/new-ids.txt", "w").write("\n".join(str(rnd * 1_000_000 + i) for i in range(len(src))) + "\n")
PYEOF
  $SX delete "$WORK/db" items $(cat "$WORK/delete.txt") >/dev/null
  $SX import "$WORK/db" items --vectors "$WORK/new.fvecs" --ids "$WORK/new-ids.txt" >/dev/null
  $SX query "$WORK/db" items --queries "$DATA/queries.fvecs" -k 10 --exact --out "$WORK/truth.jsonl" >/dev/null
  $SX query "$WORK/db" items --queries "$DATA/queries.fvecs" -k 10 --ef $EF --threads 1 --out "$WORK/graph.jsonl" > "$WORK/q.json"
  $PY - "$WORK" "$round" <<'PYEOF'
import json, sys
work, rnd = sys.argv[1], sys.argv[2]
t = [json.loads(l)["ids"] for l in open(work + "/truth.jsonl")]
g = [json.loads(l)["ids"] for l in open(work + "/graph.jsonl")]
hits = sum(len(set(a) & set(b)) for a, b in zip(t, g)); total = sum(len(a) for a in t)
print(f"round {rnd}: recall@10 {hits/total:.4f} vs fresh exact ground truth,", json.load(open(work + "/q.json")))
PYEOF
  $SX check "$WORK/db" --deep | tail -1
done
before=$(du -sb "$WORK/db" | cut -f1)
$SX compact "$WORK/db" >/dev/null
after=$(du -sb "$WORK/db" | cut -f1)
# A fresh build of the same rows.
$SX dump "$WORK/db" items --out "$WORK/final.jsonl" >/dev/null
$SX load "$WORK/fresh" --input "$WORK/final.jsonl" >/dev/null
$SX index "$WORK/fresh" items >/dev/null 2>&1
$SX compact "$WORK/fresh" >/dev/null
fresh=$(du -sb "$WORK/fresh" | cut -f1)
$PY -c "print('store after churn: %.1f MB before compact, %.1f MB after; fresh build %.1f MB; ratio %.3f' % ($before/1e6, $after/1e6, $fresh/1e6, $after/$fresh))"
