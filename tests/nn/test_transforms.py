"""The layers under torch.func (through functional_call), torch.compile(fullgraph=True) and torch.export."""

import pytest
import torch
from torch.func import functional_call, jacfwd, jacrev, vmap

import matbackprop as mb
from matbackprop.nn import BiMap, LogEig, NormalizedCut, ReEig, SecondOrderPooling, SPDBatchNorm
from tests.helpers import random_spd, sym

D = torch.float64


def _spd_net(check=True):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        BiMap(5, 3, check=check), ReEig(0.1, check=check), SPDBatchNorm(3, check=check), LogEig("triu", check=check)
    ).double()
    with torch.no_grad():
        net[2].bias_log.copy_(0.3 * sym(torch.randn(3, 3, dtype=D)))
    return net


def _fd_params(f, params, name, v, h=1e-6):
    plus = {**params, name: params[name] + h * v}
    minus = {**params, name: params[name] - h * v}
    return (f(plus) - f(minus)) / (2 * h)


def test_functional_call_jacobians_of_an_spd_network():
    # SPDBatchNorm in eval mode: in training mode it writes its running mean in place, which torch.func
    # rejects, as it does for torch.nn.BatchNorm.
    net = _spd_net().eval()
    X = random_spd(5, 4)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p):
        return functional_call(net, p, (X,)).pow(2).sum()

    jr, jf = jacrev(f)(params), jacfwd(f)(params)
    grads = torch.autograd.grad(net(X).pow(2).sum(), list(net.parameters()))
    for (name, g), auto in zip(jr.items(), grads):
        assert torch.allclose(g, jf[name], atol=1e-9), name
        assert torch.allclose(g, auto, atol=1e-10), name
        if "parametrizations" in name:
            continue  # BiMap's orthogonal parametrisation is not smooth in its raw storage: no finite differences
        v = torch.randn_like(g)
        assert torch.allclose((g * v).sum(), _fd_params(f, params, name, v), rtol=1e-6, atol=1e-8), name


def test_vmap_of_layers_through_functional_call():
    net = _spd_net().eval()
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())
    X = random_spd(5, 6).reshape(3, 2, 5, 5)
    got = vmap(lambda x: functional_call(net, (params, buffers), (x,)))(X)
    assert torch.allclose(got, net(X.reshape(6, 5, 5)).reshape(3, 2, 6), atol=1e-12)
    pool = SecondOrderPooling(eps=0.1, route="svd")
    feats, masks = torch.randn(4, 3, 4, 4, dtype=D), torch.rand(4, 2, 4, 4, dtype=D)
    got = vmap(lambda f, m: functional_call(pool, {}, (f[None], m[None]))[0])(feats, masks)
    assert torch.allclose(got, pool(feats, masks), atol=1e-12)
    ncut = NormalizedCut(3)
    F = torch.rand(4, 20, 5, dtype=D)
    Z = vmap(lambda f: functional_call(ncut, {}, (f[None],))[0])(F)
    P = Z @ torch.linalg.solve(Z.mT @ Z, Z.mT)
    Zb = ncut(F)
    assert torch.allclose(P, Zb @ torch.linalg.solve(Zb.mT @ Zb, Zb.mT), atol=1e-12)


# -------------------------------------------------------------------------------------------- compile


def _compiled_equals_eager(fn, *inputs, atol=1e-10):
    """torch.compile(fullgraph=True) forward and backward equal eager."""
    torch._dynamo.reset()
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    eager_out = fn(*leaves)
    eager_grads = torch.autograd.grad(eager_out.sum(), leaves)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    leaves_c = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = compiled(*leaves_c)
    grads = torch.autograd.grad(out.sum(), leaves_c)
    assert torch.allclose(out, eager_out, atol=atol)
    for g, e in zip(grads, eager_grads):
        assert torch.allclose(g, e, atol=atol)


@pytest.mark.slow
def test_compile_fullgraph_second_order_pooling_and_layers():
    feats, masks = torch.randn(2, 3, 4, 4, dtype=D), torch.rand(2, 2, 4, 4, dtype=D)
    for route in ("eig", "svd"):
        _compiled_equals_eager(lambda f, m, r=route: mb.second_order_pooling(f, m, route=r, check=False), feats, masks)
    layer = SecondOrderPooling(route="eig", check=False)
    _compiled_equals_eager(lambda f, m: layer(f, m), feats, masks)


@pytest.mark.slow
def test_compile_fullgraph_ncut_and_projector_loss():
    g = torch.Generator().manual_seed(1)
    F = torch.rand(2, 20, 5, dtype=D, generator=g)
    labels = torch.randint(0, 3, (2, 20), generator=g)
    _compiled_equals_eager(
        lambda f: mb.projector_loss(mb.ncut_embedding(f, 3, check=False), labels, num_segments=3, check=False), F
    )
    layer = NormalizedCut(3, num_segments=3, check=False)
    _compiled_equals_eager(lambda f: layer.loss(layer(f), labels), F)


@pytest.mark.slow
def test_compile_fullgraph_spd_network():
    net = _spd_net(check=False).eval()
    _compiled_equals_eager(lambda x: net(x), random_spd(5, 4))


# --------------------------------------------------------------------------------------------- export


class _Model(torch.nn.Module):
    """A small DeepO2P/DeepNCuts-style model: conv features, second-order pooling and a normalized cut."""

    def __init__(self, check):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pool = SecondOrderPooling(eps=0.1, route="eig", check=check)
        self.ncut = NormalizedCut(3, check=check)

    def forward(self, x, masks):
        f = torch.relu(self.conv(x))
        return self.pool(f, masks), self.ncut(f)


@pytest.mark.slow
@pytest.mark.parametrize("check", [False, True])
def test_export_round_trip(check):
    torch.manual_seed(2)
    model = _Model(check).double().eval()
    x, masks = torch.rand(2, 3, 6, 6, dtype=D), torch.rand(2, 2, 6, 6, dtype=D)
    program = torch.export.export(model, (x, masks))
    x2, masks2 = torch.rand(2, 3, 6, 6, dtype=D), torch.rand(2, 2, 6, 6, dtype=D)
    for args in ((x, masks), (x2, masks2)):
        got, want = program.module()(*args), model(*args)
        assert torch.allclose(got[0], want[0], atol=1e-12)
        Pg = got[1] @ torch.linalg.solve(got[1].mT @ got[1], got[1].mT)
        Pw = want[1] @ torch.linalg.solve(want[1].mT @ want[1], want[1].mT)
        assert torch.allclose(Pg, Pw, atol=1e-12)


@pytest.mark.slow
def test_compile_fullgraph_with_checks_on():
    # check=True compiles too: each data check becomes one branch-free assertion (no graph break).
    feats, masks = torch.randn(2, 3, 4, 4, dtype=D), torch.rand(2, 2, 4, 4, dtype=D)
    _compiled_equals_eager(lambda f, m: mb.second_order_pooling(f, m), feats, masks)
    F = torch.rand(2, 20, 5, dtype=D)
    labels = torch.randint(0, 3, (2, 20))
    _compiled_equals_eager(lambda f: mb.projector_loss(mb.ncut_embedding(f, 3), labels, num_segments=3), F)
    torch._dynamo.reset()
    bad = F.clone()
    bad[1, 2, 3] = -1.0
    compiled = torch.compile(lambda f: mb.ncut_embedding(f, 3), fullgraph=True, backend="aot_eager")
    with pytest.raises(RuntimeError, match="non-negative"):
        compiled(bad)
