#!/usr/bin/env python3
"""PyTorch peer of `encore bench kernels`.

Measures the same kernels Encore does, with the same timing rule, so the two can be set side by
side: torch.mm for each GEMM shape (labelled M x K x N: C(M,N) = A(M,K) @ B(K,N), float32), and
batch-1 torch.nn.functional.linear (y = x @ W.T, W of shape (N, K)) per weight dtype, rotating over
enough distinct weight matrices to exceed the last-level cache so the weights come from DRAM.

Timing rule (encore's Bench/Timing.cs): runs + 1 runs, each repeating the call until at least
--min-seconds have passed; the first run is a warm-up and is dropped; the figure is the median of
the others' seconds per call.

Prints one JSON object to stdout. Exit code 3 (and an "error" object) when torch is not importable,
so the caller can try another interpreter.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

TORCH_MISSING = 3


def median_seconds_per_call(call, runs, min_seconds):
    index = 0
    per_call = []
    for r in range(-1, runs):
        calls = 0
        t0 = time.perf_counter()
        while True:
            call(index)
            index += 1
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                break
        if r >= 0:
            per_call.append(elapsed / calls)
    return statistics.median(per_call)


def linked_math_libraries():
    """BLAS-like libraries mapped into this process: the Debian build's torch.mm calls the system
    libblas.so.3 (netlib reference, OpenBLAS or BLIS, whichever update-alternatives selects), which
    decides its GEMM speed."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" in line}
    except OSError:
        return None
    keys = ("blas", "blis", "mkl", "dnnl")
    names = sorted({os.path.realpath(p) for p in paths if any(k in os.path.basename(p).lower() for k in keys)})
    return ", ".join(names) or None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per figure (median)")
    ap.add_argument("--min-seconds", type=float, default=0.2, help="shortest timed run")
    ap.add_argument("--gemm", default="1024x1024x1024,128x1024x4096,512x384x1024", help="comma-separated MxKxN shapes")
    ap.add_argument("--gemv-size", type=int, default=4096, help="N = K of the GEMV weights")
    ap.add_argument("--gemv-dtypes", default="f32,bf16,f16", help="comma-separated weight dtypes")
    ap.add_argument("--working-set-bytes", type=int, default=256 << 20, help="bytes of weights the GEMV calls rotate over")
    args = ap.parse_args()
    if args.threads < 1 or args.runs < 1 or args.min_seconds <= 0 or args.gemv_size < 1:
        ap.error("--threads, --runs, --min-seconds and --gemv-size must be positive")

    # torch.set_num_threads sizes ATen's own pool; the BLAS torch.mm calls (OpenBLAS, BLIS, MKL)
    # reads its thread count from the environment when it loads, so set that first too.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": f"torch is not importable: {e}", "python": sys.executable}))
        return TORCH_MISSING

    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    result = {
        "peer": "pytorch",
        "torch_version": torch.__version__,
        "python": sys.executable,
        "threads": torch.get_num_threads(),
        "runs": args.runs,
        "gemm": [],
        "gemv": [],
    }

    with torch.no_grad():
        for spec in filter(None, args.gemm.split(",")):
            m, k, n = (int(v) for v in spec.lower().split("x"))
            a = torch.rand(m, k) * 2 - 1
            b = torch.rand(k, n) * 2 - 1
            c = torch.empty(m, n)
            s = median_seconds_per_call(lambda i: torch.mm(a, b, out=c), args.runs, args.min_seconds)
            result["gemm"].append({"m": m, "k": k, "n": n, "seconds": s, "gflops": 2.0 * m * k * n / s / 1e9})

        size = args.gemv_size
        source = torch.rand(size, size) * 2 - 1
        dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
        for name in filter(None, args.gemv_dtypes.split(",")):
            if name not in dtypes:
                result["gemv"].append({"dtype": name, "error": "no PyTorch counterpart"})
                continue
            dt = dtypes[name]
            w0 = source.to(dt)
            # F.linear needs x and W in one dtype, so below f32 the activations are narrowed too
            # (Encore keeps them f32); the bytes counted are the weights' either way.
            compared = "F.linear, f32 x and W" if dt == torch.float32 else f"F.linear, {name} x and W (Encore: f32 x, {name} W)"
            x = (torch.rand(1, size) * 2 - 1).to(dt)
            try:
                F.linear(x, w0)
            except RuntimeError as e:
                result["gemv"].append({"dtype": name, "error": str(e).splitlines()[0]})
                continue
            nbytes = w0.element_size() * w0.numel()
            count = max(2, math.ceil(args.working_set_bytes / nbytes))
            weights = [w0] + [w0.clone() for _ in range(count - 1)]
            s = median_seconds_per_call(lambda i: F.linear(x, weights[i % count]), args.runs, args.min_seconds)
            result["gemv"].append({"dtype": name, "n": size, "k": size, "matrices": count, "seconds": s,
                                   "gb_per_second": nbytes / s / 1e9, "compared": compared})
            del weights, w0

    result["math_libraries"] = linked_math_libraries()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
