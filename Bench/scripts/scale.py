#!/usr/bin/env python3
"""Scale benchmark: Sextant and its peers on one synthetic dataset, in one run, in one table.

    python3 Bench/scripts/scale.py SEXTANT DATA_ROOT WORK_DIR [options]

    # the 1M x 128 set (generated under DATA_ROOT first if absent: ~15 min on one core)
    python3 Bench/scripts/scale.py .build/release/sextant /tmp/sextant-data /tmp/scale-1m
    # a quick check on 20,000 rows
    python3 Bench/scripts/scale.py .build/release/sextant /tmp/scale-data /tmp/scale-work \\
        --n 20000 --peers hnswlib,faiss-ivfpq

Steps, in one run:
 1. DATA_ROOT/NAME (NAME = synth-1m-128 for --n 1000000 --dim 128, as make_synth.py names it):
    reused when complete, else written by ../shared/bench/make_synth.py (deterministic).
 2. Sextant store WORK_DIR/sextant/db: `create` (--index RECIPE, schema and metric from
    meta.json), `import --no-sync`, `calibrate --queries queries.fvecs`, each under
    /usr/bin/time -v (wall, peak RSS); disk = size of data.mdb. Unless --no-partition, a copy
    WORK_DIR/sextant/db-part is laid out with `partition --workload workload-batch.jsonl`
    (timed the same way; it keeps the recall model and compacts the file), and measured as a
    second engine.
 3. Each store, one search thread pinned with `taskset -c 1`: the unfiltered queries at every
    --efs beam width (`bench --plan filtered-graph --ef E`), then Bench/scripts/buckets.py (the
    planner's choice, unfiltered and per selectivity bucket) at each --targets recall target;
    the batch workload (`sextant batch` on workload-batch.jsonl against gt-batch.ivecs) on
    2 threads (`taskset -c 0,1`, as the peers' harness runs its batch workload) and on 1
    thread. Every Sextant figure is the median of --rounds runs.
 4. Each of --peers through ../shared/bench/run_peers.py (its protocol: build on both cores,
    sweeps pinned to CPU 0, one pass per setting), with PEERS_DATA=DATA_ROOT,
    PEERS_WORK=WORK_DIR/peers/work, PEERS_OUT=WORK_DIR/peers/results; logs in WORK_DIR/peers/.
 5. Prints one markdown table (build, peak RSS, disk, best QPS at recall@10 >= 0.95 unfiltered
    and per bucket, batch workload) with Sextant / best-peer ratios, and writes it with every
    raw figure to WORK_DIR/scale.md and WORK_DIR/scale.json.

--skip-build reuses the stores in WORK_DIR and the build figures recorded with them;
--skip-peers reuses the peers' summaries already in WORK_DIR/peers/results. The peers need
--python with numpy, hnswlib and faiss-cpu (see ../shared/bench/README.md).
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKETS_PY = os.path.join(ROOT, "Bench", "scripts", "buckets.py")
TYPES = {"str": "string", "int": "int", "float": "double", "list": "[string]"}
COLLECTION = "items"
K = 10
RECALL = 0.95


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sextant", help="the sextant binary (a release build)")
    ap.add_argument("data_root", help="datasets live in DATA_ROOT/NAME (PEERS_DATA)")
    ap.add_argument("work", help="stores, peer indexes, logs and results")
    ap.add_argument("--n", type=int, default=1_000_000, help="rows of the synthetic set (default 1,000,000)")
    ap.add_argument("--dim", type=int, default=128, help="dimension (default 128)")
    ap.add_argument("--name", help="dataset name (default: make_synth.py's, e.g. synth-1m-128)")
    ap.add_argument("--index", default="HNSW16", help="Sextant index recipe (default HNSW16)")
    ap.add_argument("--peers", default="hnswlib,faiss-ivfpq,faiss-hnsw,faiss-flat", help="comma list of run_peers.py peers")
    ap.add_argument("--rounds", type=int, default=3, help="runs per Sextant measurement; medians are reported (default 3)")
    ap.add_argument("--efs", default="16,32,64,128,256,512", help="beam widths of the unfiltered graph sweep")
    ap.add_argument("--targets", default="0.95,0.99", help="planner recall targets (--recall) for buckets.py")
    ap.add_argument("--skip-build", action="store_true", help="reuse the Sextant stores in WORK_DIR")
    ap.add_argument("--no-partition", action="store_true", help="no partitioned copy of the store")
    ap.add_argument("--skip-peers", action="store_true", help="reuse the peers' summaries in WORK_DIR/peers/results")
    ap.add_argument("--python", default="/tmp/peers-venv/bin/python", help="python with numpy, hnswlib, faiss-cpu")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared", "bench"), help="the peers' harness directory")
    args = ap.parse_args()
    args.name = args.name or dataset_name(args.n, args.dim)
    args.sextant = os.path.abspath(args.sextant)
    args.data_root, args.work = os.path.abspath(args.data_root), os.path.abspath(args.work)
    return args


def dataset_name(n, dim):
    """make_synth.py's default name for a size."""
    return f"synth-{n // 1_000_000}m-{dim}" if n >= 1_000_000 else f"synth-{n // 1000}k-{dim}"


def log(msg):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def run(cmd, logfile, env=None):
    """Runs cmd with stdout and stderr appended to logfile; returns stdout. Fails loudly."""
    with open(logfile, "a") as lf:
        lf.write("$ " + " ".join(cmd) + "\n")
        lf.flush()
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=lf, text=True, env=env)
        lf.write(out.stdout)
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}; see {logfile}")
    return out.stdout


def timed(cmd, logfile):
    """Runs cmd under /usr/bin/time -v: wall seconds and peak RSS (MiB)."""
    tfile = logfile + ".time"
    t0 = time.perf_counter()
    run(["/usr/bin/time", "-v", "-o", tfile] + cmd, logfile)
    wall = time.perf_counter() - t0
    rss_kb = next(int(l.split(":")[1]) for l in open(tfile) if "Maximum resident set size" in l)
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(rss_kb / 1024, 1)}


def need_python(args):
    if not os.path.exists(args.python):
        sys.exit(f"{args.python} not found; create it: python3 -m venv /tmp/peers-venv && "
                 "/tmp/peers-venv/bin/pip install numpy hnswlib faiss-cpu (or pass --python)")


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


# ------------------------------------------------------------------ dataset
def ensure_dataset(args):
    data = os.path.join(args.data_root, args.name)
    needed = ["meta.json", "base.fvecs", "attributes.jsonl", "queries.fvecs", "queries.npy", "filters.jsonl",
              "workload-batch.jsonl", "gt-unfiltered.ivecs", "gt-filtered.ivecs", "gt-batch.ivecs"]
    if all(os.path.exists(os.path.join(data, f)) for f in needed):
        log(f"dataset {data}: present")
        return data
    log(f"dataset {data}: generating with make_synth.py")
    need_python(args)
    env = dict(os.environ, PEERS_DATA=args.data_root)
    subprocess.run([args.python, os.path.join(args.shared, "make_synth.py"), "--n", str(args.n), "--dim", str(args.dim),
                    "--name", args.name], env=env, check=True)
    return data


# ------------------------------------------------------------------ Sextant: build
def build_store(args, data, meta, db):
    """create + import + calibrate; returns the phases' wall time and peak RSS."""
    shutil.rmtree(db, ignore_errors=True)
    os.makedirs(os.path.dirname(db), exist_ok=True)
    logfile = os.path.join(os.path.dirname(db), "build.log")
    schema = ",".join(f"{f}:{TYPES[t]}" for f, t in meta["schema"].items())
    S = args.sextant
    phases = {
        "create": timed([S, "create", db, COLLECTION, "--dim", str(meta["dim"]), "--metric", meta["metric"],
                         "--schema", schema, "--index", args.index], logfile),
        "import": timed([S, "import", db, COLLECTION, "--vectors", os.path.join(data, "base.fvecs"),
                         "--attributes", os.path.join(data, "attributes.jsonl"), "--no-sync"], logfile),
        "calibrate": timed([S, "calibrate", db, COLLECTION, "--queries", os.path.join(data, "queries.fvecs")], logfile),
    }
    return summarise_build(phases, db)


def partition_store(args, data, db, part):
    """A copy of db laid out for the batch workload (partition keeps the recall model measured
    with the queries and measures the cost model again)."""
    shutil.rmtree(part, ignore_errors=True)
    shutil.copytree(db, part)
    logfile = os.path.join(os.path.dirname(part), "partition.log")
    S = args.sextant
    phases = {
        "partition": timed([S, "partition", part, COLLECTION, "--workload", os.path.join(data, "workload-batch.jsonl")], logfile),
    }
    return summarise_build(phases, part)


def summarise_build(phases, db):
    return {"phases": phases, "wall_s": round(sum(p["wall_s"] for p in phases.values()), 2),
            "peak_rss_mb": max(p["peak_rss_mb"] for p in phases.values()),
            "disk_bytes": os.path.getsize(os.path.join(db, "data.mdb"))}


# ------------------------------------------------------------------ Sextant: search
def measure_sextant(args, data, db, logfile):
    """Unfiltered beam sweep, planner per bucket at each target, batch workload on 2 and 1 threads."""
    S, runs = args.sextant, str(args.rounds)
    pin1 = ["taskset", "-c", "1"]
    unfiltered = []
    for ef in [int(x) for x in args.efs.split(",")]:
        r = last_json(run(pin1 + [S, "bench", db, COLLECTION, "--queries", os.path.join(data, "queries.fvecs"),
                                  "--truth", os.path.join(data, "gt-unfiltered.ivecs"), "-k", str(K), "--runs", runs,
                                  "--threads", "1", "--plan", "filtered-graph", "--ef", str(ef), "--json"], logfile))
        unfiltered.append({"setting": f"ef {ef}", "recall": r["recall"], "qps": r["qps"], "p50_ms": r["p50_ms"]})
        log(f"  unfiltered ef {ef}: recall {r['recall']:.4f}, {r['qps']:,.0f} QPS")
    buckets = {}
    for target in args.targets.split(","):
        out = run([sys.executable, BUCKETS_PY, S, db, COLLECTION, data, "--runs", runs, "--cpu", "1", "--recall", target], logfile)
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            pt = {"setting": f"planner {target}", "recall": r["recall"], "qps": r["qps"],
                  "expected_recall": r.get("expected_recall"), "short_results": r["short_results"], "p50_ms": r["p50_ms"]}
            (unfiltered if r["bucket"] == "unfiltered" else buckets.setdefault(r["bucket"], [])).append(pt)
        log(f"  planner at target {target}: " + ", ".join(f"{b} {pts[-1]['recall']:.3f}/{pts[-1]['qps']:,.0f}" for b, pts in buckets.items()))
    return {"unfiltered": unfiltered, "buckets": buckets, "batch": batch_workload(args, data, db, 2, logfile),
            "batch_1thread": batch_workload(args, data, db, 1, logfile)}


def batch_workload(args, data, db, threads, logfile):
    """`sextant batch` on the whole workload, --rounds times; median QPS."""
    cpus = "0,1" if threads == 2 else "1"
    runs = []
    for _ in range(args.rounds):
        runs.append(last_json(run(["taskset", "-c", cpus, args.sextant, "batch", db, COLLECTION,
                                   "--workload", os.path.join(data, "workload-batch.jsonl"),
                                   "--queries", os.path.join(data, "queries.npy"), "--out", os.path.join(args.work, "batch-out.ivecs"),
                                   "--truth", os.path.join(data, "gt-batch.ivecs"), "-k", str(K), "--threads", str(threads), "--json"], logfile)))
    qps = statistics.median(r["qps"] for r in runs)
    log(f"  batch workload, {threads} thread(s): {qps:,.0f} QPS, recall {runs[-1]['recall']:.4f}")
    return {"qps": round(qps, 1), "recall": runs[-1]["recall"], "short_results": runs[-1].get("short_results"),
            "threads": threads, "runs": runs}


def sextant_engine(args, data, db, build, label):
    logfile = os.path.join(os.path.dirname(db), os.path.basename(db) + "-search.log")
    log(f"{label}: measuring")
    return {"engine": label, "peer": False, "build": build, **measure_sextant(args, data, db, logfile)}


# ------------------------------------------------------------------ peers
def peer_engine(args, peer):
    """Runs one peer through run_peers.py (unless --skip-peers) and reads its summary."""
    env = dict(os.environ, PEERS_DATA=args.data_root, PEERS_WORK=os.path.join(args.work, "peers", "work"),
               PEERS_OUT=os.path.join(args.work, "peers", "results"))
    summary = os.path.join(env["PEERS_OUT"], args.name, peer + ".json")
    if not args.skip_peers:
        need_python(args)
        logfile = os.path.join(args.work, "peers", peer + ".log")
        open(logfile, "w").close()
        log(f"{peer}: run_peers.py")
        t0 = time.perf_counter()
        run([args.python, os.path.join(args.shared, "run_peers.py"), "--dataset", args.name, "--peer", peer], logfile, env)
        log(f"{peer}: done in {time.perf_counter() - t0:.0f} s")
    if not os.path.exists(summary):
        log(f"{peer}: no summary at {summary}, left out")
        return None
    raw = json.load(open(summary))
    buckets = {}
    for p in raw.get("filtered", []):
        for b, v in p["buckets"].items():
            buckets.setdefault(b, []).append({"setting": peer_setting(p["setting"]), **v})
    return {
        "engine": peer,
        "peer": True,
        # the harness's peak covers its whole run; what it held after loading the dataset is taken off
        "build": {"wall_s": raw["build_s"], "peak_rss_mb": round(raw["peak_rss_mb"] - raw["rss_after_loading_data_mb"], 1),
                  "disk_bytes": raw["disk_bytes"]},
        "unfiltered": [{"setting": peer_setting(p["setting"]), "recall": p["recall"], "qps": p["qps"]} for p in raw["unfiltered"]],
        "buckets": buckets,
        "batch": raw.get("batch_workload"),
        "raw": raw,
    }


def peer_setting(s):
    if s is None:
        return "exact"
    if isinstance(s, int):
        return f"ef {s}"
    if isinstance(s, list) and len(s) == 2:
        return f"nprobe {s[0]}, k_factor {s[1]}"
    return json.dumps(s)


# ------------------------------------------------------------------ table
def best(points):
    """Best QPS among points at recall >= RECALL, else the best recall reached."""
    ok = [p for p in points if p["recall"] >= RECALL]
    if ok:
        b = max(ok, key=lambda p: p["qps"])
        return {"qps": b["qps"], "recall": b["recall"], "setting": b["setting"]}
    return {"qps": None, "max_recall": max((p["recall"] for p in points), default=None)}


def columns(e, bucket_names):
    """One engine's row: column title -> (figure, lower is better). QPS figures are dicts of best()."""
    b, batch = e["build"], e["batch"]
    cols = {"build (s)": (b["wall_s"], True), "peak RSS (MiB)": (b["peak_rss_mb"], True),
            "disk (MiB)": (b["disk_bytes"] / 2**20, True), "unfiltered QPS (setting)": (best(e["unfiltered"]), False)}
    for name in bucket_names:
        cols[f"{name} QPS"] = (best(e["buckets"].get(name, [])), False)
    cols["batch QPS, 2 threads (recall)"] = ({"qps": batch["qps"] if batch and batch["recall"] >= RECALL else None,
                                              "batch": batch}, False)
    return cols


def number(v):
    return v["qps"] if isinstance(v, dict) else v


def cell(title, v):
    if not isinstance(v, dict):
        return f"{v:.2f}" if v < 1 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
    if "batch" in v:
        return "—" if v["batch"] is None else f"{v['batch']['qps']:,.0f} ({v['batch']['recall']:.3f})"
    if v["qps"] is None:
        return "—" if v["max_recall"] is None else f"never ({v['max_recall']:.3f})"
    return f"{v['qps']:,.0f}" + (f" ({v['setting']})" if "(setting)" in title else "")


def ratio_cell(mine, peers):
    """mine ÷ the best peer figure (the fastest, or the smallest), naming that peer."""
    value, lower = mine
    cands = [(number(v), name) for name, (v, _) in peers if number(v) is not None]
    if number(value) is None or not cands:
        return "—"
    ref, who = min(cands) if lower else max(cands)
    r = number(value) / ref
    return f"{r:.2f}x ({who})" if r < 10 else f"{r:,.0f}x ({who})"


def render(engines, bucket_names, header):
    rows = {e["engine"]: columns(e, bucket_names) for e in engines}
    titles = list(next(iter(rows.values())))
    lines = header + ["", "| engine | " + " | ".join(titles) + " |", "|---" * (len(titles) + 1) + "|"]
    for name, cols in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(t, cols[t][0]) for t in titles) + " |")
    sextants = [e["engine"] for e in engines if not e["peer"]]
    peers = [e["engine"] for e in engines if e["peer"]]
    if peers:
        for s in sextants:
            lines.append(f"| {s} ÷ best peer | " + " | ".join(
                ratio_cell(rows[s][t], [(p, rows[p][t]) for p in peers]) for t in titles) + " |")
    lines.append("")
    lines.append(f"QPS columns: best queries/s at recall@{K} >= {RECALL} on one thread; never (r): no setting reached it, r the best "
                 "recall. Batch: the whole workload, 2 threads. Ratios: Sextant ÷ the best peer (fastest, or smallest for build, "
                 f"RSS, disk; batch only against peers with recall >= {RECALL}).")
    for e in engines:
        if not e["peer"]:
            b1 = e["batch_1thread"]
            lines.append(f"{e['engine']}: batch workload on 1 thread {b1['qps']:,.0f} QPS (recall {b1['recall']:.3f}).")
    return "\n".join(lines)


def sextant_stores(args, data, meta):
    """Builds the store and its partitioned copy, or reuses them (--skip-build) with the build
    figures recorded in WORK_DIR/sextant/builds.json; returns [(label, db, build)]."""
    root = os.path.join(args.work, "sextant")
    path = os.path.join(root, "builds.json")
    builds = json.load(open(path)) if args.skip_build and os.path.exists(path) else {}
    db, part = os.path.join(root, "db"), os.path.join(root, "db-part")
    if not (args.skip_build and "db" in builds and os.path.isdir(db)):
        log(f"building {db}")
        builds = {"db": build_store(args, data, meta, db)}
    stores = [(f"Sextant {args.index}", db, builds["db"])]
    if not args.no_partition:
        if not ("db-part" in builds and os.path.isdir(part)):
            log(f"partitioning a copy: {part}")
            builds["db-part"] = add_builds(builds["db"], partition_store(args, data, db, part))
        stores.append((f"Sextant {args.index}, partitioned", part, builds["db-part"]))
    with open(path, "w") as f:
        json.dump(builds, f, indent=1)
    for label, _, b in stores:
        log(f"{label}: build {b['wall_s']} s, peak RSS {b['peak_rss_mb']} MiB, data.mdb {b['disk_bytes'] / 2**20:.1f} MiB")
    return stores


def add_builds(a, b):
    """The partitioned store's build: the plain store's phases, then its own."""
    phases = {**a["phases"], **{"part-" + k: v for k, v in b["phases"].items()}}
    return {"phases": phases, "wall_s": round(a["wall_s"] + b["wall_s"], 2), "peak_rss_mb": max(a["peak_rss_mb"], b["peak_rss_mb"]),
            "disk_bytes": b["disk_bytes"]}


def main():
    args = parse_args()
    os.makedirs(os.path.join(args.work, "peers"), exist_ok=True)
    peers = [p for p in args.peers.split(",") if p]
    data = ensure_dataset(args)
    meta = json.load(open(os.path.join(data, "meta.json")))
    engines = [sextant_engine(args, data, db, build, label) for label, db, build in sextant_stores(args, data, meta)]
    engines += [e for e in (peer_engine(args, p) for p in peers) if e]
    bucket_names = sorted({b for e in engines for b in e["buckets"]}, key=lambda b: float(b.rstrip("%")))
    version = subprocess.run([args.sextant, "--version"], capture_output=True, text=True).stdout.strip()
    header = [f"## {args.name}: {meta['n_base']:,} x {meta['dim']}, {meta['metric']}, k = {K}",
              "",
              f"{datetime.date.today()}, {cpu_model()}, {os.cpu_count()} CPUs, sextant {version}, --index {args.index}; "
              f"Sextant: median of --rounds {args.rounds} runs; peers: one pass per setting (run_peers.py)."]
    table = render(engines, bucket_names, header)
    print(table)
    with open(os.path.join(args.work, "scale.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.work, "scale.json"), "w") as f:
        json.dump({"dataset": args.name, "data_dir": data, "args": vars(args), "table": table, "engines": engines}, f, indent=1)
    log(f"wrote {os.path.join(args.work, 'scale.md')} and scale.json")


def cpu_model():
    with open("/proc/cpuinfo") as f:
        return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown CPU")


if __name__ == "__main__":
    main()
