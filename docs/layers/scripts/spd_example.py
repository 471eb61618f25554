"""Usage example of the SPD layers (docs/layers/spd_layers.md).

.venv/bin/python docs/layers/scripts/spd_example.py
"""

import torch
from torch import nn

from matbackprop.nn import BiMap, LogEig, ReEig, SPDBatchNorm

torch.manual_seed(0)
A = torch.randn(32, 16, 40)
X = A @ A.mT / 40 + 1e-3 * torch.eye(16)  # 32 SPD matrices, 16 x 16 (sample covariances)
y = torch.randint(0, 3, (32,))

net = nn.Sequential(BiMap(16, 8), SPDBatchNorm(8), ReEig(1e-4), LogEig("triu"), nn.Linear(36, 3))
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
for step in range(3):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(net(X), y)
    loss.backward()
    opt.step()
    print(f"step {step}: loss {loss.item():.4f}")

W = net[0].weight  # recomputed from the parametrisation
print("max |W^T W - I| =", f"{(W.T @ W - torch.eye(8)).abs().max().item():.1e}")
net.eval()
print(net(X).shape)  # torch.Size([32, 3]); BN uses its running mean
