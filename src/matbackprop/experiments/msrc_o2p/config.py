"""The typed configuration of a DeepO2P run on MSRC-v2, the experiment's constants and its ablations.

The command line (:mod:`~matbackprop.experiments.msrc_o2p.cli`) builds an :class:`~matbackprop.experiments.msrc_o2p.config.O2PConfig` (one training run) and an
:class:`~matbackprop.experiments.msrc_o2p.config.EvalConfig` (where the aggregate goes); every other function takes these, never parsed options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...data.locations import data_dir

__all__ = [
    "O2PConfig",
    "EvalConfig",
    "run_name",
    "SPLIT_FILE",
    "IMAGE_SIZE",
    "FEATURE_STRIDE",
    "FEATURE_END",
    "FEATURE_CHANNELS",
    "SEEDS",
    "DEFAULT_EPS",
    "HEAD_LR",
    "STRESS_EPS",
    "ABLATIONS",
    "TITLES",
    "QUICK_IMAGES",
]

#: The split file, as recorded in ``results/msrc_v2.json`` (relative to the project root).
SPLIT_FILE = "src/matbackprop/data/splits/msrc_v2_split.json"
IMAGE_SIZE = (240, 320)  # (H, W); most MSRC-v2 images are 213x320 or 240x320
FEATURE_STRIDE = 16
FEATURE_END = 11  # the features are the output of block 10 (end of the stride-16 stage, 112 channels)
FEATURE_CHANNELS = 112
SEEDS = (0, 1, 2)
DEFAULT_EPS = 0.3  # chosen on a validation split of the training images with model (2)
#: Head learning rate per model, the better of {1e-3, 1e-2} on the validation split (``--validation``).
HEAD_LR: dict[str, float] = {
    "avg": 1e-2,
    "o2p_frozen": 1e-3,
    "deepo2p": 1e-3,
    "deepo2p_sqrt": 1e-3,
    "deepo2p_fc2": 1e-3,
}
STRESS_EPS = 1e-3  # a ridge 300x smaller: ill-conditioned pooled matrices, a harder test of float32
#: Ablations of DeepO2P (3): run name -> options; "deepo2p" itself is eig + float32 at the default eps.
#: ``seeds=None``: the seeds of ``--seeds``; the stress variants at ``STRESS_EPS`` run with seed 0 only.
ABLATIONS: dict[str, dict[str, Any]] = {
    "deepo2p": dict(route="eig", spectral_dtype="float32", eps=DEFAULT_EPS, seeds=None),
    "deepo2p-svd": dict(route="svd", spectral_dtype="float32", eps=DEFAULT_EPS, seeds=None),
    "deepo2p-f64": dict(route="eig", spectral_dtype="float64", eps=DEFAULT_EPS, seeds=None),
    "deepo2p-eps0.001": dict(route="eig", spectral_dtype="float32", eps=STRESS_EPS, seeds=(0,)),
    "deepo2p-svd-eps0.001": dict(route="svd", spectral_dtype="float32", eps=STRESS_EPS, seeds=(0,)),
    "deepo2p-f64-eps0.001": dict(route="eig", spectral_dtype="float64", eps=STRESS_EPS, seeds=(0,)),
}
TITLES = {
    "avg": "(1) average pooling, end to end",
    "o2p_frozen": "(2) O2P (log), frozen features",
    "deepo2p": "(3) DeepO2P (log), end to end",
    "deepo2p_sqrt": "(4) DeepO2P (sqrt), end to end",
    "deepo2p_fc2": "(5) DeepO2P (log) + 2 FC, end to end",
}
QUICK_IMAGES = {"train": 12, "test": 8}


def run_name(model: str, route: str = "eig", spectral_dtype: str = "float32", eps: float = DEFAULT_EPS) -> str:
    """Directory name of a configuration: the model, plus ``-svd`` / ``-f64`` / ``-eps<eps>`` for
    non-default options."""
    return (
        model
        + ("-svd" if route == "svd" else "")
        + ("-f64" if spectral_dtype == "float64" else "")
        + ("" if eps == DEFAULT_EPS else f"-eps{eps:g}")
    )


def _default_data() -> str:
    return str(data_dir("msrc_v2"))


@dataclass(frozen=True)
class O2PConfig:
    """One training run of ``matbackprop train o2p`` (the defaults are the command's defaults)."""

    data: str = dataclasses.field(default_factory=_default_data)  # MSRC-v2 region dataset folder
    out: str = "runs/o2p"  # run directory: checkpoints, logs, feature cache
    model: str = "deepo2p"  # a key of models.deepo2p.MODEL_KINDS
    seed: int = 0
    epochs: int | None = None  # None: 10 (1 with quick)
    route: str = "eig"  # O2P spectral route: "eig" or "svd"
    spectral_dtype: str = "float32"  # dtype of pooling + spectral step: "float32" or "float64"
    resume: bool = False
    quick: bool = False  # 12 train / 8 test images, 1 epoch
    trainable_blocks: int = 3  # last MBConv blocks of the stride-16 stage trained end to end (0..6)
    channels: int = 64  # c: channels after the 1x1 conv
    eps: float = DEFAULT_EPS  # O2P ridge (features have unit mean variance)
    batch_size: int = 8  # images per batch
    lr: float | None = None  # head learning rate; None: HEAD_LR[model]
    features_lr: float = 1e-4  # learning rate of the trained backbone blocks and the 1x1 conv
    weight_decay: float = 1e-2
    validation: bool = False  # hold out every 5th training image and report on it (runs go to <out>/val)
    eval_every: int = 2  # evaluate every k epochs (and at the end)
    threads: int = 1  # torch CPU threads

    def __post_init__(self) -> None:
        if self.route not in ("eig", "svd"):
            raise ValueError(f"route must be 'eig' or 'svd', got {self.route!r}")
        if self.spectral_dtype not in ("float32", "float64"):
            raise ValueError(f"spectral_dtype must be 'float32' or 'float64', got {self.spectral_dtype!r}")
        if not 0 <= self.trainable_blocks <= 6:
            raise ValueError(f"trainable_blocks must be in 0..6, got {self.trainable_blocks}")

    @property
    def name(self) -> str:
        """The run's configuration name (:func:`run_name`)."""
        return run_name(self.model, self.route, self.spectral_dtype, self.eps)

    @property
    def run_dir(self) -> Path:
        """``<out>/runs/<name>/seed<seed>`` (``<out>/val/...`` with ``validation``)."""
        return Path(self.out) / ("val" if self.validation else "runs") / self.name / f"seed{self.seed}"

    @property
    def num_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (1 if self.quick else 10)

    @property
    def head_lr(self) -> float:
        return self.lr if self.lr is not None else HEAD_LR[self.model]

    def record(self) -> dict[str, Any]:
        """What ``config.json`` of the run holds."""
        keys = ("model", "seed", "route", "spectral_dtype", "quick", "trainable_blocks", "channels", "eps",
                "batch_size", "features_lr", "weight_decay", "validation", "data")  # fmt: skip
        return {k: getattr(self, k) for k in keys} | {
            "lr": self.head_lr,
            "epochs": self.num_epochs,
            "image_size": list(IMAGE_SIZE),
            "feature": "EfficientNet-Lite0 block 10 (stride 16, 112 ch)",
        }


@dataclass(frozen=True)
class EvalConfig:
    """Where ``matbackprop eval o2p`` reads the runs and writes the aggregate."""

    out: str = "runs/o2p"  # run directory written by train
    results: str = "results/msrc_v2.json"  # JSON summary
    markdown: str = "docs/results_msrc_v2.md"  # Markdown file whose generated section is (re)written
    figures: str = "docs/figures"  # folder for the msrc_*.png figures
