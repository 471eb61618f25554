"""Where the datasets are: the one place that knows the default folders and their environment overrides.

Each dataset has an environment variable naming its folder; without it the folder is
``<project root>/../shared/<name>`` (the ``shared/`` folder beside a source checkout, see the README),
or ``../shared/<name>`` relative to the working directory when the package is not run from a checkout.

============  ==================  ==========================
dataset       variable            default folder
============  ==================  ==========================
BSDS500       ``BSDS500``         ``../shared/bsds500``
MSRC-v2       ``MSRC_V2``         ``../shared/msrc_v2``
============  ==================  ==========================

Data folders are only ever read. A command-line ``--data`` always wins over both.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATASETS", "shared_root", "data_dir", "describe"]

#: dataset name (its folder under ``shared/``) -> environment variable that overrides its location.
DATASETS: dict[str, str] = {"bsds500": "BSDS500", "msrc_v2": "MSRC_V2"}

# src/matbackprop/data/locations.py -> the checkout root is three folders above this package.
_CHECKOUT = Path(__file__).resolve().parents[3]


def shared_root() -> Path:
    """``<checkout>/../shared`` in a source checkout (recognised by its ``pyproject.toml``), else ``../shared``."""
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "src" / "matbackprop").is_dir():
        return _CHECKOUT.parent / "shared"
    return Path("..") / "shared"


def data_dir(name: str) -> Path:
    """The folder of dataset ``name`` (a key of :data:`DATASETS`): its environment variable if set and
    non-empty, else ``shared_root() / name``. Raises ``KeyError`` naming the known datasets."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    override = os.environ.get(DATASETS[name], "").strip()
    return Path(override) if override else shared_root() / name


def describe(name: str) -> str:
    """One line for error messages: where ``name`` was looked for and how to point elsewhere."""
    return (
        f"{name} is looked for in {data_dir(name)} (set {DATASETS[name]}=DIR or pass --data DIR; "
        f"default: the 'shared' folder beside the project root)"
    )
