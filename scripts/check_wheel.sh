#!/usr/bin/env bash
# Build the wheel from this checkout, install it into a fresh virtual environment holding only its core
# dependencies (torch, numpy), and check that the core and the layers work there and that the parts
# needing an extra name it (issue 12). Usage: bash scripts/check_wheel.sh [WORKDIR]  (default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
TORCH_SPEC="${MATBACKPROP_TORCH:-torch==2.13.0}"
PY="${PYTHON:-python3}"
"$PY" -m pip wheel -q --no-deps -w "$WORK/wheel" .
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$TORCH_SPEC"
"$WORK/venv/bin/pip" install -q "$WORK"/wheel/matbackprop-*.whl   # resolves the declared core dependencies only
"$WORK/venv/bin/pip" check
cd "$WORK"   # not the checkout: import the installed wheel
"$WORK/venv/bin/python" - <<'PYEOF'
import sys
import numpy as np
import torch
import matbackprop as mb

assert "site-packages" in mb.__file__, mb.__file__
X = torch.randn(4, 5, 5, dtype=torch.float64)
X = (X @ X.mT + torch.eye(5, dtype=torch.float64)).requires_grad_(True)
mb.logm(X).sum().backward()
feats = torch.rand(2, 4, 6, 6, requires_grad=True)
mb.nn.SecondOrderPooling(eps=1e-2)(feats).sum().backward()
Z = mb.nn.NormalizedCut(3)(torch.rand(2, 16, 5))
net = torch.nn.Sequential(mb.nn.BiMap(5, 3), mb.nn.ReEig(), mb.nn.SPDBatchNorm(3), mb.nn.LogEig("triu"))
assert net(X.detach().float()).shape == (4, 6)
assert abs(mb.metrics.probabilistic_rand_index(np.array([[0, 0, 1, 1]]), [np.array([[1, 2, 3, 3]])]) - 5 / 6) < 1e-12
for expr, extra in (("mb.metrics.evaluate_regions", "metrics"), ("mb.train", "experiments")):
    try:
        eval(expr)
    except ModuleNotFoundError as e:
        assert f"pip install 'matbackprop[{extra}]'" in str(e), e
        print(f"{expr}: {e}")
    else:
        raise AssertionError(f"{expr} imported without its extra")
print("wheel OK: core and layers work with torch", torch.__version__, "and numpy only; scipy loaded:", "scipy" in sys.modules)
PYEOF
