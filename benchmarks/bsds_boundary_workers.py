"""Seconds per image of the BSDS boundary benchmark with one process and with ``--workers`` processes.

The boundary pass is the slow stage of ``matbackprop eval ncuts`` (the embedding and the region
measures take a few seconds per image, the boundary benchmark tens). This scores the same images and
methods twice from the evaluation cache's UCMs, into two fresh temporary caches: once serially and
once with ``--workers`` processes; it checks that the counts agree and prints seconds per image for
both and their ratio. Usage (from the project root, after an evaluation has cached its UCMs)::

    .venv/bin/python benchmarks/bsds_boundary_workers.py --images 6 --workers 2
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from matbackprop.data.bsds500 import BSDS500
from matbackprop.experiments.bsds_baselines import ROW_NAMES, score_boundary_pass
from matbackprop.experiments.bsds_ncuts.evaluate import EDGES_ROW, load_method_ucm, usable_cores
from matbackprop.segmentation.scores import ScoreCache, method_slug


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/bsds500")
    p.add_argument("--cache", default="runs/bsds_eval/test", help="evaluation cache of the test split")
    p.add_argument("--images", type=int, default=6, help="first N test images (default: %(default)s)")
    p.add_argument("--workers", type=int, default=usable_cores(), help="processes (default: the cores, %(default)s)")
    p.add_argument("--methods", nargs="+", default=[ROW_NAMES["gpb"], EDGES_ROW])
    args = p.parse_args()
    data = BSDS500(args.data, "test")
    source = Path(args.cache)
    ids = [i for i in data.ids if all(ScoreCache(source, m).has(i) for m in args.methods)][: args.images]
    if not ids:
        raise SystemExit(f"no image of {args.cache} has region scores for every method: run `eval ncuts` first")
    seconds, counts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, args.workers):
            root = Path(tmp) / f"w{workers}"
            for m in args.methods:  # region files only, so that the boundary pass has everything to do
                (root / method_slug(m)).mkdir(parents=True)
                for i in ids:
                    shutil.copy(ScoreCache(source, m).path(i), ScoreCache(root, m).path(i))
            load = partial(load_method_ucm, source, data_root=args.data, split="test")
            start = time.perf_counter()
            score_boundary_pass(args.methods, ids, data, root, load, log=lambda _: None, workers=workers)
            seconds[workers] = (time.perf_counter() - start) / len(ids)
            counts[workers] = [
                np.stack([b.cnt_r, b.cnt_p]) for m in args.methods for i in ids for b in [ScoreCache(root, m).get(i)[1]]
            ]
    same = all(np.array_equal(a, b) for a, b in zip(counts[1], counts[args.workers]))
    print(f"{len(ids)} images x {len(args.methods)} methods ({', '.join(args.methods)})")
    print(f"1 process: {seconds[1]:.1f} s per image; {args.workers} processes: {seconds[args.workers]:.1f} s per image")
    print(f"speedup {seconds[1] / seconds[args.workers]:.2f}x; counts identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
