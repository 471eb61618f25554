"""The nn.Module shells: parameters, options and a gradient through each."""

import pytest
import torch
from torch.autograd import gradcheck

import matbackprop as mb
from matbackprop.nn import BiMap, LogEig, NormalizedCut, ReEig, SecondOrderPooling, SPDBatchNorm
from tests.helpers import random_spd, sym


def test_second_order_pooling_module_matches_functional():
    feats = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    masks = torch.rand(2, 3, 3, 3, dtype=torch.float64)
    layer = SecondOrderPooling(eps=0.1, normalization="sqrt", route="svd", output="triu")
    out = layer(feats, masks)
    assert out.shape == (2, 3, 10)
    assert torch.allclose(
        out, mb.second_order_pooling(feats, masks, eps=0.1, normalization="sqrt", route="svd", output="triu")
    )
    assert "route=svd" in repr(layer)


def test_bimap_stays_on_stiefel_after_an_optimizer_step():
    torch.manual_seed(0)
    layer = BiMap(6, 3).double()
    X = random_spd(6, 4)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        mb.logm(layer(X)).pow(2).sum().backward()
        opt.step()
    W = layer.weight
    assert torch.allclose(W.T @ W, torch.eye(3, dtype=torch.float64), atol=1e-6)  # initialised in float32


def test_bimap_in_both_directions_keeps_the_larger_side_orthonormal():
    torch.manual_seed(4)
    up = BiMap(3, 5).double()
    assert torch.allclose(up.weight @ up.weight.T, torch.eye(3, dtype=torch.float64), atol=1e-6)
    X = random_spd(3, 2)
    Y = up(X)
    assert Y.shape == (2, 5, 5)
    assert torch.allclose(torch.linalg.eigvalsh(Y)[..., -3:], torch.linalg.eigvalsh(X), atol=1e-6)
    Y = ReEig(1e-3)(Y)  # rank 3 of 5: the floor makes it definite
    assert torch.linalg.eigvalsh(Y).min() >= 1e-3 - 1e-9
    with pytest.raises(ValueError, match="positive"):
        BiMap(0, 3)


def test_spd_network_gradcheck():
    torch.manual_seed(1)
    bimap, reeig, logeig = BiMap(5, 3).double(), ReEig(0.3), LogEig("triu")
    X = random_spd(5, 2).requires_grad_(True)
    assert gradcheck(lambda X: logeig(reeig(bimap(sym(X)))), (X,))
    assert logeig(reeig(bimap(X))).shape == (2, 6)


def test_spd_batchnorm_centres_the_batch_and_tracks_the_mean():
    torch.manual_seed(2)
    bn = SPDBatchNorm(3, momentum=1.0, karcher_iters=1).double()
    X = random_spd(3, 16)
    Y = bn(X)
    # With a zero bias log (B = I) the output batch has (approximately, one Karcher step) identity mean.
    assert torch.allclose(mb.spd_karcher_mean(Y, num_iters=10), torch.eye(3, dtype=torch.float64), atol=1e-2)
    mean = mb.spd_karcher_mean(X, num_iters=1)
    assert torch.allclose(bn.running_mean, mean, atol=1e-10)  # momentum 1: running mean = batch mean
    bn.eval()
    assert torch.allclose(bn(X), mb.spd_recenter(X, mean, torch.eye(3, dtype=torch.float64)), atol=1e-10)
    bn.train()
    X.requires_grad_(True)
    bn(X).sum().backward()
    assert torch.isfinite(X.grad).all() and bn.bias_log.grad is not None


def test_normalized_cut_module_accepts_feature_maps_and_label_maps():
    torch.manual_seed(3)
    layer = NormalizedCut(k=4)
    feats = torch.rand(2, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 5, 6))
    Z = layer(feats)
    assert Z.shape == (2, 30, 4)
    loss = layer.loss(Z, labels)
    loss.backward()
    assert torch.isfinite(feats.grad).all()
    expected = mb.projector_loss(mb.ncut_embedding(feats.detach().flatten(2).mT, 4), labels.flatten(1)).mean()
    assert torch.allclose(loss.detach(), expected)


def test_spd_batchnorm_over_leading_dimensions():
    torch.manual_seed(5)
    X = random_spd(3, 12).reshape(3, 4, 3, 3)
    flat, shaped = SPDBatchNorm(3, momentum=1.0).double(), SPDBatchNorm(3, momentum=1.0).double()
    with torch.no_grad():
        shaped.bias_log.copy_(sym(torch.randn(3, 3)))
        flat.bias_log.copy_(shaped.bias_log)
    Y = shaped(X)
    assert Y.shape == (3, 4, 3, 3)
    assert torch.allclose(Y.reshape(12, 3, 3), flat(X.reshape(12, 3, 3)), atol=1e-12)  # one mean over all 12
    assert torch.allclose(shaped.running_mean, flat.running_mean, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        shaped(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        shaped(random_spd(4, 2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: SecondOrderPooling(check=False),
        lambda: BiMap(4, 3, check=False),
        lambda: ReEig(check=False),
        lambda: LogEig(check=False),
        lambda: SPDBatchNorm(3, check=False),
        lambda: NormalizedCut(2, check=False),
    ],
)
def test_every_layer_takes_check(make):
    layer = make()
    assert (layer.options["check"] if isinstance(layer, SecondOrderPooling) else layer.check) is False


def test_check_false_skips_the_data_checks():
    bad = torch.full((1, 2, 3, 3), float("nan"), dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        SecondOrderPooling(normalization="none")(bad)
    assert torch.isnan(SecondOrderPooling(normalization="none", check=False)(bad)).any()
    neg = -torch.rand(1, 6, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="non-negative"):
        NormalizedCut(2)(neg)
    NormalizedCut(2, check=False)(neg)  # no check: whatever the linear algebra gives
