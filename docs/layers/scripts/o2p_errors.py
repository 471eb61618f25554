"""Error messages of second_order_pooling, and sqrt with eps=0 (docs/layers/second_order_pooling.md).

.venv/bin/python docs/layers/scripts/o2p_errors.py
"""

import torch

import matbackprop as mb

F = torch.randn(2, 8, 2, 2, dtype=torch.float64)  # 4 pixels < 8 channels: C_r is singular without eps
M = torch.ones(2, 3, 2, 2, dtype=torch.float64)
M[1, 2] = 0
for kw in [
    dict(masks=M),
    dict(eps=0.0, route="svd"),
    dict(eps=0.0, route="eig"),
    dict(route="newton_schulz"),
    dict(eps=0.0, route="newton_schulz", normalization="sqrt"),
]:
    try:
        mb.second_order_pooling(F, **kw)
        print(kw.keys(), "ok")
    except ValueError as e:
        print({k: v for k, v in kw.items() if k != "masks"} or "empty mask", "->", e)

# More pixels than channels, but channel 0 is zero in batch element 1: C_r singular there only.
F2 = torch.rand(2, 8, 4, 4, dtype=torch.float64)
F2[1, 0] = 0
for route in ("svd", "eig"):
    try:
        mb.second_order_pooling(F2, eps=0.0, route=route)
        print(route, "ok")
    except ValueError as e:
        print(f"P=16 >= C=8, channel 0 zero in batch element 1, eps=0, route {route} ->", e)

# sqrt with eps=0 on a rank-deficient region (4 pixels, 8 channels) is accepted; is the gradient finite?
for route in ("eig", "svd"):
    X = F.clone().requires_grad_(True)
    Y = mb.second_order_pooling(X, eps=0.0, normalization="sqrt", route=route)
    try:
        (grad,) = torch.autograd.grad(Y.sum(), X)
        print(f"sqrt, eps=0, route {route}: gradient finite {bool(torch.isfinite(grad).all())}")
    except ValueError as e:
        print(f"sqrt, eps=0, route {route}: backward raised: {e}")
