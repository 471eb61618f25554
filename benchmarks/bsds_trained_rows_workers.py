"""Seconds per image of the trained rows of ``matbackprop eval ncuts`` with one process and with
``--workers`` processes.

The trained rows (each run's embedding, spectral boundaries, UCM and region measures) are the second
slowest stage of the evaluation, after the boundary benchmark. This scores the same val images with the
same runs twice, into two fresh temporary caches: once in one process and once with ``--workers``
processes (each spawned worker is given the loaded models once); it checks that the UCMs and the region
counts agree and prints seconds per image for both and their ratio. Usage (from the project root, after
``scripts/train_ncuts.sh``)::

    .venv/bin/python benchmarks/bsds_trained_rows_workers.py --images 6 --workers 2 --stride 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from matbackprop.data.bsds500 import BSDS500
from matbackprop.experiments.bsds_ncuts.evaluate import usable_cores
from matbackprop.experiments.bsds_ncuts.trained_rows import score_trained_rows
from matbackprop.segmentation.scores import ScoreCache, method_slug


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/bsds500")
    p.add_argument("--runs", nargs="+", default=["runs/ncuts-rank-frozen/seed0", "runs/ncuts-rank-e2e-exact/seed0"])
    p.add_argument("--images", type=int, default=6, help="first N val images (default: %(default)s)")
    p.add_argument("--stride", type=int, default=1, help="embedding stride of every run (default: %(default)s)")
    p.add_argument("--workers", type=int, default=usable_cores(), help="processes (default: the cores, %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = BSDS500(args.data, "val")
    ids = data.ids[: args.images]
    groups = {f"run{n}": [Path(r)] for n, r in enumerate(args.runs)}
    strides = {g: args.stride for g in groups}
    seconds, ucms = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, args.workers):
            root = Path(tmp) / f"w{workers}"
            start = time.perf_counter()
            names = score_trained_rows(groups, ids, data, root, lambda _: None, {}, strides, None, True, workers)
            seconds[workers] = (time.perf_counter() - start) / len(ids)
            ucms[workers] = [np.load(root / "ucm" / method_slug(m) / f"{i}.npz")["ucm2"] for m in names for i in ids]
            ucms[workers] += [ScoreCache(root, m).get(i)[0][0].cnt_r for m in names for i in ids]
    same = all(np.array_equal(a, b) for a, b in zip(ucms[1], ucms[args.workers]))
    print(f"{len(ids)} val images x {len(names)} rows ({', '.join(args.runs)} at stride {args.stride}, and the edges)")
    print(f"1 process: {seconds[1]:.1f} s per image; {args.workers} processes: {seconds[args.workers]:.1f} s per image")
    print(f"speedup {seconds[1] / seconds[args.workers]:.2f}x; UCMs and region counts identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
