"""Input validation shared by the spectral functions.

Every check raises ``ValueError`` naming the function, the problem and the first offending batch
index, so a bad matrix deep inside a batch is easy to find. Checks cost a host synchronisation; the
public functions take ``check=False`` to skip them inside tight loops.
"""

from __future__ import annotations

import math

import torch

from ._common import SLAB_WIDTH, use_slabs

__all__ = [
    "batch_index",
    "check_square",
    "check_matrix",
    "check_finite",
    "check_symmetric",
    "check_finite_symmetric",
    "check_eigenvalues",
    "spectral_dtype",
]


def batch_index(bad: torch.Tensor) -> tuple[int, ...]:
    """Index (in the batch dimensions) of the first ``True`` entry of ``bad`` (shape = batch shape)."""
    flat = int(torch.nonzero(bad.reshape(-1))[0, 0])
    index = []
    for size in reversed(bad.shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _where(bad: torch.Tensor) -> str:
    if bad.dim() == 0:
        return "the input"
    return f"batch index {batch_index(bad)}"


def check_matrix(X: torch.Tensor, name: str) -> None:
    """Require a floating tensor with at least two dimensions."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(f"{name}: expected a matrix or a batch of matrices (..., m, n), got shape {tuple(X.shape)}")
    if not (X.is_floating_point()):
        raise ValueError(f"{name}: expected a floating-point tensor, got {X.dtype}")


def check_square(X: torch.Tensor, name: str) -> None:
    """Require a batch of square matrices ``(..., n, n)``."""
    check_matrix(X, name)
    if X.shape[-1] != X.shape[-2]:
        raise ValueError(f"{name}: expected square matrices (..., n, n), got shape {tuple(X.shape)}")


def check_finite(X: torch.Tensor, name: str) -> None:
    """Require every entry to be finite."""
    if X.numel() == 0:
        return
    bad = ~torch.isfinite(X).flatten(-2).all(-1)
    if bool(bad.any()):
        raise ValueError(f"{name}: input has NaN or infinite entries at {_where(bad)}")


def symmetry_rtol(dtype: torch.dtype) -> float:
    # Rounding in X^T X or (A + A^T)/2-style constructions leaves asymmetry near eps; anything at
    # sqrt(eps) of the largest entry is not rounding but a non-symmetric input.
    return torch.finfo(dtype).eps ** 0.5


def _exactly_symmetric(X: torch.Tensor) -> bool:
    # Large matrices column slab by column slab, so that the transposed read stays in cache
    # (see _common.add_transpose); the first mismatch ends the scan.
    n = X.shape[-1]
    if not use_slabs(X):
        return torch.equal(X, X.transpose(-2, -1))
    slabs = (slice(j, j + SLAB_WIDTH) for j in range(0, n, SLAB_WIDTH))
    return all(torch.equal(X[..., :, cols], X[..., cols, :].transpose(-2, -1)) for cols in slabs)


def check_finite_symmetric(X: torch.Tensor, name: str) -> None:
    """:func:`check_finite` and :func:`check_symmetric`, cheaply for valid input.

    Off the CPU: one fused pass and one host synchronisation. NaN entries make the symmetry comparison
    false and infinite ones the scale non-finite, so the fast test catches them too; only a failing
    input pays for the detailed checks that name the problem.
    """
    if X.numel() == 0:
        return
    if X.device.type == "cpu":
        # Most inputs are exactly symmetric (products A A^T, our own outputs): one comparison pass
        # and a sum (finite unless an entry is not, or the sum overflows) clear them; host syncs
        # are free on the CPU, so two of them cost nothing.
        if _exactly_symmetric(X) and math.isfinite(X.detach().sum()):
            return
    asym = (X - X.transpose(-2, -1)).abs().amax(dim=(-2, -1))
    scale = X.abs().amax(dim=(-2, -1))
    if not bool(((asym <= symmetry_rtol(X.dtype) * scale) & torch.isfinite(scale)).all()):
        check_finite(X, name)
        check_symmetric(X, name)


def check_symmetric(X: torch.Tensor, name: str) -> None:
    """Require ``|X - X^T| <= sqrt(eps) * max|X|`` for every matrix of the batch."""
    if X.numel() == 0:
        return
    scale = X.abs().amax(dim=(-2, -1))
    asym = (X - X.transpose(-2, -1)).abs().amax(dim=(-2, -1))
    bad = asym > symmetry_rtol(X.dtype) * scale
    if bool(bad.any()):
        idx = batch_index(bad) if bad.dim() else ()
        ratio = float((asym / scale.clamp_min(torch.finfo(X.dtype).tiny))[idx]) if bad.dim() else float(asym / scale)
        raise ValueError(
            f"{name}: input is not symmetric at {_where(bad)} "
            f"(max |X - X^T| / max |X| = {ratio:.3g}); pass (X + X.mT) / 2 if the asymmetry is intended to be dropped"
        )


def check_eigenvalues(L: torch.Tensor, name: str, *, strict: bool, requirement: str) -> None:
    """Require eigenvalues ``L (..., n)`` to be positive (``strict``: above ``eps max|L|``, i.e. not
    numerically singular) or non-negative up to rounding (``-n eps max|L|``)."""
    if L.numel() == 0:
        return
    lmin = L.amin(-1)
    if strict:
        # An exactly singular matrix's zero eigenvalue comes out as +-eps |L|_max: indistinguishable
        # from a positive one at this precision, so anything up to that is numerically singular.
        bad = lmin <= torch.finfo(L.dtype).eps * L.abs().amax(-1)
    else:
        # Rounding makes the zero eigenvalues of a PSD matrix come out as -n eps |L|_max.
        tol = L.shape[-1] * torch.finfo(L.dtype).eps * L.abs().amax(-1)
        bad = lmin < -tol
    if bool(bad.any()):
        idx = batch_index(bad) if bad.dim() else ()
        raise ValueError(
            f"{name}: {requirement} at {_where(bad)}, smallest eigenvalue is {float(lmin[idx]):.6g}"
        )


def spectral_dtype(X: torch.Tensor) -> torch.Tensor:
    """Upcast half-precision input: eigendecompositions need at least float32."""
    if X.dtype in (torch.float16, torch.bfloat16):
        return X.float()
    return X
