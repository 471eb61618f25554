"""How far the trained blocks of a training crop are from those of the whole image, by context margin.

End-to-end DeepNCuts training runs the trained backbone blocks (conv4 and conv5 of VGG-16) on a crop of
the cached conv3 output. Without context, their convolutions see zero padding at the crop's borders where
the whole image has real features, so training fits features that test time (the whole image) never
produces. For each margin of context around a 192-pixel window, this prints the relative error
``||blocks(crop + margin) - blocks(image)|| / ||blocks(image)||`` of each trained block inside the window,
averaged over the first training images (`--exact-crops` uses the margin of
:meth:`~matbackprop.models.ncuts_net.DeepNCutsNet.context`).

Usage::

    .venv/bin/python benchmarks/ncuts_crop_context.py [RUN_DIR] [--images 4] [--data ../shared/bsds500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from matbackprop.experiments.bsds_ncuts.config import DEFAULT_DATA
from matbackprop.experiments.bsds_ncuts.features import build_cache
from matbackprop.experiments.bsds_ncuts.inference import init_model, load_model
from matbackprop.models.ncuts_net import NetConfig

MARGINS = (0, 16, 32, 48, 64, 80, 96)
WINDOW = 192


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default=None, help="a run folder (default: the untrained network)")
    parser.add_argument("--images", type=int, default=4, help="the first N training images (default: %(default)s)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="BSDS500 folder (default: %(default)s)")
    parser.add_argument("--cache", default="runs/cache", help="feature cache (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.run) if args.run else init_model(NetConfig(), [1.0] * 5)
    model.eval()
    strides = model.cached_strides()
    config = model.config
    cache = build_cache(args.data, "train", Path(args.cache), config.backbone, config.grid_stride, args.images)
    errors: dict[tuple[int, int], list[float]] = {}
    with torch.no_grad():
        for image_id in cache.ids:
            cached = cache.load(image_id)
            whole = model.blocks_from_cache(cached)
            H, W = cached[0].shape[-2] * strides[0], cached[0].shape[-1] * strides[0]
            y0, x0 = 64, 112  # a window inside the image, aligned with the coarsest cells
            for margin in MARGINS:
                ya, xa = max(0, y0 - margin), max(0, x0 - margin)
                yb, xb = min(H, y0 + WINDOW + margin), min(W, x0 + WINDOW + margin)
                crop = [b[:, ya // s : -(-yb // s), xa // s : -(-xb // s)] for b, s in zip(cached, strides)]
                cut = model.blocks_from_cache(crop, (y0 - ya, x0 - xa, WINDOW, WINDOW))
                for b in range(model.first_trained, len(cut)):
                    s = strides[b]
                    ref = whole[b][..., y0 // s : (y0 + WINDOW) // s, x0 // s : (x0 + WINDOW) // s]
                    errors.setdefault((margin, b), []).append(float((cut[b] - ref).norm() / ref.norm()))
    print(f"{len(cache.ids)} training images, {WINDOW}-pixel window; `--exact-crops` context: {model.context()} px")
    print(f"{'margin (px)':>11} " + " ".join(f"{f'block {b} rel. error':>20}" for b in range(model.first_trained, 5)))
    for margin in MARGINS:
        row = " ".join(f"{np.mean(errors[(margin, b)]):>20.4f}" for b in range(model.first_trained, 5))
        print(f"{margin:>11} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
