#!/usr/bin/env python3
"""Filtered recall and QPS of the planner's choice per selectivity bucket.

    python3 Bench/scripts/buckets.py SEXTANT DB COLLECTION DATA_DIR [--runs 3] [--cpu 1] [--recall 0.95] [-- extra bench flags]

DATA_DIR holds queries.fvecs, filters.jsonl (one {"where", "bucket"} per query) and
gt-filtered.ivecs, as ../shared/data/pypi-50k and ../shared/bench/make_synth.py write them. The
queries of each bucket are split into their own files (in a temporary directory) and measured with
`sextant bench` pinned to one CPU (`taskset -c CPU`), one search thread; the unfiltered queries
against gt-unfiltered.ivecs come first. Prints one JSON line per bucket and a table.
"""
import atexit
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile


def read_vecs(path, fmt):
    rows = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data):
        (d,) = struct.unpack_from("<i", data, off)
        off += 4
        rows.append(data[off:off + 4 * d])
        off += 4 * d
    return rows


def write_vecs(path, rows):
    with open(path, "wb") as f:
        for r in rows:
            f.write(struct.pack("<i", len(r) // 4))
            f.write(r)


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    opts = {"--runs": "3", "--cpu": "1", "--recall": "0.95"}
    pos = []
    it = iter(args)
    for a in it:
        if a in opts:
            opts[a] = next(it)
        else:
            pos.append(a)
    if len(pos) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    sextant, db, coll, data = pos
    queries = read_vecs(os.path.join(data, "queries.fvecs"), "f")
    truth = read_vecs(os.path.join(data, "gt-filtered.ivecs"), "i")
    filters = [json.loads(l) for l in open(os.path.join(data, "filters.jsonl"))]
    buckets = {}
    for i, f in enumerate(filters):
        buckets.setdefault(f.get("bucket", "all"), []).append(i)
    tmp = tempfile.mkdtemp(prefix="sextant-buckets-")
    atexit.register(shutil.rmtree, tmp, True)
    runs = [("unfiltered", os.path.join(data, "queries.fvecs"), os.path.join(data, "gt-unfiltered.ivecs"), None)]
    for b in sorted(buckets, key=lambda x: float(x.rstrip("%")) if x.rstrip("%").replace(".", "").isdigit() else 1e9):
        idx = buckets[b]
        safe = "".join(c if c.isalnum() else "_" for c in b)
        q, t, fl = (os.path.join(tmp, f"{safe}-{n}") for n in ("q.fvecs", "gt.ivecs", "f.jsonl"))
        write_vecs(q, [queries[i] for i in idx])
        write_vecs(t, [truth[i] for i in idx])
        with open(fl, "w") as f:
            for i in idx:
                f.write(json.dumps({"where": filters[i]["where"]}) + "\n")
        runs.append((b, q, t, fl))
    table = []
    for name, q, t, fl in runs:
        cmd = ["taskset", "-c", opts["--cpu"], sextant, "bench", db, coll, "--queries", q, "--truth", t, "-k", "10",
               "--runs", opts["--runs"], "--threads", "1", "--recall", opts["--recall"], "--json"] + extra
        if fl:
            cmd += ["--filters", fl]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed: {out.stderr.strip()[-400:]}", file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["bucket"] = name
        print(json.dumps(r), flush=True)
        table.append(r)
    print()
    print("| bucket | queries | recall@10 | expected | short lists | QPS (1 thread) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        exp = "—" if r.get("expected_recall") is None else f"{r['expected_recall']:.3f}"
        print(f"| {r['bucket']} | {r['queries']} | {r['recall']:.3f} | {exp} | {r['short_results']} | {r['qps']:,.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")


if __name__ == "__main__":
    main()
