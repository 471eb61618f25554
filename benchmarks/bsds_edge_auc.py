"""Grid-edge AUC and projector loss of trained DeepNCuts runs on the first val images.

For each run, the embedding of each val image on the training grid (stride 4, from the feature cache) is
scored two ways against each human segmentation of the image: the projector loss that training lowers,
and the area under the ROC curve of the grid-edge strengths as a detector of the edges between segments
(:func:`matbackprop.experiments.bsds_ncuts.boundary_loss.edge_auc`), which is closer to what the
boundary hierarchy reads. Means over annotators, then over images.

Usage::

    .venv/bin/python benchmarks/bsds_edge_auc.py runs/ncuts-long-untrained/seed0 runs/ncuts-long-frozen/seed0 \\
        [--images 20] [--data ../shared/bsds500] [--cache runs/cache]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from matbackprop.data.bsds500 import BSDS500, load_ground_truth
from matbackprop.experiments.bsds_ncuts.boundary_loss import edge_auc
from matbackprop.experiments.bsds_ncuts.config import DEFAULT_DATA
from matbackprop.experiments.bsds_ncuts.features import build_cache
from matbackprop.experiments.bsds_ncuts.inference import load_model
from matbackprop.experiments.bsds_ncuts.training import grid_labels
from matbackprop.ops.ncut import projector_loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders holding model.pt (all with the same backbone and grid)")
    parser.add_argument("--images", type=int, default=20, help="the first N val images (default: %(default)s)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument("--cache", default="runs/cache", help="feature cache of the runs (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    models = {run: load_model(run) for run in args.runs}
    config = next(iter(models.values())).config
    cache = build_cache(args.data, "val", Path(args.cache), config.backbone, config.grid_stride, args.images)
    gt_dir = BSDS500(args.data, "val").gt_dir
    images = [(cache.load(i), load_ground_truth(gt_dir / f"{i}.mat")[0]) for i in cache.ids]
    print(f"{len(images)} val images, every annotator; grid stride {config.grid_stride}")
    print(f"{'run':<45} {'projector loss':>15} {'edge AUC':>9}")
    for run, model in models.items():
        model.eval()
        losses, aucs = [], []
        for blocks, segmentations in images:
            grid = (blocks[0].shape[-2], blocks[0].shape[-1])
            with torch.no_grad():
                Z = model(blocks)[0].double()
            labels = [grid_labels(s, grid, config.grid_stride) for s in segmentations]
            losses.append(np.mean([float(projector_loss(Z, lab)) for lab in labels]))
            aucs.append(np.nanmean([edge_auc(Z, lab, grid) for lab in labels]))
        print(f"{run:<45} {np.mean(losses):>15.4f} {np.mean(aucs):>9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
