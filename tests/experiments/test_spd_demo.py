"""The SPD demo's gradient checks report a wrong gradient as FAILED and the CLI exits 1 (not a traceback)."""

from __future__ import annotations

import torch

from matbackprop import logm
from matbackprop.experiments import spd_demo


class _WrongLogm(torch.autograd.Function):
    """``logm`` with a backward off by a factor of 2: gradcheck must catch it."""

    @staticmethod
    def forward(ctx, X):
        ctx.save_for_backward(X)
        return logm(X)

    @staticmethod
    def backward(ctx, G):
        (X,) = ctx.saved_tensors
        with torch.enable_grad():
            Xr = X.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(logm(Xr), Xr, G)
        return 2 * g


def _wrong_logm(X, check=True):
    return _WrongLogm.apply(X)


def test_gradient_checks_pass_for_the_library():
    checks = spd_demo._gradient_checks()
    assert [ok for _, ok, _ in checks] == [True, True]
    assert [finite for _, _, finite in checks] == [False, False]  # plain autograd: NaN/inf at the ties


def test_wrong_gradient_is_reported_failed_and_exits_1(monkeypatch, capsys):
    from matbackprop.cli import main

    monkeypatch.setattr(spd_demo, "logm", _wrong_logm)
    checks = spd_demo._gradient_checks()
    assert [ok for _, ok, _ in checks] == [False, True]
    code = main(["demo", "--epochs", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "logm at 2I (5-fold tie): matbackprop gradcheck FAILED" in out
    assert "powm(0.5) at diag(1, 1, 3): matbackprop gradcheck passed" in out


def test_demo_exits_0_when_every_check_passes(capsys):
    from matbackprop.cli import main

    assert main(["demo", "--epochs", "1"]) == 0
    assert "FAILED" not in capsys.readouterr().out
