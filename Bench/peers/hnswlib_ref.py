"""hnswlib reference for the HNSW measurements (Bench/Sources/HNSWMeasure): the same data,
M, ef_construction and build threads, then a single-thread ef sweep, printed as JSON lines
in the same shape as HNSWMeasure's.

    /tmp/peers-venv/bin/pip install numpy hnswlib faiss-cpu
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/peers-venv/bin/python Bench/peers/hnswlib_ref.py pypi [DIR]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /tmp/peers-venv/bin/python Bench/peers/hnswlib_ref.py synthetic [PREFIX]
    /tmp/peers-venv/bin/python Bench/peers/hnswlib_ref.py compare RESULTS.jsonl   # QPS ratio at equal recall

`synthetic` reads PREFIX-{base,queries}.fvecs (written by `HNSWMeasure generate`) and first
writes the exact top-100 as PREFIX-gt.ivecs (faiss IndexFlatL2) unless it exists.

The build uses 2 threads; the sweep then pins the process to CPU 0 and uses one thread.
Two query timings are reported: `qps` calls knn_query once per query (the loop HNSWMeasure
runs, plus Python's per-call overhead), `qps_batch1` passes all queries in one call with
num_threads=1 (the same one-at-a-time search loop in C++, no Python overhead); ratios are
taken against the faster of the two. `qps_cpu` divides by the thread's CPU time in the batch
call (which runs on the calling thread with num_threads=1): other processes on a shared machine
do not inflate it, so `compare` also reports the ratio of CPU-time rates.
"""
import json
import os
import sys
import time

import numpy as np

EFS = [int(x) for x in os.environ.get("HNSW_EFS", "16,32,64,128,256").split(",")]
RUNS = int(os.environ.get("HNSW_RUNS", "3"))
THREADS = int(os.environ.get("HNSW_THREADS", "2"))
M = int(os.environ.get("HNSW_M", "16"))
EFC = int(os.environ.get("HNSW_EFC", "200"))


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def write_ivecs(path, a):
    a = np.asarray(a, dtype=np.int32)
    np.hstack([np.full((a.shape[0], 1), a.shape[1], dtype=np.int32), a]).tofile(path)


def measure(name, space, base, queries, truth):
    import hnswlib

    n, d = base.shape
    index = hnswlib.Index(space=space, dim=d)
    index.init_index(max_elements=n, M=M, ef_construction=EFC, random_seed=100)
    index.set_num_threads(THREADS)
    t = time.time()
    index.add_items(base, np.arange(n), num_threads=THREADS)
    build = time.time() - t
    print(json.dumps({"impl": "hnswlib", "dataset": name, "n": n, "dim": d, "M": M, "efConstruction": EFC,
                      "build_threads": THREADS, "build_s": build}), flush=True)

    os.sched_setaffinity(0, {0})
    index.set_num_threads(1)
    k = 10
    gt = [set(row[:k].tolist()) for row in truth]
    index.set_ef(EFS[0])
    for i in range(len(queries)):
        index.knn_query(queries[i:i + 1], k=k, num_threads=1)
    for ef in EFS:
        index.set_ef(ef)
        single, batch, batch_cpu = [], [], []
        labels = None
        for _ in range(RUNS):
            t = time.time()
            for i in range(len(queries)):
                index.knn_query(queries[i:i + 1], k=k, num_threads=1)
            single.append(time.time() - t)
        for _ in range(RUNS):
            t = time.time()
            c = time.thread_time()
            labels, _ = index.knn_query(queries, k=k, num_threads=1)
            batch_cpu.append(time.thread_time() - c)
            batch.append(time.time() - t)
        hits = sum(len(gt[i] & set(labels[i].tolist())) for i in range(len(queries)))
        nq = len(queries)
        print(json.dumps({"impl": "hnswlib", "dataset": name, "ef": ef, "recall10": hits / (nq * k),
                          "qps": nq / sorted(single)[len(single) // 2],
                          "qps_batch1": nq / sorted(batch)[len(batch) // 2],
                          "qps_cpu": nq / sorted(batch_cpu)[len(batch_cpu) // 2]}), flush=True)


def pypi(d):
    base = np.load(os.path.join(d, "base.npy")).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = read_vecs(os.path.join(d, "queries.fvecs"), np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = read_vecs(os.path.join(d, "gt-unfiltered.ivecs"), np.int32)
    measure("pypi-50k", "cosine", base, queries, truth)


def synthetic(prefix):
    base = read_vecs(prefix + "-base.fvecs", np.float32)
    queries = read_vecs(prefix + "-queries.fvecs", np.float32)
    gt_path = prefix + "-gt.ivecs"
    if not os.path.exists(gt_path):
        import faiss

        index = faiss.IndexFlatL2(base.shape[1])
        index.add(base)
        _, ids = index.search(queries, 100)
        write_ivecs(gt_path, ids)
        print(f"# wrote {gt_path}", flush=True)
    truth = read_vecs(gt_path, np.int32)
    measure(f"synthetic-{len(base)}", "l2", base, queries, truth)


def qps_at(curve, target):
    """QPS at `target` recall, interpolated (log QPS, linear recall) on a recall-sorted curve."""
    pts = sorted(curve)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            f = (target - r0) / (r1 - r0)
            return float(np.exp(np.log(q0) + f * (np.log(q1) - np.log(q0))))
    if pts and pts[0][0] >= target:
        return pts[0][1]
    return None


def compare(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    for dataset in sorted({r["dataset"] for r in rows}):
        curves = {}
        cpu_curves = {}
        builds = {}
        for r in rows:
            if r["dataset"] != dataset or "filter" in r:
                continue
            if "ef" in r:
                q = max(r["qps"], r.get("qps_batch1", 0))
                curves.setdefault(r["impl"], []).append((r["recall10"], q))
                if "qps_cpu" in r:
                    cpu_curves.setdefault(r["impl"], []).append((r["recall10"], r["qps_cpu"]))
            elif "build_s" in r:
                builds[r["impl"]] = r["build_s"]
        for impl in sorted(i for i in set(curves) | set(builds) if i != "hnswlib"):
            out = {"dataset": dataset, "impl": impl}
            if impl in builds and "hnswlib" in builds:
                out["build_ratio_over_hnswlib"] = builds[impl] / builds["hnswlib"]
            for target in (0.9, 0.95, 0.99):
                for key, cs in (("qps_ratio", curves), ("cpu_qps_ratio", cpu_curves)):
                    a = qps_at(cs.get(impl, []), target)
                    b = qps_at(cs.get("hnswlib", []), target)
                    if a and b:
                        out[f"{key}_at_recall_{target}"] = round(a / b, 3)
            print(json.dumps(out))


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "pypi"
    if mode == "pypi":
        pypi(sys.argv[2] if len(sys.argv) > 2 else "/work/shared/data/pypi-50k")
    elif mode == "synthetic":
        synthetic(sys.argv[2] if len(sys.argv) > 2 else "/tmp/hnsw-syn")
    elif mode == "compare":
        compare(sys.argv[2])
    else:
        sys.exit("usage: hnswlib_ref.py pypi [DIR] | synthetic [PREFIX] | compare RESULTS.jsonl")
