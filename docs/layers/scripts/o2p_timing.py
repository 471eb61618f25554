"""Forward+backward wall time of the second-order pooling routes (docs/layers/second_order_pooling.md).

Float32 ReLU features, random binary masks, one CPU thread; the configurations run round-robin for 9
rounds and the minimum per configuration is reported (robust to load from other jobs).

    .venv/bin/python docs/layers/scripts/o2p_timing.py
"""

import time

import torch

import matbackprop as mb

torch.set_num_threads(1)
torch.manual_seed(0)
for B, R, C, H in [(4, 8, 64, 32), (2, 4, 256, 28)]:
    F = torch.relu(torch.randn(B, C, H, H)).requires_grad_(True)
    M = (torch.rand(B, R, H, H) > 0.5).float()
    cfgs = [
        ("log", "eig", None),
        ("log", "svd", None),
        ("log", "eig", torch.float64),
        ("log", "svd", torch.float64),
        ("sqrt", "eig", None),
        ("sqrt", "svd", None),
        ("sqrt", "newton_schulz", None),
    ]
    best = {c: float("inf") for c in cfgs}
    for _ in range(9):
        for c in cfgs:
            norm, route, sd = c
            t = time.perf_counter()
            Y = mb.second_order_pooling(F, M, normalization=norm, route=route, spectral_dtype=sd)
            torch.autograd.grad(Y.sum(), F)
            best[c] = min(best[c], time.perf_counter() - t)
    print(f"B={B} R={R} C={C} P={H * H}, float32 features:")
    for (norm, route, sd), t in best.items():
        print(f"  {norm:4s} {route:13s} spectral_dtype={str(sd).replace('torch.', ''):7s}: {1e3 * t:7.1f} ms")
