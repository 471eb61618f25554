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
]
