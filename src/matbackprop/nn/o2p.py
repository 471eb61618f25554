from __future__ import annotations

import torch
from torch import nn

from ..ops.o2p import second_order_pooling


class SecondOrderPooling(nn.Module):
    """Second-order pooling with a matrix normalisation (O2P / DeepO2P).

    ``forward(features (B, C, H, W), masks (B, R, H, W) | None)`` returns ``(B, R, C, C)`` or
    ``(B, R, C(C+1)/2)``; see :func:`matbackprop.second_order_pooling` for the options.
    """

    def __init__(
        self,
        eps: float = 1e-3,
        normalization: str = "log",
        *,
        p: float = 0.5,
        route: str = "eig",
        centered: bool = False,
        output: str = "matrix",
        spectral_dtype: torch.dtype | None = None,
        num_iters: int = 10,
    ) -> None:
        super().__init__()
        self.options = dict(
            eps=eps, normalization=normalization, p=p, route=route, centered=centered, output=output,
            spectral_dtype=spectral_dtype, num_iters=num_iters,
        )

    def forward(self, features: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        return second_order_pooling(features, masks, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options.items())
