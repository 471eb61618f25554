"""``matbackprop eval ncuts``: every row of the BSDS500 table, as ultrametric contour maps (issue 11).

Every method ends in a UCM scored with the benchmark's 99-threshold protocol (covering, PRI, VI at
ODS/OIS; boundary F at ODS/OIS and AP):

- baselines (:mod:`matbackprop.experiments.bsds_baselines`): human (leave one out), the official
  gPb-owt-ucm UCMs, classic normalized cuts -> spectral boundaries -> UCM;
- "HED edges -> UCM": the backbone's own edge output through the same hierarchy, no NCuts layer;
- one row per trained run (untrained NCuts on VGG, frozen-backbone DeepNCuts, end-to-end DeepNCuts per
  seed; the seeds of a group are then summarised as mean ± sample std): the embedding of
  :func:`.inference.embed_image_many` on the group's grid -> spectral boundaries (gPb's sPb on the
  eigenvectors) -> the same hierarchy (:func:`matbackprop.segmentation.embedding_ucm`).

- the combination row (:mod:`.combination`): the end-to-end embedding's spectral boundaries mixed with
  the backbone's edges, with the weight and the orientation choice made on val (``--tune-combination`` writes
  the choice, ``--combination`` names the file; the row appears once that file exists). Its edge signal,
  which the edges row shares, is chosen on val too (:mod:`.edge_signal_choice`: HED's fused output, or
  its mean over three scales with sharpened arc strengths; ``--tune-edge-signal`` writes it,
  ``--edge-signal`` names the file).

Per-image counts and our UCMs are cached under ``--cache`` (``<cache>/<split>/<method>/<id>.npz``), so an
interrupted evaluation resumes where it stopped and adding a row scores only that row. Each NCuts
group's hierarchy settings (:mod:`.hierarchy_choice`: derivative sigma, level power, oriented watershed)
are chosen on the val split (``--tune-hierarchy`` writes them, ``--hierarchy`` names the file), never on
test; so is each group's embedding stride (:mod:`.stride_choice`: the training grid or full
resolution; ``--tune-stride`` writes it, ``--strides`` names the file, ``--stride`` overrides it for every
group). A cache records the settings and stride its UCMs were made with and is recomputed when they change.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ...segmentation.scores import method_slug
from ...train.checkpoint import load_checkpoint
from ..bsds_baselines import ROW_NAMES, load_ucm, score_boundary_pass, score_rows
from .combination import COMBINED_SUFFIX, DEFAULT_CHOICE, load_choice
from .config import DEFAULT_DATA, DEFAULT_OUT
from .edge_signal_choice import DEFAULT_EDGE_SIGNAL_CHOICE, load_edge_signal
from .hierarchy_choice import DEFAULT_HIERARCHY, DEFAULT_HIERARCHY_CHOICE, Hierarchy, load_hierarchies
from .min_area_choice import DEFAULT_MIN_AREA_CHOICE, load_min_area
from .stride_choice import DEFAULT_STRIDE, DEFAULT_STRIDE_CHOICE, load_strides
from .trained_rows import EDGES_POWER, EDGES_ROW, model_ucms, score_trained_rows

__all__ = ["add_eval_arguments", "evaluate", "STRIDE", "EDGES_ROW", "DEFAULT_GROUPS", "model_ucms"]

QUICK_TEST_IMAGES = 20
QUICK_BOUNDARY_IMAGES = 5  # the boundary benchmark costs ~10 s per image and method even after its speed-up
#: Grid stride of the NCuts embedding of a group without a val choice (the choices: .stride_choice).
STRIDE = DEFAULT_STRIDE
#: Table groups of trained runs: name -> run folder holding seed*/model.pt.
DEFAULT_GROUPS = {
    "NCuts on VGG-16, untrained": "runs/ncuts-rank-untrained",
    "DeepNCuts, frozen backbone": "runs/ncuts-rank-frozen",
    "DeepNCuts, end to end": "runs/ncuts-rank-e2e-exact",  # exact crops; bare crops: runs/ncuts-rank-e2e
    "DeepNCuts, end to end from a random head": "runs/ncuts-rank-e2e-scratch",  # SCRATCH=1 of train_ncuts.sh
}
#: The group whose runs the combination row mixes with the backbone's edges.
COMBINE_GROUP = "DeepNCuts, end to end"


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DATA, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument(
        "--out",
        default=None,
        help=f"one run folder with seed*/model.pt to evaluate as the group 'DeepNCuts' (e.g. "
        f"{DEFAULT_OUT}); default: the groups {', '.join(DEFAULT_GROUPS.values())}",
    )
    parser.add_argument(
        "--group",
        action="append",
        default=None,
        metavar="NAME=FOLDER",
        help="a table group of runs (repeatable); overrides the default groups",
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=["val", "test"],
        help="split to score (choices are made on val; default: %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=None, help="score the first N images of the split")
    parser.add_argument(
        "--cache",
        default=None,
        help="per-image score cache (default: runs/bsds_eval, or <--out>/eval_cache with --out)",
    )
    parser.add_argument("--results", default="results/bsds500.json", help="summary JSON (default: %(default)s)")
    parser.add_argument(
        "--per-image", default=None, help="per-image JSON (default: beside --results, <name>_per_image.json)"
    )
    parser.add_argument("--report", default="docs/results_bsds500.md", help="Markdown table (default: %(default)s)")
    parser.add_argument("--figures", default="docs/figures", help="folder for PNG figures (default: %(default)s)")
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        choices=[1, 2, 4, 8],
        help="grid stride of the NCuts embedding of every group (default: each group's val choice in "
        f"--strides; a group it does not name: {STRIDE})",
    )
    parser.add_argument(
        "--strides",
        default=DEFAULT_STRIDE_CHOICE,
        help="val-chosen embedding stride of each NCuts group (default: %(default)s)",
    )
    parser.add_argument(
        "--tune-stride",
        action="store_true",
        help="choose each group's embedding stride (the training grid 4 or full resolution 1) on the val "
        "split (each group's seed of lowest val loss, at its chosen hierarchy), write --strides, and stop",
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["human", "gpb", "classic", "edges"], help="rows to leave out"
    )
    parser.add_argument(
        "--boundary-limit",
        type=int,
        default=None,
        metavar="N",
        help="run the boundary benchmark (the slow part) on the first N scored images only "
        "(default: all); region measures always cover every image",
    )
    parser.add_argument(
        "--cached-boundaries",
        action="store_true",
        help="do not run the boundary benchmark: the boundary columns pool the images whose counts are "
        "already cached (each row shows how many), e.g. to write the table while a pass is unfinished",
    )
    parser.add_argument("--skip-gpb", action="store_true", help="leave out the gPb-owt-ucm row")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the first {QUICK_TEST_IMAGES} test images (boundary benchmark on "
        f"{QUICK_BOUNDARY_IMAGES}), without the classic NCuts row",
    )
    parser.add_argument(
        "--combination",
        default=DEFAULT_CHOICE,
        help="val-chosen setting of the combination row (default: %(default)s; no file: no such row)",
    )
    parser.add_argument(
        "--tune-combination",
        action="store_true",
        help=f"choose the combination row's edge weight and orientation on the val split (the group "
        f"'{COMBINE_GROUP}', its seed of lowest val loss), write --combination, and stop",
    )
    parser.add_argument(
        "--min-area",
        default=DEFAULT_MIN_AREA_CHOICE,
        help="val-chosen smallest region (pixels) kept in every UCM this project computes, not gPb's "
        "(default: %(default)s; no file: 0, no region removed); a number sets it directly",
    )
    parser.add_argument(
        "--tune-min-area",
        action="store_true",
        help=f"choose --min-area on the val split (the group '{COMBINE_GROUP}', its seed of lowest val loss, "
        "on its combination row), write --min-area, and stop",
    )
    parser.add_argument(
        "--edge-signal",
        default=DEFAULT_EDGE_SIGNAL_CHOICE,
        help="val-chosen edge signal of the combination row and the edges row, 'fused' or 'sharp' (default: "
        "%(default)s; no file: fused)",
    )
    parser.add_argument(
        "--tune-edge-signal",
        action="store_true",
        help=f"choose --edge-signal on the val split (the group '{COMBINE_GROUP}', its seed of lowest val loss, "
        "at its chosen --combination and --min-area), write --edge-signal, and stop",
    )
    parser.add_argument(
        "--hierarchy",
        default=DEFAULT_HIERARCHY_CHOICE,
        help="val-chosen hierarchy settings of each NCuts group (default: %(default)s; a group it does "
        "not name, or no file: sigma 2, power 0.5, oriented)",
    )
    parser.add_argument(
        "--tune-hierarchy",
        action="store_true",
        help="choose each group's hierarchy settings (derivative sigma, level power, oriented watershed) "
        "on the val split (each group's seed of lowest val loss), write --hierarchy, and stop",
    )
    parser.add_argument(
        "--tune-images",
        type=int,
        default=100,
        help="the first N val images for --tune-combination, --tune-hierarchy, --tune-stride, "
        "--tune-min-area and --tune-edge-signal (default: "
        "%(default)s, the whole split; 20 proved too few to choose between the training protocols)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cores(),
        help="processes for the trained rows and the boundary benchmark, one image each (default: the usable "
        "cores, %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")


def _tuning_run(groups: Mapping[str, list[Path]], what: str, log) -> Path:
    """The run of :data:`COMBINE_GROUP` that a val choice is made with: its seed of lowest val loss."""
    from .combination import lowest_val_loss_run

    run = lowest_val_loss_run(groups[COMBINE_GROUP])
    log(f"{what}: tuning on val with {run} (lowest final val loss of {COMBINE_GROUP})")
    return run


def _min_area(value: str) -> int:
    """``--min-area``: a number of pixels, or the val choice file (0 when it does not exist)."""
    if value.isdigit():
        return int(value)
    return load_min_area(value)


def _groups(args: argparse.Namespace) -> dict[str, list[Path]]:
    """Table group name -> its finished runs (folders holding model.pt)."""
    if args.group:
        pairs = [g.split("=", 1) for g in args.group]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("--group takes NAME=FOLDER")
        spec = {name: folder for name, folder in pairs}
    elif args.out:
        spec = {"DeepNCuts": args.out}
    else:
        spec = dict(DEFAULT_GROUPS)
    out = {}
    for name, folder in spec.items():
        runs = sorted(p.parent for p in Path(folder).glob("seed*/model.pt"))
        if (Path(folder) / "model.pt").is_file():
            runs = [Path(folder)]
        if runs:
            out[name] = runs
        else:
            print(f"no finished run (model.pt) under {folder}: the row '{name}' is left out")
    return out


def evaluate(args: argparse.Namespace) -> int:
    """Score every row on the split; write the JSON files, the Markdown table and the figures."""
    from ...data.bsds500 import BSDS500
    from .report import write_outputs

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    log = lambda m: print(m, flush=True)  # noqa: E731
    limit = QUICK_TEST_IMAGES if args.quick and args.limit is None else args.limit
    skip = set(args.skip) | ({"gpb"} if args.skip_gpb else set()) | ({"classic"} if args.quick else set())
    if args.split != "test":
        skip.add("gpb")  # official UCMs ship for the test split only
    args.skip = sorted(skip)
    if args.cache is None:
        args.cache = str(Path(args.out) / "eval_cache") if args.out else "runs/bsds_eval"
    if args.quick and args.boundary_limit is None:
        args.boundary_limit = QUICK_BOUNDARY_IMAGES
    groups = _groups(args)
    for runs in groups.values():  # refuse an unsafe or damaged model.pt before any work (weights-only load)
        for run in runs:
            load_checkpoint(run / "model.pt")
    if args.tune_hierarchy:  # at the training grid unless --stride says otherwise: the stride is chosen next
        from .hierarchy_choice import tune as tune_hierarchy

        tune_hierarchy(groups, args.data, args.tune_images, args.stride or STRIDE, args.hierarchy, log)
        return 0
    hierarchies = load_hierarchies(args.hierarchy, groups)
    if args.tune_stride:
        from .stride_choice import tune as tune_stride

        tune_stride(groups, hierarchies, args.data, args.tune_images, args.strides, log)
        return 0
    group_strides = group_stride_choice(args, groups, hierarchies)
    args.group_strides = group_strides  # recorded in --results
    log("embedding stride per group: " + ", ".join(f"{g} {s}" for g, s in group_strides.items()))
    if args.tune_combination:
        from .combination import tune

        if COMBINE_GROUP not in groups:
            raise ValueError(f"--tune-combination needs the group '{COMBINE_GROUP}' (its runs: seed*/model.pt)")
        tune(
            _tuning_run(groups, "combination", log),
            args.data,
            args.tune_images,
            group_strides[COMBINE_GROUP],
            DEFAULT_HIERARCHY.sigma,
            args.combination,
            log,
            ncuts_power=DEFAULT_HIERARCHY.power,
            edges_power=EDGES_POWER,
        )
        return 0
    choice = load_choice(args.combination, groups.get(COMBINE_GROUP)) if args.split == "test" else None
    if choice is not None and COMBINE_GROUP in groups:
        check_combination_stride(args.combination, choice[1], group_strides[COMBINE_GROUP])
    combination = (COMBINE_GROUP, choice[0]) if choice is not None else None
    if args.tune_min_area:
        from .min_area_choice import tune as tune_min_area

        if combination is None or COMBINE_GROUP not in groups:
            raise ValueError(f"--tune-min-area needs the group '{COMBINE_GROUP}' and its chosen --combination")
        tune_min_area(
            _tuning_run(groups, "min_area", log),
            args.data,
            args.tune_images,
            group_strides[COMBINE_GROUP],
            hierarchies.get(COMBINE_GROUP, DEFAULT_HIERARCHY),
            combination[1],
            args.min_area,
            log,
            edges_power=EDGES_POWER,
            workers=args.workers,
        )
        return 0
    args.min_area_value = min_area = _min_area(args.min_area)
    log(f"smallest region kept in our UCMs: {min_area} pixels")
    if args.tune_edge_signal:
        from .edge_signal_choice import tune as tune_edge_signal

        if combination is None or COMBINE_GROUP not in groups:
            raise ValueError(f"--tune-edge-signal needs the group '{COMBINE_GROUP}' and its chosen --combination")
        tune_edge_signal(
            _tuning_run(groups, "edge signal", log),
            args.data,
            args.tune_images,
            group_strides[COMBINE_GROUP],
            combination[1],
            min_area,
            args.edge_signal,
            log,
            edges_power=EDGES_POWER,
            workers=args.workers,
        )
        return 0
    args.edge_signal_value = edge_signal = load_edge_signal(args.edge_signal)
    log(f"edge signal of the combination and edges rows: {edge_signal}")
    if combination is not None:
        setting = combination[1]
        combination = (
            COMBINE_GROUP,
            replace(setting, edges=edge_signal, oriented=setting.oriented and edge_signal == "fused"),
        )
    data = BSDS500(args.data, args.split)
    ids = data.ids[:limit]
    root = Path(args.cache) / args.split
    baseline_rows = [r for r in ("human", "gpb", "classic") if r not in skip]
    # regions first for every row (cheap), then the boundary benchmark (slow) image by image
    score_rows(baseline_rows, args.data, args.split, args.cache, limit, log=log, boundaries=False, min_area=min_area)
    model_names = score_trained_rows(
        groups,
        ids,
        data,
        root,
        log,
        hierarchies,
        group_strides,
        combination,
        want_edges="edges" not in skip,
        workers=args.workers,
        min_area=min_area,
        edge_signal=edge_signal,
    )
    methods = [ROW_NAMES[r] for r in baseline_rows if r != "human"] + model_names
    if not args.cached_boundaries:
        score_boundary_pass(
            methods,
            ids[: args.boundary_limit],
            data,
            root,
            partial(load_method_ucm, root, data_root=args.data, split=args.split, min_area=min_area),
            log,
            workers=args.workers,
        )
    report_groups = dict(groups)
    if combination is not None and COMBINE_GROUP in groups:  # its seeds are summarised like a group's
        report_groups[COMBINE_GROUP + COMBINED_SUFFIX] = groups[COMBINE_GROUP]
    write_outputs(
        args, ids, root, methods, report_groups, human="human" not in skip, seconds=time.perf_counter() - started
    )
    print(Path(args.report).read_text())
    return 0


def group_stride_choice(
    args: argparse.Namespace, groups: Mapping[str, list[Path]], hierarchies: Mapping[str, Hierarchy]
) -> dict[str, int]:
    """Each group's embedding stride: ``--stride`` for all, else its val choice (``--strides``), else
    :data:`STRIDE`."""
    if args.stride is not None:
        return {g: args.stride for g in groups}
    chosen = load_strides(args.strides, groups, {g: hierarchies.get(g, DEFAULT_HIERARCHY) for g in groups})
    return {g: chosen.get(g, STRIDE) for g in groups}


def check_combination_stride(path: str | Path, record: dict, stride: int) -> None:
    """Refuse a combination chosen on another embedding grid than the one its group now uses (a record
    without a stride was chosen at :data:`STRIDE`, the only one before strides were recorded)."""
    made_at = int(record.get("stride", STRIDE))
    if made_at != stride:
        raise ValueError(
            f"{path}: the combination was chosen with the embedding at stride {made_at}, its group "
            f"'{COMBINE_GROUP}' now uses stride {stride}; choose it again with --tune-combination"
        )


def load_method_ucm(
    root: Path, method: str, image_id: str, data_root: str, split: str, min_area: int = 0
) -> np.ndarray | None:
    """A method's UCM of one image as it is scored: from the cache, without regions smaller than
    ``min_area`` (or the official file for gPb, as it is); None if absent."""
    if method == ROW_NAMES["gpb"]:
        from scipy.io import loadmat

        path = Path(data_root) / "gpb-owt-ucm" / split / f"{image_id}.mat"
        return np.asarray(loadmat(str(path))["ucm2"]) if path.is_file() else None
    from ...segmentation import remove_small_regions

    path = root / "ucm" / method_slug(method) / f"{image_id}.npz"
    return remove_small_regions(load_ucm(path), min_area) if path.is_file() else None
