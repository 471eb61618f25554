"""matbackprop: matrix backpropagation for structured layers in PyTorch.

Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured Layers by Matrix
Backpropagation", ICCV 2015 (arXiv 1509.07838). Laid out like torch: the functional API (the math
core :mod:`matbackprop.linalg` and the functional layers :mod:`matbackprop.ops`) is re-exported at the
top level; ``mb.nn`` (the modules), ``mb.metrics``, ``mb.data``, ``mb.train`` and ``mb.models`` are
imported on first use, so that ``import matbackprop`` costs little beyond torch and
works with the core dependencies (torch, numpy) alone. A part that needs an optional dependency
names the extra to install when it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import linalg as linalg
from . import ops as ops
from .linalg import *  # noqa: F403  (re-export; the list is linalg.__all__)
from .ops import *  # noqa: F403  (re-export; the list is ops.__all__)
from .ops import spd_transport  # noqa: F401  (deprecated name of spd_recenter)

if TYPE_CHECKING:
    from . import data as data
    from . import experiments as experiments
    from . import metrics as metrics
    from . import models as models
    from . import nn as nn
    from . import train as train

__version__ = "0.1.0"

# Subpackages imported on first attribute access (module __getattr__, PEP 562).
_LAZY = ("nn", "metrics", "data", "train", "models", "experiments")

# Not the lazy subpackages: `from matbackprop import *` must not need the extras.
__all__ = [*linalg.__all__, *ops.__all__, "nn", "linalg", "ops"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
