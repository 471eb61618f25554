"""Float32 divided differences of log for widely separated arguments, and their effect on second-order
pooling (docs/layers/second_order_pooling.md, "Precision"). Written for a problem that is now fixed
(funm.py used log1p / expm1 for every pair; far pairs now use the plain quotient); kept as a check.

1. Relative error of f[1, r] for f = log (matbackprop.linalg.funm, used by logm and both O2P routes)
   against the cancellation-free direct quotient -log(r) / (1 - r) for widely separated arguments.
2. Whether second_order_pooling (log, eps=1e-3, float32) returns finite gradients for torch.rand
   features of growing magnitude, with more (C=8, P=16) or fewer (C=32, P=4) pixels than channels.
3. Finite gradients of logm and powm(-0.5) at diag(1e4, 1, 1e-4) in float32.

    .venv/bin/python docs/layers/scripts/float32_log_divided_difference.py
"""

import math

import torch

import matbackprop as mb
from matbackprop.linalg.funm import LOG, divided_difference

for dtype in (torch.float32, torch.float64):
    row = []
    for r in (1e-2, 1e-4, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12, 1e-14, 1e-16, 1e-17):
        ref = -math.log(r) / (1 - r)
        got = divided_difference(LOG, torch.tensor([1.0], dtype=dtype), torch.tensor([r], dtype=dtype)).item()
        row.append(f"{r:.0e}: {abs(got - ref) / ref:.1e}")
    print(str(dtype).replace("torch.", ""), "rel. error of log f[1, r]:", " | ".join(row))

g = torch.Generator().manual_seed(0)
for scale in (1.0, 100.0, 1000.0):
    for shape in ((1, 8, 4, 4), (1, 32, 2, 2)):
        F0 = scale * torch.rand(*shape, generator=g)
        for route, sd in (("eig", None), ("svd", None), ("eig", torch.float64), ("svd", torch.float64)):
            F = F0.clone().requires_grad_(True)
            tag = f"scale {scale:6g} C={shape[1]:2d} P={shape[2] * shape[3]:2d} route {route} spectral_dtype {sd}:"
            try:
                Y = mb.second_order_pooling(F, eps=1e-3, route=route, spectral_dtype=sd)
            except ValueError as err:
                print(tag, "ValueError:", err)
                continue
            (grad,) = torch.autograd.grad(Y.sum(), F)
            print(tag, f"Y finite {bool(torch.isfinite(Y).all())}, grad finite {bool(torch.isfinite(grad).all())}")
for name, fn in (("logm", mb.logm), ("powm(-0.5)", lambda A: mb.powm(A, -0.5))):
    X = torch.diag(torch.tensor([1e4, 1.0, 1e-4])).requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(X).sum(), X)
    print(f"{name}(diag(1e4, 1, 1e-4)) in float32, grad finite:", bool(torch.isfinite(grad).all()))
