"""FAISS IndexFlatIP on pypi-50k (cosine via normalised vectors), one thread: the exact-search
reference that `sextant bench --threads 1` is compared with in the same run.

    python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install numpy faiss-cpu
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE taskset -c 0 /tmp/peers-venv/bin/python \
        Bench/peers/faiss_flat.py [DATA_DIR]      # default ../shared/data/pypi-50k
"""
import json
import os
import sys
import time

import faiss
import numpy as np

D = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/data/pypi-50k")
faiss.omp_set_num_threads(1)
base = np.load(os.path.join(D, "base.npy")).astype(np.float32)
q = np.load(os.path.join(D, "queries.npy")).astype(np.float32)
q /= np.linalg.norm(q, axis=1, keepdims=True)
base /= np.linalg.norm(base, axis=1, keepdims=True)
index = faiss.IndexFlatIP(base.shape[1])
index.add(base)
single, batch = [], []
for _ in range(3):
    t = time.time()
    for i in range(len(q)):
        index.search(q[i:i + 1], 10)
    single.append(len(q) / (time.time() - t))
for _ in range(3):
    t = time.time()
    index.search(q, 10)
    batch.append(len(q) / (time.time() - t))
print(json.dumps({"faiss_flat_single_qps_1thread": sorted(single)[1], "faiss_flat_batch_qps_1thread": sorted(batch)[1]}))
