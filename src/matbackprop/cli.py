"""The ``matbackprop`` command line."""

from __future__ import annotations

import argparse
import importlib
import sys

# experiment name -> module under matbackprop.experiments providing add_train_arguments, train,
# add_eval_arguments and evaluate
EXPERIMENTS = {
    "ncuts": ("bsds_ncuts", "DeepNCuts segmentation on BSDS500"),
    "o2p": ("msrc_o2p", "DeepO2P region classification on MSRC-v2"),
}


def _demo(args: argparse.Namespace) -> int:
    from .experiments.spd_demo import run_demo

    result = run_demo(epochs=args.epochs, seed=args.seed)
    return 0 if all(ok for _, ok, _ in result["checks"]) else 1


def _unavailable(error: ImportError) -> int:
    print(f"matbackprop: this experiment cannot run here: {error}", file=sys.stderr)
    return 2


def _experiment(name: str):
    return importlib.import_module(f"matbackprop.experiments.{EXPERIMENTS[name][0]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matbackprop", description="Matrix backpropagation for structured layers.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small SPD-matrix classifier through logm and check gradients")
    demo.add_argument("--epochs", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    for verb, adder, runner in (("train", "add_train_arguments", "train"), ("eval", "add_eval_arguments", "evaluate")):
        verb_parser = sub.add_parser(verb, help=f"{verb} an experiment: " + ", ".join(EXPERIMENTS))
        experiments = verb_parser.add_subparsers(dest="experiment", required=True)
        for name, (_, description) in EXPERIMENTS.items():
            p = experiments.add_parser(name, help=description)
            try:
                module = _experiment(name)
            except ImportError as e:  # an optional dependency is missing: say so when it is used
                p.set_defaults(func=lambda args, e=e: _unavailable(e))
                continue
            getattr(module, adder)(p)
            p.set_defaults(func=getattr(module, runner))
    seg = sub.add_parser(
        "segment", help="hierarchical segmentations (UCM + PNG) of any images with a trained DeepNCuts run"
    )
    try:
        from .experiments import segment_images
    except ImportError as e:  # an optional dependency is missing: say so when it is used
        seg.set_defaults(func=lambda args, e=e: _unavailable(e))
    else:
        segment_images.add_segment_arguments(seg)
        seg.set_defaults(func=segment_images.segment)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data.errors import CorruptFileError
    from .train.checkpoint import UnsafeCheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FileNotFoundError as e:  # missing data: the loaders say how to obtain it
        print(f"matbackprop: {e}", file=sys.stderr)
        return 2
    except UnsafeCheckpointError as e:  # a file that would run code on load: say so, run nothing
        print(f"matbackprop: {e}", file=sys.stderr)
        return 2
    except CorruptFileError as e:  # the message names the file; no reader traceback needed
        hint = " (pass --skip-corrupt to leave such samples out)" if hasattr(args, "skip_corrupt") else ""
        print(f"matbackprop: {e}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
