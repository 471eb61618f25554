"""The one benchmark command: spectral functions, second-order pooling and normalized cuts.

Not part of the test suite. Prints tables, and writes ``docs/benchmarks.md`` and
``docs/figures/benchmarks.png`` (see ``--markdown`` / ``--plot``).

Sections (``--sections spectral,o2p,ncut``):

spectral
    ``logm`` and ``sqrtm`` of random SPD batches ``X = A A^T / n + I`` at ``--sizes`` x ``--dtypes``.
    Every method computes ``Y = f(X)`` and ``dL/dX`` for the same upstream gradient ``G`` (random,
    non-symmetric) through ``torch.autograd.grad``:

    * ``eigh forward``        ``torch.linalg.eigh(X)`` alone, no autograd: the floor of any eigh route.
    * ``autograd``            ``L, Q = eigh(X); Y = Q f(L) Q^T``; torch's own eigh backward.
    * ``matbackprop``         ``matbackprop.logm(X)`` / ``sqrtm(X)`` with the default input checks
                              (Daleckii-Krein backward).
    * ``matbackprop check=False`` the same without input checks.
    * ``Newton-Schulz (k it)`` ``matbackprop.sqrtm_newton_schulz(X, num_iters=k)`` (sqrtm only): GEMMs
                              only, backward by autograd through the iterations; approximate.
    * peers (``pip install -e .[peers]``), each through its own public API:
      ``spd_learn.functional.matrix_log`` / ``matrix_sqrt`` (autograd Functions, Loewner-matrix backward),
      ``torchspd.logm`` / ``torchspd.sqrtm`` (custom Function with divided differences),
      ``geoopt.linalg.sym_logm`` / ``sym_sqrtm`` (TorchScript eigh + torch autograd).

    Timing: all methods in one process, interleaved per round with the order rotated each round,
    medians and quartiles; the first (accuracy) call and the memory call serve as warm-up, further
    warm-up rounds follow while a third of the per-configuration budget (``--budget``) is left;
    repetitions stop at ``--repeats`` or, once ``--min-repeats`` are done, when the budget is spent.
    Memory: the peak of live tensor bytes allocated during one forward+backward call, measured once per
    method outside the timed loop (CPU: ``torch.profiler`` memory events integrated in time order;
    CUDA: ``torch.cuda.max_memory_allocated``). Accuracy: ``Y`` and ``sym(dL/dX)`` against a float64
    Daleckii-Krein reference. Ties: ``X = R diag(2, 2, 3, ..., 8) R^T`` (an exactly repeated eigenvalue)
    against the Daleckii-Krein gradient from the known eigen-decomposition.
    A per-stage breakdown of the eigh route at ``--profile-size`` (default 64x128 float32 and 4x1024
    float64; ``--no-profile`` skips it), built from public torch ops that mirror the library's
    implementation, plus a ``torch.profiler`` table of the real call, shows where the time goes and
    the floor any eigh route has relative to the eigh forward alone.

o2p
    ``matbackprop.nn.SecondOrderPooling`` forward+backward throughput (regions/s) for the routes
    ``eig`` / ``svd`` (log) and ``eig`` / ``newton_schulz`` (sqrt) on a batch of feature maps with
    quadrant masks.

ncut
    ``ncut_embedding(F, k)`` + ``projector_loss(Z, labels)`` forward+backward at ``--ncut-nodes`` x 64,
    k = 16, each configuration in a fresh subprocess (peak memory = growth of the resident-set
    high-water mark, VmHWM, over the process after the inputs were built). Plus, in one process and
    interleaved: ours against ``ncut_pytorch.ncut_fn(F, n_eig=k, exact_gradient=True)`` (its
    exact-gradient path: full ``torch.linalg.eigh`` of the sampled, normalised RBF affinity) followed by
    the same ``projector_loss``.

Threads: torch's default is left alone unless it stalls under CPU contention (a ~2 s probe, then a
fallback to 1 thread); ``--threads N`` sets it explicitly (N > 1 has been seen to hang in MKL's batched
eigh for n >= ~192 on small shared machines).

Examples::

    .venv/bin/python benchmarks/bench_spectral.py --threads 1                 # full run, writes docs
    .venv/bin/python benchmarks/bench_spectral.py --quick --threads 1 --markdown /tmp/b.md --plot /tmp/b.png
    .venv/bin/python benchmarks/bench_spectral.py --sections spectral --sizes 64x128 --dtypes float32
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _timing as T  # noqa: E402

import matbackprop  # noqa: E402
from matbackprop.linalg.funm import LOG, loewner_matrix  # noqa: E402
from matbackprop.nn import SecondOrderPooling  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_SIZES = "256x32,64x128,16x512,4x1024"
QUICK_SIZES = "32x16,8x64"
PEER_HINT = "not installed (pip install -e .[peers])"
Runner = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, torch.Tensor | None]]


# ---------------------------------------------------------------------------------------------------
# Spectral functions: scalar definitions (for the float64 reference) and methods under test


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


def _peer(module: str, attr: str) -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """Resolve a peer's public function; (None, reason) if the package is missing."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None, PEER_HINT
    except Exception as exc:  # a broken install should not kill the benchmark
        return None, f"import failed: {type(exc).__name__}: {exc}"
    obj = mod
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
        Method("matbackprop check=False", "ours", f"matbackprop.{func}(X, check=False)",
               _grad_of(lambda X: mb(X, check=False))),
    ]
    if func == "sqrtm":
        methods.append(Method(
            f"Newton-Schulz ({ns_iters} it)", "approx", f"matbackprop.sqrtm_newton_schulz(X, num_iters={ns_iters})",
            _grad_of(lambda X: matbackprop.sqrtm_newton_schulz(X, num_iters=ns_iters)),
        ))
    for name, (module, attrs) in PEERS.items():
        fn, note = _peer(module, attrs[func])
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


def bench_spectral_config(func: str, batch: int, n: int, dtype_name: str, device: str, args: argparse.Namespace) -> SpectralResult:
    dtype = T.DTYPES[dtype_name]
    X, G = make_inputs(batch, n, dtype, args.seed, device)
    res = SpectralResult(func, batch, n, dtype_name, device, build_methods(func, args.ns_iters))
    res.input_bytes = X.numel() * X.element_size()
    start = time.perf_counter()

    # Accuracy (also the first warm-up call of every method).
    L, Q = torch.linalg.eigh(X.double())
    Y_ref, g_ref = dk_reference(SCALARS[func], L, Q, G)
    for m in res.available():
        try:
            Y, g = m.run(X, G)
        except Exception as exc:  # a peer failing at some size/dtype is a result, not a crash
            res.errors[m.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            continue
        res.y_err[m.name] = rel_err(Y, Y_ref) if Y is not None else float("nan")
        res.g_err[m.name] = rel_err(sym(g), g_ref) if g is not None else float("nan")
    del Y_ref, g_ref, L, Q

    # Peak memory, once per method (second warm-up call).
    for m in res.available():
        res.peak_bytes[m.name] = T.peak_memory_bytes(lambda m=m: m.run(X, G), device)

    items = [(m.name, (lambda m=m: m.run(X, G))) for m in res.available()]
    for w in range(args.warmup):
        if args.budget > 0 and time.perf_counter() - start > args.budget / 3:
            break
        for _, fn in items:
            fn()
    res.timings = T.interleaved(
        items, repeats=args.repeats, min_repeats=args.min_repeats, budget_s=args.budget, start=start, device=device
    )
    return res


def tie_test(func: str, dtype_name: str, device: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Per method: (relative gradient error vs the exact Daleckii-Krein gradient, relative value error)."""
    X, G, L, R = tie_inputs(T.DTYPES[dtype_name], args.seed, device)
    Y_ref, g_ref = dk_reference(SCALARS[func], L, R, G)
    out = {}
    for m in build_methods(func, args.ns_iters):
        if m.run is None or m.kind == "floor":
            continue
        try:
            Y, g = m.run(X, G)
            out[m.name] = (rel_err(sym(g), g_ref), rel_err(Y, Y_ref))
        except Exception:
            out[m.name] = (float("nan"), float("nan"))
    return out


# ---------------------------------------------------------------------------------------------------
# Stage profile of the eigh route (public torch ops mirroring the library's logm)


def profile_stages(
    batch: int, n: int, dtype_name: str, device: str, args: argparse.Namespace
) -> tuple[list[tuple[str, float]], str]:
    """Median ms of each stage of an eigh-route ``logm`` forward+backward, and a torch.profiler table.

    The stages are rebuilt from public torch ops and mirror matbackprop's implementation (eigh; the
    forward product and its exact symmetrisation; ``V = Q^T G Q``; the Loewner matrix, the library's own
    ``loewner_matrix``; ``(V + V^T) o F``; the two products back, the last one scaled by 1/2); apart from
    the Loewner matrix they are not the library's code, which may change. Five batched products and one eigh are the least any eigh route with an exact backward
    does: their sum over the eigh alone is the floor of the ``/ eigh fwd`` ratio.
    """
    X, G = make_inputs(batch, n, T.DTYPES[dtype_name], args.seed, device)
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
    methods = {m.name: m for m in build_methods("logm", args.ns_iters)}
    totals = [
        (f"total: {name}", (lambda m=methods[name]: m.run(X, G)))
        for name in ("eigh forward", "autograd", "matbackprop", "matbackprop check=False")
    ]
    items = stages + totals
    for _, fn in items:
        fn()
    tm = T.interleaved(items, repeats=max(args.repeats, 5), min_repeats=5, budget_s=args.budget,
                       start=time.perf_counter(), device=device)
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

    run = methods["matbackprop"].run
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            run(X, G)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return rows, table


# ---------------------------------------------------------------------------------------------------
# Second-order pooling section


@dataclass
class O2PResult:
    shape: tuple[int, int, int, int]
    regions: int
    timings: T.Timings
    routes: list[tuple[str, str, str]]  # (label, route, normalization)


def bench_o2p(args: argparse.Namespace, device: str) -> O2PResult:
    B, C, H, W = args.o2p_shape
    gen = torch.Generator().manual_seed(args.seed)
    feats = torch.relu(torch.randn(B, C, H, W, generator=gen)).to(device)
    masks = torch.zeros(B, 4, H, W)
    h, w = H // 2, W // 2
    for r, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # the four quadrants
        masks[:, r, i * h:(i + 1) * h, j * w:(j + 1) * w] = 1.0
    masks = masks.to(device)
    routes = [
        ("eig / log", "eig", "log"),
        ("svd / log", "svd", "log"),
        ("eig / sqrt", "eig", "sqrt"),
        (f"newton_schulz / sqrt ({args.ns_iters} it)", "newton_schulz", "sqrt"),
    ]
    weight = torch.randn(B, 4, C * (C + 1) // 2, generator=gen).to(device)

    def step(route: str, norm: str) -> Callable[[], object]:
        layer = SecondOrderPooling(normalization=norm, route=route, output="triu", num_iters=args.ns_iters)

        def run() -> torch.Tensor:
            f = feats.detach().requires_grad_(True)
            (g,) = torch.autograd.grad((layer(f, masks) * weight).sum(), f)
            return g

        return run

    items = [(label, step(route, norm)) for label, route, norm in routes]
    start = time.perf_counter()
    for _, fn in items:
        fn()
    tm = T.interleaved(items, repeats=args.repeats, min_repeats=args.min_repeats, budget_s=args.budget, start=start, device=device)
    return O2PResult((B, C, H, W), 4, tm, routes)


# ---------------------------------------------------------------------------------------------------
# Normalized-cuts section (each configuration in a fresh subprocess)


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


def _ncut_inputs(nodes: int, d: int, dtype: torch.dtype, segments: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(nodes, d, dtype=dtype, generator=g), torch.randint(0, segments, (nodes,), generator=g)


def _ours_step(F0: torch.Tensor, labels: torch.Tensor, k: int) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        F = F0.detach().requires_grad_(True)
        loss = matbackprop.projector_loss(matbackprop.ncut_embedding(F, k), labels)
        (g,) = torch.autograd.grad(loss.sum(), F)
        return g

    return run


def ncut_child(spec: dict) -> dict:
    """One ncut configuration in this (fresh) process: timing and peak-RSS growth."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    F0, labels = _ncut_inputs(spec["nodes"], spec["d"], getattr(torch, spec["dtype"]), spec["segments"], spec["seed"])
    base = _rss_kib("VmRSS")  # before the first step: the peak includes allocator and LAPACK workspaces
    step = _ours_step(F0, labels, spec["k"])
    start = time.perf_counter()
    step()  # warm-up
    tm = T.interleaved([("ours", step)], repeats=spec["repeats"], min_repeats=min(3, spec["repeats"]),
                       budget_s=spec["budget"], start=start)
    peak = _rss_kib("VmHWM")
    tensor_peak = T.peak_memory_bytes(step, "cpu")  # after VmHWM: the profiler itself allocates
    feature_bytes = F0.numel() * F0.element_size()
    lo, hi = tm.quartiles_ms("ours")
    return {
        **spec, "median_ms": tm.median_ms("ours"), "iqr": [lo, hi], "reps": tm.rounds,
        "feature_mb": feature_bytes / 2**20, "peak_extra_mb": max(0, peak - base) / 1024,
        "tensor_peak_mb": None if tensor_peak is None else tensor_peak / 2**20,
    }


def ncut_compare_child(spec: dict) -> dict:
    """Ours against ncut-pytorch's exact-gradient path, interleaved in this process."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    try:
        import ncut_pytorch
        from ncut_pytorch import ncut_fn
    except ImportError:
        return {**spec, "error": PEER_HINT}
    F0, labels = _ncut_inputs(spec["nodes"], spec["d"], getattr(torch, spec["dtype"]), spec["segments"], spec["seed"])
    k = spec["k"]

    def theirs() -> torch.Tensor:
        F = F0.detach().requires_grad_(True)
        Z, _ = ncut_fn(F, n_eig=k, exact_gradient=True, device="cpu")
        loss = matbackprop.projector_loss(Z, labels)
        (g,) = torch.autograd.grad(loss.sum(), F)
        return g

    ours = _ours_step(F0, labels, k)
    g_ours, g_theirs = ours(), theirs()  # warm-up and finiteness check
    start = time.perf_counter()
    tm = T.interleaved([("matbackprop", ours), ("ncut-pytorch", theirs)], repeats=spec["repeats"],
                       min_repeats=min(3, spec["repeats"]), budget_s=spec["budget"], start=start)
    return {
        **spec, "version": getattr(ncut_pytorch, "__version__", "?"),
        "ours_ms": tm.median_ms("matbackprop"), "theirs_ms": tm.median_ms("ncut-pytorch"), "reps": tm.rounds,
        "ours_finite": bool(torch.isfinite(g_ours).all()), "theirs_finite": bool(torch.isfinite(g_theirs).all()),
    }


def run_child(kind: str, spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", kind, json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("threads") == 1:  # keep the child's OpenMP pool at one thread from the start
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {**spec, "error": f"child failed: {tail[:120]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------
# Reporting


def fmt_ms(x: float) -> str:
    return "-" if not math.isfinite(x) else (f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 1000 else f"{x:.0f}")


def fmt_err(x: float) -> str:
    if x != x:
        return "-"
    return "inf/NaN" if math.isinf(x) else f"{x:.1e}"


def fmt_mb(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f}"


SPEC_HEADER = ("function", "size", "dtype", "method", "median ms", "IQR ms", "/ autograd", "/ eigh fwd",
               "peak MB", "peak / input", "Y err", "grad err", "reps")


def spectral_rows(results: list[SpectralResult], multi_device: bool) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        auto, floor = r.med("autograd"), r.med("eigh forward")
        size = f"{r.batch}x{r.n}" + (f" {r.device}" if multi_device else "")
        for m in r.methods:
            head = (r.func, size, r.dtype, m.name)
            if m.run is None or m.name in r.errors:
                note = m.note if m.run is None else r.errors[m.name]
                rows.append(head + (note,) + ("",) * (len(SPEC_HEADER) - 5))
                continue
            med = r.med(m.name)
            lo, hi = r.timings.quartiles_ms(m.name)
            pk = r.peak_bytes.get(m.name)
            rows.append(head + (
                fmt_ms(med), f"{fmt_ms(lo)}-{fmt_ms(hi)}", f"{med / auto:.2f}", f"{med / floor:.2f}",
                fmt_mb(pk), "-" if pk is None else f"{pk / r.input_bytes:.1f}",
                fmt_err(r.y_err.get(m.name, float("nan"))), fmt_err(r.g_err.get(m.name, float("nan"))),
                str(len(r.timings.times.get(m.name, []))),
            ))
    return rows


def tie_rows(ties: dict[tuple[str, str], dict[str, tuple[float, float]]]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    names: list[str] = []
    for d in ties.values():
        names += [n for n in d if n not in names]
    header = ("function", "dtype") + tuple(names)
    rows = [(f, dt) + tuple(fmt_err(d.get(n, (float("nan"),))[0]) for n in names) for (f, dt), d in ties.items()]
    return header, rows


@dataclass
class Goal:
    text: str
    measured: str
    met: bool | None  # None: not measured

    def row(self) -> tuple[str, str, str]:
        return (self.text, self.measured, {True: "met", False: "NOT met", None: "not measured"}[self.met])


def _worst(
    results: list[SpectralResult], num: str, den: str, keep: Callable[[SpectralResult], bool] = lambda r: True
) -> tuple[float, str]:
    worst, where = -math.inf, ""
    for r in results:
        if not keep(r) or num not in r.timings.times or den not in r.timings.times:
            continue
        q = r.med(num) / r.med(den)
        if q > worst:
            worst, where = q, f"{r.func} {r.batch}x{r.n} {r.dtype}"
    return worst, where


def evaluate_goals(results: list[SpectralResult], ties: dict, ncut: list[dict], compare: dict | None,
                   tie_tol: dict[str, float]) -> list[Goal]:
    goals = []
    cpu = [r for r in results if r.device == "cpu"] or results
    if not results:
        goals += [Goal(text, "spectral section not run", None) for text in (
            "matbackprop fwd+bwd <= 1.0x autograd at every size", "matbackprop exact at ties",
            "matbackprop faster than every peer", "matbackprop fwd+bwd <= 1.25x eigh forward alone for n >= 64")]
        return goals + _ncut_goals(ncut, compare)
    ours = ("matbackprop", "matbackprop check=False")  # the goal is on the default; check=False shown alongside
    w = [_worst(cpu, name, "autograd") for name in ours]
    goals.append(Goal("matbackprop fwd+bwd <= 1.0x autograd at every size",
                      f"worst {w[0][0]:.2f}x ({w[0][1]}); check=False: {w[1][0]:.2f}x ({w[1][1]})", w[0][0] <= 1.0))
    exact = [(f, dt, d["matbackprop"][0]) for (f, dt), d in ties.items() if "matbackprop" in d]
    if exact:
        bad = [(f, dt, e) for f, dt, e in exact if not e <= tie_tol[dt]]
        worst = max(exact, key=lambda t: t[2] if math.isfinite(t[2]) else math.inf)
        goals.append(Goal("matbackprop exact at ties (grad err vs exact Daleckii-Krein)",
                          f"worst {fmt_err(worst[2])} ({worst[0]} {worst[1]}; tol 1e-4 f32, 1e-10 f64)", not bad))
    else:
        goals.append(Goal("matbackprop exact at ties", "-", None))
    closest = []
    for name in ours:
        ratios = [(r.med(m.name) / r.med(name), f"{m.name}, {r.func} {r.batch}x{r.n} {r.dtype}")
                  for r in cpu if name in r.timings.times
                  for m in r.available() if m.kind == "peer" and m.name in r.timings.times]
        closest.append(min(ratios) if ratios else None)
    if closest[0] is not None:
        text = f"closest {closest[0][0]:.2f}x ({closest[0][1]})"
        if closest[1] is not None:
            text += f"; check=False: {closest[1][0]:.2f}x ({closest[1][1]})"
        goals.append(Goal("matbackprop faster than every peer (peer time / ours, > 1 is faster)", text, closest[0][0] > 1.0))
    else:
        goals.append(Goal("matbackprop faster than every peer", PEER_HINT, None))
    big = lambda r: r.n >= 64  # noqa: E731
    if any(big(r) for r in cpu):
        w = [_worst(cpu, name, "eigh forward", keep=big) for name in ours]
        goals.append(Goal("matbackprop fwd+bwd <= 1.25x eigh forward alone for n >= 64",
                          f"worst {w[0][0]:.2f}x ({w[0][1]}); check=False: {w[1][0]:.2f}x ({w[1][1]})", w[0][0] <= 1.25))
    else:
        goals.append(Goal("matbackprop fwd+bwd <= 1.25x eigh forward alone for n >= 64", "no size with n >= 64", None))
    return goals + _ncut_goals(ncut, compare)


def _ncut_goals(ncut: list[dict], compare: dict | None) -> list[Goal]:
    goals = []
    full = [c for c in ncut if c.get("nodes") == 154401 and "median_ms" in c]
    if full:
        worst = max(full, key=lambda c: c["median_ms"])
        goals.append(Goal("ncut_embedding + projector_loss at 154,401 x 64, k=16 under 1 s",
                          ", ".join(f"{c['dtype']} {c['median_ms'] / 1e3:.2f} s" for c in full), worst["median_ms"] < 1000))
    else:
        goals.append(Goal("ncut_embedding + projector_loss at 154,401 x 64, k=16 under 1 s", "not run", None))
    if compare and "ours_ms" in compare:
        q = compare["theirs_ms"] / compare["ours_ms"]
        ok = q >= 10 and compare["ours_finite"] if compare["nodes"] == 10000 else None
        goals.append(Goal(f"ncut >= 10x faster than ncut-pytorch exact_gradient=True at 10,000 x 64",
                          f"{q:.1f}x at {compare['nodes']:,} x {compare['d']} {compare['dtype']}", ok))
    else:
        goals.append(Goal("ncut >= 10x faster than ncut-pytorch exact_gradient=True at 10,000 x 64",
                          (compare or {}).get("error", "not run"), None))
    return goals


def environment_lines(args: argparse.Namespace, devices: list[str], at_end: bool = False) -> list[str]:
    lines = [
        f"command: `{args.command}`",
        f"python {platform.python_version()}, torch {torch.__version__}, matbackprop {matbackprop.__version__}",
        f"cpu: {T.cpu_name()}, os.cpu_count()={os.cpu_count()}, torch threads={torch.get_num_threads()} ({args.thread_note})",
        f"load average at start: {args.start_load}" + (f", at end: {T.loadavg()}" if at_end else ""),
        f"repeats={args.repeats} (min {args.min_repeats}, budget {args.budget:g} s per configuration), "
        f"warmup={args.warmup}, seed={args.seed}",
    ]
    if torch.cuda.is_available():
        lines.append(f"GPU: {torch.cuda.get_device_name()} (devices measured: {', '.join(devices)})")
    else:
        lines.append("no GPU was available: every number is CPU-only")
    peers = []
    for name in ("spd_learn", "torchspd", "geoopt", "ncut_pytorch"):
        try:
            from importlib.metadata import version

            peers.append(f"{name} {version(name.replace('_', '-') if name == 'ncut_pytorch' else name)}")
        except Exception:
            peers.append(f"{name} not installed")
    lines.append("peers: " + ", ".join(peers))
    return lines


METHOD_NOTES = {
    "floor": "lower bound for any eigh route (forward only, no autograd)",
    "baseline": "plain autograd; torch's eigh backward divides by eigenvalue gaps, so it is inexact or non-finite at ties",
    "ours": "Daleckii-Krein backward with tie-safe divided differences (exact at ties)",
    "approx": "GEMM-only iteration, backward by autograd through it; approximate, its error grows with tr(X)/lambda_min",
    "peer": "peer library, its own public API",
}
PEER_NOTES = {  # from reading each package's source (versions pinned in the [peers] extra)
    "spd_learn": "autograd.Function; Loewner-matrix backward, f' (averaged) where eigenvalues are within an adaptive "
                 "threshold, so tie-safe",
    "torchspd": "autograd.Function; divided differences, with a series (logm) or 3-point Gauss-Legendre quadrature "
                "of f' for close eigenvalues, so tie-safe",
    "geoopt": "TorchScript eigh + Q f(L) Q^T, differentiated by torch's autograd: the eigh backward, not tie-safe",
}


def write_markdown(path: str, args: argparse.Namespace, env: list[str], results: list[SpectralResult], ties: dict,
                   stages: list[tuple[str, list[tuple[str, float]], str]], o2p: list[O2PResult], ncut: list[dict],
                   compare: dict | None, goals: list[Goal], plot_path: str | None, multi_device: bool) -> None:
    out: list[str] = ["# Benchmarks", ""]
    out += [
        f"Generated by `benchmarks/bench_spectral.py` (do not edit by hand; rerun the command below). "
        "Absolute times depend on the machine and its load; the ratios, measured side by side in one "
        "process with interleaved, order-rotated repetitions, are the meaningful part.",
        "",
    ]
    if args.quick:
        out += ["**This page comes from a `--quick` run (small sizes, few repetitions): format only, not results.**", ""]
    out += [f"- {line}" for line in env] + [""]
    out += ["## Goals (issue 6)", "", T.format_markdown(("goal", "measured", "status"), [g.row() for g in goals]), ""]
    if results:
        methods: dict[str, Method] = {}
        apis: dict[str, list[str]] = {}  # one row per method, listing its call for each function
        for r in results:
            for m in r.methods:
                methods.setdefault(m.name, m)
                if f"`{m.api}`" not in apis.setdefault(m.name, []):
                    apis[m.name].append(f"`{m.api}`")
        used = {r.device for r in results}
        out += ["## Spectral functions: forward + backward", ""]
        out += [
            "Every method returns `Y = f(X)` and `dL/dX` for the same upstream gradient `G` through "
            "`torch.autograd.grad`. Inputs: random SPD `X = A A^T / n + I` (eigenvalues about 1 to 5).", "",
            T.format_markdown(("method", "calls", "what it is"),
                              [(name, " / ".join(apis[name]), PEER_NOTES.get(name, METHOD_NOTES[m.kind])
                                + (f"; {m.note}" if m.run is None else "")) for name, m in methods.items()]),
            "",
            "Columns: median and interquartile range (25th-75th percentile) of the wall time; ratios of "
            "medians to `autograd` and to the `eigh forward` floor; `peak MB`: peak of live tensor bytes "
            "allocated during one forward+backward call (outputs included, the inputs `X` and `G` not), "
            "measured once per method outside the timed loop"
            + (" from `torch.profiler(profile_memory=True)` allocation/free events integrated in time order "
               "(torch's CPU allocator only: LAPACK's internal workspaces are not seen)" if "cpu" in used else "")
            + (", and `torch.cuda.max_memory_allocated` on CUDA" if "cuda" in used else "")
            + "; `peak / input`: that peak over the bytes of `X`; `Y err`, `grad err`: max over the batch of "
            "`max|a - ref| / max|ref|` against a float64 Daleckii-Krein reference (for the gradient, of its "
            "symmetric part, the part that acts on symmetric perturbations); `reps`: timed repetitions.",
            "",
            T.format_markdown(SPEC_HEADER, spectral_rows(results, multi_device)),
            "",
        ]
        if plot_path:
            rel = os.path.relpath(plot_path, os.path.dirname(os.path.abspath(path)))
            out += [f"![time per method over plain autograd]({rel})", ""]
    if ties:
        header, rows = tie_rows(ties)
        out += [
            "## Ties: an exactly repeated eigenvalue", "",
            "`X = R diag(2, 2, 3, 4, 5, 6, 7, 8) R^T` (batch of 4 random rotations `R`), upstream `G` random. "
            "Relative error of `sym(dL/dX)` against the exact Daleckii-Krein gradient built from the known "
            "`R` and eigenvalues (`f'(2)` on the tied pair). Plain autograd divides by the (rounding-level) gap "
            "of the tied pair.", "",
            T.format_markdown(header, rows), "",
        ]
    if stages:
        out += [
            "## Where the time goes", "",
            "Stage timers rebuilt from public torch ops that mirror matbackprop's implementation (apart "
            "from the Loewner matrix they are not the library's code), interleaved medians; then `torch.profiler` on three real "
            "`matbackprop.logm` forward+backward calls. Any eigh route with an exact backward needs the eigh "
            "plus five batched products (one to form `Q f(L) Q^T`, four for `Q (F o Q^T G Q) Q^T`), so "
            "`fwd: eigh` + the product rows bound the best achievable ratio to the eigh floor (the last row "
            "of each table, a ratio, not milliseconds): where it exceeds 1.25, that goal is out of reach for "
            "this formulation on this machine.", "",
        ]
    for spec, rows, table in stages:
        total = dict(rows).get("total: matbackprop check=False", float("nan"))
        out += [
            f"### logm at {spec}", "",
            T.format_markdown(("stage", "median ms", "% of matbackprop check=False"),
                              [(n, f"{t:.2f}x", "") if "ratio" in n else (n, fmt_ms(t), f"{100 * t / total:.0f}%")
                               for n, t in rows]),
            "", "```", table.strip(), "```", "",
        ]
    if o2p:
        out += ["## SecondOrderPooling throughput", ""]
        for o in o2p:
            B, C, H, W = o.shape
            out += [f"`matbackprop.nn.SecondOrderPooling(output='triu')` forward+backward on features {B}x{C}x{H}x{W} "
                    f"float32 with {o.regions} quadrant masks per image ({B * o.regions} regions of {C}x{C} per call).", ""]
            out += [T.format_markdown(("route / normalization", "median ms", "regions / s", "reps"), o2p_rows(o)), ""]
    if ncut or compare:
        out += ["## Normalized cuts: ncut_embedding + projector_loss", ""]
        if ncut:
            out += [
                "Forward+backward of `projector_loss(ncut_embedding(F, k), labels)` for non-negative `F (N, d)`, "
                "random labels with 8 segments; each configuration in a fresh process. `tensor peak MB`: peak of live "
                "tensor bytes during one step (torch.profiler memory events, as above; the gradient and the "
                "intermediates, not the input `F`); `RSS peak extra MB`: growth of the process's resident-set "
                "high-water mark (VmHWM) over its size once the inputs were built, which also counts allocator "
                "caching, thread pools and LAPACK workspaces (a fixed few tens of MB that dominate at small N).", "",
                T.format_markdown(NCUT_HEADER, ncut_rows(ncut)), "",
            ]
        if compare:
            out += ["Against ncut-pytorch's exact-gradient path, in one process, interleaved: "
                    "`ncut_pytorch.ncut_fn(F, n_eig=k, exact_gradient=True)` (for N > 8192 it samples 1/4 of the "
                    "nodes by farthest-point sampling, builds a dense RBF affinity on them and takes the full "
                    "`torch.linalg.eigh`, then propagates by Nystrom) followed by the same `projector_loss`. "
                    "The two do not compute the same embedding (RBF vs linear affinity); the comparison is the "
                    "cost of an exact-gradient normalized-cuts layer at this size.", "",
                    T.format_markdown(COMPARE_HEADER, [compare_row(compare)]), ""]
    out += [
        "## How it was measured", "",
        "- Timing: all methods of a configuration in one process; each repetition runs every method once, in "
        "an order rotated from one repetition to the next; garbage collection is off inside a repetition. "
        "The accuracy call and the memory call are the first warm-up calls. Repetitions stop at `--repeats`, or "
        "after `--min-repeats` once the per-configuration `--budget` is spent, so the largest sizes have fewer.",
        "- Threads: torch's default thread count unless a ~2 s probe shows it stalls under CPU contention, then 1 "
        "thread; `--threads N` sets it (N > 1 has been seen to hang inside MKL's batched eigh for n >= ~192 on "
        "small shared machines).",
        "- Peers are installed only through the optional extra `pip install -e .[peers]`; never a core dependency.",
        "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))


def o2p_rows(o: O2PResult) -> list[tuple[str, ...]]:
    rows = []
    for label, _, _ in o.routes:
        med = o.timings.median_ms(label)
        rows.append((label, fmt_ms(med), f"{o.shape[0] * o.regions / (med / 1e3):.0f}", str(len(o.timings.times[label]))))
    return rows


NCUT_HEADER = ("N", "d", "k", "dtype", "median ms", "IQR ms", "reps", "features MB", "tensor peak MB", "RSS peak extra MB",
               "tensor peak / features")


def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def ncut_rows(ncut: list[dict]) -> list[tuple[str, ...]]:
    rows = []
    for c in ncut:
        head = (f"{c['nodes']:,}", str(c["d"]), str(c["k"]), c["dtype"])
        if "error" in c:
            rows.append(head + (c["error"],) + ("",) * (len(NCUT_HEADER) - 5))
            continue
        rows.append(head + (fmt_ms(c["median_ms"]), f"{fmt_ms(c['iqr'][0])}-{fmt_ms(c['iqr'][1])}", str(c["reps"]),
                            f"{c['feature_mb']:.1f}", _mb(c.get("tensor_peak_mb")), f"{c['peak_extra_mb']:.1f}",
                            "-" if c.get("tensor_peak_mb") is None else f"{c['tensor_peak_mb'] / c['feature_mb']:.2f}"))
    return rows


COMPARE_HEADER = ("N x d, k", "dtype", "matbackprop ms", "ncut-pytorch exact ms", "ratio", "grads finite (ours / theirs)", "reps")


def compare_row(c: dict) -> tuple[str, ...]:
    head = (f"{c['nodes']:,} x {c['d']}, {c['k']}", c["dtype"])
    if "error" in c:
        return head + (c["error"], "", "", "", "")
    return head + (fmt_ms(c["ours_ms"]), fmt_ms(c["theirs_ms"]), f"{c['theirs_ms'] / c['ours_ms']:.1f}x",
                   f"{c['ours_finite']} / {c['theirs_finite']}", str(c["reps"]))


def make_plot(path: str, results: list[SpectralResult]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return False
    panels = sorted({(r.func, r.dtype, r.device) for r in results})
    if not panels:
        return False
    all_names: list[str] = []
    for r in results:
        all_names += [m.name for m in r.methods if m.name != "autograd" and m.name not in all_names]
    colors = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(all_names)}  # same colour in every panel
    cols = 2
    rows_n = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(12, 4.2 * rows_n), squeeze=False)
    for ax, (func, dtype, device) in zip(axes.flat, panels):
        rs = [r for r in results if (r.func, r.dtype, r.device) == (func, dtype, device)]
        names = [m.name for m in rs[0].methods if m.name != "autograd" and any(m.name in r.timings.times for r in rs)]
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            xs, ys = [], []
            for j, r in enumerate(rs):
                if name in r.timings.times:
                    xs.append(j + (i - (len(names) - 1) / 2) * width)
                    ys.append(r.med(name) / r.med("autograd"))
            ax.bar(xs, ys, width=width, label=name, color=colors[name])
        ax.axhline(1.0, color="k", lw=1, ls="--")
        ax.set_yscale("log")
        ticks = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2, 3, 5, 10, 20, 50]
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xticks(range(len(rs)), [f"{r.batch}x{r.n}" for r in rs])
        ax.set_title(f"{func} {dtype} ({device})")
        ax.set_ylabel("time / plain autograd")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    import matplotlib.patches as mpatches

    handles = [mpatches.Patch(color=colors[name], label=name) for name in all_names]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=9)
    fig.suptitle("forward+backward time relative to plain autograd through torch.linalg.eigh (median; lower is better)")
    fig.tight_layout(rect=(0, 0.14 / rows_n, 1, 1 - 0.08 / rows_n))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions (a 1-2 minute smoke test)")
    p.add_argument("--sections", default="spectral,o2p,ncut", help="comma list of spectral,o2p,ncut (default all)")
    p.add_argument("--functions", default="logm,sqrtm", help="spectral functions (default logm,sqrtm)")
    p.add_argument("--sizes", type=T.parse_sizes, default=None, help=f"BATCHxN list (default {FULL_SIZES}; quick {QUICK_SIZES})")
    p.add_argument("--dtypes", type=T.parse_dtypes, default=T.parse_dtypes("float32,float64"))
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions per configuration (default 15; quick 7)")
    p.add_argument("--min-repeats", type=int, default=3, help="repetitions always run even past --budget (default 3)")
    p.add_argument("--budget", type=float, default=None, help="seconds per configuration, 0 = none (default 20; quick 3)")
    p.add_argument("--warmup", type=int, default=1, help="extra untimed rounds after the accuracy and memory calls (default 1)")
    p.add_argument("--ns-iters", type=int, default=10, help="Newton-Schulz iterations (default 10, the library default)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cpu, plus cuda when available)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N); default: probe, fall back to 1 under contention")
    p.add_argument("--keep-threads", action="store_true", help="keep torch's default threads even if the probe says it stalls")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the stage breakdown")
    p.add_argument("--profile-size", default=None,
                   help="comma list of BATCHxN:DTYPE for the stage breakdown (default 64x128:float32,4x1024:float64; "
                   "quick 64x128:float32)")
    p.add_argument("--o2p-shape", default=None, help="B,C,H,W of the pooling features (default 8,64,28,28; quick 2,16,14,14)")
    p.add_argument("--ncut-nodes", default=None, help="comma list of N (default 10000,154401,1000000; quick 10000)")
    p.add_argument("--ncut-dtypes", type=T.parse_dtypes, default=None, help="default float32,float64; quick float32")
    p.add_argument("--ncut-compare-nodes", type=int, default=None,
                   help="N of the ncut-pytorch comparison (default 10000; quick 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", default=None, help="Markdown report path (default docs/benchmarks.md; '' = none)")
    p.add_argument("--plot", default=None, help="PNG plot path (default docs/figures/benchmarks.png; '' = none)")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.sizes = args.sizes or T.parse_sizes(QUICK_SIZES if q else FULL_SIZES)
    args.repeats = args.repeats or (7 if q else 15)
    args.budget = args.budget if args.budget is not None else (3.0 if q else 20.0)
    args.min_repeats = max(1, min(args.min_repeats, args.repeats))
    args.o2p_shape = tuple(int(v) for v in (args.o2p_shape or ("2,16,14,14" if q else "8,64,28,28")).split(","))
    args.ncut_nodes = [int(v) for v in (args.ncut_nodes or ("10000" if q else "10000,154401,1000000")).split(",")]
    args.ncut_dtypes = args.ncut_dtypes or (["float32"] if q else ["float32", "float64"])
    args.ncut_compare_nodes = args.ncut_compare_nodes or (2000 if q else 10000)
    args.profile_size = args.profile_size or ("64x128:float32" if q else "64x128:float32,4x1024:float64")
    args.sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    args.functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    unknown = (args.sections - {"spectral", "o2p", "ncut"}) | (set(args.functions) - set(SCALARS))
    if unknown:
        p.error(f"unknown section/function: {', '.join(sorted(unknown))}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False")
    if args.markdown is None:
        args.markdown = os.path.join(ROOT, "docs", "benchmarks.md")
    if args.plot is None:
        args.plot = os.path.join(ROOT, "docs", "figures", "benchmarks.png")
    if args.threads is not None and args.threads > 1 and max(n for _, n in args.sizes) >= 192:
        print(f"warning: torch.set_num_threads({args.threads}) with n >= 192 has been seen to hang in MKL's batched eigh "
              "on small shared machines", file=sys.stderr)
    exe = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else "python"
    given = argv if argv is not None else sys.argv[1:]
    args.command = f"{exe} benchmarks/bench_spectral.py " + " ".join(shlex.quote(a) for a in given)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        kind, spec = args._child
        child = {"ncut": ncut_child, "compare": ncut_compare_child}[kind]
        print(json.dumps(child(json.loads(spec))))
        return 0

    args.thread_note = T.choose_threads(args.threads, args.keep_threads)
    args.start_load = T.loadavg()
    if args.device == "auto":
        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    else:
        devices = [args.device]
    multi_device = len(devices) > 1
    for line in environment_lines(args, devices):
        print(line)
    t_all = time.perf_counter()

    results: list[SpectralResult] = []
    ties: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
    stages: list[tuple[str, list[tuple[str, float]], str]] = []
    if "spectral" in args.sections:
        for device in devices:
            for func in args.functions:
                for batch, n in args.sizes:
                    for dtype_name in args.dtypes:
                        t0 = time.perf_counter()
                        r = bench_spectral_config(func, batch, n, dtype_name, device, args)
                        results.append(r)
                        print(f"  {func} {batch}x{n} {dtype_name} {device}: {r.timings.rounds} rounds in "
                              f"{time.perf_counter() - t0:.1f} s (matbackprop/autograd "
                              f"{r.med('matbackprop') / r.med('autograd'):.2f})", flush=True)
        for func in args.functions:
            for dtype_name in args.dtypes:
                ties[(func, dtype_name)] = tie_test(func, dtype_name, devices[0], args)
        if args.profile:
            for spec in args.profile_size.split(","):
                size, _, dt = spec.strip().partition(":")
                ((pb, pn),) = T.parse_sizes(size)
                stages.append((f"{pb}x{pn} {dt or 'float32'}", *profile_stages(pb, pn, dt or "float32", devices[0], args)))
        print("\nforward+backward, medians in ms (IQR = 25th-75th percentile); ratios of medians\n")
        print(T.format_plain(SPEC_HEADER, spectral_rows(results, multi_device), left=4, group=3))
        header, rows = tie_rows(ties)
        print("\nties (X with a repeated eigenvalue): relative gradient error vs exact Daleckii-Krein\n")
        print(T.format_plain(header, rows, left=2))
        for spec, rows, _ in stages:
            print(f"\nstage breakdown of logm at {spec} (median ms)\n")
            print(T.format_plain(("stage", "median ms"),
                                 [(nm, f"{t:.2f}x" if "ratio" in nm else fmt_ms(t)) for nm, t in rows]))

    o2p: list[O2PResult] = []
    if "o2p" in args.sections:
        o2p.append(bench_o2p(args, devices[0]))
        print(f"\nSecondOrderPooling forward+backward, features {'x'.join(map(str, args.o2p_shape))}, 4 regions each\n")
        print(T.format_plain(("route / normalization", "median ms", "regions / s", "reps"), o2p_rows(o2p[0])))

    ncut: list[dict] = []
    compare = None
    if "ncut" in args.sections:
        threads = torch.get_num_threads()
        reps = min(args.repeats, 3 if args.quick else 5)
        for nodes in args.ncut_nodes:
            for dt in args.ncut_dtypes:
                spec = dict(nodes=nodes, d=64, k=16, dtype=dt, segments=8, seed=args.seed, repeats=reps,
                            budget=args.budget, threads=threads)
                ncut.append(run_child("ncut", spec, timeout=900))
                print(f"  ncut N={nodes} {dt}: {ncut[-1].get('median_ms', ncut[-1].get('error'))}", flush=True)
        spec = dict(nodes=args.ncut_compare_nodes, d=64, k=16, dtype="float32", segments=8, seed=args.seed,
                    repeats=reps, budget=args.budget, threads=threads)
        compare = run_child("compare", spec, timeout=1200)
        print("\nncut_embedding + projector_loss forward+backward (fresh process per row)\n")
        print(T.format_plain(NCUT_HEADER, ncut_rows(ncut), left=0))
        print("\nagainst ncut-pytorch exact_gradient=True (same process, interleaved)\n")
        print(T.format_plain(COMPARE_HEADER, [compare_row(compare)], left=2))

    goals = evaluate_goals(results, ties, ncut, compare, {"float32": 1e-4, "float64": 1e-10})
    print(f"\ngoals (issue 6){' - quick run, not meaningful' if args.quick else ''}\n")
    print(T.format_plain(("goal", "measured", "status"), [g.row() for g in goals], left=2))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")

    env = environment_lines(args, devices, at_end=True)
    plot_path = args.plot if args.plot and results and make_plot(args.plot, results) else None
    if plot_path:
        print(f"wrote {plot_path}")
    if args.markdown:
        write_markdown(args.markdown, args, env, results, ties, stages, o2p, ncut, compare, goals, plot_path, multi_device)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
