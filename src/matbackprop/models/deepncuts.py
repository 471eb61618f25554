"""DeepNCuts: backbone features -> two conv+ReLU pairs -> normalized cuts (Ionescu et al. 2015).

The backbone's multi-scale maps are resized to one working grid and concatenated; two randomly
initialised conv+ReLU pairs (the ReLU keeps the linear affinity ``F F^T`` non-negative) give the
features of the normalized-cuts layer, whose embedding ``Z`` is trained with the projector loss
against human segmentations.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as nnf
from torch import nn

from ..nn import NormalizedCut

__all__ = ["fuse_scales", "DeepNCutsHead", "DeepNCuts"]


def fuse_scales(
    maps: Sequence[torch.Tensor], scales: Sequence[float] | None = None, target: int = 0
) -> torch.Tensor:
    """Resize maps ``(B, C_i, h_i, w_i)`` to the grid of ``maps[target]`` and concatenate: ``(B, sum C_i, h, w)``.

    Finer maps are downsampled with antialiasing, coarser ones upsampled bilinearly. ``scales`` divides
    each map (e.g. by its typical magnitude, so that no stage dominates).
    """
    size = maps[target].shape[-2:]
    out = []
    for i, m in enumerate(maps):
        m = m.float()
        if m.shape[-2:] != size:
            m = nnf.interpolate(m, size=size, mode="bilinear", align_corners=False, antialias=m.shape[-1] > size[-1])
        out.append(m / scales[i] if scales is not None else m)
    return torch.cat(out, dim=1)


class DeepNCutsHead(nn.Module):
    """Two conv+ReLU pairs: 1x1 (channel mixing) then 3x3 (local context); output is non-negative."""

    def __init__(self, in_channels: int, hidden: int = 128, out_channels: int = 64) -> None:
        super().__init__()
        self.mix = nn.Conv2d(in_channels, hidden, kernel_size=1)
        self.context = nn.Conv2d(hidden, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.context(torch.relu(self.mix(x))))


class DeepNCuts(nn.Module):
    """Fused backbone features ``(B, C, h, w)`` -> normalized-cuts embedding ``Z (B, h*w, k)``."""

    def __init__(self, in_channels: int, k: int = 16, hidden: int = 128, out_channels: int = 64) -> None:
        super().__init__()
        self.head = DeepNCutsHead(in_channels, hidden, out_channels)
        self.ncut = NormalizedCut(k)

    def features(self, fused: torch.Tensor) -> torch.Tensor:
        return self.head(fused)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return self.ncut(self.head(fused))
