"""Input validation for the spectral functions: the check policy of matbackprop, stated once.

**Strict about real faults.** Non-square or non-floating input, NaN/Inf entries, matrices that are not
symmetric, and eigenvalues clearly outside a function's domain raise ``ValueError`` naming the
function, the problem and the first offending batch index.

**Lenient about rounding.** The tolerances below are the rounding level of the computation that made
the input, and they do not shrink with the matrix:

* *Symmetry.* ``X`` is accepted when ``max|X - X^T| <= sqrt(eps) max|X| + n eps`` for every matrix of
  the batch and is then replaced by its symmetric part ``(X + X^T) / 2`` (exactly symmetric input is
  used as it is). The relative term covers products such as ``A B A``; the absolute term ``n eps``
  (the rounding of a sum of ``n`` unit-sized terms, like the ``atol`` of :func:`torch.allclose`)
  covers results of cancellation, whose rounding is set by the size of the operands, not of the
  result: a Karcher-mean tangent ``mean_i logm(G^-1/2 X_i G^-1/2)`` of size 1e-9 carries 1e-17 of
  asymmetry, which a purely relative tolerance would reject.
* *Definiteness.* With ``tol = n eps max|L|`` (the rounding of a backward-stable eigensolver), an
  eigenvalue ``>= -tol`` counts as non-negative. Positive semi-definite domains (``sqrtm``,
  ``powm(p >= 0)``) clamp such eigenvalues at ``0``; positive definite domains (``logm``,
  ``invsqrtm``, ``powm(p < 0)``) clamp every eigenvalue below the *floor* ``eps max|L|``, the smallest
  eigenvalue distinguishable from zero at this precision, to that floor (so a singular PSD matrix gets
  the same, finite, answer whatever rounding did to its zero eigenvalues). Below ``-tol``, or a matrix
  whose eigenvalues are all zero, is a real fault.

``check=False`` (every public function) skips the data-dependent checks and the symmetrisation (the
lower triangle is used, as in :func:`torch.linalg.eigh`); the clamping of the domain stays.

**Under transforms** (see ``docs/transforms.md``):

* eager, and ``torch.func.grad``/``jvp``/``jacrev``: as above.
* ``torch.func.vmap``: the checks run on the whole physical batch under the vmapped tensor (batch
  indices count the vmapped dimensions first), with the same errors.
* ``torch.compile`` / ``torch.export`` (tracing): each check becomes one branch-free
  ``torch._assert_async`` (no graph break, no host synchronisation in the graph); a failing input raises
  ``RuntimeError`` naming the function and the problem but not the batch index (run eagerly for it),
  the symmetrisation is always applied, and the exact-symmetry fast path (``torch.equal``) is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .common import SLAB_WIDTH, sym, use_slabs

__all__ = [
    "batch_index",
    "is_tracing",
    "physical",
    "require",
    "check_square",
    "check_matrix",
    "check_finite",
    "check_symmetric",
    "check_finite_symmetric",
    "symmetrize_checked",
    "symmetry_tolerance",
    "check_eigenvalues",
    "eigenvalue_floor",
    "clamp_to_domain",
    "spectrum_inside_domain",
]

#: Largest spectrum (number of eigenvalues in the whole batch) that :func:`spectrum_inside_domain`
#: reads on the host: one transfer and a Python loop then cost less than the ~20 small tensor
#: operations of the full checks (1 x 8 x 8: about 190 us of a 700 us logm forward+backward).
HOST_CHECK_MAX_NUMEL = 1024


def is_tracing() -> bool:
    """Whether the values are unavailable to Python: tracing by ``torch.compile``/``torch.export``
    (Dynamo), ``torch.jit.trace``, or a dispatch mode such as ``make_fx`` (``torch.func.linearize``)
    or fake tensors. Checks then must not branch on data."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()  # type: ignore[no-untyped-call]
        or torch._C._len_torch_dispatch_stack() > 0
    )


def physical(X: torch.Tensor) -> torch.Tensor:
    """The plain tensor under ``torch.func`` wrappers, detached; vmapped dimensions moved to the front.

    Under ``vmap`` a check sees one matrix at a time and cannot branch on its values; the tensor it
    wraps holds the whole batch and can be checked eagerly, as an ordinary batch.
    """
    functorch = torch._C._functorch
    while functorch.is_functorch_wrapped_tensor(X):
        if functorch.is_batchedtensor(X):
            bdim = functorch.maybe_get_bdim(X)
            X = functorch.get_unwrapped(X).movedim(bdim, 0)
        else:
            X = functorch.get_unwrapped(X)
    return X.detach()


def require(ok: torch.Tensor, name: str, problem: str, detail: Callable[[tuple[int, ...]], str] | None = None) -> None:
    """Raise unless every entry of the boolean ``ok`` (shape = batch shape) is true.

    Eager: ``ValueError("{name}: {problem} at batch index (i, ...){detail(i)}")``. Tracing: one
    ``torch._assert_async`` (a ``RuntimeError`` without the batch index when it fails).
    """
    if is_tracing():
        torch._assert_async(ok.all(), f"{name}: {problem} (run without torch.compile/export to see the batch index)")
        return
    bad = ~physical(ok)  # a vmapped condition is read whole
    if bool(bad.any()):
        idx = batch_index(bad) if bad.dim() else ()
        raise ValueError(f"{name}: {problem} at {_where(bad)}{detail(idx) if detail else ''}")


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


def _checkable(X: torch.Tensor) -> torch.Tensor:
    """What a check reads: the traced tensor itself, or eagerly the detached physical batch."""
    return X if is_tracing() else physical(X)


def check_finite(X: torch.Tensor, name: str) -> None:
    """Require every entry to be finite."""
    X = _checkable(X)
    if X.numel() == 0:
        return
    require(torch.isfinite(X).flatten(-2).all(-1), name, "input has NaN or infinite entries")


def symmetry_rtol(dtype: torch.dtype) -> float:
    """Relative symmetry tolerance ``sqrt(eps)``: asymmetry at this fraction of the largest entry is
    not rounding (which leaves a few eps) but a non-symmetric input."""
    return float(torch.finfo(dtype).eps ** 0.5)


def symmetry_tolerance(X: torch.Tensor) -> torch.Tensor:
    """Accepted ``max|X - X^T|`` per matrix, shape = batch shape: ``sqrt(eps) max|X| + n eps``.

    The absolute term does not shrink with the matrix: it is the rounding left by cancellation among
    unit-sized operands (see the module docstring).
    """
    eps = torch.finfo(X.dtype).eps
    return symmetry_rtol(X.dtype) * X.abs().amax(dim=(-2, -1)) + X.shape[-1] * eps


def _exactly_symmetric(X: torch.Tensor) -> bool:
    # Large matrices column slab by column slab, so that the transposed read stays in cache
    # (see common.add_transpose); the first mismatch ends the scan.
    n = X.shape[-1]
    if not use_slabs(X):
        return torch.equal(X, X.transpose(-2, -1))
    slabs = (slice(j, j + SLAB_WIDTH) for j in range(0, n, SLAB_WIDTH))
    return all(torch.equal(X[..., :, cols], X[..., cols, :].transpose(-2, -1)) for cols in slabs)


def _host_finite_symmetric(X: torch.Tensor) -> bool:
    """Whether a small CPU batch is exactly symmetric and finite, read on the host (see
    ``HOST_CHECK_MAX_NUMEL``); ``False`` sends it through the tensor checks."""
    n = X.shape[-1]
    for matrix in X.detach().reshape(-1, n, n).tolist():
        if not math.isfinite(sum(map(sum, matrix))) or list(map(list, zip(*matrix))) != matrix:
            return False
    return True


def _finite_symmetric(X: torch.Tensor, name: str) -> bool:
    """Check ``X`` (physical or traced); return whether it is exactly symmetric (eager fast path)."""
    if X.numel() == 0:
        return True
    if not is_tracing() and X.device.type == "cpu":
        # Most inputs are exactly symmetric (products A A^T, our own outputs): one comparison pass
        # and a sum (finite unless an entry is not, or the sum overflows) clear them; host syncs
        # are free on the CPU, so two of them cost nothing.
        if X.numel() <= HOST_CHECK_MAX_NUMEL and type(X) is torch.Tensor:
            if _host_finite_symmetric(X):  # small: read once on the host, no tensor calls
                return True
        elif _exactly_symmetric(X) and math.isfinite(X.sum()):
            return True
    # One fused test: NaN fails the comparison, Inf makes the tolerance non-finite. Traced, it is the
    # assertion; eager (one host synchronisation), only a failing input pays for the detailed checks.
    asym = (X - X.transpose(-2, -1)).abs().amax(dim=(-2, -1))
    tol = symmetry_tolerance(X)
    ok = (asym <= tol) & torch.isfinite(tol)
    if is_tracing():
        require(ok, name, "input has NaN or infinite entries or is not symmetric")
    elif not bool(ok.all()):
        check_finite(X, name)
        check_symmetric(X, name)
    return False


def check_finite_symmetric(X: torch.Tensor, name: str) -> None:
    """:func:`check_finite` and :func:`check_symmetric`, cheaply for valid input.

    Exactly symmetric finite input is cleared by one comparison pass (eager, CPU); only other input
    pays for the tolerance computation, and only a failing input for the messages that name the problem.
    """
    _finite_symmetric(_checkable(X), name)


def symmetrize_checked(X: torch.Tensor, name: str) -> torch.Tensor:
    """Check finite and symmetric up to rounding; return ``X`` if exactly symmetric, else ``(X + X^T) / 2``.

    Under tracing the symmetric part is always returned (no data-dependent branch).
    """
    if _finite_symmetric(_checkable(X), name):
        return X
    return sym(X)


def check_symmetric(X: torch.Tensor, name: str) -> None:
    """Require ``max|X - X^T| <= sqrt(eps) max|X| + n eps`` for every matrix of the batch."""
    X = _checkable(X)
    if X.numel() == 0:
        return
    scale = X.abs().amax(dim=(-2, -1))
    asym = (X - X.transpose(-2, -1)).abs().amax(dim=(-2, -1))

    def ratio(idx: tuple[int, ...]) -> str:
        value = float(asym[idx]) / max(float(scale[idx]), torch.finfo(X.dtype).tiny)
        return (
            f" (max |X - X^T| / max |X| = {value:.3g}); pass (X + X.mT) / 2 if the asymmetry is intended to be dropped"
        )

    require(asym <= symmetry_tolerance(X), name, "input is not symmetric", ratio)


def eigenvalue_floor(L: torch.Tensor) -> torch.Tensor:
    """Floor ``eps max|L|`` (shape ``(..., 1)``) of positive definite domains: the smallest eigenvalue
    distinguishable from zero when the largest is ``max|L|``."""
    return torch.finfo(L.dtype).eps * L.abs().amax(-1, keepdim=True)


def check_eigenvalues(L: torch.Tensor, name: str, *, strict: bool | torch.Tensor, requirement: str) -> None:
    """Require eigenvalues ``L (..., n)`` to be non-negative up to rounding (``>= -n eps max|L|``);
    ``strict`` (a bool, or a boolean tensor of batch shape) also requires a non-zero spectrum."""
    L = _checkable(L)
    if L.numel() == 0:
        return
    lmin, lmax = L.amin(-1), L.abs().amax(-1)
    # Rounding makes the zero eigenvalues of a PSD matrix come out as -n eps |L|_max.
    ok = lmin >= -L.shape[-1] * torch.finfo(L.dtype).eps * lmax
    if isinstance(strict, torch.Tensor) or strict:
        ok = ok & ~(torch.as_tensor(strict, device=L.device) & (lmax <= 0))

    def smallest(idx: tuple[int, ...]) -> str:
        return f", smallest eigenvalue is {float(lmin[idx]):.6g}"

    require(ok, name, requirement, smallest)


def clamp_to_domain(L: torch.Tensor, strict: bool | torch.Tensor) -> torch.Tensor:
    """Eigenvalues clamped to the domain: at 0 (PSD), or at :func:`eigenvalue_floor` where ``strict``
    (PD; a bool or a boolean tensor of batch shape)."""
    if isinstance(strict, torch.Tensor):
        floor = torch.where(strict.unsqueeze(-1), eigenvalue_floor(L), torch.zeros((), dtype=L.dtype, device=L.device))
        return torch.maximum(L, floor)
    return torch.maximum(L, eigenvalue_floor(L)) if strict else L.clamp_min(0.0)


def spectrum_inside_domain(L: torch.Tensor, strict: bool) -> bool:
    """Whether the ascending eigenvalues ``L (..., n)`` are plainly inside the domain, read on the host.

    ``True`` only when every matrix has its smallest eigenvalue above ``eps max|L|`` (``strict``, PD
    domains) or above 0 (PSD): then :func:`check_eigenvalues` passes, :func:`clamp_to_domain` is the
    identity and no eigenvalue is zero, so all three can be skipped. ``False`` means "run the full
    checks" (also for large, non-CPU, wrapped or traced spectra, and for NaN). Meant for small eager
    calls, where the fixed cost of the tensor checks dominates.
    """
    if (
        L.numel() > HOST_CHECK_MAX_NUMEL
        or L.numel() == 0
        or L.device.type != "cpu"
        or type(L) is not torch.Tensor
        or is_tracing()
        or torch._C._functorch.is_functorch_wrapped_tensor(L)
    ):
        return False
    eps = torch.finfo(L.dtype).eps
    for row in L.detach().reshape(-1, L.shape[-1]).tolist():
        lowest, highest = row[0], row[-1]
        floor = eps * max(-lowest, highest) if strict else 0.0
        if not lowest > floor:  # also False for NaN
            return False
    return True
