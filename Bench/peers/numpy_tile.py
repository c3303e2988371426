"""numpy's matmul formulation of a distance tile, one thread: the reference that
`KernelMeasure tile` is compared with in the same run.

    L2: ‖q‖² − 2 q·x + ‖x‖²  (one `Q @ X.T` sgemm, then in-place broadcasts)
    IP: −(Q @ X.T)

Same shapes as KernelMeasure, uniform floats in [-1, 1) (the values do not change the
timing of either side). Prints one JSON line with the BLAS core in use and the
median seconds / GFLOP/s (2·nq·nv·d flops, the sgemm count, for both kinds).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 taskset -c 0 \
        /tmp/peers-venv/bin/python Bench/peers/numpy_tile.py [NQ NV D RUNS]
"""
import ctypes
import glob
import json
import os
import sys
import time

import numpy as np

NQ, NV, D, RUNS = (int(a) for a in (sys.argv[1:5] if len(sys.argv) >= 5 else (256, 100_000, 384, 5)))


def blas_info():
    """The OpenBLAS kernel actually selected at run time (DYNAMIC_ARCH builds pick per CPU)."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "libscipy_openblas*.so"))
    if not libs:
        return {"blas": "unknown"}
    lib = ctypes.CDLL(libs[0])
    info = {}
    for key, sym in (("corename", "scipy_openblas_get_corename64_"), ("config", "scipy_openblas_get_config64_")):
        f = getattr(lib, sym, None)
        if f is not None:
            f.restype = ctypes.c_char_p
            info[key] = f().decode()
    f = getattr(lib, "scipy_openblas_get_num_threads64_", None)
    if f is not None:
        info["threads"] = f()
    return info


def data(seed, rows):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(rows, D)).astype(np.float32)


Q = data(4, NQ)
X = data(3, NV)
out = np.empty((NQ, NV), dtype=np.float32)


def l2():
    np.matmul(Q, X.T, out=out)
    np.multiply(out, -2, out=out)
    np.add(out, np.einsum("ij,ij->i", Q, Q)[:, None], out=out)
    np.add(out, np.einsum("ij,ij->i", X, X)[None, :], out=out)


def ip():
    np.matmul(Q, X.T, out=out)
    np.negative(out, out=out)


def gemm_only():
    np.matmul(Q, X.T, out=out)


def median_seconds(f):
    f()  # warm-up: page in `out`, pick the kernel
    ts = []
    for _ in range(RUNS):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


flops = 2.0 * NQ * NV * D
result = {"shape": [NQ, NV, D], "runs": RUNS, **blas_info()}
for name, f in (("sgemm", gemm_only), ("l2", l2), ("ip", ip)):
    s = median_seconds(f)
    result[name] = {"seconds": round(s, 4), "gflops": round(flops / s / 1e9, 2)}
print(json.dumps(result))
