"""Atomic checkpoints, read back safely.

Writing: a crash while writing never leaves a truncated file under the final name (temporary file,
fsync, rename).

Reading: every file is read with ``torch.load(..., weights_only=True)``. A pickle can name any Python
callable to run on load (``__reduce__``), so a ``model.pt`` received from someone else would otherwise
run arbitrary code. Checkpoints therefore hold only tensors, numbers, strings, ``None`` and lists, tuples
and dicts of them: the random-generator states are stored as tensors and lists (:func:`rng_state`),
never as the numpy/Python objects their getters return.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "UnsafeCheckpointError"]


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds Python objects that a safe (weights-only) load refuses to rebuild."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = path
        self.names = names
        what = ", ".join(names) if names else "objects other than tensors and plain containers"
        super().__init__(
            f"refusing to load {path}: it holds Python objects that a safe load does not rebuild ({what}). "
            "A pickled object can run arbitrary code when loaded, so matbackprop reads files with "
            "torch.load(weights_only=True) only. If the file is a cache (features, scores), delete it and it is "
            "rebuilt. If it is a checkpoint you wrote yourself or got from a source you trust, load it once with "
            "torch.load with weights_only turned off and save the parts you need (state_dict tensors, plain "
            "numbers, strings, lists and dicts) with matbackprop.train.save_checkpoint."
        )


def _numpy_array_globals() -> list[Any]:
    # numpy arrays pickle as _reconstruct(ndarray, shape, dtype) + raw bytes: no user callable runs, so
    # they are safe to allow. Checkpoints written by matbackprop 0.1 hold the numpy generator state as
    # such an array; allowing it keeps them loadable.
    core = getattr(np, "_core", None) or np.core
    return [
        core.multiarray._reconstruct,
        np.ndarray,
        np.dtype,
        *(
            getattr(np.dtypes, name)
            for name in ("UInt32DType", "Int64DType", "Float64DType", "Float32DType")
            if hasattr(np, "dtypes") and hasattr(np.dtypes, name)
        ),
    ]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` to a temporary file beside ``path``, fsync, then rename.

    ``state`` should hold only what :func:`load_checkpoint` reads back: tensors, numbers, strings,
    ``None``, and lists, tuples and dicts of them (a ``state_dict`` qualifies).

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from matbackprop.train import load_checkpoint, save_checkpoint
        >>> path = Path(tempfile.mkdtemp()) / "checkpoint.pt"
        >>> save_checkpoint(path, {"epoch": 3, "model": torch.nn.Linear(2, 1).state_dict()})   # atomic: tmp + rename
        >>> load_checkpoint(path)["epoch"]
        3
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _refused_names(path: Path, error: Exception, allowed: set[str]) -> list[str] | None:
    """The globals a weights-only load refused, or ``None`` if the failure is not about them (damage)."""
    try:
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n not in allowed]
        if names:
            return names
    except Exception:  # noqa: BLE001  (not a zip checkpoint: legacy format or damaged; read the refusal message)
        pass
    found = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return found
    if "not an allowed global" in str(error):
        return []
    return None  # e.g. "Unsupported operand": bytes that are no pickle at all


def load_checkpoint(path: str | Path, *, safe_globals: Iterable[Any] = ()) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Only tensors, numbers, strings, ``None``, lists, tuples, dicts and numpy arrays are rebuilt;
    ``safe_globals`` adds classes you trust (e.g. your own dataclasses). A file holding anything else
    raises :class:`UnsafeCheckpointError` without running any of it; a missing file raises
    ``FileNotFoundError`` and a damaged one ``RuntimeError``, both naming the file.

    Example:
        >>> import pickle, tempfile
        >>> from pathlib import Path
        >>> from matbackprop.train import UnsafeCheckpointError, load_checkpoint, save_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> save_checkpoint(folder / "ok.pt", {"step": 10})
        >>> load_checkpoint(folder / "ok.pt")
        {'step': 10}
        >>> import argparse, torch
        >>> torch.save({"args": argparse.Namespace(lr=0.1)}, folder / "bad.pt")   # a pickled Python object
        >>> try:
        ...     load_checkpoint(folder / "bad.pt")
        ... except UnsafeCheckpointError:
        ...     print("refused")
        refused
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    trusted = [*_numpy_array_globals(), *safe_globals]
    try:
        with torch.serialization.safe_globals(trusted):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        allowed = {f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', '')}" for g in trusted}
        names = _refused_names(path, e, allowed)
        if names is not None:
            raise UnsafeCheckpointError(path, names) from None
        raise RuntimeError(f"checkpoint {path} is unreadable ({_first_line(e)}); delete it to start afresh") from e
    except Exception as e:  # torch raises several types for a damaged file
        raise RuntimeError(f"checkpoint {path} is unreadable ({_first_line(e)}); delete it to start afresh") from e


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def rng_state() -> dict[str, Any]:
    """The state of every random generator a training step may draw from, as tensors and lists only
    (so that :func:`load_checkpoint` reads it back with a weights-only load)."""
    # The legacy global generator is the one training code draws from (np.random.*): its state is saved.
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`rng_state` (also the tuples stored by matbackprop 0.1)."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    if isinstance(np_state, dict):
        keys = np.asarray(np_state["keys"].numpy(), dtype=np.uint32)
        np_state = ("MT19937", keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    np.random.set_state(np_state)  # noqa: NPY002
    py_state = state["python"]
    if isinstance(py_state, dict):
        py_state = (py_state["version"], tuple(py_state["internal"]), py_state["gauss_next"])
    random.setstate(py_state)
