"""Checkpoints are read with a weights-only load: a crafted pickle is refused and never runs."""

# ruff: noqa: NPY002  (the legacy global numpy generator is what checkpoints save and restore)

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.train import UnsafeCheckpointError, load_checkpoint, save_checkpoint
from matbackprop.train.checkpoint import rng_state, set_rng_state


class _Payload:
    """Unpickling this creates ``marker``: what an attacker's ``__reduce__`` would do, made visible."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _crafted(tmp_path: Path, name: str, **extra) -> tuple[Path, Path]:
    marker = tmp_path / f"{name}.ran"
    path = tmp_path / name
    torch.save({"model": torch.nn.Linear(2, 2).state_dict(), "payload": _Payload(marker), **extra}, path)
    return path, marker


def test_payload_runs_under_a_plain_unpickle(tmp_path):
    # The control: the same file does run its payload when loaded unsafely, so the tests below can fail.
    path, marker = _crafted(tmp_path, "control.pt")
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
def test_crafted_checkpoint_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "ran"
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "payload": _Payload(marker)}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"refusing to load .*checkpoint\.pt.*open") as info:
        load_checkpoint(path)
    assert "weights_only" in str(info.value)  # says how a trusted file can still be read
    assert not marker.exists()


def test_crafted_model_is_refused_by_the_cli(tmp_path, capsys):
    pytest.importorskip("scipy")  # the ncuts experiment module needs the experiment extras
    pytest.importorskip("tqdm")
    from matbackprop.cli import main

    path, marker = _crafted(tmp_path, "model.pt")
    (tmp_path / "seed0").mkdir()
    path.rename(tmp_path / "seed0" / "model.pt")
    code = main(["eval", "ncuts", "--out", str(tmp_path), "--quick", "--data", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert code == 2
    assert "refusing to load" in err and "seed0/model.pt" in err
    assert not marker.exists()


def test_training_resume_refuses_a_crafted_checkpoint(tmp_path):
    from matbackprop.train import TrainConfig, fit

    marker = tmp_path / "ran"
    torch.save({"epoch": 0, "payload": _Payload(marker)}, tmp_path / "checkpoint.pt")
    model = torch.nn.Linear(2, 1)
    with pytest.raises(UnsafeCheckpointError):
        fit(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            lambda b: model(b).sum(),
            lambda g: [torch.ones(1, 2)],
            TrainConfig(epochs=1, out_dir=tmp_path, resume=True),
        )
    assert not marker.exists()


def test_checkpoints_hold_only_weights_only_types(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"rng": rng_state(), "config": {"lr": 0.1, "scales": [1.0, 2.0], "name": "x"}})
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    torch.load(path, weights_only=True)  # plain torch reads it safely too


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    np.random.randn()  # leave a cached Gaussian in numpy's legacy generator
    random.gauss(0.0, 1.0)
    save_checkpoint(tmp_path / "c.pt", {"rng": rng_state()})
    want = (torch.rand(3), np.random.randn(4), random.gauss(0.0, 1.0), random.random())
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (torch.rand(3), np.random.randn(4), random.gauss(0.0, 1.0), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2:] == got[2:]


def test_old_checkpoint_with_numpy_rng_state_still_loads(tmp_path):
    # matbackprop 0.1 stored np.random.get_state() and random.getstate() as returned: a numpy array
    # and tuples, which a weights-only load rebuilds without running any user code.
    old = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    torch.save({"epoch": 1, "rng": old}, tmp_path / "old.pt")
    state = load_checkpoint(tmp_path / "old.pt")
    set_rng_state(old)
    want = (np.random.rand(), random.random())
    set_rng_state(state["rng"])
    assert (np.random.rand(), random.random()) == want


def test_old_file_with_objects_says_how_to_proceed(tmp_path):
    # e.g. an old cache of metric dataclasses: refused with the way out, or loaded when the class is trusted.
    path = tmp_path / "rows.pt"
    torch.save({"rows": [_Row(1.0)]}, path)
    with pytest.raises(UnsafeCheckpointError, match="delete it and it is rebuilt"):
        load_checkpoint(path)
    assert load_checkpoint(path, safe_globals=[_Row])["rows"][0].value == 1.0


class _Row:
    def __init__(self, value: float) -> None:
        self.value = value


def test_damaged_file_is_not_reported_as_unsafe(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"a": torch.ones(3)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError, match="c.pt is unreadable") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
