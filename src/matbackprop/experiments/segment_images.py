"""``matbackprop segment IMAGE... --run RUN_DIR --out DIR``: hierarchical segmentations of any images.

For each image (any JPEG/PNG that Pillow reads; grey and RGBA are converted to RGB) the trained
DeepNCuts run embeds the image (:func:`matbackprop.experiments.bsds_ncuts.embed_image`), the
eigenvectors become spectral boundaries and higra's oriented-watershed mean-boundary hierarchy gives the
ultrametric contour map (:func:`matbackprop.segmentation.embedding_ucm`). Written per image:

- ``<stem>_ucm2.npy``: float32 ``(2H+1, 2W+1)`` in [0, 1] (pixels at odd coordinates; the regions at
  threshold ``t`` are the 8-connected components of ``ucm2 <= t``, see
  :func:`matbackprop.metrics.ucm_to_segmentation`);
- ``<stem>_segmentation.png``: the image with the boundaries of the segmentation at the threshold.

The threshold is ``--threshold`` if given, else the covering-ODS threshold that ``matbackprop eval
ncuts`` stored in ``RUN_DIR/ucm_threshold.json``, else :data:`DEFAULT_THRESHOLD`. The hierarchy settings
(derivative sigma, level power, oriented watershed), the embedding stride and the smallest region kept
are the ones that threshold was found with, recorded in the same file (the run's group's val choices),
else the defaults; ``--stride`` overrides the stride. The smallest region is in pixels of a BSDS500
image (481 x 321) and scales with the image's area (:func:`matbackprop.segmentation.remove_small_regions`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .bsds_ncuts.hierarchy_choice import Hierarchy

__all__ = [
    "add_segment_arguments",
    "segment",
    "segment_image",
    "resolve_threshold",
    "read_threshold_record",
    "ThresholdRecord",
    "DEFAULT_THRESHOLD",
    "THRESHOLD_FILE",
]

#: Used when neither ``--threshold`` nor the run's evaluated threshold is available.
DEFAULT_THRESHOLD = 0.5
THRESHOLD_FILE = "ucm_threshold.json"


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--run", required=True, help="trained run: a folder holding model.pt (or seed*/model.pt: the first is used)"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="UCM threshold of the PNG's segmentation (default: the run's covering-ODS threshold)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=None,
        choices=[1, 2, 4, 8],
        help="grid stride of the embedding (default: the one the run's threshold was found with)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")


def _run_dir(run: str | Path) -> Path:
    p = Path(run)
    if (p / "model.pt").is_file():
        return p
    seeds = sorted(q.parent for q in p.glob("seed*/model.pt"))
    if not seeds:
        raise FileNotFoundError(f"no trained model in {p} (expected {p}/model.pt or {p}/seed*/model.pt)")
    return seeds[0]


class ThresholdRecord(NamedTuple):
    """A run's covering-ODS threshold, the split it was found on, and the settings it belongs to."""

    threshold: float
    split: str | None
    hierarchy: Hierarchy
    stride: int
    min_area: int = 0


#: Pixels of a BSDS500 image, the unit of a recorded smallest region.
BSDS_PIXELS = 481 * 321


def read_threshold_record(path: Path) -> ThresholdRecord:
    """The contents of a ``ucm_threshold.json``; a record written before the settings (or the stride, or
    the smallest region) were stored was made with the default ones (stride 4, the only one used then;
    no region removed)."""
    from .bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy
    from .bsds_ncuts.stride_choice import DEFAULT_STRIDE

    record = json.loads(path.read_text())
    hierarchy = Hierarchy(**record["hierarchy"]) if "hierarchy" in record else DEFAULT_HIERARCHY
    stride = int(record.get("stride", DEFAULT_STRIDE))
    min_area = int(record.get("min_area", 0))
    return ThresholdRecord(float(record["covering_ods_threshold"]), record.get("split"), hierarchy, stride, min_area)


def run_hierarchy(run_dir: Path) -> Hierarchy:
    """The hierarchy settings of a run's stored threshold, or the defaults when it has none."""
    from .bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY

    path = run_dir / THRESHOLD_FILE
    return read_threshold_record(path).hierarchy if path.is_file() else DEFAULT_HIERARCHY


def run_stride(run_dir: Path) -> int:
    """The embedding stride of a run's stored threshold, or the training grid when it has none."""
    from .bsds_ncuts.stride_choice import DEFAULT_STRIDE

    path = run_dir / THRESHOLD_FILE
    return read_threshold_record(path).stride if path.is_file() else DEFAULT_STRIDE


def run_min_area(run_dir: Path) -> int:
    """The smallest region (pixels of a BSDS500 image) of a run's stored threshold, or 0."""
    path = run_dir / THRESHOLD_FILE
    return read_threshold_record(path).min_area if path.is_file() else 0


def resolve_threshold(run_dir: Path, threshold: float | None) -> tuple[float, str]:
    """The threshold to draw and where it came from."""
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"--threshold must lie in [0, 1], got {threshold}")
        return float(threshold), "--threshold"
    path = run_dir / THRESHOLD_FILE
    if path.is_file():
        return read_threshold_record(path).threshold, str(path)
    return DEFAULT_THRESHOLD, "default (no evaluated threshold in the run folder)"


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def segment_image(
    model, image: np.ndarray, stride: int, hierarchy: Hierarchy | None = None, min_area: int = 0
) -> np.ndarray:
    """UCM ``(2H+1, 2W+1)`` float32 in [0, 1] of one RGB image under a trained run, with the given
    :class:`~matbackprop.experiments.bsds_ncuts.hierarchy_choice.Hierarchy` settings (default: the defaults),
    without regions smaller than ``min_area`` pixels of a BSDS500 image (scaled to this image's area)."""
    from ..segmentation import embedding_ucm, remove_small_regions
    from .bsds_ncuts import embed_image
    from .bsds_ncuts.hierarchy_choice import DEFAULT_HIERARCHY

    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 2:
        raise ValueError(f"expected an RGB image (H, W, 3) of at least 2x2 pixels, got shape {image.shape}")
    ev, Z, _ = embed_image(model, image, stride=stride)
    h, w, k = Z.shape
    s = hierarchy or DEFAULT_HIERARCHY
    ucm2 = embedding_ucm(
        Z.reshape(h * w, k), ev, (h, w), image.shape[:2], sigma=s.sigma, power=s.power, oriented=s.oriented
    )
    return remove_small_regions(ucm2, round(min_area * image.shape[0] * image.shape[1] / BSDS_PIXELS))


def segment(args: argparse.Namespace) -> int:
    """Write ``<stem>_ucm2.npy`` and ``<stem>_segmentation.png`` for every image."""
    import torch
    from PIL import Image

    from ..metrics import ucm_to_segmentation
    from .bsds_ncuts import load_model
    from .bsds_ncuts.figures import overlay_boundaries

    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = _run_dir(args.run)
    threshold, source = resolve_threshold(run_dir, args.threshold)
    stride = args.stride or run_stride(run_dir)
    hierarchy = run_hierarchy(run_dir)
    min_area = run_min_area(run_dir)
    paths = [Path(p) for p in args.images]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"image file(s) not found: {', '.join(missing)}")
    model = load_model(run_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"run {run_dir}; threshold {threshold:.3f} ({source}); embedding stride {stride}; sigma "
        f"{hierarchy.sigma:g}, level power {hierarchy.power:g}, oriented watershed {hierarchy.oriented}; "
        f"smallest region {min_area} pixels of a BSDS500 image"
    )
    for p in paths:
        try:
            image = _read_rgb(p)
        except ValueError as e:
            print(f"matbackprop segment: {e}")
            return 2
        ucm2 = segment_image(model, image, int(stride), hierarchy, min_area)
        np.save(out / f"{p.stem}_ucm2.npy", ucm2)
        seg = ucm_to_segmentation(ucm2, threshold)
        Image.fromarray(overlay_boundaries(image, seg)).save(out / f"{p.stem}_segmentation.png")
        print(
            f"{p}: {int(seg.max())} regions at {threshold:.3f} -> {out / (p.stem + '_ucm2.npy')}, "
            f"{out / (p.stem + '_segmentation.png')}"
        )
    return 0
