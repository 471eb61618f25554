"""Spectral section: ``logm`` / ``sqrtm`` forward+backward time, peak memory, accuracy and ties.

Every method computes ``Y = f(X)`` and ``dL/dX`` for the same upstream gradient ``G`` through
``torch.autograd.grad``; accuracy is measured against a float64 Daleckii-Krein reference
``Q (F o Q^T sym(G) Q) Q^T`` with ``F`` the first divided differences of ``f`` on the eigenvalues.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

import matbackprop
from matbackprop.linalg.divided_differences import LOG, loewner_matrix

import _timing as T
from .config import PEER_HINT, BenchConfig

Runner = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, torch.Tensor | None]]


@dataclass(frozen=True)
class Scalar:
    f: Callable[[torch.Tensor], torch.Tensor]
    df: Callable[[torch.Tensor], torch.Tensor]


SCALARS = {
    "logm": Scalar(torch.log, torch.reciprocal),
    "sqrtm": Scalar(torch.sqrt, lambda x: 0.5 * torch.rsqrt(x)),
}


@dataclass
class Method:
    name: str
    kind: str  # "floor", "baseline", "ours", "approx", "peer"
    api: str  # what it calls, for the report
    run: Runner | None  # None: unavailable
    note: str = ""  # why unavailable

    def call(self, X: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run an available method (``run`` is not None: callers pick from ``SpectralResult.available``)."""
        if self.run is None:
            raise RuntimeError(f"{self.name} is unavailable: {self.note}")
        return self.run(X, G)


def _grad_of(y_fn: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    """Runner computing ``Y = y_fn(X)`` and ``dL/dX`` for upstream ``G`` through ``torch.autograd.grad``."""

    def run(X: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        Xl = X.detach().requires_grad_(True)
        Y = y_fn(Xl)
        (gX,) = torch.autograd.grad(Y, Xl, G)
        return Y.detach(), gX

    return run


def _eigh_floor(X: torch.Tensor, G: torch.Tensor) -> tuple[None, None]:
    with torch.no_grad():
        torch.linalg.eigh(X)
    return None, None


def _autograd_eigh(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def y(X: torch.Tensor) -> torch.Tensor:
        L, Q = torch.linalg.eigh(X)
        return (Q * f(L).unsqueeze(-2)) @ Q.transpose(-2, -1)

    return y


def resolve_peer(module: str, attr: str) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """Resolve a peer's public function; (None, reason) if the package is missing."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None, PEER_HINT
    except Exception as exc:  # noqa: BLE001 - a broken install should not kill the benchmark
        return None, f"import failed: {type(exc).__name__}: {exc}"
    obj: Any = mod
    for part in attr.split("."):
        obj = getattr(obj, part)
    if module == "spd_learn.functional":  # autograd.Function classes
        return obj.apply, ""
    return obj, ""


PEERS = {
    # name: (module, {func: attribute})
    "spd_learn": ("spd_learn.functional", {"logm": "matrix_log", "sqrtm": "matrix_sqrt"}),
    "torchspd": ("torchspd", {"logm": "logm", "sqrtm": "sqrtm"}),
    "geoopt": ("geoopt.linalg", {"logm": "sym_logm", "sqrtm": "sym_sqrtm"}),
}


def build_methods(func: str, ns_iters: int) -> list[Method]:
    s = SCALARS[func]
    mb = getattr(matbackprop, func)
    methods = [
        Method("eigh forward", "floor", "torch.linalg.eigh(X) (no grad)", _eigh_floor),
        Method("autograd", "baseline", "eigh + Q f(L) Q^T, torch's eigh backward", _grad_of(_autograd_eigh(s.f))),
        Method("matbackprop", "ours", f"matbackprop.{func}(X)", _grad_of(mb)),
        Method(
            "matbackprop check=False",
            "ours",
            f"matbackprop.{func}(X, check=False)",
            _grad_of(lambda X: mb(X, check=False)),
        ),
    ]
    if func == "sqrtm":
        methods.append(
            Method(
                f"Newton-Schulz ({ns_iters} it)",
                "approx",
                f"matbackprop.sqrtm_newton_schulz(X, num_iters={ns_iters})",
                _grad_of(lambda X: matbackprop.sqrtm_newton_schulz(X, num_iters=ns_iters)),
            )
        )
    for name, (module, attrs) in PEERS.items():
        fn, note = resolve_peer(module, attrs[func])
        api = f"{module}.{attrs[func]}" + (".apply(X)" if module == "spd_learn.functional" else "(X)")
        methods.append(Method(name, "peer", api, _grad_of(fn) if fn is not None else None, note))
    return methods


# ---------------------------------------------------------------------------------------------------
# Inputs and references


def make_inputs(batch: int, n: int, dtype: torch.dtype, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random SPD ``X = A A^T / n + I`` (eigenvalues in about [1, 5]) and a random upstream gradient."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    X = A @ A.transpose(-2, -1) / n + torch.eye(n, dtype=torch.float64)
    X = 0.5 * (X + X.transpose(-2, -1))  # exactly symmetric
    G = torch.randn(batch, n, n, generator=gen, dtype=torch.float64)
    return X.to(device, dtype).contiguous(), G.to(device, dtype).contiguous()


def sym(A: torch.Tensor) -> torch.Tensor:
    return 0.5 * (A + A.transpose(-2, -1))


def loewner(s: Scalar, L: torch.Tensor, tie_tol: float) -> torch.Tensor:
    """First divided differences ``(f(a) - f(b)) / (a - b)``, ``f'((a + b) / 2)`` where ``|a - b|`` is tiny."""
    a, b = L.unsqueeze(-1), L.unsqueeze(-2)
    d = a - b
    tie = d.abs() <= tie_tol * torch.maximum(a.abs(), b.abs()).clamp_min(1.0)
    return torch.where(tie, s.df(0.5 * (a + b)), (s.f(a) - s.f(b)) / torch.where(tie, torch.ones_like(d), d))


def dk_reference(s: Scalar, L: torch.Tensor, Q: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Daleckii-Krein ``(Y, dL/dX)`` in float64 from an eigen-decomposition ``X = Q diag(L) Q^T``."""
    L, Q, G = L.double(), Q.double(), G.double()
    Qt = Q.transpose(-2, -1)
    Y = (Q * s.f(L).unsqueeze(-2)) @ Qt
    gX = Q @ (loewner(s, L, 1e-10) * (Qt @ sym(G) @ Q)) @ Qt
    return Y, gX


def rel_err(a: torch.Tensor | None, ref: torch.Tensor) -> float:
    """``max`` over the batch of ``max|a - ref| / max|ref|`` in float64 (inf for non-finite ``a``)."""
    if a is None:
        return float("nan")
    a = a.double().to(ref.device)
    if not bool(torch.isfinite(a).all()):
        return float("inf")
    num = (a - ref).abs().amax(dim=(-2, -1))
    den = ref.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(torch.float64).tiny)
    return float((num / den).max())


def tie_inputs(
    dtype: torch.dtype, seed: int, device: str, batch: int = 4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``X = R diag(2, 2, 3, 4, 5, 6, 7, 8) R^T`` with random orthogonal ``R`` (an exact tie at 2), ``G``,
    and the exact eigen-decomposition ``(L, R)`` in float64.

    The tie is not at 1: there ``log(1 + d) ~ d`` is computed to full relative accuracy, which would hide
    the cancellation that a gap-dividing backward suffers at any other tied value."""
    gen = torch.Generator().manual_seed(seed + 1)
    L = torch.tensor([2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], dtype=torch.float64).expand(batch, 8)
    R, _ = torch.linalg.qr(torch.randn(batch, 8, 8, generator=gen, dtype=torch.float64))
    X = sym((R * L.unsqueeze(-2)) @ R.transpose(-2, -1))
    G = torch.randn(batch, 8, 8, generator=gen, dtype=torch.float64)
    return X.to(device, dtype), G.to(device, dtype), L.to(device), R.to(device)


# ---------------------------------------------------------------------------------------------------
# Spectral section


@dataclass
class SpectralResult:
    func: str
    batch: int
    n: int
    dtype: str
    device: str
    methods: list[Method]
    timings: T.Timings = field(default_factory=T.Timings)
    peak_bytes: dict[str, int | None] = field(default_factory=dict)
    y_err: dict[str, float] = field(default_factory=dict)
    g_err: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # method -> exception text
    input_bytes: int = 0

    def available(self) -> list[Method]:
        return [m for m in self.methods if m.run is not None and m.name not in self.errors]

    def med(self, name: str) -> float:
        return self.timings.median_ms(name)


def bench_spectral_config(
    func: str, batch: int, n: int, dtype_name: str, device: str, cfg: BenchConfig
) -> SpectralResult:
    dtype = T.DTYPES[dtype_name]
    X, G = make_inputs(batch, n, dtype, cfg.seed, device)
    res = SpectralResult(func, batch, n, dtype_name, device, build_methods(func, cfg.ns_iters))
    res.input_bytes = X.numel() * X.element_size()
    start = time.perf_counter()

    # Accuracy (also the first warm-up call of every method).
    L, Q = torch.linalg.eigh(X.double())
    Y_ref, g_ref = dk_reference(SCALARS[func], L, Q, G)
    for m in res.available():
        try:
            Y, g = m.call(X, G)
        except Exception as exc:  # noqa: BLE001 - a peer failing at some size/dtype is a result, not a crash
            res.errors[m.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            continue
        res.y_err[m.name] = rel_err(Y, Y_ref) if Y is not None else float("nan")
        res.g_err[m.name] = rel_err(sym(g), g_ref) if g is not None else float("nan")
    del Y_ref, g_ref, L, Q

    # Peak memory, once per method (second warm-up call).
    for m in res.available():
        res.peak_bytes[m.name] = T.peak_memory_bytes(partial(m.call, X, G), device)

    items = [(m.name, partial(m.call, X, G)) for m in res.available()]
    for _ in range(cfg.warmup):
        if cfg.budget > 0 and time.perf_counter() - start > cfg.budget / 3:
            break
        for _, fn in items:
            fn()
    res.timings = T.interleaved(
        items, repeats=cfg.repeats, min_repeats=cfg.min_repeats, budget_s=cfg.budget, start=start, device=device
    )
    return res


def tie_test(func: str, dtype_name: str, device: str, cfg: BenchConfig) -> dict[str, tuple[float, float]]:
    """Per method: (relative gradient error vs the exact Daleckii-Krein gradient, relative value error)."""
    X, G, L, R = tie_inputs(T.DTYPES[dtype_name], cfg.seed, device)
    Y_ref, g_ref = dk_reference(SCALARS[func], L, R, G)
    out = {}
    for m in build_methods(func, cfg.ns_iters):
        if m.run is None or m.kind == "floor":
            continue
        try:
            Y, g = m.call(X, G)
            if g is None:
                raise RuntimeError(f"{m.name} returned no gradient")
            out[m.name] = (rel_err(sym(g), g_ref), rel_err(Y, Y_ref))
        except Exception:  # noqa: BLE001 - a method failing at a tie is reported as NaN, not a crash
            out[m.name] = (float("nan"), float("nan"))
    return out


# ---------------------------------------------------------------------------------------------------
# Stage profile of the eigh route (public torch ops mirroring the library's logm)


def profile_stages(
    batch: int, n: int, dtype_name: str, device: str, cfg: BenchConfig
) -> tuple[list[tuple[str, float]], str]:
    """Median ms of each stage of an eigh-route ``logm`` forward+backward, and a torch.profiler table.

    The stages are rebuilt from public torch ops and mirror matbackprop's implementation (eigh; the
    forward product and its exact symmetrisation; ``V = Q^T G Q``; the Loewner matrix, the library's own
    ``loewner_matrix``; ``(V + V^T) o F``; the two products back, the last one scaled by 1/2); apart from
    the Loewner matrix they are not the library's code, which may change. Five batched products and one eigh are the least any eigh route with an exact backward
    does: their sum over the eigh alone is the floor of the ``/ eigh fwd`` ratio.
    """
    X, G = make_inputs(batch, n, T.DTYPES[dtype_name], cfg.seed, device)
    L, Q = torch.linalg.eigh(X)
    Qt = Q.transpose(-2, -1)
    half_f = 0.5 * torch.log(L)
    W = Q * half_f.unsqueeze(-2)
    half = W @ Qt
    F = loewner_matrix(LOG, L)
    QtG = Qt @ G
    V = QtG @ Q
    M = (V + V.transpose(-2, -1)).mul_(F)
    QM = Q @ M
    stages: list[tuple[str, Callable[[], object]]] = [
        ("fwd: eigh", lambda: torch.linalg.eigh(X)),
        ("fwd: Q * f(L)/2", lambda: Q * half_f.unsqueeze(-2)),
        ("fwd: product 0  (Q f(L)/2) Q^T", lambda: W @ Qt),
        ("fwd: exact symmetrisation", lambda: half + half.transpose(-2, -1)),
        ("bwd: product 1  Q^T G", lambda: Qt @ G),
        ("bwd: product 2  (Q^T G) Q", lambda: QtG @ Q),
        ("bwd: Loewner matrix (the library's own)", lambda: loewner_matrix(LOG, L)),
        ("bwd: (V + V^T) o F", lambda: (V + V.transpose(-2, -1)).mul_(F)),
        ("bwd: product 3  Q M", lambda: Q @ M),
        ("bwd: product 4  (Q M) Q^T / 2", lambda: torch.matmul(QM, Qt).mul_(0.5)),
    ]
    methods = {m.name: m for m in build_methods("logm", cfg.ns_iters)}
    totals = [
        (f"total: {name}", (lambda m=methods[name]: m.call(X, G)))
        for name in ("eigh forward", "autograd", "matbackprop", "matbackprop check=False")
    ]
    items = stages + totals
    for _, fn in items:
        fn()
    tm = T.interleaved(
        items, repeats=max(cfg.repeats, 5), min_repeats=5, budget_s=cfg.budget, start=time.perf_counter(), device=device
    )
    med = {name: tm.median_ms(name) for name, _ in items}
    rows = [(name, med[name]) for name, _ in items]
    # Derived rows: what the checks cost, and the floor of any eigh route with an exact backward (one eigh and
    # five batched products, nothing else): its ratio to eigh alone bounds "x eigh forward" from below.
    checks = med["total: matbackprop"] - med["total: matbackprop check=False"]
    rows.append(("derived: input checks (matbackprop - check=False)", checks))
    floor = med["fwd: eigh"] + sum(t for name, t in rows if "product" in name)
    rows.append(("derived: eigh + the five products", floor))
    rows.append(("derived: that sum / eigh (ratio floor of any eigh route)", floor / med["fwd: eigh"]))
    from torch.profiler import ProfilerActivity, profile

    run = methods["matbackprop"].call
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            run(X, G)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return rows, table
