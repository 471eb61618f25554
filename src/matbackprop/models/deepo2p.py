"""Region classifiers for the DeepO2P experiment (Ionescu, Vantzos & Sminchisescu, ICCV 2015, sec. 6.2).

A network maps a feature map of an image to one descriptor per labelled region and classifies it:

    x (B, C_in, h, w)  --trunk-->  (B, C_t, h, w)  --1x1 conv-->  f (B, c, h, w)
    f, soft region masks (N, h, w), image index (N,)  --pooling-->  (N, D)  --head-->  logits (N, K)

``trunk`` is the trainable tail of a pretrained backbone (an ``nn.Sequential`` of its blocks, possibly
empty); ``pooling`` is first-order (the masked mean, ``D = c``) or second-order (O2P with the ``log``
or ``sqrt`` matrix normalisation, ``D = c (c + 1) / 2``, the upper triangle of the normalised matrix);
the head is a batch-norm (no affine part, it only standardises the very differently scaled descriptor
entries) followed by one linear layer or by two fully connected layers.

Regions of different images are pooled in one call: each region gathers its image's feature map by
``index``, so a batch may hold any number of regions per image. Nothing here reads data or files.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import SecondOrderPooling
from ..ops.o2p import region_weights

__all__ = [
    "MODEL_KINDS",
    "RegionPooling",
    "RegionHead",
    "RegionClassifier",
    "build_region_classifier",
]

#: The five models of the experiment: pooling, normalisation, head, and whether the features train.
MODEL_KINDS: dict[str, dict] = {
    "avg": dict(pooling="avg", normalization=None, head="linear", end_to_end=True),
    "o2p_frozen": dict(pooling="o2p", normalization="log", head="linear", end_to_end=False),
    "deepo2p": dict(pooling="o2p", normalization="log", head="linear", end_to_end=True),
    "deepo2p_sqrt": dict(pooling="o2p", normalization="sqrt", head="linear", end_to_end=True),
    "deepo2p_fc2": dict(pooling="o2p", normalization="log", head="fc2", end_to_end=True),
}


class RegionPooling(nn.Module):
    """Pool ``features (B, c, h, w)`` in soft ``masks (N, h, w)`` of images ``index (N,)`` -> ``(N, D)``.

    ``kind="avg"``: the mask-weighted mean, ``D = c``. ``kind="o2p"``: second-order pooling
    (:class:`matbackprop.nn.SecondOrderPooling`, uncentred second moment + ``eps I``, then ``log`` or
    ``sqrt``), vectorised as the upper triangle, ``D = c (c + 1) / 2``.
    """

    def __init__(
        self,
        channels: int,
        kind: str = "o2p",
        *,
        normalization: str = "log",
        eps: float = 1e-2,
        route: str = "eig",
        spectral_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("avg", "o2p"):
            raise ValueError(f"RegionPooling: kind must be 'avg' or 'o2p', got {kind!r}")
        self.kind = kind
        self.channels = channels
        self.o2p = (
            SecondOrderPooling(eps, normalization, route=route, output="triu", spectral_dtype=spectral_dtype)
            if kind == "o2p"
            else None
        )

    @property
    def out_features(self) -> int:
        return self.channels if self.kind == "avg" else self.channels * (self.channels + 1) // 2

    def forward(self, features: torch.Tensor, masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        per_region = features.index_select(0, index)  # (N, c, h, w): each region sees its own image
        if self.o2p is None:  # kind == "avg"
            w = region_weights(masks).to(features.dtype)  # (N, h, w), sums to one per region
            return torch.einsum("nchw,nhw->nc", per_region, w)
        return self.o2p(per_region, masks.unsqueeze(1)).squeeze(1)  # (N, D)


class RegionHead(nn.Module):
    """Descriptor ``(N, D)`` -> logits ``(N, K)``: batch-norm without affine part, then ``"linear"``
    (one layer) or ``"fc2"`` (``Linear(D, hidden)``, ReLU, dropout, ``Linear(hidden, K)``)."""

    def __init__(
        self, in_features: int, num_classes: int, kind: str = "linear", hidden: int = 256, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False)
        if kind == "linear":
            self.classifier: nn.Module = nn.Linear(in_features, num_classes)
        elif kind == "fc2":
            self.classifier = nn.Sequential(
                nn.Linear(in_features, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            raise ValueError(f"RegionHead: kind must be 'linear' or 'fc2', got {kind!r}")

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(descriptors))


class RegionClassifier(nn.Module):
    """``trunk`` -> 1x1 ``reduce`` conv -> :class:`RegionPooling` -> :class:`RegionHead`.

    ``forward(x (B, C_in, h, w), masks (N, h, w), index (N,)) -> logits (N, K)``.

    The batch-norm layers of ``trunk`` always run in eval mode (their running statistics stay the
    pretrained ones: with a few images per batch, batch statistics would be noisy); their affine
    parameters still train. ``freeze_features()`` freezes trunk and ``reduce`` (classic O2P).
    """

    def __init__(self, trunk: nn.Module, reduce: nn.Conv2d, pooling: RegionPooling, head: RegionHead) -> None:
        super().__init__()
        self.trunk = trunk
        self.reduce = reduce
        self.pooling = pooling
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled local features ``(B, c, h, w)``."""
        return self.reduce(self.trunk(x))

    def descriptors(self, x: torch.Tensor, masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Region descriptors ``(N, D)`` before the head."""
        return self.pooling(self.features(x), masks, index)

    def forward(self, x: torch.Tensor, masks: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.head(self.descriptors(x, masks, index))

    def freeze_features(self) -> RegionClassifier:
        for p in [*self.trunk.parameters(), *self.reduce.parameters()]:
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> RegionClassifier:
        super().train(mode)
        for m in self.trunk.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self


def build_region_classifier(
    kind: str,
    trunk: nn.Module,
    trunk_channels: int,
    num_classes: int,
    *,
    channels: int = 64,
    eps: float = 1e-2,
    route: str = "eig",
    spectral_dtype: torch.dtype | None = None,
    reduce_init: tuple[torch.Tensor, torch.Tensor] | None = None,
    hidden: int = 256,
    dropout: float = 0.3,
) -> RegionClassifier:
    """One of :data:`MODEL_KINDS` on ``trunk`` (output ``trunk_channels``).

    ``reduce_init = (weight (c, C_t), bias (c,))`` initialises the 1x1 conv (e.g. a PCA projection);
    otherwise it keeps PyTorch's default initialisation. ``o2p_frozen`` comes back with the trunk and the
    1x1 conv frozen.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose from {sorted(MODEL_KINDS)}")
    spec = MODEL_KINDS[kind]
    reduce = nn.Conv2d(trunk_channels, channels, kernel_size=1)
    if reduce_init is not None:
        weight, bias = reduce_init
        with torch.no_grad():
            reduce.weight.copy_(weight.reshape(channels, trunk_channels, 1, 1))
            assert reduce.bias is not None  # Conv2d has a bias by default
            reduce.bias.copy_(bias)
    pooling = RegionPooling(
        channels,
        spec["pooling"],
        normalization=spec["normalization"] or "log",
        eps=eps,
        route=route,
        spectral_dtype=spectral_dtype,
    )
    head = RegionHead(pooling.out_features, num_classes, spec["head"], hidden=hidden, dropout=dropout)
    model = RegionClassifier(trunk, reduce, pooling, head)
    return model if spec["end_to_end"] else model.freeze_features()
