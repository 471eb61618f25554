"""Accuracy of the second-order pooling routes on float32 features (docs/layers/second_order_pooling.md).

Features: B=2 images, C=32 channels, 16x16 pixels, R=4 random binary masks; channels mixed by a random
rotation after scaling by 1 .. 10^-decay, so cond(F) is about 10^decay. For each route and
spectral_dtype the relative Frobenius error of the output Y and of the gradient of <G, Y> w.r.t. the
features is measured against the float64 svd route applied to the same (float32) features, upcast.

    .venv/bin/python docs/layers/scripts/o2p_accuracy.py
"""

import torch

import matbackprop as mb


def make(B=2, R=4, C=32, H=16, W=16, decay=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(0, -decay, C, dtype=torch.float64)
    mix = torch.linalg.qr(torch.randn(C, C, dtype=torch.float64, generator=g))[0]
    F = torch.einsum("ij,bjp->bip", mix * scale, torch.randn(B, C, H * W, dtype=torch.float64, generator=g))
    masks = (torch.rand(B, R, H, W, dtype=torch.float64, generator=g) > 0.5).double()
    G = torch.randn(B, R, C, C, dtype=torch.float64, generator=g)
    return F.reshape(B, C, H, W).float(), masks.float(), G


def run(F, M, G, **kw):
    F = F.clone().requires_grad_(True)
    Y = mb.second_order_pooling(F, M, **kw)
    (g,) = torch.autograd.grad((Y.double() * G).sum(), F)
    return Y.detach().double(), g.double()


def rel(a, b):
    return float((a - b).norm() / b.norm())


if __name__ == "__main__":
    for decay in (2.0, 4.0):
        for eps in (1e-3, 1e-5):
            F, M, G = make(decay=decay)
            for norm in ("log", "sqrt"):
                Yr, gr = run(F.double(), M.double(), G, eps=eps, normalization=norm, route="svd")
                line = f"cond(F)~1e{decay:.0f} eps={eps:g} {norm:4s}:"
                for route in ("eig", "svd"):
                    for sd in (None, torch.float64):
                        tag = route + ("/f64" if sd else "/f32")
                        try:
                            Y, g = run(F, M, G, eps=eps, normalization=norm, route=route, spectral_dtype=sd)
                        except ValueError:
                            line += f"  {tag} ValueError |"
                            continue
                        line += f"  {tag} Y {rel(Y, Yr):.1e} grad {rel(g, gr):.1e} |"
                print(line)
