"""Command-line options of ``matbackprop train o2p`` / ``eval o2p``; the options become typed configs here.

:func:`train` and :func:`evaluate` are what :mod:`matbackprop.cli` calls with the parsed options; they
build an :class:`~.config.O2PConfig` / :class:`~.config.EvalConfig` and hand over to the pipeline.
"""

from __future__ import annotations

import argparse
import sys

from ...models.deepo2p import MODEL_KINDS
from .config import DEFAULT_EPS, HEAD_LR, SEEDS, EvalConfig, O2PConfig

__all__ = [
    "add_train_arguments",
    "add_eval_arguments",
    "config_from_args",
    "eval_config_from_args",
    "train",
    "evaluate",
]


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``matbackprop train o2p``."""
    d = O2PConfig()
    parser.add_argument(
        "--data", default=d.data, help="MSRC-v2 region dataset directory (env MSRC_V2 overrides the default)"
    )
    parser.add_argument("--out", default=d.out, help="run directory (checkpoints, logs, feature cache)")
    parser.add_argument("--model", default=d.model, choices=sorted(MODEL_KINDS))
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--epochs", type=int, default=None, help="default: 10 (1 with --quick)")
    parser.add_argument("--route", default=d.route, choices=("eig", "svd"), help="O2P spectral route")
    parser.add_argument(
        "--spectral-dtype",
        default=d.spectral_dtype,
        choices=("float32", "float64"),
        help="dtype of pooling + spectral step (float64 inside the float32 network)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument(
        "--quick", action="store_true", help="tiny smoke-test configuration: 12 train / 8 test images, 1 epoch"
    )
    parser.add_argument(
        "--all", action="store_true", help="train every model x --seeds and the DeepO2P ablations, then evaluate"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="seeds for --all")
    parser.add_argument(
        "--trainable-blocks",
        type=int,
        default=d.trainable_blocks,
        help="last MBConv blocks of the stride-16 stage trained end to end (0..6)",
    )
    parser.add_argument("--channels", type=int, default=d.channels, help="c: channels after the 1x1 conv")
    parser.add_argument("--eps", type=float, default=DEFAULT_EPS, help="O2P ridge (features have unit mean variance)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="images per batch")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="AdamW learning rate of the head (default: per model, chosen on validation: "
        + ", ".join(f"{k} {v:g}" for k, v in HEAD_LR.items())
        + ")",
    )
    parser.add_argument(
        "--features-lr",
        type=float,
        default=d.features_lr,
        help="AdamW learning rate of the trained backbone blocks and the 1x1 conv",
    )
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument(
        "--validation",
        action="store_true",
        help="hold out every 5th training image and report on it instead of the test set "
        "(for choosing hyper-parameters; runs go to <out>/val)",
    )
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="evaluate every k epochs (and at the end)")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    add_eval_arguments(parser, with_out=False)
    return parser


def add_eval_arguments(parser: argparse.ArgumentParser, with_out: bool = True) -> argparse.ArgumentParser:
    """Options of ``matbackprop eval o2p``."""
    d = EvalConfig()
    if with_out:
        parser.add_argument("--out", default=d.out, help="run directory written by train")
    parser.add_argument("--results", default=d.results, help="JSON summary to write")
    parser.add_argument("--markdown", default=d.markdown, help="Markdown file whose generated section is (re)written")
    parser.add_argument("--figures", default=d.figures, help="directory for the msrc_*.png figures")
    return parser


def config_from_args(args: argparse.Namespace) -> O2PConfig:
    """The :class:`~matbackprop.experiments.msrc_o2p.config.O2PConfig` of parsed ``train o2p`` options."""
    return O2PConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        seed=args.seed,
        epochs=args.epochs,
        route=args.route,
        spectral_dtype=args.spectral_dtype,
        resume=args.resume,
        quick=args.quick,
        trainable_blocks=args.trainable_blocks,
        channels=args.channels,
        eps=args.eps,
        batch_size=args.batch_size,
        lr=args.lr,
        features_lr=args.features_lr,
        weight_decay=args.weight_decay,
        validation=args.validation,
        eval_every=args.eval_every,
        threads=args.threads,
    )


def eval_config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The :class:`~matbackprop.experiments.msrc_o2p.config.EvalConfig` of parsed ``eval o2p`` (or ``train o2p``) options."""
    return EvalConfig(out=args.out, results=args.results, markdown=args.markdown, figures=args.figures)


def train(args: argparse.Namespace) -> int:
    """``matbackprop train o2p``: one run (or every run with ``--all``). Returns the exit status."""
    from .pipeline import check_data, run_all, train_one

    problem = check_data(args.data)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.all:
        return run_all(cfg, list(args.seeds), eval_config_from_args(args))
    try:
        train_one(cfg)
    except ImportError as e:  # the backbone packages
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """``matbackprop eval o2p``: aggregate the finished runs (see :func:`~matbackprop.experiments.msrc_o2p.report.write_report`)."""
    from .report import write_report

    return write_report(eval_config_from_args(args))
