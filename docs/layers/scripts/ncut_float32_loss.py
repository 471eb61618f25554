"""projector_loss of a float32 embedding at a perfect segmentation, whose exact value is 0
(docs/layers/normalized_cuts.md). projector_loss upcasts Z to float64 internally, so the first two
lines agree; the third computes the embedding itself in float64.

    .venv/bin/python docs/layers/scripts/ncut_float32_loss.py
"""

import torch

import matbackprop as mb

labels = torch.zeros(32, 32, dtype=torch.long)
labels[:, 16:] = 1
labels[20:, :] = 2
F = torch.nn.functional.one_hot(labels.flatten(), 8).float()  # (1024, 8), three separated segments
Z = mb.ncut_embedding(F, 3)
t = labels.flatten()
print("Z float32                    :", mb.projector_loss(Z, t).item())
print("same Z upcast to float64      :", mb.projector_loss(Z.double(), t).item())
print("embedding computed in float64:", mb.projector_loss(mb.ncut_embedding(F.double(), 3), t).item())
