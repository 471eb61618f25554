"""Shared set-up of the CUDA conformance checks: the public API on a CUDA device against the same calls on the CPU.

Every check compares values (and gradients, through ``torch.autograd.grad`` with a fixed upstream
gradient) computed on the device with the CPU result for the same input, or with an exact reference
(Daleckii-Krein from a known eigendecomposition, ``f'(c) sym(G)`` at ``X = c I``); finiteness alone
is never the criterion. Inputs are built on the CPU from a fixed seed and copied to the device, so both
sides see bit-identical data. Covered: ``eigh``, ``svd`` (thin, wide, Gram route), every spectral
function (``logm``, ``sqrtm``, ``invsqrtm``, ``powm``, ``expm``, ``clamp_eigs``, ``funm``), the
Newton-Schulz square roots, ``torch.autograd.gradcheck`` in float64 on the device, repeated eigenvalues,
the normalized-cuts ops and layer (up to 154,401 nodes), second-order pooling, the SPD ops and layers,
half precision and autocast, the input checks, ``torch.func`` and ``torch.compile``.

The test modules beside this one are skipped without a CUDA device (``bash scripts/gpu_check.sh`` runs them on a
GPU machine).
Dry run on the CPU: ``MATBACKPROP_TEST_DEVICE=cpu pytest tests/cuda`` replaces the device by
the one named (any torch device string) and lifts the skip, so that the test logic, the references
and the tolerances can be exercised without a GPU (device and CPU then coincide, so the cross-device
comparisons are trivially tight there; the exact references are not).
"""

import math
import os
from collections.abc import Callable

import pytest
import torch

import matbackprop as mb
from tests.helpers import rotation, with_spectrum

_OVERRIDE = os.environ.get("MATBACKPROP_TEST_DEVICE") or None
CUDA = torch.device(_OVERRIDE or "cuda")
CPU = torch.device("cpu")
F64, F32 = torch.float64, torch.float32

#: The mark every module of this package carries: skipped without a device (or the override).
requires_device = pytest.mark.skipif(
    _OVERRIDE is None and not torch.cuda.is_available(),
    reason="no CUDA device: these checks run only where a GPU is present (e.g. bash scripts/gpu_check.sh on a GPU machine)",
)

#: Largest ``max|device - cpu| / max|cpu|`` accepted for a result computed in that dtype on both sides.
#: float64: eigendecompositions by different solvers (cuSOLVER, LAPACK) agree to rounding times the
#: conditioning of these well-separated test spectra, far inside 1e-10; float32 likewise inside 1e-4.
TOL = {F64: 1e-10, F32: 1e-4}

# name -> (function of X, scalar f, scalar f') on float64 tensors; f and f' give the exact references.
SPECTRAL: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable, Callable]] = {
    "logm": (mb.logm, torch.log, torch.reciprocal),
    "sqrtm": (mb.sqrtm, torch.sqrt, lambda x: 0.5 / torch.sqrt(x)),
    "invsqrtm": (mb.invsqrtm, torch.rsqrt, lambda x: -0.5 * x**-1.5),
    "powm(0.7)": (lambda X: mb.powm(X, 0.7), lambda x: x**0.7, lambda x: 0.7 * x**-0.3),
    "powm(-1.3)": (lambda X: mb.powm(X, -1.3), lambda x: x**-1.3, lambda x: -1.3 * x**-2.3),
    "expm": (mb.expm, torch.exp, torch.exp),
    "clamp_eigs(1.5)": (lambda X: mb.clamp_eigs(X, 1.5), lambda x: x.clamp_min(1.5), lambda x: (x > 1.5).to(x.dtype)),
    "funm(atan)": (lambda X: mb.funm(X, torch.atan, lambda x: 1 / (1 + x * x)), torch.atan, lambda x: 1 / (1 + x * x)),
}
SMOOTH = [name for name in SPECTRAL if not name.startswith("clamp")]

#: Positive, well separated (gaps >= 0.3, none near the clamp floor 1.5): every function is smooth here.
SPECTRUM = [0.3, 0.6, 1.2, 2.0, 3.1, 4.5]


# ---------------------------------------------------------------------------------------------------
# Helpers


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """``max|got - want| / max|want|`` in float64 on the CPU (NaN when either is not finite)."""
    got = got.detach().to(CPU, F64)
    want = want.detach().to(CPU, F64)
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    if not (bool(torch.isfinite(got).all()) and bool(torch.isfinite(want).all())):
        return math.nan
    scale = float(want.abs().max()) if want.numel() else 0.0
    return float((got - want).abs().max()) / max(scale, torch.finfo(F64).tiny) if got.numel() else 0.0


def assert_close(got: torch.Tensor, want: torch.Tensor, tol: float, what: str) -> None:
    err = rel_err(got, want)
    assert err <= tol, f"{what}: max|{CUDA.type} - reference| / max|reference| = {err:.3g} > {tol:.1g}"


def assert_on_device(t: torch.Tensor, dtype: torch.dtype, what: str, device: torch.device = CUDA) -> None:
    assert t.device.type == device.type, f"{what}: on {t.device}, expected {device.type}"
    assert t.dtype == dtype, f"{what}: dtype {t.dtype}, expected {dtype}"


def value_and_grad(
    fn: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, G: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fn(X), d<G, fn(X)>/dX)`` with ``X`` and ``G`` copied to ``device``."""
    Xd = X.detach().to(device).requires_grad_(True)
    Y = fn(Xd)
    (g,) = torch.autograd.grad(Y, Xd, G.to(device=device, dtype=Y.dtype))
    return Y.detach(), g


def loss_and_grads(
    loss_fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], device: torch.device
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(loss, gradients w.r.t. every input)`` with the inputs copied to ``device``."""
    leaves = tuple(t.detach().to(device).requires_grad_(True) for t in inputs)
    loss = loss_fn(*leaves)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
    return loss.detach(), grads


def spd(spectrum: list[float], *batch: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    """``Q diag(spectrum) Q^T`` with a random rotation per batch element (built in float64, then cast)."""
    X, _, _ = with_spectrum(spectrum, *batch, generator=torch.Generator().manual_seed(seed))
    return X.to(dtype)


def with_singular_values(s: list[float], m: int, n: int, *batch: int, seed: int) -> torch.Tensor:
    """``U diag(s) V^T`` of shape ``(*batch, m, n)`` with random orthogonal ``U``, ``V`` (float64)."""
    g = torch.Generator().manual_seed(seed)
    k = len(s)
    U, V = rotation(m, *batch, generator=g)[..., :k], rotation(n, *batch, generator=g)[..., :k]
    return (U * torch.tensor(s, dtype=F64)) @ V.mT


def align_signs(B: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Column signs of ``B`` flipped to agree with ``ref`` (eigenvectors are defined up to sign)."""
    return torch.where((B * ref).sum(-2, keepdim=True) < 0, -1.0, 1.0).to(B.dtype)
