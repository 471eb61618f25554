"""Singular value decomposition with the paper's SVD backward.

Forward: ``X = U diag(S) Vh`` for ``X (..., m, n)``, ``k = min(m, n)``, as ``torch.linalg.svd``.

Backward (Ionescu et al. 2015, SVD proposition; written here in the symmetric form of Townsend 2016
that covers tall and wide inputs alike). With ``V = Vh^T``, ``F_ij = 1 / (s_j^2 - s_i^2)`` off the
diagonal and ``skew(A) = A - A^T``:

    dL/dX = U [ diag(gS) + (F o skew(U^T gU)) S + S (F o skew(V^T gV)) ] V^T
            + (I - U U^T) gU S^{-1} V^T + U S^{-1} gV^T (I - V V^T).

For ``full_matrices=True`` the trailing columns ``U_2`` (or rows of ``Vh``) span the orthogonal
complement and are determined only up to rotation. As in the paper we take their canonical variation
``dU_2 = -U_1 dU_1^T U_2``, which folds their gradient into ``gU_1 - U_2 gU_2^T U_1``; this is exact for
losses that see ``U_2`` through its span (e.g. ``U_2 U_2^T``).

Tie policy: the coupling ``(s_j a_ij + s_i b_ij) / (s_j^2 - s_i^2)`` (``a = skew(U^T gU)``,
``b = skew(V^T gV)``) is split into ``(a + b) / (2 (s_j - s_i)) + (a - b) / (2 (s_j + s_i))``; only the
first part is undetermined at a tie (``|s_i - s_j|`` below the tie tolerance) and only it is set to
zero. This is exact for losses invariant under a joint rotation of the tied left and right singular
vectors (e.g. the polar factor ``U Vh``, or projectors onto singular subspaces).
Zero-singular-value policy: ``S^{-1}`` is the pseudo-inverse, i.e. singular values below
``max(m, n) * eps * max(S)`` are treated as exact zeros whose inverse is 0, which is exact for losses
that see the singular vectors of zero singular values only through their span. Both policies keep every
gradient finite.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from . import parallel
from .checks import check_finite, check_matrix
from .common import apply, no_autocast, tie_tolerance, tied_pairs
from .dtypes import as_spectral

__all__ = ["svd", "svd_backward", "svd_jvp"]


def _fold_complement(B: torch.Tensor, gB: torch.Tensor | None, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Thin basis and gradient, with the complement's gradient folded in by its canonical variation."""
    B1 = B[..., :k]
    if gB is None:
        return B1, None
    gB1 = gB[..., :k]
    if B.shape[-1] > k:
        B2, gB2 = B[..., k:], gB[..., k:]
        gB1 = gB1 - B2 @ (gB2.transpose(-2, -1) @ B1)
    return B1, gB1


def _safe_reciprocal(x: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """``1 / x``, with 0 where ``drop``."""
    return torch.where(drop, torch.zeros_like(x), 1.0 / torch.where(drop, torch.ones_like(x), x))


def _skew(A: torch.Tensor) -> torch.Tensor:
    return A - A.transpose(-2, -1)


def svd_backward(
    U: torch.Tensor,
    S: torch.Tensor,
    Vh: torch.Tensor,
    gU: torch.Tensor | None,
    gS: torch.Tensor | None,
    gVh: torch.Tensor | None,
) -> torch.Tensor:
    """Gradient ``(..., m, n)`` w.r.t. ``X`` from the gradients of ``U, S, Vh`` (thin or full)."""
    k = S.shape[-1]
    m, n = U.shape[-2], Vh.shape[-1]
    U, gU = _fold_complement(U, gU, k)
    V, gV = _fold_complement(Vh.transpose(-2, -1), None if gVh is None else gVh.transpose(-2, -1), k)
    Vh = V.transpose(-2, -1)

    if gU is None and gV is None:
        if gS is None:
            return U.new_zeros(U.shape[:-2] + (m, n))
        return (U * gS.unsqueeze(-2)) @ Vh

    # Entry ij of the coupling is (s_j a_ij + s_i b_ij) / (s_j^2 - s_i^2) with a = skew(U^T gU),
    # b = skew(V^T gV). Split as (a + b) / (2 (s_j - s_i)) + (a - b) / (2 (s_j + s_i)): only the first
    # part is undetermined at a tie, so only it is dropped there; the second stays exact.
    diff = S.unsqueeze(-2) - S.unsqueeze(-1)  # s_j - s_i
    total = S.unsqueeze(-2) + S.unsqueeze(-1)  # s_j + s_i
    tol = tie_tolerance(S)
    inv_diff = _safe_reciprocal(2.0 * diff, tied_pairs(S))
    inv_total = _safe_reciprocal(2.0 * total, total <= tol)
    zero = S <= max(m, n) * torch.finfo(S.dtype).eps * S.amax(-1, keepdim=True)
    S_inv = _safe_reciprocal(S, zero)

    UtgU = U.transpose(-2, -1) @ gU if gU is not None else None
    VtgV = V.transpose(-2, -1) @ gV if gV is not None else None
    a = _skew(UtgU) if UtgU is not None else torch.zeros_like(inv_diff)
    b = _skew(VtgV) if VtgV is not None else torch.zeros_like(inv_diff)
    inner = (a + b) * inv_diff + (a - b) * inv_total
    if gS is not None:
        inner = inner + torch.diag_embed(gS)
    # U inner Vh plus the out-of-span terms, arranged so that each m x k or k x n product happens once:
    # (I - U U^T) gU S^-1 = gU S^-1 - U (U^T gU) S^-1.
    if gU is not None and UtgU is not None and m > k:
        left = U @ (inner - UtgU * S_inv.unsqueeze(-2)) + gU * S_inv.unsqueeze(-2)
    else:
        left = U @ inner
    gX = left @ Vh
    if gV is not None and VtgV is not None and n > k:
        # U S^-1 gV^T (I - V V^T) = U S^-1 (gV^T - (V^T gV)^T Vh)
        gX = gX + U @ (S_inv.unsqueeze(-1) * (gV.transpose(-2, -1) - VtgV.transpose(-2, -1) @ Vh))
    return gX


def svd_jvp(
    U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, dX: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tangents ``(dU, dS, dVh)`` of the SVD (thin or full) in the direction ``dX`` (forward mode).

    With ``P = U^T dX V`` (thin factors): ``dS = diag(P)``,
    ``dU = U [(P + P^T) o D + (P - P^T) o T] + (I - U U^T) dX V S^+`` and
    ``dV = V [(P + P^T) o D - (P - P^T) o T] + (I - V V^T) dX^T U S^+``, where
    ``D_ij = 1 / (2 (s_j - s_i))`` (0 at ties) and ``T_ij = 1 / (2 (s_j + s_i))``: the split of
    ``(s_j P_ij + s_i P_ji) / (s_j^2 - s_i^2)`` used by :func:`svd_backward`, with the same tie and
    zero-singular-value policies (this is its adjoint). Complement columns of full factors move by
    their canonical variation ``dU_2 = -U_1 dU_1^T U_2``.
    """
    k = S.shape[-1]
    m, n = U.shape[-2], Vh.shape[-1]
    U1, V1 = U[..., :k], Vh[..., :k, :].transpose(-2, -1)
    dXV = dX @ V1
    P = U1.transpose(-2, -1) @ dXV
    diff = S.unsqueeze(-2) - S.unsqueeze(-1)  # s_j - s_i
    total = S.unsqueeze(-2) + S.unsqueeze(-1)
    inv_diff = _safe_reciprocal(2.0 * diff, tied_pairs(S))
    inv_total = _safe_reciprocal(2.0 * total, total <= tie_tolerance(S))
    zero = S <= max(m, n) * torch.finfo(S.dtype).eps * S.amax(-1, keepdim=True)
    S_inv = _safe_reciprocal(S, zero).unsqueeze(-2)
    plus, minus = (P + P.transpose(-2, -1)) * inv_diff, (P - P.transpose(-2, -1)) * inv_total
    dU1 = U1 @ (plus + minus)
    if m > k:
        dU1 = dU1 + (dXV - U1 @ P) * S_inv
    dV1 = V1 @ (plus - minus)
    if n > k:
        dV1 = dV1 + (dX.transpose(-2, -1) @ U1 - V1 @ P.transpose(-2, -1)) * S_inv
    dU = _complement_tangent(U, dU1, k)
    dV = _complement_tangent(Vh.transpose(-2, -1), dV1, k)
    return dU, P.diagonal(dim1=-2, dim2=-1), dV.transpose(-2, -1)


def _complement_tangent(B: torch.Tensor, dB1: torch.Tensor, k: int) -> torch.Tensor:
    """Tangent of a full factor ``B = [B_1 B_2]``: ``dB_2 = -B_1 dB_1^T B_2``."""
    if B.shape[-1] == k:
        return dB1
    B1, B2 = B[..., :k], B[..., k:]
    return torch.cat([dB1, -B1 @ (dB1.transpose(-2, -1) @ B2)], dim=-1)


def _gram64(X: torch.Tensor, rows: int = 1 << 15) -> torch.Tensor:
    """``X^T X`` accumulated in float64, converting ``rows`` rows at a time to bound the extra memory."""
    if X.dtype == torch.float64:
        return X.transpose(-2, -1) @ X
    n = X.shape[-1]
    C = torch.zeros(X.shape[:-2] + (n, n), dtype=torch.float64, device=X.device)
    for block in torch.split(X, rows, dim=-2):
        block = block.to(torch.float64)
        C += block.transpose(-2, -1) @ block
    return C


def _svd_via_gram(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of ``X (..., m, n)``, ``m >= n``, from the float64 eigendecomposition of ``X^T X``."""
    L, V = torch.linalg.eigh(_gram64(X))
    L, V = L.flip(-1), V.flip(-1)  # descending, as the SVD
    S = L.clamp_min(0.0).sqrt()
    # Below sqrt(eps_64) of the largest, a squared singular value is lost in the Gram matrix's rounding.
    lost = S <= torch.finfo(torch.float64).eps ** 0.5 * S.amax(-1, keepdim=True)
    V_over_S = (V / torch.where(lost, torch.ones_like(S), S).unsqueeze(-2)).masked_fill(lost.unsqueeze(-2), 0.0)
    U = X @ V_over_S.to(X.dtype)
    # copy=True: the outputs of an autograd Function must not be views (here of V): forward-mode AD traced by
    # torch.func.linearize fails on them with an internal assert ("has_fw_view"). Float64 input: no conversion.
    return U, S.to(X.dtype), V.transpose(-2, -1).to(X.dtype, copy=True)


class _Svd(torch.autograd.Function):
    """Reverse mode only (the class ``torch.compile`` traces); :class:`_SvdFwAD` adds the forward mode."""

    generate_vmap_rule = True

    @staticmethod
    def forward(X: torch.Tensor, full_matrices: bool, gram: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        def decompose(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return _svd_via_gram(X) if gram else torch.linalg.svd(X, full_matrices=full_matrices)

        # A plain tuple, not torch's named structseq: vmap's generated rule flattens outputs as pytrees.
        U, S, Vh = parallel.map_batch(decompose, X, core_dims=(2,), n=parallel.matrix_size(X))
        return U, S, Vh

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(*output)

    @staticmethod
    def backward(
        ctx: Any, gU: torch.Tensor | None, gS: torch.Tensor | None, gVh: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        U, S, Vh = ctx.saved_tensors
        gX = parallel.map_batch(
            svd_backward,
            U,
            S,
            Vh,
            gU,
            gS,
            gVh,
            core_dims=(2, 1, 2, 2, 1, 2),
            n=parallel.matrix_size(U, Vh),
            phase="products",
        )
        return gX, None, None


class _SvdFwAD(_Svd):
    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _Svd.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*output)

    @staticmethod
    def jvp(ctx: Any, gX: torch.Tensor, gfull: Any, ggram: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        U, S, Vh = ctx.saved_tensors
        return svd_jvp(U, S, Vh, gX)


def svd(
    X: torch.Tensor, full_matrices: bool = False, *, gram: bool = False, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Singular value decomposition ``X = U diag(S) Vh`` of ``X (..., m, n)``.

    Returns ``U (..., m, k)``, ``S (..., k)`` descending, ``Vh (..., k, n)`` with ``k = min(m, n)``
    (``U (..., m, m)`` and ``Vh (..., n, n)`` when ``full_matrices=True``), like
    :func:`torch.linalg.svd`. The backward is the paper's SVD rule with the tie and zero-singular-value
    policies of the module docstring: gradients are always finite.

    ``gram=True`` (thin SVD of tall ``X`` only) computes the decomposition from the float64
    eigendecomposition of ``X^T X``: ``O(m n^2)`` matrix products instead of LAPACK's much slower
    tall-matrix SVD (about 17x faster at 154,401 x 64 here), accurate for singular values above about
    ``1e-6 * max(S)``. Singular values below ``sqrt(eps_64) * max(S)`` come out as 0 with zero columns
    in ``U``. The backward is the same SVD rule.

    Raises ``ValueError`` for input that is not a (batch of) matrices or has non-finite entries
    (``check=False`` skips the finiteness scan).

    Example:
        >>> import torch, matbackprop as mb
        >>> A = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
        >>> U, S, Vh = mb.svd(A)                      # reduced SVD by default
        >>> U.shape, S, Vh.shape
        (torch.Size([3, 2]), tensor([3., 2.], dtype=torch.float64), torch.Size([2, 2]))
        >>> torch.allclose(U @ torch.diag(S) @ Vh, A)
        True
    """
    check_matrix(X, "svd")
    if gram and (full_matrices or X.shape[-2] < X.shape[-1]):
        raise ValueError(
            f"svd: gram=True computes the thin SVD of tall matrices (m >= n), got shape {tuple(X.shape)}"
            f" with full_matrices={full_matrices}"
        )
    if check:
        check_finite(X, "svd")
    with no_autocast(X):
        function = _Svd if torch.compiler.is_compiling() else _SvdFwAD
        return cast(
            tuple[torch.Tensor, torch.Tensor, torch.Tensor], apply(function, as_spectral(X), full_matrices, gram)
        )
