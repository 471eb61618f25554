"""Peak resident memory added by one forward+backward of second_order_pooling, per route, each in a
fresh process (docs/layers/second_order_pooling.md). B=2, R=16, C=128, H=W=64 (P=4096), float32: one
(B, R, C, P) float32 tensor is 64 MiB. The last two lines use spectral_dtype=torch.float64, which pools in
float64 (128 MiB per such tensor).

    .venv/bin/python docs/layers/scripts/o2p_memory.py
"""

import subprocess
import sys

code = r"""
import resource, sys, torch, matbackprop as mb
torch.manual_seed(0)
F = torch.relu(torch.randn(2, 128, 64, 64)).requires_grad_(True)
M = (torch.rand(2, 16, 64, 64) > 0.5).float()
norm, route, sd = sys.argv[1], sys.argv[2], getattr(torch, sys.argv[3], None)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Y = mb.second_order_pooling(F, M, normalization=norm, route=route, spectral_dtype=sd)
torch.autograd.grad(Y.sum(), F)
print(f"{norm:4s} {route:13s} spectral_dtype={sys.argv[3]:7s}: peak RSS increase {(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024:.0f} MiB")
"""
for norm, route, sd in [
    ("log", "eig", "None"),
    ("log", "svd", "None"),
    ("sqrt", "newton_schulz", "None"),
    ("log", "eig", "float64"),
    ("log", "svd", "float64"),
]:
    print(subprocess.run([sys.executable, "-c", code, norm, route, sd], capture_output=True, text=True).stdout.strip())
