"""Second-order pooling (O2P; Carreira et al. 2012) mapped to the log-tangent space (DeepO2P).

For each region ``r`` with non-negative pixel weights ``w_p`` (a mask, normalised to sum to one) and
local features ``f_p (c)``, the pooled matrix is

    C_r = sum_p w_p f_p f_p^T + eps I                  (second moment, the paper's choice), or
    C_r = sum_p w_p (f_p - mu_r)(f_p - mu_r)^T + eps I  (covariance, ``centered=True``),

followed by a normalisation ``Y_r = g(C_r)``: ``log`` (the log-Euclidean tangent space of Ionescu et
al. 2015), ``sqrt``, ``power`` (``C^p``) or ``none``.
"""

from __future__ import annotations

import math

import torch

from ..linalg.checks import batch_index, check_finite, is_tracing, physical, require
from ..linalg.common import no_autocast, sym
from ..linalg.dtypes import spectral_dtype as _spectral_dtype
from ..linalg.funm import LOG, SQRT, power_function, spectral_apply
from ..linalg.gram import weighted_gram_spectral_apply
from ..linalg.newton_schulz import sqrtm_newton_schulz

__all__ = ["second_order_pooling", "triu_vectorize", "region_weights"]

NORMALIZATIONS = ("log", "sqrt", "power", "none")
ROUTES = ("eig", "svd", "newton_schulz")


def triu_vectorize(Y: torch.Tensor) -> torch.Tensor:
    """Upper triangle of symmetric ``Y (..., c, c)`` as ``(..., c(c+1)/2)``.

    Off-diagonal entries are scaled by ``sqrt(2)`` so that Euclidean inner products of the vectors equal
    Frobenius inner products of the matrices.

    Example:
        >>> import torch, matbackprop as mb
        >>> Y = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
        >>> v = mb.triu_vectorize(Y)                  # off-diagonal times sqrt(2): <v, v> = ||Y||_F^2
        >>> v
        tensor([1.0000, 2.8284, 3.0000])
        >>> torch.allclose(v @ v, (Y * Y).sum())
        True
    """
    c = Y.shape[-1]
    i, j = torch.triu_indices(c, c, device=Y.device)
    scale = torch.where(i == j, 1.0, math.sqrt(2.0)).to(Y.dtype)
    return Y[..., i, j] * scale


def region_weights(masks: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Normalise masks ``(B, R, H, W)`` (binary or soft, non-negative) to weights summing to one per region.

    With ``check`` (default), raises ``ValueError`` for negative or non-finite masks and names the
    first empty region ``(b, r)``; ``check=False`` skips those checks (an empty region then gives NaN).

    Example:
        >>> import torch, matbackprop as mb
        >>> masks = torch.zeros(1, 2, 2, 2)
        >>> masks[0, 0, 0] = 1.0                      # region 0: the top row
        >>> masks[0, 1] = 1.0                         # region 1: the whole image
        >>> mb.region_weights(masks)[0]
        tensor([[[0.5000, 0.5000],
                 [0.0000, 0.0000]],
        <BLANKLINE>
                [[0.2500, 0.2500],
                 [0.2500, 0.2500]]])
    """
    masks = masks.to(torch.get_default_dtype()) if not masks.is_floating_point() else masks
    total = masks.sum(dim=(-2, -1))
    if check and masks.numel():
        P = masks if is_tracing() else physical(masks)
        check_finite(P, "second_order_pooling (masks)")
        require((P >= 0).flatten(-2).all(-1), "second_order_pooling", "masks must be finite and non-negative")
        empty = P.sum(dim=(-2, -1)) <= 0
        if is_tracing():
            require(~empty, "second_order_pooling", "a region has an empty mask")
        elif bool(empty.any()):
            *b, r = batch_index(empty)
            where = b[0] if len(b) == 1 else tuple(b)
            raise ValueError(f"second_order_pooling: region {r} of batch element {where} has an empty mask")
    return masks / total[..., None, None]


def _check_inputs(
    features: torch.Tensor, masks: torch.Tensor | None, normalization: str, route: str, check: bool
) -> None:
    if features.dim() != 4:
        raise ValueError(f"second_order_pooling: features must be (B, C, H, W), got shape {tuple(features.shape)}")
    if masks is not None:
        if masks.dim() != 4:
            raise ValueError(f"second_order_pooling: masks must be (B, R, H, W), got shape {tuple(masks.shape)}")
        if masks.shape[0] != features.shape[0] or masks.shape[-2:] != features.shape[-2:]:
            raise ValueError(
                f"second_order_pooling: masks {tuple(masks.shape)} do not match features {tuple(features.shape)} "
                "in batch size and spatial size"
            )
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"second_order_pooling: normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if route not in ROUTES:
        raise ValueError(f"second_order_pooling: route must be one of {ROUTES}, got {route!r}")
    if route == "newton_schulz" and normalization != "sqrt":
        raise ValueError("second_order_pooling: route 'newton_schulz' computes only the 'sqrt' normalization")
    if check and features.numel():
        P = features if is_tracing() else physical(features)
        require(torch.isfinite(P).flatten(1).all(-1), "second_order_pooling", "features have NaN or infinite entries")


def second_order_pooling(
    features: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    eps: float = 1e-3,
    normalization: str = "log",
    p: float = 0.5,
    route: str = "eig",
    centered: bool = False,
    output: str = "matrix",
    spectral_dtype: torch.dtype | None = None,
    num_iters: int = 10,
    check: bool = True,
) -> torch.Tensor:
    """Pooled, normalised second-order statistics of ``features (B, C, H, W)`` in regions.

    ``masks (B, R, H, W)``: binary or soft region masks (``None``: one region, the whole image).
    Returns ``(B, R, C, C)`` (``output="matrix"``) or ``(B, R, C(C+1)/2)`` (``output="triu"``, see
    :func:`triu_vectorize`).

    Routes: ``"eig"`` pools ``C_r`` and applies the spectral function with the Daleckii-Krein backward;
    ``"svd"`` never forms ``C_r`` and works from the SVD of the weighted feature matrix
    ``diag(sqrt(w)) F`` (the paper's preference: it does not square the condition number);
    ``"newton_schulz"`` (only for ``normalization="sqrt"``) uses ``num_iters`` GEMM-only iterations.
    ``spectral_dtype=torch.float64`` runs the pooling and the spectral step in double precision
    inside a float32 network (the result is cast back to the features' dtype). ``p`` is the exponent of ``normalization="power"``.
    Half-precision features (e.g. under ``torch.autocast``) are pooled and normalised in float32, with
    autocast off, and the result is float32, like the spectral functions of :mod:`matbackprop.linalg`.
    ``check=False`` skips the data checks (finite features, valid masks, and those of the spectral step);
    shapes and options are always checked.

    Example:
        >>> import torch, matbackprop as mb
        >>> features = torch.rand(2, 8, 12, 12)                  # (B, C, H, W)
        >>> masks = torch.zeros(2, 3, 12, 12)                     # (B, R, H, W): three regions
        >>> masks[:, 0, :6], masks[:, 1, 6:], masks[:, 2] = 1, 1, 0.5
        >>> mb.second_order_pooling(features, masks).shape        # log of each region's second moments
        torch.Size([2, 3, 8, 8])
        >>> mb.second_order_pooling(features, masks, output="triu").shape
        torch.Size([2, 3, 36])
    """
    _check_inputs(features, masks, normalization, route, check)
    if output not in ("matrix", "triu"):
        raise ValueError(f"second_order_pooling: output must be 'matrix' or 'triu', got {output!r}")
    with no_autocast(features):
        # Autocast would run the pooling products in bfloat16/float16: eigenvalues quantised to 3 digits
        # and a ridge eps below their resolution, before the spectral step could upcast.
        return _second_order_pooling(
            features, masks, eps, normalization, p, route, centered, output, spectral_dtype, num_iters, check
        )


def _second_order_pooling(
    features: torch.Tensor,
    masks: torch.Tensor | None,
    eps: float,
    normalization: str,
    p: float,
    route: str,
    centered: bool,
    output: str,
    spectral_dtype: torch.dtype | None,
    num_iters: int,
    check: bool,
) -> torch.Tensor:
    B, C, H, W = features.shape
    out_dtype = _spectral_dtype(features)  # half precision (autocast) computes and returns float32
    work_dtype = spectral_dtype or out_dtype
    # The whole pooling runs in the spectral dtype: pooled in float32, large features can already lose
    # positive definiteness before a float64 spectral step would see them.
    F = features.to(work_dtype).reshape(B, 1, C, H * W)  # (B, 1, C, P)
    if masks is None:
        w = torch.full((B, 1, H * W), 1.0 / (H * W), dtype=work_dtype, device=features.device)
    else:
        w = region_weights(masks, check=check).to(work_dtype).reshape(B, masks.shape[1], H * W)  # (B, R, P)
    w = w.unsqueeze(-2)  # (B, R, 1, P)

    mean = (F * w).sum(-1, keepdim=True) if centered else None  # (B, R, C, 1)
    X = F - mean if mean is not None else F  # (B, R or 1, C, P)

    spec = {"log": LOG, "sqrt": SQRT, "power": power_function(p)}.get(normalization)
    if route == "svd" and spec is not None:
        # the SVD of (X sqrt(w))^T, differentiated in X diag(w) X^T: finite at zero weights
        Y = weighted_gram_spectral_apply(X, w, spec, eps, check=check)
    else:
        pooled = sym((X * w) @ X.transpose(-2, -1))
        pooled = pooled + eps * torch.eye(C, dtype=pooled.dtype, device=pooled.device)
        if spec is None:
            Y = pooled
        elif route == "newton_schulz":
            Y = sqrtm_newton_schulz(pooled, num_iters, check=check)
        else:
            Y = spectral_apply(pooled, spec, check=check)
    Y = Y.to(out_dtype)
    return triu_vectorize(Y) if output == "triu" else Y
