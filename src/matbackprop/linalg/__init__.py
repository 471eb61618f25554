"""The math core: autograd Functions with hand-derived backward passes. Imports torch only."""

from .eigh import eigh
from .funm import SpectralFunction, clamp_eigs, expm, funm, invsqrtm, logm, powm, spectral_apply, sqrtm
from .newton_schulz import invsqrtm_newton_schulz, sqrtm_newton_schulz
from .svd import svd

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
