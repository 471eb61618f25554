"""Functional SPD-network operations: BiMap, the affine-invariant Karcher mean, geodesics, the
batch-normalisation recentring (Huang & Van Gool, AAAI 2017; Brooks et al., NeurIPS 2019) and the
affine-invariant parallel transport.

Precision: every function computes in :func:`matbackprop.linalg.dtypes.spectral_dtype` of its operands
(half precision and autocast run in float32, with autocast off: SPD products in bfloat16 lose
definiteness long before a spectral layer could upcast them). ``check`` has the meaning it has
everywhere in matbackprop: ``True`` validates the inputs of the spectral steps (see
:mod:`matbackprop.linalg.checks`), ``False`` skips those checks.
"""

from __future__ import annotations

import warnings

import torch

from ..linalg.common import no_autocast, sym
from ..linalg.dtypes import as_spectral_all
from ..linalg.funm import expm, invsqrtm, logm, powm, sqrtm

__all__ = ["bimap", "spd_geodesic", "spd_karcher_mean", "spd_recenter", "spd_parallel_transport"]


def bimap(X: torch.Tensor, W: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """``W^T X W`` for ``X (..., n, n)`` and ``W (n, m)``, returned as ``(..., m, m)``.

    ``m <= n`` (dimension reduction, SPDNet): SPD to SPD when ``W`` has full column rank (the
    :class:`~matbackprop.nn.BiMap` layer keeps ``W^T W = I``). ``m > n``: the output has rank ``n``, positive
    semi-definite (follow it with :class:`~matbackprop.nn.ReEig` to make it definite). Shapes are
    always checked; ``check`` is accepted for a uniform signature (there is no data-dependent check).

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
        >>> W = torch.eye(3)[:, :2]                   # (n, m) = (3, 2): keep the first two coordinates
        >>> mb.bimap(X, W)
        tensor([[1., 0.],
                [0., 2.]])
    """
    del check  # shape checks only: nothing data-dependent to skip
    if W.dim() != 2 or X.dim() < 2 or X.shape[-1] != W.shape[0] or X.shape[-2] != W.shape[0]:
        raise ValueError(f"bimap: expected X (..., n, n) and W (n, m), got {tuple(X.shape)} and {tuple(W.shape)}")
    X, W = as_spectral_all(X, W)
    with no_autocast(X):
        return sym(W.transpose(-2, -1) @ X @ W)


def _congruence(A: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``A X A^T`` symmetrised against rounding, in the spectral dtype with autocast off."""
    A, X = as_spectral_all(A, X)
    with no_autocast(X):
        return sym(A @ X @ A.transpose(-2, -1))


def spd_geodesic(A: torch.Tensor, B: torch.Tensor, t: float, *, check: bool = True) -> torch.Tensor:
    """Point at ``t`` on the affine-invariant geodesic from ``A`` (t = 0) to ``B`` (t = 1):
    ``A^(1/2) (A^(-1/2) B A^(-1/2))^t A^(1/2)``, for SPD ``(..., n, n)``.

    Example:
        >>> import torch, matbackprop as mb
        >>> A = torch.eye(2, dtype=torch.float64)
        >>> B = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64))
        >>> mb.spd_geodesic(A, B, 0.5)                # the midpoint is the geometric mean
        tensor([[2., 0.],
                [0., 3.]], dtype=torch.float64)
    """
    root, inv_root = sqrtm(A, check=check), invsqrtm(A, check=check)
    return _congruence(root, powm(_congruence(inv_root, B), t, check=check))


def spd_karcher_mean(X: torch.Tensor, num_iters: int = 1, dim: int = 0, *, check: bool = True) -> torch.Tensor:
    """Affine-invariant (Karcher) mean of SPD matrices ``X`` along batch dimension ``dim``.

    Starts from the arithmetic mean and takes ``num_iters`` Riemannian gradient steps
    ``G <- G^(1/2) expm(mean_i logm(G^(-1/2) X_i G^(-1/2))) G^(1/2)``; one step is the usual choice
    inside a network (Brooks et al. 2019). Differentiable with respect to ``X``.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.stack([torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([4.0, 1.0]))])
        >>> mb.spd_karcher_mean(X.double(), num_iters=5)         # commuting matrices: exp(mean of logs)
        tensor([[2., 0.],
                [0., 2.]], dtype=torch.float64)
    """
    (X,) = as_spectral_all(X)
    if dim < 0:
        dim += X.dim()
    if not 0 <= dim < X.dim() - 2:
        raise ValueError(f"spd_karcher_mean: dim must be a batch dimension of X {tuple(X.shape)}, got {dim}")
    with no_autocast(X):
        G = X.mean(dim=dim)
    for _ in range(num_iters):
        root, inv_root = sqrtm(G, check=check), invsqrtm(G, check=check)
        tangent = sym(logm(_congruence(inv_root.unsqueeze(dim), X), check=check).mean(dim=dim))
        G = _congruence(root, expm(tangent, check=check))
    return G


def spd_recenter(X: torch.Tensor, mean: torch.Tensor, bias: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Recentre SPD ``X (..., n, n)`` from around ``mean`` to around ``bias`` through the identity:
    ``bias^(1/2) mean^(-1/2) X mean^(-1/2) bias^(1/2)`` (``mean``, ``bias`` SPD, broadcastable).

    This is the Riemannian batch-normalisation step of Brooks et al. (2019): the congruence by
    ``mean^(-1/2)`` carries ``mean`` to the identity, the one by ``bias^(1/2)`` the identity to ``bias``.
    It is the composition of two parallel transports *through the identity*, not the parallel
    transport from ``mean`` to ``bias`` (:func:`spd_parallel_transport`) unless they commute.

    Example:
        >>> import torch, matbackprop as mb
        >>> A = torch.randn(5, 3, 3, dtype=torch.float64)
        >>> X = A @ A.mT + torch.eye(3, dtype=torch.float64)      # a batch of SPD matrices
        >>> G = mb.spd_karcher_mean(X, num_iters=20)              # their mean
        >>> B = 2 * torch.eye(3, dtype=torch.float64)
        >>> torch.allclose(mb.spd_karcher_mean(mb.spd_recenter(X, G, B), num_iters=20), B)   # now centred at B
        True
    """
    centred = _congruence(invsqrtm(mean, check=check), X)
    return _congruence(sqrtm(bias, check=check), centred)


def spd_parallel_transport(X: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Affine-invariant parallel transport of the tangent vector ``X`` (symmetric ``(..., n, n)``) from
    the SPD point ``A`` to ``B`` along their geodesic: ``E X E^T`` with

        E = (B A^-1)^(1/2) = A^(1/2) (A^(-1/2) B A^(-1/2))^(1/2) A^(-1/2)

    (Sra & Hosseini, SIAM J. Optim. 2015). It preserves the metric ``<X, Y>_A = tr(A^-1 X A^-1 Y)``
    and maps ``Log_A(B)`` to ``-Log_B(A)``; for ``A = I`` it is ``B^(1/2) X B^(1/2)``.

    Example:
        >>> import torch, matbackprop as mb
        >>> A = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> B = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> log_AB = mb.sqrtm(A) @ mb.logm(mb.invsqrtm(A) @ B @ mb.invsqrtm(A)) @ mb.sqrtm(A)   # Log_A(B)
        >>> log_BA = mb.sqrtm(B) @ mb.logm(mb.invsqrtm(B) @ A @ mb.invsqrtm(B)) @ mb.sqrtm(B)   # Log_B(A)
        >>> torch.allclose(mb.spd_parallel_transport(log_AB, A, B), -log_BA)
        True
    """
    root, inv_root = sqrtm(A, check=check), invsqrtm(A, check=check)
    middle = sqrtm(_congruence(inv_root, B), check=check)
    root, middle, inv_root = as_spectral_all(root, middle, inv_root)
    with no_autocast(root):
        E = root @ middle @ inv_root
    return _congruence(E, X)


def spd_transport(X: torch.Tensor, mean: torch.Tensor, bias: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Deprecated name of :func:`spd_recenter` (it is a congruence through the identity, not a parallel
    transport; for that see :func:`spd_parallel_transport`)."""
    warnings.warn(
        "spd_transport is renamed spd_recenter: it recentres through the identity and is not the parallel "
        "transport (see spd_parallel_transport)",
        DeprecationWarning,
        stacklevel=2,
    )
    return spd_recenter(X, mean, bias, check=check)
