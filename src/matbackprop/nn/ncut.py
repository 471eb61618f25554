"""Normalized-cuts layer (DeepNCuts, Ionescu et al. 2015)."""

from __future__ import annotations

import torch
from torch import nn

from ..ops.ncut import ncut_embedding, projector_loss

__all__ = ["NormalizedCut"]


class NormalizedCut(nn.Module):
    """Normalized-cuts layer with the linear affinity ``F F^T``, and its projector loss.

    ``forward(features)`` takes ``(B, N, d)`` or a feature map ``(B, d, H, W)`` (non-negative, e.g.
    after a ReLU) and returns the embedding ``Z (B, N, k)`` with ``N = H W``; ``eps`` is the degree
    floor of :func:`matbackprop.ncut_embedding` (it acts only where a degree vanishes).
    ``loss(Z, target)`` is :func:`matbackprop.projector_loss` averaged over the batch, with ``target`` a
    label map ``(B, N)`` or ``(B, H, W)``, or an indicator ``(B, N, s)``; ``num_segments`` bounds the
    labels (pass it under ``torch.compile``/``torch.export``). ``check`` as in the functional API.

    Example:
        >>> import torch
        >>> from matbackprop.nn import NormalizedCut
        >>> layer = NormalizedCut(k=2)
        >>> features = torch.rand(2, 4, 8, 8, requires_grad=True)      # (B, d, H, W) non-negative
        >>> Z = layer(features)                                        # (B, N, k), N = H W
        >>> Z.shape
        torch.Size([2, 64, 2])
        >>> labels = torch.zeros(2, 8, 8, dtype=torch.long); labels[:, :, 4:] = 1
        >>> loss = layer.loss(Z, labels)                               # projector loss, batch mean
        >>> loss.backward(); features.grad.shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, k: int, eps: float = 1e-6, *, num_segments: int | None = None, check: bool = True) -> None:
        super().__init__()
        self.k = k
        self.eps = eps
        self.num_segments = num_segments
        self.check = check

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 4:
            features = features.flatten(2).transpose(1, 2)
        return ncut_embedding(features, self.k, eps=self.eps, check=self.check)

    def loss(self, Z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not target.is_floating_point() and target.dim() == 3:
            target = target.flatten(1)
        return projector_loss(Z, target, num_segments=self.num_segments, check=self.check).mean()

    def extra_repr(self) -> str:
        return f"k={self.k}, eps={self.eps}"
