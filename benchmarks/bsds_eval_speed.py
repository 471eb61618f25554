"""Time of the BSDS benchmark per image and method: the committed metrics (git HEAD) against the working tree.

Scores the same UCMs (official gPb-owt-ucm, and any cached UCMs of our methods) with both versions in
one process, interleaved so machine load hits both alike, checks that the counts agree, and prints
seconds per image per method. Usage (from the project root)::

    python benchmarks/bsds_eval_speed.py --ids 100007 100039 --ucm-dir runs/bsds_eval/test/ucm/<method>

The committed version is read with ``git show`` into a temporary package, so git must be available.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _head_metrics(tmp: Path, rev: str):
    pkg = tmp / "metrics_head"
    pkg.mkdir()
    for name in ("__init__.py", "boundaries.py", "bsds.py", "regions.py"):
        text = subprocess.run(
            ["git", "show", f"{rev}:src/matbackprop/metrics/{name}"], capture_output=True, text=True, check=True
        ).stdout
        (pkg / name).write_text(text)
    sys.path.insert(0, str(tmp))
    return importlib.import_module("metrics_head")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/bsds500")
    p.add_argument("--ids", nargs="+", default=["100007", "100039"])
    p.add_argument("--ucm-dir", nargs="*", default=[], help="folders of <id>.npz UCMs (key ucm2)")
    p.add_argument("--rev", default="HEAD")
    args = p.parse_args()
    from scipy.io import loadmat

    from matbackprop.data.bsds500 import load_ground_truth
    from matbackprop.metrics import HumanBoundaries
    from matbackprop.segmentation.scores import score_ucm

    with tempfile.TemporaryDirectory() as tmp:
        old = _head_metrics(Path(tmp), args.rev)
        totals: dict[str, list[float]] = {}
        for image_id in args.ids:
            segs, bdrys = load_ground_truth(Path(args.data) / "BSDS500" / "groundTruth" / "test" / f"{image_id}.mat")
            ucms = {"gPb-owt-ucm": loadmat(str(Path(args.data) / "gpb-owt-ucm" / "test" / f"{image_id}.mat"))["ucm2"]}
            for d in args.ucm_dir:
                f = Path(d) / f"{image_id}.npz"
                if f.is_file():
                    with np.load(f) as z:
                        ucms[Path(d).name] = z["ucm2"]
            for name, u in ucms.items():
                t0 = time.perf_counter()
                r0 = old.evaluate_ucm_regions(u, segs)
                b0 = old.evaluate_ucm_boundaries(u, old.HumanBoundaries(bdrys))
                t1 = time.perf_counter()
                r1, b1 = score_ucm(u, segs, HumanBoundaries(bdrys))
                t2 = time.perf_counter()
                same = (
                    np.allclose(r0.cnt_r, r1.cnt_r, rtol=1e-12)
                    and np.allclose(r0.vi, r1.vi, rtol=1e-9, atol=1e-12)
                    and np.array_equal(b0.cnt_r, b1.cnt_r)
                    and np.array_equal(b0.cnt_p, b1.cnt_p)
                )
                totals.setdefault(name, []).append((t1 - t0, t2 - t1))
                print(
                    f"{image_id} {name}: committed {t1 - t0:.1f} s, now {t2 - t1:.1f} s, same counts: {same}",
                    flush=True,
                )
        for name, t in totals.items():
            a = np.asarray(t)
            print(
                f"{name}: mean per image committed {a[:, 0].mean():.1f} s, now {a[:, 1].mean():.1f} s "
                f"({a[:, 0].mean() / a[:, 1].mean():.1f}x) over {len(a)} images"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
