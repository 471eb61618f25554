"""Relative error of route="newton_schulz" (normalization="sqrt") against the exact eig route, in float64,
for ReLU features (B=2, C=64, 16x16 pixels, R=4 random binary masks, eps=1e-3)
(docs/layers/second_order_pooling.md). The last line checks the default num_iters of both entry points.

    .venv/bin/python docs/layers/scripts/o2p_newton_schulz.py
"""

import torch

import matbackprop as mb
from matbackprop.nn import SecondOrderPooling

g = torch.Generator().manual_seed(0)
F = torch.relu(torch.randn(2, 64, 16, 16, dtype=torch.float64, generator=g)).requires_grad_(True)
M = (torch.rand(2, 4, 16, 16, dtype=torch.float64, generator=g) > 0.5).double()
G = torch.randn(2, 4, 64, 64, dtype=torch.float64, generator=g)
Y0 = mb.second_order_pooling(F, M, normalization="sqrt", route="eig")
(g0,) = torch.autograd.grad((Y0 * G).sum(), F)
for it in (5, 10, 15, 20):
    Y = mb.second_order_pooling(F, M, normalization="sqrt", route="newton_schulz", num_iters=it)
    (g1,) = torch.autograd.grad((Y * G).sum(), F)
    print(
        f"num_iters={it:2d}: value {float((Y - Y0).detach().norm() / Y0.detach().norm()):.1e}, gradient {float((g1 - g0).norm() / g0.norm()):.1e}"
    )
Y = mb.second_order_pooling(F, M, normalization="sqrt", route="newton_schulz")
Y10 = mb.second_order_pooling(F, M, normalization="sqrt", route="newton_schulz", num_iters=10)
print(
    "default num_iters gives the same output as num_iters=10:",
    bool(torch.equal(Y, Y10)),
    "| SecondOrderPooling default num_iters:",
    SecondOrderPooling(normalization="sqrt").options["num_iters"],
)
