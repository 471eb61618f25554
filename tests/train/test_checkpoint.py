"""Checkpoint files (``train/checkpoint.py``): atomic writes, and unreadable or missing files named.

The weights-only (safe) load is tested in ``test_safe_load.py``.
"""

import pytest
import torch

from matbackprop.train import load_checkpoint, save_checkpoint


def test_checkpoint_is_atomic_and_corruption_is_named(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"a": torch.ones(3)})
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary left behind
    path.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="c.pt is unreadable"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
