"""Numerical building blocks shared by the spectral autograd Functions of ``linalg``, ``ops`` and ``nn``.

One job: the small matrix helpers every spectral backward needs and that must behave identically
everywhere: the symmetric part, the cache-friendly ``A + A^T``, the tie tolerance and tie clusters of
a spectrum, and switching autocast off around a spectral computation. Input validation lives in
:mod:`.checks`, the precision policy in :mod:`.dtypes`.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch

__all__ = ["sym", "add_transpose", "tie_tolerance", "tied_pairs", "no_autocast", "apply"]


def sym(A: torch.Tensor) -> torch.Tensor:
    """Symmetric part ``(A + A^T) / 2`` of ``(..., n, n)``."""
    return torch.add(A, A.transpose(-2, -1)).mul_(0.5)


#: LAPACK splits an exact k-fold eigenvalue by up to about ``n eps max|L|`` and sometimes a little more
#: (a double eigenvalue at n = 5 came out 5 eps apart); the factor keeps such splits inside the tolerance.
TIE_FACTOR = 4


#: From this matrix size on, A + A^T is summed in column slabs (CPU): a whole-matrix transposed read then
#: misses the cache on every element (4x1024x1024 float32: 36 ms in one pass, 8 ms in slabs of 128
#: columns; at 1 MB per matrix the plain pass was still the faster).
SLAB_FROM_BYTES, SLAB_WIDTH = 1 << 21, 128


def use_slabs(A: torch.Tensor) -> bool:
    """Whether ``(..., n, n)`` CPU matrices are large enough for slab-wise transposed reads."""
    return A.device.type == "cpu" and A.shape[-1] ** 2 * A.element_size() >= SLAB_FROM_BYTES


def add_transpose(A: torch.Tensor) -> torch.Tensor:
    """``A + A^T`` of ``(..., n, n)``, exactly symmetric; large CPU matrices in cache-sized slabs.

    For use inside autograd Functions (the slabs write into a preallocated output, which autograd
    cannot record): with grad mode on and ``A`` requiring grad it falls back to the plain sum.
    """
    n = A.shape[-1]
    if not use_slabs(A) or (torch.is_grad_enabled() and A.requires_grad):
        return A + A.transpose(-2, -1)
    out = torch.empty_like(A, memory_format=torch.contiguous_format)
    for j in range(0, n, SLAB_WIDTH):
        cols = slice(j, min(n, j + SLAB_WIDTH))
        torch.add(A[..., :, cols], A[..., cols, :].transpose(-2, -1), out=out[..., :, cols])
    return out


def tie_tolerance(values: torch.Tensor) -> torch.Tensor:
    """Gap below which two spectral values count as tied, shape ``(..., 1, 1)``.

    ``4 n eps max|value|``: a few times the spread that rounding alone gives a repeated eigenvalue (or
    singular value) computed by a backward-stable solver, so gaps at this level carry no information.
    """
    n = max(values.shape[-1], 1)
    eps = torch.finfo(values.dtype).eps
    scale = values.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(values.dtype).tiny)
    return (TIE_FACTOR * n * eps * scale).unsqueeze(-1)


def tied_pairs(values: torch.Tensor) -> torch.Tensor:
    """Boolean ``(..., n, n)``: whether values ``i`` and ``j`` of a sorted ``(..., n)`` spectrum are tied.

    Ties are clusters of consecutive values whose neighbouring gaps are within :func:`tie_tolerance`,
    closed transitively: a k-fold value spread a little wider than the tolerance end to end, with
    every neighbouring gap inside it, is one cluster. ``values`` must be monotone (ascending as from
    ``eigh`` or descending as from ``svd``).
    """
    n = values.shape[-1]
    if n == 0 or values.numel() == 0:
        return torch.ones(values.shape + (n,), dtype=torch.bool, device=values.device)
    split = (values[..., 1:] - values[..., :-1]).abs() > tie_tolerance(values).squeeze(-1)
    first = torch.zeros(values.shape[:-1] + (1,), dtype=torch.long, device=values.device)
    cluster = torch.cat([first, split.long().cumsum(-1)], dim=-1)
    return cluster.unsqueeze(-1) == cluster.unsqueeze(-2)


def no_autocast(X: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """Switch autocast off for the spectral computation on ``X``'s device (a no-op context when it is off)."""
    try:
        if not torch.is_autocast_enabled(X.device.type):  # nothing to switch off: skip the context's cost
            return contextlib.nullcontext()
        return torch.autocast(device_type=X.device.type, enabled=False)
    except RuntimeError:  # device types without autocast support
        return contextlib.nullcontext()


#: Number of ``forward`` parameters per Function class (see :func:`apply`).
_ARITY: dict[type, int] = {}


def apply(function: type[torch.autograd.Function], *args: Any) -> Any:
    """``function.apply(*args)`` for typed callers (torch leaves ``Function.apply`` unannotated).

    ``Function.apply`` binds default arguments through ``inspect.signature`` on every call, a fixed
    cost that dominated small calls (a 1 x 8 x 8 ``logm``); when every argument is given and no
    ``torch.func`` transform is active there is nothing to bind, and torch's C ``apply`` is called
    directly (what ``Function.apply`` itself ends with).
    """
    if torch.compiler.is_compiling():  # Dynamo traces Function.apply itself (and not inspect.signature)
        return function.apply(*args)  # type: ignore[no-untyped-call]
    arity = _ARITY.get(function)
    if arity is None:
        arity = _ARITY[function] = len(inspect.signature(function.forward).parameters)
    if len(args) == arity and not torch._C._are_functorch_transforms_active():
        args = tuple(torch._C._functorch.unwrap_if_dead(a) if isinstance(a, torch.Tensor) else a for a in args)
        return super(torch.autograd.Function, function).apply(*args)  # type: ignore[misc]
    return function.apply(*args)  # type: ignore[no-untyped-call]
