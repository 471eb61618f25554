"""Orthonormality of BiMap's weight, max |W^T W - I| (docs/layers/spd_layers.md).

.venv/bin/python docs/layers/scripts/bimap_orthonormality.py
"""

import torch

from matbackprop.nn import BiMap

torch.manual_seed(0)
m = BiMap(16, 8).double()
W = m.weight
print(
    "BiMap(16, 8).double():",
    f"{(W.T @ W - torch.eye(8, dtype=torch.float64)).abs().max().item():.1e};",
    "buffers:",
    [name for name, _ in m.named_buffers()],
)
torch.set_default_dtype(torch.float64)
m = BiMap(16, 8)
W = m.weight
print("BiMap(16, 8) built with default dtype float64:", f"{(W.T @ W - torch.eye(8)).abs().max().item():.1e}")
