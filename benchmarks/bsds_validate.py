"""Validate matbackprop's BSDS500 benchmark against the official figures.

Scores the official gPb-owt-ucm hierarchies of the 200 BSDS500 test images
(99 thresholds 0.01..0.99) with every benchmark, and the human leave-one-out
row (each annotator against the others of the same image), then prints ours
next to the official numbers (Arbelaez et al., TPAMI 2011, and the BSR
package's own ``test_eval`` outputs).

Usage::

    python benchmarks/bsds_validate.py [--root ../shared/bsds500] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from tqdm import tqdm

from matbackprop.data.bsds500 import load_ground_truth
from matbackprop.metrics import (
    HumanBoundaries,
    collect_boundaries,
    collect_regions,
    evaluate_human_regions,
    evaluate_ucm_boundaries,
    evaluate_ucm_regions,
)

# Published figures, used when the official test_eval files are absent.
OFFICIAL_UCM = {
    "cover_ods": 0.5884,
    "cover_ois": 0.6468,
    "cover_best": 0.7441,
    "pri_ods": 0.8273,
    "pri_ois": 0.8555,
    "vi_ods": 1.6896,
    "vi_ois": 1.4750,
    "bdry_ods": 0.7263,
    "bdry_ois": 0.7595,
    "bdry_ap": 0.7266,
}
OFFICIAL_HUMAN = {
    "test": {"cover": 0.722, "pri": 0.876, "vi": 1.169},
    "val": {"cover": 0.728, "pri": 0.867, "vi": 1.161},
}
REGION_TOL, BOUNDARY_TOL = 0.002, 0.005


def read_official(eval_dir: Path) -> dict[str, float]:
    """Official gPb-owt-ucm scores from the BSR ``test_eval`` text files."""
    try:
        cov = np.loadtxt(eval_dir / "eval_cover.txt", ndmin=1)
        rv = np.loadtxt(eval_dir / "eval_RI_VOI.txt", ndmin=1)
        bd = np.loadtxt(eval_dir / "eval_bdry.txt", ndmin=1)
    except OSError:
        return dict(OFFICIAL_UCM)
    return {
        "cover_ods": cov[1],
        "cover_ois": cov[2],
        "cover_best": cov[3],
        "pri_ods": rv[1],
        "pri_ois": rv[2],
        "vi_ods": rv[4],
        "vi_ois": rv[5],
        "bdry_ods": bd[3],
        "bdry_ois": bd[6],
        "bdry_ap": bd[7],
    }


def compare_curves(eval_dir: Path, rres, bres) -> dict[str, float]:
    """Largest gaps between our per-threshold curves and the official ones."""
    out = {}
    try:
        cov = np.loadtxt(eval_dir / "eval_cover_th.txt", ndmin=2)
        rv = np.loadtxt(eval_dir / "eval_RI_VOI_thr.txt", ndmin=2)
        bd = np.loadtxt(eval_dir / "eval_bdry_thr.txt", ndmin=2)
    except OSError:
        return out
    if cov.shape[0] == rres.thresholds.size:
        out["covering"] = float(np.abs(cov[:, 1] - rres.covering).max())
        out["PRI"] = float(np.abs(rv[:, 1] - rres.pri).max())
        out["VI"] = float(np.abs(rv[:, 2] - rres.vi).max())
    if bd.shape[0] == bres.thresholds.size:
        out["recall"] = float(np.abs(bd[:, 1] - bres.recall).max())
        out["precision"] = float(np.abs(bd[:, 2] - bres.precision).max())
        out["F"] = float(np.abs(bd[:, 3] - bres.f).max())
    return out


def score_image(job: tuple[str, str, str, int]):
    """All per-image evaluations of one test image (runs in a worker)."""
    gt_file, ucm_file, iid, nthresh = job
    segs, bdrys = load_ground_truth(gt_file)
    ucm2 = loadmat(ucm_file)["ucm2"].astype(float)
    human = HumanBoundaries(bdrys)
    return (
        iid,
        evaluate_ucm_boundaries(ucm2, human, nthresh),
        evaluate_ucm_regions(ucm2, segs, nthresh),
        evaluate_human_regions(segs),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--root", default="../shared/bsds500", help="folder holding BSDS500/ and gpb-owt-ucm/ (default: %(default)s)"
    )
    ap.add_argument("--workers", type=int, default=2, help="processes (default: %(default)s)")
    ap.add_argument("--nthresh", type=int, default=99, help="UCM thresholds (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N images")
    args = ap.parse_args(argv)

    root = Path(args.root)
    gt_dir = root / "BSDS500" / "groundTruth" / "test"
    ucm_dir = root / "gpb-owt-ucm" / "test"
    for d in (gt_dir, ucm_dir):
        if not d.is_dir():
            print(
                f"error: {d} not found; pass --root pointing at the BSDS500 copy "
                "that also holds the official gpb-owt-ucm results",
                file=sys.stderr,
            )
            return 2
    ids = sorted(p.stem for p in ucm_dir.glob("*.mat"))[: args.limit]
    jobs = [(str(gt_dir / f"{i}.mat"), str(ucm_dir / f"{i}.mat"), i, args.nthresh) for i in ids]

    start = time.perf_counter()
    results = {}
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(args.workers) as pool:
        for iid, b, r, h in tqdm(
            pool.imap_unordered(score_image, jobs), total=len(jobs), desc="BSDS500 test", unit="img"
        ):
            results[iid] = (b, r, h)
    # the official scripts list images in file-name order
    order = sorted(results)
    bres = collect_boundaries([results[i][0] for i in order])
    rres = collect_regions([results[i][1] for i in order])
    # every held-out annotator is one benchmark entry: covering pooled over
    # all of them, PRI and VI averaged over all of them
    hres = collect_regions([e for i in order for e in results[i][2]])
    wall = time.perf_counter() - start

    off = read_official(root / "gpb-owt-ucm" / "test_eval")
    ours = {
        "cover_ods": rres.cover_ods,
        "cover_ois": rres.cover_ois,
        "cover_best": rres.cover_best,
        "pri_ods": rres.pri_ods,
        "pri_ois": rres.pri_ois,
        "vi_ods": rres.vi_ods,
        "vi_ois": rres.vi_ois,
        "bdry_ods": bres.ods_f,
        "bdry_ois": bres.ois_f,
        "bdry_ap": bres.ap,
    }
    ok = True
    print(f"\ngPb-owt-ucm on BSDS500 test ({len(order)} images, {args.nthresh} thresholds)")
    print(f"{'measure':<12}{'ours':>10}{'official':>10}{'diff':>10}  ")
    for k, v in ours.items():
        tol = BOUNDARY_TOL if k.startswith("bdry") else REGION_TOL
        d = v - off[k]
        good = abs(d) <= tol
        ok &= good
        print(f"{k:<12}{v:>10.4f}{off[k]:>10.4f}{d:>+10.4f}  {'ok' if good else 'MISMATCH'}")
    print(
        f"(ODS thresholds: covering {rres.cover_threshold:.2f}, PRI {rres.pri_threshold:.2f}, "
        f"VI {rres.vi_threshold:.2f}, boundary {bres.ods_threshold:.4f})"
    )

    curves = compare_curves(root / "gpb-owt-ucm" / "test_eval", rres, bres)
    if curves:
        print(
            "largest per-threshold gaps to the official curves: " + ", ".join(f"{k} {v:.4f}" for k, v in curves.items())
        )

    print("\nHuman leave-one-out on BSDS500 test")
    hum = {"cover": hres.cover_ods, "pri": hres.pri_ods, "vi": hres.vi_ods}
    for k, v in hum.items():
        o = OFFICIAL_HUMAN["test"][k]
        d = v - o
        # the published human row has three decimals: allow its rounding
        good = abs(d) <= REGION_TOL + 0.0005
        ok &= good
        print(f"{k:<12}{v:>10.4f}{o:>10.3f}{d:>+10.4f}  {'ok' if good else 'MISMATCH'}")
    t = os.times()
    cpu = t.children_user + t.children_system
    # CPU time tells how loaded the machine was: wall ~ cpu / workers when idle
    print(f"\nwall time: {wall:.1f} s with {args.workers} worker(s) (worker CPU time {cpu:.1f} s)")
    return 0 if ok or args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
