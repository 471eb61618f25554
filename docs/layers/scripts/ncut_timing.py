"""Forward+backward time of ncut_embedding + projector_loss (low-rank route) against
ncut_embedding_dense(F F^T) (docs/layers/normalized_cuts.md). Float32, d=64, k=4, 5 labels, one CPU
thread, best of 3 after a warm-up.

    .venv/bin/python docs/layers/scripts/ncut_timing.py
"""

import time

import torch

import matbackprop as mb

torch.set_num_threads(1)


def best(fn, reps=3):
    """Best wall time of `reps` calls of fn after one warm-up call."""
    fn()
    t = float("inf")
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - s)
    return t


g = torch.Generator().manual_seed(0)
d, k = 64, 4
for N in (1024, 4096, 16384, 154401):
    F = torch.rand(N, d, generator=g).requires_grad_(True)
    labels = torch.randint(0, 5, (N,), generator=g)

    def low(F=F, labels=labels):
        return torch.autograd.grad(mb.projector_loss(mb.ncut_embedding(F, k), labels), F)

    def dense(F=F, labels=labels):
        return torch.autograd.grad(mb.projector_loss(mb.ncut_embedding_dense(F @ F.T, k), labels), F)

    line = f"N={N:6d}: low-rank {1e3 * best(low):8.1f} ms"
    if N <= 4096:  # the dense route is O(N^2) memory and O(N^3) time: skipped for large N
        line += f", dense {1e3 * best(dense):9.1f} ms"
    print(line, flush=True)
