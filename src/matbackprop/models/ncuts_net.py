"""DeepNCuts trained end to end: backbone blocks -> hypercolumn -> normalized cuts (Ionescu et al. 2015).

The network. A backbone (VGG-16 with the HED weights, :mod:`matbackprop.models.hed`, or ImageNet
EfficientNet-Lite0, :mod:`matbackprop.models.backbone`) is a chain of blocks with strides ``s_b``. Each
block's output ``A_b`` is divided by a fixed scale ``r_b`` (its RMS over training images, so that no
block dominates at initialisation), projected by a 1x1 convolution ``P_b`` and resampled to a common
grid of stride ``t``; the hypercolumn ``H = ReLU(sum_b resample_t(P_b A_b / r_b))`` goes through a 1x1
convolution and a ReLU, giving non-negative node features ``F (N, d)`` for the normalized-cuts layer
with the linear affinity ``F F^T`` (:func:`matbackprop.ncut_embedding`). Every operation after the
backbone is pointwise, so the same weights run on any grid: stride 4 while training, stride 1 (every
pixel a node, 154,401 nodes on a BSDS image) at test time.

Resampling. A block coarser than the grid is upsampled bilinearly by its integer factor with
half-pixel centres and cropped (cell ``j`` of stride ``s`` covers pixels ``[s j, s j + s)``, so this
aligns cell centres exactly); a finer block is average-pooled (ceil mode, dividing by the pixels
inside the image). Both are linear, so resampling before or after ``P_b`` gives the same result: the
feature cache stores blocks finer than the training grid already pooled.

End to end. The last ``train_blocks`` backbone blocks are trained with the head; the blocks below are
frozen, and their outputs are cached once per image (:meth:`DeepNCutsNet.cacheable`), so a training
step runs only the trained blocks, the head and the layer. Batch-norm layers (EfficientNet) always
use their running statistics (batches hold one image).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from ..ops.ncut import ncut_embedding
from .hed import upsample_to

__all__ = ["NetConfig", "DeepNCutsNet", "BACKBONES", "build_backbone", "resample"]

#: Names accepted by :func:`build_backbone`.
BACKBONES = ("vgg16", "efficientnet-lite0")


@dataclass(frozen=True)
class NetConfig:
    """Architecture of :class:`DeepNCutsNet`.

    ``backbone``: ``"vgg16"`` (HED BSDS500 weights; blocks at strides 1, 2, 4, 8, 16) or
    ``"efficientnet-lite0"`` (ImageNet; strides 4, 8, 16, 32). ``train_blocks``: how many of the last
    backbone blocks are trained (0: frozen backbone, only the head is trained). ``k``: eigenvectors.
    ``hidden``/``out_channels``: widths of the hypercolumn and of the layer's features.
    ``grid_stride``: stride of the node grid while training (the cache is stored at this stride).
    """

    backbone: str = "vgg16"
    train_blocks: int = 2
    k: int = 16
    hidden: int = 64
    out_channels: int = 64
    grid_stride: int = 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Backbone(nn.Module):
    """A backbone as a chain of blocks with known strides and channels, plus its preprocessing."""

    def __init__(
        self,
        name: str,
        blocks: list[nn.Module],
        strides: tuple[int, ...],
        channels: tuple[int, ...],
        preprocess: Callable[[np.ndarray], torch.Tensor],
        extra: nn.ModuleDict | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.blocks = nn.ModuleList(blocks)
        self.strides = strides
        self.channels = channels
        self.preprocess = preprocess
        self.extra = extra  # HED's side outputs and fusion (VGG only); never trained

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> list[torch.Tensor]:
        out = []
        for block in self.blocks[start:stop]:
            x = block(x)
            out.append(x)
        return out

    def context(self, start: int) -> int:
        """Pixels of context around a window that blocks ``start..`` need, given the output of block
        ``start - 1`` on a larger window, for their outputs inside the window to equal those of the
        whole image: the receptive-field margin of their convolutions and poolings (an upper bound, summed
        in module order), rounded up to a multiple of the coarsest stride so that windows stay aligned
        with every block's cells. 0 when no block is run (``start`` past the last)."""
        if start >= len(self.blocks):
            return 0
        stride = self.strides[start - 1] if start > 0 else 1
        margin = 0
        for module in self.blocks[start:].modules():
            if isinstance(module, nn.Conv2d):
                margin += (_largest(module.kernel_size) - 1) // 2 * _largest(module.dilation) * stride
                stride *= _largest(module.stride)
            elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
                step = _largest(module.stride)
                margin += max(0, _largest(module.kernel_size) - step) * stride
                stride *= step
        unit = self.strides[-1]
        return -(-margin // unit) * unit


def _largest(value: int | Sequence[int]) -> int:
    """A convolution or pooling size given as an int or per dimension: its largest entry."""
    return value if isinstance(value, int) else max(value)


def build_backbone(name: str, pretrained: bool = True) -> _Backbone:
    """The backbone ``name`` (one of :data:`BACKBONES`) with its pretrained weights, in eval mode."""
    if name == "vgg16":
        from .hed import hed_vgg16, preprocess_bgr

        hed = hed_vgg16(pretrained=pretrained)
        extra = nn.ModuleDict({"sides": hed.sides, "fuse": hed.fuse})
        return _Backbone(name, list(hed.blocks), hed.block_strides, hed.block_channels, preprocess_bgr, extra).eval()
    if name == "efficientnet-lite0":
        from .backbone import efficientnet_lite0, preprocess

        eff = efficientnet_lite0(pretrained=pretrained)
        blocks = [nn.Sequential(eff.stem, eff.stages[0]), *eff.stages[1:]]
        return _Backbone(name, blocks, eff.out_strides, eff.out_channels, preprocess).eval()
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def resample(x: torch.Tensor, stride: int, target_stride: int, size: tuple[int, int]) -> torch.Tensor:
    """A map ``(B, C, h, w)`` on a stride-``stride`` grid, resampled to the stride-``target_stride`` grid of
    ``size = (ceil(H / target_stride), ceil(W / target_stride))`` cells (see the module docstring)."""
    if stride == target_stride:
        return x
    if stride > target_stride:
        f = stride // target_stride
        up = nnf.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)
        return up[..., : size[0], : size[1]]
    f = target_stride // stride
    return nnf.avg_pool2d(x, kernel_size=f, stride=f, ceil_mode=True)


def _grid(image_size: tuple[int, int], stride: int) -> tuple[int, int]:
    return (-(-image_size[0] // stride), -(-image_size[1] // stride))


class DeepNCutsNet(nn.Module):
    """Backbone blocks -> hypercolumn -> 1x1 conv + ReLU -> normalized cuts; see the module docstring.

    ``scales``: the RMS of each block's output over training images (:meth:`block_scales`).
    """

    scales: torch.Tensor

    def __init__(self, config: NetConfig, scales: list[float] | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, pretrained=pretrained)
        n = len(self.backbone.blocks)
        if not 0 <= config.train_blocks <= n:
            raise ValueError(f"train_blocks must be in 0..{n}, got {config.train_blocks}")
        first = n - config.train_blocks
        if first > 0 and self.backbone.strides[first - 1] < config.grid_stride:
            raise ValueError(
                f"{config.backbone}: training {config.train_blocks} blocks needs block {first}'s output at "
                f"its stride {self.backbone.strides[first - 1]}, finer than the grid stride {config.grid_stride}"
            )
        if config.grid_stride < self.backbone.strides[0]:
            raise ValueError(
                f"{config.backbone}: grid stride {config.grid_stride} is finer than the first block's "
                f"stride {self.backbone.strides[0]}"
            )
        self.first_trained = first
        # HED's heads stay pristine (the edges of the original network); not trained, not saved.
        self._edge_heads: list[nn.ModuleDict] = [self.backbone.extra] if self.backbone.extra is not None else []
        self.backbone.extra = None
        # Pristine copies of the trained blocks (not registered, not saved): the original HED edges and the
        # pretrained features that untrained/frozen models share (pristine_blocks) after fine-tuning.
        self._pristine = (
            [copy.deepcopy(self.backbone.blocks[first:]).requires_grad_(False)] if config.train_blocks else []
        )
        for i, block in enumerate(self.backbone.blocks):
            for p in block.parameters():
                p.requires_grad_(i >= first)
        self.register_buffer("scales", torch.tensor(scales if scales is not None else [1.0] * n, dtype=torch.float32))
        self.proj = nn.ModuleList(nn.Conv2d(c, config.hidden, kernel_size=1) for c in self.backbone.channels)
        self.mix = nn.Conv2d(config.hidden, config.out_channels, kernel_size=1)
        self.train(False)

    # ---------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> DeepNCutsNet:
        super().train(mode)
        self.backbone.eval()  # frozen blocks and every batch norm use running statistics
        return self

    def trainable_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """``(backbone parameters, head parameters)`` that are trained (two groups for two learning rates)."""
        bb = [p for p in self.backbone.parameters() if p.requires_grad]
        head = [*self.proj.parameters(), *self.mix.parameters()]
        return bb, head

    def state_dict_to_save(self) -> dict[str, torch.Tensor]:
        """The weights that differ from the pretrained backbone: trained blocks, head, scales."""
        keep = {f"backbone.blocks.{i}." for i in range(self.first_trained, len(self.backbone.blocks))}
        return {
            k: v
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.") or any(k.startswith(p) for p in keep)
        }

    # ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def cacheable(self, image: np.ndarray) -> list[torch.Tensor]:
        """Outputs of every block of the pristine backbone ``(C_b, h_b, w_b)`` for an RGB ``uint8`` image,
        blocks finer than the grid average-pooled to it: what the training cache stores."""
        x = self.backbone.preprocess(image).unsqueeze(0)
        blocks = self._pristine_run(x)
        size = _grid(image.shape[:2], self.config.grid_stride)
        out = []
        for a, s in zip(blocks, self.backbone.strides):
            out.append((resample(a, s, self.config.grid_stride, size) if s < self.config.grid_stride else a)[0])
        return out

    def _pristine_run(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = self.backbone.run(x, 0, self.first_trained)
        if self._pristine:
            outs += [*_run_list(self._pristine[0], outs[-1] if outs else x)]
        else:
            outs += self.backbone.run(outs[-1] if outs else x, self.first_trained)
        return outs

    def block_scales(self, cached: list[list[torch.Tensor]]) -> list[float]:
        """RMS of each block over cached images (a list of :meth:`cacheable` outputs)."""
        sums = np.zeros(len(self.backbone.blocks))
        for blocks in cached:
            sums += [float(b.float().pow(2).mean()) for b in blocks]
        return [float(v) for v in np.sqrt(sums / max(len(cached), 1))]

    def context(self) -> int:
        """Pixels of context the trained blocks need around a training window (:meth:`blocks_from_cache`
        with ``window``) to compute exactly what they compute on the whole image; 0 for a frozen backbone."""
        return self.backbone.context(self.first_trained)

    def blocks_from_cache(
        self, cached: list[torch.Tensor], window: tuple[int, int, int, int] | None = None
    ) -> list[torch.Tensor]:
        """All block outputs ``(1, C_b, h, w)`` for training: the frozen ones from the cache, the trained
        ones computed (with gradients) from the last frozen output.

        ``window = (top, left, height, width)`` in pixels: the cached blocks cover a larger area (the
        window and its :meth:`context`), the trained blocks run on all of it and every block is then cut
        to the window, so that no trained block sees the zero padding of a crop border. ``top`` and
        ``left`` must be multiples of the coarsest stride."""
        frozen = [c.unsqueeze(0).float() for c in cached[: self.first_trained]]
        if self.first_trained == 0 and len(cached) > 0:
            raise ValueError("training every block needs the image, not the cache")
        blocks = (
            frozen + self.backbone.run(frozen[-1], self.first_trained) if self.first_trained < len(cached) else frozen
        )
        if window is None:
            return blocks
        top, left, height, width = window
        strides = self.cached_strides()
        if top % strides[-1] or left % strides[-1]:
            raise ValueError(f"window offsets ({top}, {left}) must be multiples of the coarsest stride {strides[-1]}")
        return [
            b[..., top // s : top // s + -(-height // s), left // s : left // s + -(-width // s)]
            for b, s in zip(blocks, strides)
        ]

    def node_features(
        self, blocks: list[torch.Tensor], strides: list[int], stride: int, size: tuple[int, int]
    ) -> torch.Tensor:
        """Non-negative features ``(B, d, h, w)`` on the stride-``stride`` grid of ``size`` cells from the
        block outputs ``blocks[b]`` given on grids of stride ``strides[b]``."""
        total = None
        for b, (a, s) in enumerate(zip(blocks, strides)):
            y = resample(self.proj[b](a / self.scales[b]), s, stride, size)
            total = y if total is None else total + y
        assert total is not None
        return torch.relu(self.mix(torch.relu(total)))

    def cached_strides(self) -> list[int]:
        """Stride of each cached block: its own, or the grid's where it is finer (pre-pooled)."""
        return [max(s, self.config.grid_stride) for s in self.backbone.strides]

    def forward(self, cached: list[torch.Tensor], window: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Training forward: the cached blocks of one image (:meth:`cacheable`, possibly cropped; with
        ``window``, cut to it after the trained blocks, see :meth:`blocks_from_cache`) -> embedding
        ``Z (1, N, k)`` on the stride-``grid_stride`` grid of the window, ``N = h w``."""
        blocks = self.blocks_from_cache(cached, window)
        size = (blocks[0].shape[-2], blocks[0].shape[-1])  # block 0 is at the grid stride (checked at init)
        F = self.node_features(blocks, self.cached_strides(), self.config.grid_stride, size)
        Z = ncut_embedding(F.flatten(2).transpose(1, 2), self.config.k)
        assert isinstance(Z, torch.Tensor)
        return Z

    # ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, image: np.ndarray, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Inference on an RGB ``uint8`` image ``(H, W, 3)``: ``(eigenvalues (k,), Z (h, w, k), edges)``.

        ``Z`` is the normalized-cuts embedding (generalised eigenvectors ``D^{-1/2} U_k``) on the grid of
        stride ``stride`` (1: every pixel), ``eigenvalues`` the top-``k`` eigenvalues of
        ``D^{-1/2} W D^{-1/2}`` (descending, at most 1), ``edges`` the pristine HED edge probability
        ``(H, W)`` (VGG only; ``None`` otherwise).
        """
        pristine = self.pristine_blocks(image)
        ev, Z = self.embed_from_pristine(pristine, image, stride)
        return ev, Z, self.hed_edges(pristine, (image.shape[0], image.shape[1]))

    @torch.no_grad()
    def pristine_blocks(self, image: np.ndarray) -> list[torch.Tensor]:
        """Every block's output ``(1, C_b, h_b, w_b)`` of the pretrained (untrained) backbone. Models with
        the same backbone share these: :meth:`embed_from_pristine` adds the model's own trained blocks."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"embed: expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
        return self._pristine_run(self.backbone.preprocess(image).unsqueeze(0))

    @torch.no_grad()
    def embed_from_pristine(
        self, pristine: list[torch.Tensor], image: np.ndarray, stride: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eigenvalues (k,), Z (h, w, k))`` from :meth:`pristine_blocks` of ``image`` (of any model with
        this backbone): the frozen blocks are taken as they are, the trained ones recomputed."""
        first = self.first_trained
        if first == len(pristine):
            blocks = pristine
        elif first > 0:
            blocks = pristine[:first] + self.backbone.run(pristine[first - 1], first)
        else:
            blocks = self.backbone.run(self.backbone.preprocess(image).unsqueeze(0))
        size = _grid(image.shape[:2], stride)
        F = self.node_features(blocks, list(self.backbone.strides), stride, size)
        Z, ev = ncut_embedding(F.flatten(2).transpose(1, 2), self.config.k, return_eigenvalues=True)
        return ev[0], Z[0].reshape(size[0], size[1], -1)

    @torch.no_grad()
    def hed_edges(self, pristine: list[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor | None:
        """HED's fused edge probability ``(H, W)`` from the pristine blocks (VGG only, else ``None``):
        side logits upsampled to the image, fused, sigmoid (see :mod:`matbackprop.models.hed`)."""
        if not self._edge_heads:
            return None
        heads = self._edge_heads[0]
        side_convs = heads["sides"]
        assert isinstance(side_convs, nn.ModuleList)
        sides = [upsample_to(side(f), hw) for side, f in zip(side_convs, pristine)]
        return torch.sigmoid(heads["fuse"](torch.cat(sides, dim=1)))[0, 0]

    @torch.no_grad()
    def hed_edges_at_scale(self, image: np.ndarray, scale: float) -> torch.Tensor | None:
        """HED's fused edge probability ``(H, W)`` of an RGB ``uint8`` image whose preprocessed input is
        resized by ``scale`` (bilinear) before the pristine backbone; the side outputs are read back at
        the image's own size. ``None`` without an edge output (VGG only)."""
        if not self._edge_heads:
            return None
        if not scale > 0:
            raise ValueError(f"hed_edges_at_scale: scale must be positive, got {scale}")
        x = self.backbone.preprocess(np.asarray(image)).unsqueeze(0)
        if scale != 1.0:
            x = nnf.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        return self.hed_edges(self._pristine_run(x), (image.shape[0], image.shape[1]))


def _run_list(blocks: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for block in blocks:
        x = block(x)
        out.append(x)
    return out
