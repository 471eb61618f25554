"""DeepO2P region classification on MSRC-v2 (Ionescu, Vantzos & Sminchisescu, ICCV 2015, sec. 6.2).

Every labelled region of an image is classified from a descriptor pooled inside its mask over the
stride-16 features of an ImageNet EfficientNet-Lite0 (the output of block 10, 112 channels, a 15x20
grid for the 240x320 input every image is resized to). Five models (``models.deepo2p.MODEL_KINDS``):

1. ``avg``: masked mean of the 1x1-conv-reduced features + linear classifier, end to end;
2. ``o2p_frozen``: classic O2P -- frozen backbone, fixed PCA reduction to ``c`` channels, ``log``
   second-order pooling, only the classifier trains;
3. ``deepo2p``: the same O2P (``log``) trained end to end through matrix backpropagation;
4. ``deepo2p_sqrt``: as 3 with the ``sqrt`` normalisation;
5. ``deepo2p_fc2``: as 3 with two fully connected layers after pooling.

Modules, one job each: :mod:`~matbackprop.experiments.msrc_o2p.config` (the typed :class:`~matbackprop.experiments.msrc_o2p.config.O2PConfig` / :class:`~matbackprop.experiments.msrc_o2p.config.EvalConfig`, constants,
ablations), :mod:`~matbackprop.experiments.msrc_o2p.features` (images -> keyed cache of frozen features, PCA init), :mod:`~matbackprop.experiments.msrc_o2p.pipeline`
(batches, model, one training run, every run), :mod:`~matbackprop.experiments.msrc_o2p.timing` (step timing of the ablations),
:mod:`~matbackprop.experiments.msrc_o2p.report` (aggregate, figures, generated Markdown), :mod:`~matbackprop.experiments.msrc_o2p.cli` (options -> configs; wired as
``matbackprop train o2p`` / ``matbackprop eval o2p``; ``train --all`` runs every model x 3 seeds, the
DeepO2P ablations, then the evaluation).
"""

from __future__ import annotations

from .cli import add_eval_arguments, add_train_arguments, config_from_args, eval_config_from_args, evaluate, train
from .config import ABLATIONS, SPLIT_FILE, EvalConfig, O2PConfig, run_name
from .pipeline import all_configs, run_all, train_one
from .report import GENERATED_BEGIN, GENERATED_END, write_report

__all__ = [
    "O2PConfig",
    "EvalConfig",
    "add_train_arguments",
    "add_eval_arguments",
    "config_from_args",
    "eval_config_from_args",
    "train",
    "evaluate",
    "train_one",
    "run_all",
    "all_configs",
    "write_report",
    "run_name",
    "SPLIT_FILE",
    "ABLATIONS",
    "GENERATED_BEGIN",
    "GENERATED_END",
]
