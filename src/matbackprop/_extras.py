"""Optional dependencies: a part of matbackprop that needs an extra says which one when it is used.

The core (``linalg``, ``ops``, ``nn``) needs only torch and numpy. The benchmarks (``metrics``, scipy),
the data readers (scipy, pillow) and the training engine (tqdm) need an extra of the package.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is missing; the message names the extra that provides it."""


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` saying that ``feature`` needs
    ``pip install 'matbackprop[<extra>]'``. It is a ``ModuleNotFoundError``, so code that treats a
    missing optional dependency as ``ImportError`` keeps working."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = module.split(".")[0]
        if e.name is not None and e.name.split(".")[0] != top:
            raise  # something else is missing inside the module: not ours to rename
        raise MissingExtraError(
            f"{feature} needs {top}, which is not installed: pip install 'matbackprop[{extra}]' (or pip install {top})",
            name=top,
        ) from None
