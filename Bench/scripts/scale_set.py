#!/usr/bin/env python3
"""The synthetic scale set at sizes where the shared generator's ground truth does not fit.

    PEERS_DATA=/tmp/sextant-data python3 Bench/scripts/scale_set.py --n 10000000 [--batch-lines 2000]

Writes the same files as ../shared/bench/make_synth.py (vectors, attributes, 1,000 queries with
one predicate each in the buckets 0.1 / 1 / 10 / 50 %, the batch workload, meta.json) through
its generator, then exact ground truth with memory bounded by chunks of queries rather than one
(queries x rows) mask: top-100 unfiltered and filtered for every query, and top-10 for the first
`--batch-lines` lines of the workload (the workload file is cut to those lines, so that it and
gt-batch.ivecs stay aligned; the full workload is kept as workload-batch-full.jsonl). At 1M the
shared generator is the reference; this script exists for 10M, where its 10 GB of masks and the
exact batch truth over 10,000 lines are out of reach on a 24 GiB, 2-core machine.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "bench"))


def lean_attrs(Attrs, d, schema):
    """The shared columnar view, filled line by line: `Attrs.load` keeps every record as a
    Python dict first, which at 10M rows does not fit in 24 GiB."""
    cols = {f: [] for f, t in schema.items() if t != "list"}
    lists = {f: {} for f, t in schema.items() if t == "list"}
    intern = {}
    n = 0
    with open(os.path.join(d, "attributes.jsonl")) as fh:
        for i, line in enumerate(fh):
            r = json.loads(line)
            for f, c in cols.items():
                v = r.get(f)
                if isinstance(v, str):
                    v = intern.setdefault(v, v)
                c.append(v)
            for f, inv in lists.items():
                for t in r.get(f) or ():
                    inv.setdefault(t, []).append(i)
            n = i + 1
    a = Attrs.__new__(Attrs)
    a.n, a.schema, a.cols, a.nulls = n, schema, {}, {}
    a.lists = {f: {t: np.asarray(ix, dtype=np.int64) for t, ix in inv.items()} for f, inv in lists.items()}
    for f, vals in cols.items():
        typ = schema[f]
        a.nulls[f] = np.fromiter((v is None for v in vals), dtype=bool, count=n)
        if typ == "int":
            a.cols[f] = np.fromiter((0 if v is None else v for v in vals), dtype=np.int64, count=n)
        elif typ == "float":
            a.cols[f] = np.fromiter((np.nan if v is None else v for v in vals), dtype=np.float64, count=n)
        else:
            a.cols[f] = np.array(["" if v is None else v for v in vals])
        cols[f] = None
    return a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--name", default=None)
    ap.add_argument("--batch-lines", type=int, default=2000)
    ap.add_argument("--query-chunk", type=int, default=50, help="filtered queries per pass over the base")
    a = ap.parse_args()
    os.environ.setdefault("PEERS_DATA", "/tmp/sextant-data")
    sys.path.insert(0, os.environ.get("SHARED_BENCH", SHARED))
    import make_datasets
    from common import DATA_ROOT, Attrs, load_filters, write_ivecs
    import ground_truth
    from ground_truth import exact_topk

    name = a.name or (f"synth-{a.n // 1_000_000}m-{a.dim}" if a.n >= 1_000_000 else f"synth-{a.n // 1000}k-{a.dim}")
    d = os.path.join(DATA_ROOT, name)
    if not os.path.exists(os.path.join(d, "meta.json")):
        t = time.time()
        make_datasets.synth_all(n=a.n, dim=a.dim, nclust=a.clusters, seed=a.seed, name=name)
        print(f"generated in {time.time() - t:.0f} s", flush=True)
    meta = json.load(open(os.path.join(d, "meta.json")))
    metric = meta["metric"]
    base = np.load(os.path.join(d, "base.npy"), mmap_mode="r")
    queries = np.load(os.path.join(d, "queries.npy"))
    k = 100
    if metric == "l2":
        # The shared scorer converts the whole base to float64 for its norms on every call
        # (10 GB at 10M rows, once per chunk of queries): the same norms, computed once by chunks.
        norms = np.concatenate([(base[s:s + 500_000].astype(np.float64) ** 2).sum(1).astype(np.float32)
                                for s in range(0, len(base), 500_000)])
        ground_truth.scores_fn = lambda metric, b: (lambda q, s, e: -(norms[s:e][None, :] - 2.0 * (q @ b[s:e].T)))

    def done(fname, rows):
        # A truth file from an earlier, interrupted run is kept when it is whole.
        path = os.path.join(d, fname)
        return os.path.exists(path) and os.path.getsize(path) == rows * 4 * (1 + k)

    t = time.time()
    if not done("gt-unfiltered.ivecs", len(queries)):
        write_ivecs(os.path.join(d, "gt-unfiltered.ivecs"), exact_topk(base, queries, metric, k, chunk=200_000))
        print(f"unfiltered truth in {time.time() - t:.0f} s", flush=True)

    attrs = lean_attrs(Attrs, d, meta["schema"])
    filters = load_filters(d)
    t = time.time()
    parts, sels = [], []
    for s in range(0, len(queries), a.query_chunk):
        e = min(len(queries), s + a.query_chunk)
        masks = np.stack([attrs.mask(f["where"]) for f in filters[s:e]])
        sels += [float(m.mean()) for m in masks]
        parts.append(exact_topk(base, queries[s:e], metric, k, masks=masks, chunk=200_000))
    gtf = np.concatenate(parts)
    write_ivecs(os.path.join(d, "gt-filtered.ivecs"), gtf)
    print(f"filtered truth in {time.time() - t:.0f} s", flush=True)

    full = os.path.join(d, "workload-batch-full.jsonl")
    if not os.path.exists(full):
        os.rename(os.path.join(d, "workload-batch.jsonl"), full)
    lines = open(full).read().splitlines()[: a.batch_lines]
    with open(os.path.join(d, "workload-batch.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    batch = load_filters(d, "workload-batch.jsonl")
    gtb = np.full((len(batch), 10), -1, dtype=np.int64)
    groups = {}
    for j, b in enumerate(batch):
        groups.setdefault(b["where"], []).append(j)
    t = time.time()
    for where, rows in groups.items():
        m = attrs.mask(where)
        qi = np.array([batch[j]["query"] for j in rows])
        uq, inv = np.unique(qi, return_inverse=True)
        res = exact_topk(base, queries[uq], metric, 10, masks=lambda s, e: np.broadcast_to(m[s:e], (len(uq), e - s)), chunk=200_000)
        gtb[np.array(rows)] = res[inv]
    write_ivecs(os.path.join(d, "gt-batch.ivecs"), gtb)
    print(f"batch truth ({len(batch)} lines, {len(groups)} predicates) in {time.time() - t:.0f} s", flush=True)

    meta["filter_selectivity"] = [round(s, 6) for s in sels]
    meta["gt"] = {"k": k, "batch_k": 10, "tie_break": "smaller id", "unfiltered": "gt-unfiltered.ivecs",
                  "filtered": "gt-filtered.ivecs", "batch": "gt-batch.ivecs", "batch_lines": len(batch)}
    json.dump(meta, open(os.path.join(d, "meta.json"), "w"), indent=1)
    print("wrote", d)


if __name__ == "__main__":
    main()
