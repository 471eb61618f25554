"""The working-precision policy of every spectral computation in matbackprop, in one place.

Eigendecompositions and SVDs need at least float32: LAPACK has no half-precision drivers, and
eigenvalues rounded to bfloat16's three digits lose positive definiteness. The rule, used by the
``linalg``, ``ops`` and ``nn`` packages alike: half-precision operands (``float16``, ``bfloat16``,
including those produced by autocast) are computed in float32; otherwise the operands' promoted
floating dtype is kept (float32 stays float32, float64 stays float64).
"""

from __future__ import annotations

import functools

import torch

__all__ = ["spectral_dtype", "as_spectral", "as_spectral_all"]


def spectral_dtype(*operands: torch.Tensor | torch.dtype) -> torch.dtype:
    """The dtype a spectral computation on ``operands`` runs in: their promoted dtype, at least float32.

    >>> spectral_dtype(torch.bfloat16)
    torch.float32
    >>> spectral_dtype(torch.float16, torch.float64)
    torch.float64
    """
    dtypes = (op if isinstance(op, torch.dtype) else op.dtype for op in operands)
    return functools.reduce(torch.promote_types, dtypes, torch.float32)


def as_spectral(X: torch.Tensor) -> torch.Tensor:
    """``X`` in :func:`spectral_dtype` (unchanged, not copied, when it already is)."""
    return X.to(spectral_dtype(X))


def as_spectral_all(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The operands converted to their common :func:`spectral_dtype`."""
    dtype = spectral_dtype(*tensors)
    return tuple(t.to(dtype) for t in tensors)
