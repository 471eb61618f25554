"""Second-order pooling section: ``matbackprop.nn.SecondOrderPooling`` forward+backward throughput per route."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from matbackprop.nn import SecondOrderPooling

import _timing as T
from .config import BenchConfig


@dataclass
class O2PResult:
    shape: tuple[int, int, int, int]
    regions: int
    timings: T.Timings
    routes: list[tuple[str, str, str]]  # (label, route, normalization)


def bench_o2p(cfg: BenchConfig, device: str) -> O2PResult:
    B, C, H, W = cfg.o2p_shape
    gen = torch.Generator().manual_seed(cfg.seed)
    feats = torch.relu(torch.randn(B, C, H, W, generator=gen)).to(device)
    masks = torch.zeros(B, 4, H, W)
    h, w = H // 2, W // 2
    for r, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # the four quadrants
        masks[:, r, i * h : (i + 1) * h, j * w : (j + 1) * w] = 1.0
    masks = masks.to(device)
    routes = [
        ("eig / log", "eig", "log"),
        ("svd / log", "svd", "log"),
        ("eig / sqrt", "eig", "sqrt"),
        (f"newton_schulz / sqrt ({cfg.ns_iters} it)", "newton_schulz", "sqrt"),
    ]
    weight = torch.randn(B, 4, C * (C + 1) // 2, generator=gen).to(device)

    def step(route: str, norm: str) -> Callable[[], object]:
        layer = SecondOrderPooling(normalization=norm, route=route, output="triu", num_iters=cfg.ns_iters)

        def run() -> torch.Tensor:
            f = feats.detach().requires_grad_(True)
            (g,) = torch.autograd.grad((layer(f, masks) * weight).sum(), f)
            return g

        return run

    items = [(label, step(route, norm)) for label, route, norm in routes]
    start = time.perf_counter()
    for _, fn in items:
        fn()
    tm = T.interleaved(
        items, repeats=cfg.repeats, min_repeats=cfg.min_repeats, budget_s=cfg.budget, start=start, device=device
    )
    return O2PResult((B, C, H, W), 4, tm, routes)
