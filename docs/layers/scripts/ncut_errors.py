"""Rank deficiency of Z in projector_loss (docs/layers/normalized_cuts.md).

(a) Batch of 3, N=16, k=2, float32, a zero column in batch element 2: the Cholesky factorisation of
Z^T Z fails and the error names the batch index. (b) Column 1 = 2 * column 0 exactly, 100 random Z:
whether Cholesky fails depends on rounding, so some raise and the others return a value that has no
meaning. (c) k larger than the rank of the features, through ncut_embedding.

    .venv/bin/python docs/layers/scripts/ncut_errors.py
"""

import torch

import matbackprop as mb

torch.manual_seed(0)
labels = torch.randint(0, 3, (3, 16))
Z = torch.rand(3, 16, 2)
Z[2, :, 1] = 0
try:
    mb.projector_loss(Z, labels)
except ValueError as err:
    print("(a) zero column:", err)
raised, values = 0, []
for seed in range(100):
    g = torch.Generator().manual_seed(seed)
    Z = torch.rand(16, 2, generator=g)
    Z[:, 1] = 2 * Z[:, 0]
    try:
        values.append(mb.projector_loss(Z, labels[0]).item())
    except ValueError:
        raised += 1
others = f"; the others returned J from {min(values):.4f} to {max(values):.4f}" if values else ""
print(f"(b) collinear columns: {raised} of 100 raised{others}")

# (c) k larger than the rank of F: F = A B, N=100, d=6, rank 2, float64 and float32 (rounded from the
# float64 product), k=3, 100 random draws. Either the third column of Z is zeroed (its singular value is
# below the Gram route's threshold) and projector_loss raises, or it is noise and a value comes back.
for dtype in (torch.float64, torch.float32):
    raised, returned = 0, 0
    for seed in range(100):
        g = torch.Generator().manual_seed(seed)
        F = (
            torch.rand(100, 2, generator=g, dtype=torch.float64) @ torch.rand(2, 6, generator=g, dtype=torch.float64)
        ).to(dtype)
        try:
            mb.projector_loss(mb.ncut_embedding(F, 3), torch.randint(0, 3, (100,), generator=g))
            returned += 1
        except ValueError:
            raised += 1
    print(
        f"(c) rank-2 features, k=3, {str(dtype).replace('torch.', '')}: {raised} of 100 raised, {returned} returned a value"
    )
