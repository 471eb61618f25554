"""DeepNCuts on BSDS500 (issue 11): VGG-16 (HED weights) trained end to end through the NCuts layer.

Modules: :mod:`.config` (the typed run configuration and its command-line options), :mod:`.features`
(the keyed cache of frozen-backbone outputs), :mod:`.training` (the training pipeline, resumable),
:mod:`.boundary_loss` (the optional grid-edge ranking loss beside the projector loss, and the edge AUC),
:mod:`.inference` (:func:`load_model`, :func:`embed_image`: a trained run applied to any image at full
resolution), and the UCM-based evaluation (:mod:`.evaluate`, tables and figures in :mod:`.report`, the
choices made on val in :mod:`.hierarchy_choice` and :mod:`.combination`, the validity of the per-image
score cache in :mod:`.cache_validity`).

``matbackprop train ncuts`` builds a :class:`NCutsTrainConfig` from its options and calls
:func:`run_training`; ``matbackprop eval ncuts`` calls :func:`evaluate`.
"""

from __future__ import annotations

import argparse

from .config import NCutsTrainConfig, add_train_arguments, config_from_args
from .evaluate import add_eval_arguments, evaluate
from .inference import embed_image, embed_image_many, init_model, load_model
from .training import grid_labels
from .training import train as run_training

__all__ = [
    "NCutsTrainConfig",
    "add_train_arguments",
    "config_from_args",
    "train",
    "run_training",
    "add_eval_arguments",
    "evaluate",
    "load_model",
    "init_model",
    "embed_image",
    "embed_image_many",
    "grid_labels",
]


def train(args: argparse.Namespace) -> int:
    """``matbackprop train ncuts``: the parsed options become a :class:`NCutsTrainConfig`, then train."""
    return run_training(config_from_args(args))
