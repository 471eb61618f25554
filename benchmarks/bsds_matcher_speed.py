"""The boundary benchmark's two matchers side by side: one SciPy assignment per threshold, and the
incremental matcher that solves the whole threshold series at once.

For each UCM (the official gPb-owt-ucm ones of the first test images, and any methods of an
evaluation cache given with ``--methods``), both matchers score the 99 thresholds against the image's
annotators, each with freshly prepared human maps, alternating which goes first. The script checks
that recall counts (the matching sizes) and machine-pixel totals are identical, reports the largest
difference in the precision counts (ties between equally cheap pairings), and prints the seconds of
each and their ratio. Usage (from the project root)::

    .venv/bin/python benchmarks/bsds_matcher_speed.py --images 3
    .venv/bin/python benchmarks/bsds_matcher_speed.py --ids 145059 --methods "DeepNCuts, end to end (seed0)"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from matbackprop.data.bsds500 import BSDS500
from matbackprop.metrics import HumanBoundaries, evaluate_ucm_boundaries
from matbackprop.metrics.augmenting_paths import COMPILED
from matbackprop.segmentation.scores import method_slug

GPB = "gPb-owt-ucm (official UCMs)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/bsds500")
    p.add_argument("--cache", default="runs/bsds_eval/test", help="evaluation cache holding the methods' UCMs")
    p.add_argument("--images", type=int, default=3, help="first N test images (default: %(default)s)")
    p.add_argument("--ids", nargs="*", default=None, help="these test images instead of the first N")
    p.add_argument("--methods", nargs="*", default=[], help="cached methods to time besides gPb")
    args = p.parse_args()
    if not COMPILED:
        raise SystemExit("numba is not installed: the incremental matcher would run as plain Python")
    data = BSDS500(args.data, "test")
    # compile once outside the timings
    warm = np.zeros((5, 5))
    warm[:, 2] = 0.5
    evaluate_ucm_boundaries(warm, [np.eye(2, dtype=bool)], nthresh=3, matcher="incremental")
    print(f"{'method':<40} {'image':>7} {'scipy s':>8} {'incr. s':>8} {'ratio':>6}  recall same  max |d cnt_p|")
    ratios = []
    for method in [GPB, *args.methods]:
        for n, image_id in enumerate(args.ids or data.ids[: args.images]):
            if method == GPB:
                ucm2 = loadmat(Path(args.data) / "gpb-owt-ucm" / "test" / f"{image_id}.mat")["ucm2"]
            else:
                path = Path(args.cache) / "ucm" / method_slug(method) / f"{image_id}.npz"
                if not path.is_file():
                    print(f"{method[:40]:<40} {image_id:>7}  no cached UCM at {path}")
                    continue
                with np.load(path) as z:
                    ucm2 = z["ucm2"]
            bdry = data[data.ids.index(image_id)]["boundaries"]
            seconds, evals = {}, {}
            for matcher in ("scipy", "incremental") if n % 2 == 0 else ("incremental", "scipy"):
                human = HumanBoundaries(bdry)  # fresh: no solved components carried over
                start = time.perf_counter()
                evals[matcher] = evaluate_ucm_boundaries(ucm2, human, matcher=matcher)
                seconds[matcher] = time.perf_counter() - start
            a, b = evals["scipy"], evals["incremental"]
            same = np.array_equal(a.cnt_r, b.cnt_r) and np.array_equal(a.sum_p, b.sum_p)
            ratio = seconds["scipy"] / seconds["incremental"]
            ratios.append(ratio)
            print(
                f"{method[:40]:<40} {image_id:>7} {seconds['scipy']:8.2f} {seconds['incremental']:8.2f} {ratio:6.1f}"
                f"  {same!s:<11}  {int(np.abs(a.cnt_p - b.cnt_p).max())} of {int(a.sum_p.max())}"
            )
            if not same:
                return 1
    if ratios:
        print(
            f"speedup (scipy / incremental): median {np.median(ratios):.1f}x, range {min(ratios):.1f}-{max(ratios):.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
