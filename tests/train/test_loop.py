"""Training engine: atomic checkpoints, exact resume, non-finite guards."""

import math

import pytest
import torch

from matbackprop.train import CSVLogger, TrainConfig, fit, load_checkpoint, save_checkpoint


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(64, 5, generator=g)
    y = X @ torch.randn(5, 1, generator=g)
    return X, y


def _batches(X, y):
    def batches(gen):
        perm = torch.randperm(len(X), generator=gen)
        for idx in perm.split(16):
            yield X[idx], y[idx]
    return batches


def _run(tmp_path, epochs, resume=False, crash_at=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    X, y = _problem()
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        xb, yb = batch
        return torch.nn.functional.mse_loss(model(xb), yb)

    fit(model, opt, step, _batches(X, y), TrainConfig(epochs=epochs, out_dir=tmp_path, seed=3, resume=resume))
    return model


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    reference = _run(tmp_path / "a", epochs=4)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", epochs=4, crash_at=10)  # mid-epoch 3 (4 batches per epoch)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1
    resumed = _run(tmp_path / "b", epochs=4, resume=True)
    for p, q in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_non_finite_loss_is_logged_and_skipped(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]

    def step(batch):
        return model(batch).sum() * float("nan")

    row = fit(model, opt, step, lambda g: [torch.ones(1, 2)] * 3, TrainConfig(epochs=1, out_dir=tmp_path))
    assert row["skipped"] == 3 and math.isnan(row["loss"])
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    events = [r["event"] for r in CSVLogger(tmp_path / "train_log.csv").read() if r.get("event")]
    assert events[0] == "non-finite loss or gradient at epoch 1, batch 0"
    with pytest.raises(FloatingPointError, match="batch 0"):
        fit(model, opt, step, lambda g: [torch.ones(1, 2)], TrainConfig(epochs=1, out_dir=tmp_path / "x", skip_nonfinite=False))


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
