"""Second-order pooling layer (O2P / DeepO2P)."""

from __future__ import annotations

import torch
from torch import nn

from ..ops.o2p import second_order_pooling

__all__ = ["SecondOrderPooling"]


class SecondOrderPooling(nn.Module):
    """Second-order pooling with a matrix normalisation (O2P / DeepO2P).

    ``forward(features (B, C, H, W), masks (B, R, H, W) | None)`` returns ``(B, R, C, C)`` or
    ``(B, R, C(C+1)/2)``; see :func:`matbackprop.second_order_pooling` for the options, ``check`` included.

    Example:
        >>> import torch
        >>> from matbackprop.nn import SecondOrderPooling
        >>> pool = SecondOrderPooling(normalization="log", output="triu")
        >>> features = torch.rand(2, 8, 12, 12, requires_grad=True)   # (B, C, H, W)
        >>> masks = torch.ones(2, 3, 12, 12)                            # (B, R, H, W)
        >>> y = pool(features, masks)
        >>> y.shape                                                     # (B, R, C (C + 1) / 2)
        torch.Size([2, 3, 36])
        >>> y.sum().backward(); features.grad.isfinite().all().item()
        True
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
        check: bool = True,
    ) -> None:
        super().__init__()
        self.options = dict(
            eps=eps,
            normalization=normalization,
            p=p,
            route=route,
            centered=centered,
            output=output,
            spectral_dtype=spectral_dtype,
            num_iters=num_iters,
            check=check,
        )

    def forward(self, features: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        return second_order_pooling(features, masks, **self.options)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options.items())
