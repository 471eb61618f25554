"""matbackprop: matrix backpropagation for structured layers in PyTorch.

Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured Layers by Matrix
Backpropagation", ICCV 2015 (arXiv 1509.07838).
"""

from .linalg import (
    SpectralFunction,
    clamp_eigs,
    eigh,
    expm,
    funm,
    invsqrtm,
    invsqrtm_newton_schulz,
    logm,
    powm,
    spectral_apply,
    sqrtm,
    sqrtm_newton_schulz,
    svd,
)

from .ops import (
    bimap,
    gaussian_affinity,
    ncut_embedding,
    ncut_embedding_dense,
    projector_loss,
    region_weights,
    second_order_pooling,
    spd_geodesic,
    spd_karcher_mean,
    spd_transport,
    triu_vectorize,
)

__version__ = "0.1.0"

__all__ = [
    "eigh",
    "svd",
    "funm",
    "spectral_apply",
    "SpectralFunction",
    "logm",
    "sqrtm",
    "invsqrtm",
    "powm",
    "expm",
    "clamp_eigs",
    "sqrtm_newton_schulz",
    "invsqrtm_newton_schulz",
    "second_order_pooling",
    "triu_vectorize",
    "region_weights",
    "ncut_embedding",
    "ncut_embedding_dense",
    "gaussian_affinity",
    "projector_loss",
    "bimap",
    "spd_geodesic",
    "spd_karcher_mean",
    "spd_transport",
]
