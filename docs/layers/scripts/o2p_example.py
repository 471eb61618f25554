"""Usage example of SecondOrderPooling (docs/layers/second_order_pooling.md).

.venv/bin/python docs/layers/scripts/o2p_example.py
"""

import torch

from matbackprop.nn import SecondOrderPooling

torch.manual_seed(0)
x = torch.randn(2, 16, 24, 24, requires_grad=True)
feats = torch.relu(x)  # (B, C, H, W) = (2, 16, 24, 24), float32
masks = torch.zeros(2, 3, 24, 24)  # (B, R, H, W): two binary halves and one soft mask
masks[:, 0, :12] = 1
masks[:, 1, 12:] = 1
masks[:, 2] = torch.rand(24, 24)

pool = SecondOrderPooling(eps=1e-3, normalization="log", route="svd", output="triu", spectral_dtype=torch.float64)
y = pool(feats, masks)  # (2, 3, 16 * 17 / 2) = (2, 3, 136), float32
y.square().sum().backward()
print(y.shape, y.dtype, "grad finite:", bool(torch.isfinite(x.grad).all()))

masks[1, 2] = 0  # an empty region
try:
    pool(feats, masks)
except ValueError as err:
    print(err)
