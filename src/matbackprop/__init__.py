"""matbackprop: matrix backpropagation for structured layers in PyTorch.

Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured Layers by Matrix
Backpropagation", ICCV 2015 (arXiv 1509.07838). The functional API re-exports the math core
(:mod:`matbackprop.linalg`) and the functional layers (:mod:`matbackprop.ops`); modules live in
:mod:`matbackprop.nn`.
"""

from . import linalg as _linalg
from . import ops as _ops
from .linalg import *  # noqa: F401,F403  (re-export; the list is linalg.__all__)
from .ops import *  # noqa: F401,F403  (re-export; the list is ops.__all__)

__version__ = "0.1.0"

__all__ = [*_linalg.__all__, *_ops.__all__]
