"""Calibrate the batch-parallel thresholds of matbackprop.linalg.parallel (measurement, not a test).

For each (batch, n, dtype) it times three phases of a spectral layer -- the eigendecomposition, the
reconstruction Q f(L) Q^T and the Daleckii-Krein backward -- on torch's serial path (at the current
thread count) and split into chunks on the batch-parallel path, interleaved round by round, and prints
the median ratio serial / parallel. The thresholds in parallel.THRESHOLDS are read off this table:
the smallest work batch * n^3 (per chunk) where every phase stops losing.

    .venv/bin/python benchmarks/parallel_calibrate.py [--rounds 9] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from matbackprop.linalg import parallel
from matbackprop.linalg.funm import LOG, _frechet, _reconstruct, loewner_matrix


def spd(b: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    A = torch.randn(b, n, n, dtype=dtype)
    return A @ A.mT / n + torch.eye(n, dtype=dtype)


def phases(X: torch.Tensor):
    L, Q = torch.linalg.eigh(X)
    G = torch.randn_like(X)
    return {
        "eigh": (lambda X: torch.linalg.eigh(X), (X,), (2,)),
        "recon": (lambda L, Q: _reconstruct(L, Q, LOG), (L, Q), (1, 2)),
        "backward": (lambda L, Q, G: _frechet(Q, loewner_matrix(LOG, L), G), (L, Q, G), (1, 2, 2)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--sizes",
        default="64x8,16x16,64x16,8x32,32x32,256x32,1024x32,4x64,16x64,64x64,512x64,"
        "2x128,8x128,64x128,2x256,8x256,2x512,4x512",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    saved = dict(parallel.THRESHOLDS)
    print(
        f"threads {threads}; minimum of {args.rounds} interleaved rounds (the machine is shared: minima show each path unstalled); ratio = serial / parallel"
    )
    print("| batch x n | dtype | work/chunk | eigh | recon | backward |")
    print("|---|---|---|---|---|---|")
    for item in args.sizes.split(","):
        b, n = map(int, item.split("x"))
        for dtype in (torch.float32, torch.float64):
            torch.manual_seed(0)
            X = spd(b, n, dtype)
            cells = []
            for fn, ops, dims in phases(X).values():
                times = {"serial": [], "parallel": []}
                for r in range(args.rounds + 1):
                    for mode in ("serial", "parallel") if r % 2 else ("parallel", "serial"):
                        if mode == "serial":
                            parallel.set_enabled(False)
                        else:
                            parallel.set_enabled(True)
                            parallel.THRESHOLDS.update({d: (1e-9, 1 << 30) for d in saved})
                        t = time.perf_counter()
                        parallel.map_batch(fn, *ops, core_dims=dims, n=n)
                        if r:  # the first round warms up
                            times[mode].append(time.perf_counter() - t)
                        parallel.THRESHOLDS.update(saved)
                s, p = min(times["serial"]), min(times["parallel"])
                cells.append(f"{s / p:.2f} ({s * 1e3:.2f} ms)")
            chunks = min(threads, b)
            print(f"| {b}x{n} | {str(dtype)[6:]} | {b * n**3 / chunks:.2g} | " + " | ".join(cells) + " |", flush=True)
    parallel.set_enabled(True)


if __name__ == "__main__":
    main()
