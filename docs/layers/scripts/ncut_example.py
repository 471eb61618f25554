"""Usage example of NormalizedCut and the projector loss (docs/layers/normalized_cuts.md).

.venv/bin/python docs/layers/scripts/ncut_example.py
"""

import torch

import matbackprop as mb
from matbackprop.nn import NormalizedCut

torch.manual_seed(0)
labels = torch.zeros(2, 32, 32, dtype=torch.long)  # ground truth: three segments per image
labels[:, :, 16:] = 1
labels[:, 20:, :] = 2
# Non-negative features (B, d, H, W): mostly one "on" channel per segment, plus noise.
onehot = torch.nn.functional.one_hot(labels, 8).permute(0, 3, 1, 2).float()
x = (onehot + 0.3 * torch.rand(2, 8, 32, 32)).requires_grad_(True)
feats = torch.relu(x)

layer = NormalizedCut(k=3)
Z = layer(feats)  # (2, 1024, 3); no 1024 x 1024 matrix is formed
loss = layer.loss(Z, labels)  # projector loss, batch mean
loss.backward()
print(Z.shape, f"loss {loss.item():.4f}", "grad finite:", bool(torch.isfinite(x.grad).all()))

# Noise-free features: k perfectly separated segments, top-3 eigenvalues tied at (almost) 1.
clean = onehot.flatten(2).mT.requires_grad_(True)  # (2, 1024, 8)
Zc, ev = mb.ncut_embedding(clean, 3, return_eigenvalues=True)
Jc = mb.projector_loss(Zc, labels.flatten(1)).sum()
(gc,) = torch.autograd.grad(Jc, clean)
print("eigenvalues", ev[0].tolist(), f"loss {Jc.item():.1e}", f"max|grad| {gc.abs().max().item():.1e}")
