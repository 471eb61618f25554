from __future__ import annotations

import torch
from torch import nn

from ..ops.ncut import ncut_embedding, projector_loss


class NormalizedCut(nn.Module):
    """Normalized-cuts layer with the linear affinity ``F F^T``, and its projector loss.

    ``forward(features)`` takes ``(B, N, d)`` or a feature map ``(B, d, H, W)`` (non-negative, e.g.
    after a ReLU) and returns the embedding ``Z (B, N, k)`` with ``N = H W``.
    ``loss(Z, target)`` is :func:`matbackprop.projector_loss` averaged over the batch, with ``target`` a
    label map ``(B, N)`` or ``(B, H, W)``, or an indicator ``(B, N, s)``.
    """

    def __init__(self, k: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.k = k
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 4:
            features = features.flatten(2).transpose(1, 2)
        return ncut_embedding(features, self.k, eps=self.eps)

    def loss(self, Z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not target.is_floating_point() and target.dim() == 3:
            target = target.flatten(1)
        return projector_loss(Z, target).mean()

    def extra_repr(self) -> str:
        return f"k={self.k}, eps={self.eps}"
