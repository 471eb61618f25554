"""Normalized cuts at full image scale: ncut_embedding + projector_loss, forward and backward.

Measures, for N nodes (default one full BSDS500 image, 321 x 481 = 154,401 pixels), d feature channels
and k eigenvectors: the median wall time of forward+backward, and the peak resident memory the step
adds, as a multiple of the N x d feature tensor. Each configuration runs in a fresh subprocess so that
peak memory (VmHWM) belongs to it alone. A dense float32 affinity at N = 154,401 would need 95 GB.

    .venv/bin/python benchmarks/bench_ncut.py
    .venv/bin/python benchmarks/bench_ncut.py --nodes 10000 154401 1000000 --dtypes float32
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(nodes: int, d: int, k: int, dtype_name: str, repeats: int, segments: int) -> dict:
    import torch

    import matbackprop as mb

    dtype = getattr(torch, dtype_name)
    g = torch.Generator().manual_seed(0)
    F = torch.rand(1, nodes, d, dtype=dtype, generator=g).requires_grad_(True)
    labels = torch.randint(0, segments, (1, nodes), generator=g)

    def step() -> None:
        F.grad = None
        loss = mb.projector_loss(mb.ncut_embedding(F, k), labels).sum()
        loss.backward()

    step()  # warm-up (allocator, thread pools)
    base = _rss_kib("VmRSS")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = _rss_kib("VmHWM")
    feature_bytes = F.numel() * F.element_size()
    return {
        "nodes": nodes, "d": d, "k": k, "dtype": dtype_name, "median_s": statistics.median(times),
        "min_s": min(times), "feature_mb": feature_bytes / 2**20,
        "peak_extra_mb": max(0, peak - base) / 1024, "peak_over_features": max(0, peak - base) * 1024 / feature_bytes,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[154401])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--segments", type=int, default=8, help="labels in the random target segmentation")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(**json.loads(args.child))))
        return
    print(f"{'N':>9} {'d':>4} {'k':>3} {'dtype':>8} {'median s':>9} {'min s':>7} {'features MB':>12} "
          f"{'peak extra MB':>14} {'peak/features':>14}")
    for nodes in args.nodes:
        for dtype in args.dtypes:
            spec = dict(nodes=nodes, d=args.d, k=args.k, dtype_name=dtype, repeats=args.repeats, segments=args.segments)
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['nodes']:>9} {r['d']:>4} {r['k']:>3} {r['dtype']:>8} {r['median_s']:>9.3f} {r['min_s']:>7.3f} "
                  f"{r['feature_mb']:>12.1f} {r['peak_extra_mb']:>14.1f} {r['peak_over_features']:>14.2f}")


if __name__ == "__main__":
    main()
