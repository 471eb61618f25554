"""Per-call section of the threads benchmark: the fixed cost of one small spectral call.

``logm`` forward+backward of a single 8 x 8 matrix, where the work itself is negligible and what is
measured is everything around it (input checks, the autograd Function, the divided differences),
against plain autograd (``eigh`` + ``Q log(L) Q^T`` with torch's eigh backward). Run from the threads
section's child process, so at torch's default thread count.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable

import torch

import matbackprop as mb

import _timing as T
from .config import BenchConfig

__all__ = ["PER_CALL_SIZE", "PER_CALL_GOAL", "PER_CALL_HEADER", "bench_per_call", "spd_inputs"]


def spd_inputs(batch: int, n: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random SPD ``X = A A^T / n + I`` and an upstream gradient, both ``(batch, n, n)``."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, n, n, generator=g, dtype=torch.float64)
    X = (A @ A.mT / n + torch.eye(n, dtype=torch.float64)).to(dtype)
    return X, torch.randn(batch, n, n, generator=g, dtype=torch.float64).to(dtype)


#: Per-call cost: a single small matrix, where the fixed cost of each call is all there is.
PER_CALL_SIZE, PER_CALL_GOAL = (1, 8), 1.5


def bench_per_call(cfg: BenchConfig | types.SimpleNamespace) -> list[tuple[str, ...]]:
    """``logm`` forward+backward of one 8 x 8 matrix: ours (checks on and off) against plain autograd,
    at torch's default threads; microseconds per call (median over interleaved rounds of many calls)."""
    batch, n = PER_CALL_SIZE
    calls = 50 if cfg.quick else 500
    out = []
    for dtype_name in cfg.dtypes:
        X, G = spd_inputs(batch, n, T.DTYPES[dtype_name], cfg.seed)

        def many(
            y: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor = X, G: torch.Tensor = G
        ) -> Callable[[], object]:
            def run() -> object:
                for _ in range(calls):
                    Xl = X.detach().requires_grad_(True)
                    torch.autograd.grad(y(Xl), Xl, G)
                return None

            return run

        def plain(Xl: torch.Tensor) -> torch.Tensor:
            L, Q = torch.linalg.eigh(Xl)
            return (Q * L.log().unsqueeze(-2)) @ Q.mT

        items = [
            ("matbackprop", many(mb.logm)),
            ("check=False", many(lambda Xl: mb.logm(Xl, check=False))),
            ("autograd", many(plain)),
        ]
        start = time.perf_counter()
        for _, fn in items:
            fn()
        tm = T.interleaved(items, repeats=max(7, cfg.repeats), min_repeats=3, budget_s=cfg.budget, start=start)
        us = {name: 1e3 * tm.median_ms(name) / calls for name, _ in items}
        ratio = us["matbackprop"] / us["autograd"]
        out.append(
            (
                f"{batch}x{n}x{n}",
                dtype_name,
                f"{us['matbackprop']:.0f}",
                f"{us['check=False']:.0f}",
                f"{us['autograd']:.0f}",
                f"{ratio:.2f}x",
                f"{us['check=False'] / us['autograd']:.2f}x",
                f"<= {PER_CALL_GOAL}x: {'met' if ratio <= PER_CALL_GOAL else 'MISSED'}",
            )
        )
    return out


PER_CALL_HEADER = (
    "size",
    "dtype",
    "matbackprop us",
    "check=False us",
    "autograd us",
    "matbackprop / autograd",
    "check=False / autograd",
    "goal",
)
