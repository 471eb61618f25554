"""Typed configuration of the DeepNCuts training run, and its command-line options.

The command line builds one :class:`NCutsTrainConfig` (:func:`config_from_args`); everything below the
CLI takes the config, never an ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ...data.locations import data_dir
from ...models.ncuts_net import BACKBONES, NetConfig

__all__ = [
    "NCutsTrainConfig",
    "add_train_arguments",
    "config_from_args",
    "DEFAULT_DATA",
    "DEFAULT_OUT",
    "QUICK_TRAIN_IMAGES",
    "QUICK_EPOCHS",
    "QUICK_VAL_IMAGES",
]

DEFAULT_DATA = str(data_dir("bsds500"))  # $BSDS500, else ../shared/bsds500 beside the project root
DEFAULT_OUT = "runs/ncuts"
QUICK_TRAIN_IMAGES, QUICK_EPOCHS, QUICK_VAL_IMAGES = 40, 4, 5


@dataclass(frozen=True)
class NCutsTrainConfig:
    """One DeepNCuts training run (one seed).

    Data: ``data`` (folder holding ``BSDS500/``), ``train_split`` (``train`` or ``trainval``),
    ``limit`` (first N images of each training split), ``val_images`` (first N val images scored each
    epoch for the val loss; 0: none). Network: see :class:`~matbackprop.models.ncuts_net.NetConfig`.
    Optimisation: Adam, ``lr`` for the head and ``backbone_lr`` for the trained backbone blocks, gradient
    norm clipped at ``max_grad_norm``; ``crop``: side in pixels of the random square crop each step
    trains on (0: the whole image), with random horizontal flips; ``batch_size`` images per step.
    ``boundary_weight``: weight of :func:`.boundary_loss.boundary_ranking_loss` added to the projector
    loss (the table's protocol: 10, chosen on val among 1, 10 and 30; 0: the projector loss alone).
    ``exact_crops`` (the table's protocol): the trained blocks run on the crop grown by the context their
    receptive field needs (:meth:`~matbackprop.models.ncuts_net.DeepNCutsNet.context`, 80 pixels for
    conv4 + conv5) and are then cut to it, and their input is never mirrored: they compute on each crop
    what they compute on the whole image at test time. Off (the end-to-end runs before it existed), they
    run on the bare crop (about 40% relative error in conv4/conv5 against the whole image, from the zero
    padding at its borders) and on mirrored features no image produces. A run that trains no backbone
    block is the same either way (its 1x1 head commutes with the crop and the flip).
    ``init_from``: a finished run folder (holding ``model.pt``, same backbone and head widths) whose head,
    block scales and trained blocks start this run instead of the random head, e.g. the frozen-backbone
    run: the head is fitted first on fixed features, then the network is trained end to end.
    Output: ``out/seed<seed>/``; the feature cache under ``cache`` (default ``out/cache``).
    """

    data: str = DEFAULT_DATA
    out: str = DEFAULT_OUT
    cache: str | None = None
    seed: int = 0
    epochs: int = 6
    train_split: str = "train"
    limit: int | None = None
    val_images: int = 20
    backbone: str = "vgg16"
    train_blocks: int = 2
    k: int = 16
    hidden: int = 64
    out_channels: int = 64
    grid_stride: int = 4
    lr: float = 1e-3
    backbone_lr: float = 1e-5
    crop: int = 192
    batch_size: int = 1
    max_grad_norm: float = 10.0
    threads: int | None = None
    resume: bool = False
    checkpoint_every: int | None = None
    skip_corrupt: bool = False
    stop_on_nonfinite: bool = False
    max_consecutive_skips: int = 20
    init_from: str | None = None
    boundary_weight: float = 10.0
    exact_crops: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.train_split not in ("train", "trainval"):
            raise ValueError(f"train_split must be 'train' or 'trainval', got {self.train_split!r}")
        if self.crop and self.crop % 16:
            raise ValueError(f"crop must be a multiple of 16 pixels (the coarsest block's stride), got {self.crop}")
        for name in ("epochs", "val_images", "crop", "boundary_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def net(self) -> NetConfig:
        return NetConfig(
            backbone=self.backbone,
            train_blocks=self.train_blocks,
            k=self.k,
            hidden=self.hidden,
            out_channels=self.out_channels,
            grid_stride=self.grid_stride,
        )

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / f"seed{self.seed}"

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "cache"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def with_(self, **changes: Any) -> NCutsTrainConfig:
        return replace(self, **changes)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``matbackprop train ncuts`` (one per :class:`NCutsTrainConfig` field, plus ``--quick``)."""
    d = NCutsTrainConfig()
    parser.add_argument("--data", default=d.data, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument(
        "--out", default=d.out, help="run directory; the seed's run lands in OUT/seed<S> (default: %(default)s)"
    )
    parser.add_argument("--cache", default=None, help="feature-cache folder, shared by runs (default: OUT/cache)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--epochs", type=int, default=d.epochs, help="0 saves the model at initialisation")
    parser.add_argument("--train-split", default=d.train_split, choices=["train", "trainval"])
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="train on the first N images of each split only (overrides --quick's 40)",
    )
    parser.add_argument(
        "--val-images",
        type=int,
        default=d.val_images,
        help="val images scored for the val loss after each epoch (default: %(default)s)",
    )
    parser.add_argument("--backbone", default=d.backbone, choices=list(BACKBONES))
    parser.add_argument(
        "--train-blocks",
        type=int,
        default=d.train_blocks,
        help="last backbone blocks trained end to end (0: frozen backbone; default: %(default)s = "
        "conv4 and conv5 of VGG-16)",
    )
    parser.add_argument("--k", type=int, default=d.k, help="eigenvectors in the embedding")
    parser.add_argument("--hidden", type=int, default=d.hidden, help="hypercolumn width")
    parser.add_argument("--out-channels", type=int, default=d.out_channels, help="features of the NCuts layer")
    parser.add_argument(
        "--grid-stride",
        type=int,
        default=d.grid_stride,
        choices=[4, 8, 16],
        help="node grid of the NCuts layer while training (test time: every pixel)",
    )
    parser.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate of the head")
    parser.add_argument("--backbone-lr", type=float, default=d.backbone_lr, help="of the trained backbone blocks")
    parser.add_argument(
        "--crop", type=int, default=d.crop, help="random square crop (pixels, multiple of 16; 0: whole image)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"quick configuration: {QUICK_TRAIN_IMAGES} training images, {QUICK_EPOCHS} epochs, "
        f"{QUICK_VAL_IMAGES} val images",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="RUN_DIR",
        help="start from this finished run's head, block scales and trained blocks (its model.pt; same "
        "backbone and widths) instead of a random head, e.g. the frozen-backbone run",
    )
    parser.add_argument(
        "--boundary-weight",
        type=float,
        default=d.boundary_weight,
        help="weight of the grid-edge ranking loss added to the projector loss (0: projector loss only; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--exact-crops",
        action=argparse.BooleanOptionalAction,
        default=d.exact_crops,
        help="run the trained blocks on each crop plus the context their receptive field needs, and never "
        "mirror their input, so training sees the features of the whole image; --no-exact-crops: the bare "
        "crop, the protocol of the end-to-end runs trained before this option (default: on)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="images per step (the loss is their mean); under torchrun the global batch (default: %(default)s)",
    )
    add_robustness_arguments(parser)


def add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    """Crash-safety options shared by the training commands (see docs/training.md)."""
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="also checkpoint every STEPS steps inside an epoch, so --resume continues "
        "mid-epoch (default: at epoch ends only)",
    )
    parser.add_argument(
        "--skip-corrupt",
        action="store_true",
        help="leave out samples whose image or annotation file is corrupt (counted in the "
        "training log) instead of stopping with an error naming the file",
    )
    parser.add_argument(
        "--stop-on-nonfinite",
        action="store_true",
        help="stop at the first non-finite loss or gradient (default: skip that step, logged)",
    )
    parser.add_argument(
        "--max-consecutive-skips",
        type=int,
        default=20,
        metavar="N",
        help="stop after N non-finite steps in a row (default: %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> NCutsTrainConfig:
    """The config of a parsed ``train ncuts`` command line (``--quick`` resolved here)."""
    values = {f.name: getattr(args, f.name) for f in fields(NCutsTrainConfig) if hasattr(args, f.name)}
    if getattr(args, "quick", False):
        if values.get("limit") is None:
            values["limit"] = QUICK_TRAIN_IMAGES
        values["epochs"] = min(values["epochs"], QUICK_EPOCHS)
        values["val_images"] = min(values["val_images"], QUICK_VAL_IMAGES)
    return NCutsTrainConfig(**values)
