"""FAISS product quantization on pypi-50k, one thread: the reference for Bench's PQMeasure
(same data, same R = 100 candidates re-ranked exactly, same recall@10 definition).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0 /tmp/peers-venv/bin/python \\
        Bench/peers/faiss_pq.py [DATA_DIR] [runs]      # default /work/shared/data/pypi-50k, 5

Prints one JSON object per index: training seconds (IndexPQ: 25 k-means iterations per
sub-space, like Sextant's default), recall@10 after re-ranking the best 100 by exact inner
product, and codes scanned per second = 50,000 * queries / seconds, k = 100, median of
`runs`: for one batch search of all queries (FAISS's fast scan then shares each code load
between several queries) and for one search call per query.
"""
import json
import os
import sys
import time

import faiss
import numpy as np

D = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/pypi-50k"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
R, K = 100, 10
faiss.omp_set_num_threads(1)


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


base = np.load(os.path.join(D, "base.npy")).astype(np.float32)
queries = read_vecs(os.path.join(D, "queries.fvecs"), np.float32)
gt = read_vecs(os.path.join(D, "gt-unfiltered.ivecs"), np.int32)
base /= np.linalg.norm(base, axis=1, keepdims=True)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
n, nq = len(base), len(queries)


def recall(ids):
    hits = 0
    for i in range(nq):
        cand = ids[i][ids[i] >= 0]
        exact = base[cand] @ queries[i]
        top = cand[np.argsort(-exact, kind="stable")[:K]]
        hits += len(set(top.tolist()) & set(gt[i, :K].tolist()))
    return hits / (nq * K)


def measure(name, index):
    t = time.perf_counter()
    index.train(base)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    index.add(base)
    add_s = time.perf_counter() - t
    _, ids = index.search(queries, R)
    batch, single = [], []
    for _ in range(RUNS):
        t = time.perf_counter()
        index.search(queries, R)
        batch.append(n * nq / (time.perf_counter() - t))
        # One query per call, as Sextant's per-query tables scan (no sharing of code loads
        # between queries).
        t = time.perf_counter()
        for i in range(nq):
            index.search(queries[i:i + 1], R)
        single.append(n * nq / (time.perf_counter() - t))
    print(json.dumps({"config": name, "train_s": train_s, "encode_s": add_s, "R": R, "recall_at_10": recall(ids),
                      "top100_codes_per_s": sorted(batch)[len(batch) // 2],
                      "top100_codes_per_s_one_query_per_call": sorted(single)[len(single) // 2]}))


measure("faiss IndexPQ 48x8", faiss.IndexPQ(base.shape[1], 48, 8, faiss.METRIC_INNER_PRODUCT))
measure("faiss IndexPQFastScan 96x4", faiss.IndexPQFastScan(base.shape[1], 96, 4, faiss.METRIC_INNER_PRODUCT))
