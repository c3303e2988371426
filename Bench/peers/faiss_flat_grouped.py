"""FAISS flat on a batch workload, grouped by predicate, one thread: the peer `sextant batch
--threads 1` is compared with in the same run (issue figures "batch vs FAISS flat grouped").

Each distinct `where` of workload-batch.jsonl becomes an id bitmap (numpy, as
../shared/bench/run_peers.py does; timed, like Sextant's filter stage), and that predicate's
queries go to IndexFlat in one search call with an IDSelectorBitmap. Prints the median of
`runs` rounds as JSON.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 1 /tmp/peers-venv/bin/python \\
        Bench/peers/faiss_flat_grouped.py DATA_DIR [runs]   # e.g. ../shared/data/pypi-50k
"""
import json
import os
import sys
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/bench"))
from common import Attrs, load_filters, read_ivecs, recall_at_k  # noqa: E402

D = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
faiss.omp_set_num_threads(1)
meta = json.load(open(os.path.join(D, "meta.json")))
base = np.load(os.path.join(D, "base.npy")).astype(np.float32)
queries = np.load(os.path.join(D, "queries.npy")).astype(np.float32)
metric = faiss.METRIC_L2
if meta["metric"] in ("cosine", "ip"):
    metric = faiss.METRIC_INNER_PRODUCT
    if meta["metric"] == "cosine":
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
index = faiss.IndexFlat(base.shape[1], metric)
index.add(base)
attrs = Attrs.load(D)
work = load_filters(D, "workload-batch.jsonl")
truth = read_ivecs(os.path.join(D, "gt-batch.ivecs"))
groups = {}
for j, w in enumerate(work):
    groups.setdefault(w["where"], []).append(j)
qps = []
for _ in range(runs):
    res = np.full((len(work), 10), -1, dtype=np.int64)
    t0 = time.perf_counter()
    for where, rows in groups.items():
        mask = attrs.mask(where)
        bits = np.packbits(mask, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        _, ids = index.search(queries[[work[j]["query"] for j in rows]], 10, params=faiss.SearchParameters(sel=sel))
        res[rows] = ids
    qps.append(len(work) / (time.perf_counter() - t0))
rec, _ = recall_at_k(res, truth, 10)
print(json.dumps({"faiss_flat_grouped_qps_1thread": round(sorted(qps)[len(qps) // 2], 1), "rounds": [round(x, 1) for x in qps],
                  "recall": round(float(rec), 4), "groups": len(groups), "queries": len(work)}))
