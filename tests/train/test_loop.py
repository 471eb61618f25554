"""Training engine: exact resume, non-finite guards (checkpoint files: test_checkpoint.py)."""

import math

import pytest
import torch

from matbackprop.train import CSVLogger, TrainConfig, fit, load_checkpoint


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
        fit(
            model,
            opt,
            step,
            lambda g: [torch.ones(1, 2)],
            TrainConfig(epochs=1, out_dir=tmp_path / "x", skip_nonfinite=False),
        )


def _mid_epoch_run(out, crash_at=None, resume=False, every=3):
    """Adam + dropout on 8 batches an epoch, checkpointing every ``every`` steps."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    X, y = _problem()
    calls = {"n": 0}

    def batches(gen):
        for idx in torch.randperm(len(X), generator=gen).split(8):
            yield X[idx], y[idx] + 0.1 * torch.randn(len(idx), 1, generator=gen)  # draws from gen per batch

    def step(batch):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

    fit(model, opt, step, batches, TrainConfig(epochs=3, out_dir=out, seed=7, resume=resume, checkpoint_every=every))
    return model, calls["n"]


def test_mid_epoch_resume_is_exact_and_repeats_no_step(tmp_path):
    reference, _ = _mid_epoch_run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _mid_epoch_run(tmp_path / "b", crash_at=14)  # epoch 2, batch 5 (0-based): last checkpoint after batch 2
    position = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["position"]
    assert (position["epoch"], position["batches_done"]) == (1, 3)
    resumed, steps = _mid_epoch_run(tmp_path / "b", resume=True)
    assert steps == 24 - 8 - 3  # only the steps after the checkpoint are trained again
    for p, q in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    rows = {
        run: [(r["epoch"], r["loss"]) for r in CSVLogger(tmp_path / run / "train_log.csv").read()] for run in ("a", "b")
    }
    assert rows["a"] == rows["b"] and len(rows["a"]) == 3  # epoch means include the steps before the crash


def _snapshots_run(out, bad_batch, kind, skip=True, max_skips=None):
    """SGD on 4 batches; batch ``bad_batch`` of epoch 1 gets a NaN loss or an infinite gradient."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    seen = []

    def step(batch):
        index = len(seen)
        seen.append([p.detach().clone() for p in model.parameters()])
        loss = model(batch).pow(2).mean()
        if index == bad_batch or (max_skips is not None and index >= bad_batch):
            loss = (
                loss * float("nan") if kind == "loss" else loss + torch.sqrt(model.weight.sum() * 0)
            )  # d sqrt(0) = inf
        return loss

    row = fit(
        model,
        opt,
        step,
        lambda g: [torch.ones(2, 3) * (i + 1) for i in range(4)],
        TrainConfig(epochs=1, out_dir=out, skip_nonfinite=skip, max_consecutive_skips=max_skips),
    )
    return row, seen, model, opt


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_non_finite_step_is_skipped_logged_with_its_batch_and_never_applied(tmp_path, kind):
    row, seen, model, opt = _snapshots_run(tmp_path, bad_batch=2, kind=kind)
    assert row["skipped"] == 1 and math.isfinite(row["loss"])
    assert not torch.equal(seen[2][0], seen[1][0])  # batch 1 was applied
    assert all(torch.equal(a, b) for a, b in zip(seen[3], seen[2]))  # batch 2 was not
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert opt.state[model.weight]["step"] == 3  # Adam's moments and step count untouched by the bad batch
    events = [(r["batch"], r["event"]) for r in CSVLogger(tmp_path / "train_log.csv").read() if r.get("event")]
    assert events == [("2", "non-finite loss or gradient at epoch 1, batch 2")]
    with pytest.raises(FloatingPointError, match="epoch 1, batch 2"):
        _snapshots_run(tmp_path / "strict", bad_batch=2, kind=kind, skip=False)


def test_too_many_consecutive_non_finite_steps_stop_the_run(tmp_path):
    with pytest.raises(FloatingPointError, match="2 consecutive non-finite steps"):
        _snapshots_run(tmp_path, bad_batch=1, kind="loss", max_skips=2)
