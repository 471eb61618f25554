"""Share of projector_loss (which upcasts Z to float64) in the forward+backward time of
ncut_embedding + projector_loss (docs/layers/normalized_cuts.md). Float32, d=64, k=4, 5 labels, one CPU
thread, best of 5 after a warm-up; the loss alone is timed from a fixed Z that requires grad.

    .venv/bin/python docs/layers/scripts/ncut_loss_timing.py
"""

import time

import torch

import matbackprop as mb

torch.set_num_threads(1)


def best(fn, reps=5):
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
for N in (16384, 154401):
    F = torch.rand(N, d, generator=g).requires_grad_(True)
    labels = torch.randint(0, 5, (N,), generator=g)
    Z = mb.ncut_embedding(F, k).detach().requires_grad_(True)

    def both(F=F, labels=labels):
        return torch.autograd.grad(mb.projector_loss(mb.ncut_embedding(F, k), labels), F)

    def loss(Z=Z, labels=labels):
        return torch.autograd.grad(mb.projector_loss(Z, labels), Z)

    print(f"N={N:6d}: loss alone {1e3 * best(loss):6.1f} ms, embedding + loss {1e3 * best(both):7.1f} ms", flush=True)
