"""Baseline rows of the BSDS500 table, scored image by image with on-disk caching (resumable).

Rows (each a method name of the table):

- ``human``: every annotator against the others (leave one out), region measures only;
- ``gpb``: the official gPb-owt-ucm UCMs shipped with the benchmark (``gpb-owt-ucm/<split>/<id>.mat``);
- ``classic``: classic normalized cuts (colour, position, texture on a stride-10 grid,
  :mod:`matbackprop.experiments.classic_ncuts`) -> spectral boundaries -> the higra hierarchy;
- ``edges``: an edge map (e.g. the backbone's HED output) -> the same hierarchy, no NCuts layer; the
  edge maps come from a callable registered by the backbone's code (see :func:`score_edges_row`).

Every image's counts land in ``<cache>/<split>/<method>/<id>.npz`` (see
:class:`matbackprop.segmentation.ScoreCache`) and the UCMs we compute in ``<cache>/<split>/ucm/<method>/``;
a rerun scores only what is missing. Run as
``python -m matbackprop.experiments.bsds_baselines --rows human gpb classic``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..segmentation.scores import ScoreCache, method_slug, score_ucm

__all__ = [
    "ROW_NAMES",
    "score_rows",
    "score_ucm_row",
    "score_boundary_pass",
    "classic_ucm",
    "save_ucm",
    "load_ucm",
    "main",
]

ROW_NAMES = {
    "human": "human (leave one out)",
    "gpb": "gPb-owt-ucm (official UCMs)",
    "classic": "classic NCuts -> spectral boundaries -> UCM",
}
DEFAULT_DATA = "../shared/bsds500"
DEFAULT_CACHE = "runs/bsds_eval"
# Classic NCuts hierarchy settings (grid stride and cue scales of the existing classic row; sigma of
# the derivative filters about half a grid cell; level spacing); see docs/results_bsds500.md.
CLASSIC_STRIDE, CLASSIC_K, CLASSIC_SIGMA, CLASSIC_POWER = 10, 16, 4.0, 0.5


def save_ucm(path: Path, ucm2: np.ndarray) -> None:
    """Store a UCM compressed (mostly zeros: ~50 kB instead of 2.4 MB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, ucm2=np.asarray(ucm2, dtype=np.float32))
    tmp.replace(path)


def load_ucm(path: Path) -> np.ndarray:
    with np.load(path) as z:
        return z["ucm2"]


def classic_ucm(image: np.ndarray, stride: int = 10, k: int = 16, sigma: float = 4.0, power: float = 0.5) -> np.ndarray:
    """UCM of classic normalized cuts on one RGB image (uint8 (H, W, 3))."""
    import torch

    from ..ops.ncut import gaussian_affinity, ncut_embedding_dense
    from ..segmentation.hierarchy import embedding_ucm
    from .classic_ncuts import grid_cues

    cues, grid = grid_cues(image, stride)
    # the same cue scales as classic_ncut_embedding's defaults
    scale = torch.tensor([12.0] * 3 + [0.15] * 2 + [8.0] * 2, dtype=torch.float64)
    W = gaussian_affinity((cues / scale).float(), 1.0)
    with torch.no_grad():
        Z, mu = ncut_embedding_dense(W, k, check=False, return_eigenvalues=True)
    return embedding_ucm(Z, mu, grid, image.shape[:2], sigma=sigma, power=power)


def score_ucm_row(
    method: str,
    make_ucm: Callable[[str, dict], np.ndarray],
    ids: Sequence[str],
    data,
    cache_root: Path,
    keep_ucm: bool = True,
    log=print,
    boundaries: bool = True,
    min_area: int = 0,
) -> ScoreCache:
    """Score ``make_ucm(image_id, item)`` for every id not cached yet; return the method's cache.

    With ``boundaries=False`` only the region counts are computed (the boundary benchmark, the slow
    part, then runs in :func:`score_boundary_pass`; the UCM must be kept for it). The UCM is cached as
    made, and scored without its regions smaller than ``min_area`` pixels (scores made with another
    area are deleted first).
    """
    from ..metrics import HumanBoundaries
    from ..segmentation import remove_small_regions

    cache = ScoreCache(cache_root, method)
    cache.require_min_area(min_area, log)
    todo = cache.missing(ids)
    log(f"{method}: {len(ids) - len(todo)} of {len(ids)} images cached, {len(todo)} to score")
    index = {i: n for n, i in enumerate(data.ids)}
    for n, image_id in enumerate(todo):
        t0 = time.perf_counter()
        item = data[index[image_id]]
        ucm_path = cache_root / "ucm" / method_slug(method) / f"{image_id}.npz"
        ucm2 = load_ucm(ucm_path) if ucm_path.is_file() else make_ucm(image_id, item)
        if keep_ucm and not ucm_path.is_file():
            save_ucm(ucm_path, ucm2)
        t1 = time.perf_counter()
        human = HumanBoundaries(item["boundaries"]) if boundaries else None
        regions, bdry = score_ucm(remove_small_regions(ucm2, min_area), item["segmentations"], human)
        t2 = time.perf_counter()
        cache.put(image_id, regions, bdry, seconds=np.array([t1 - t0, t2 - t1]))
        log(f"{method}: {n + 1}/{len(todo)} {image_id} ucm {t1 - t0:.1f}s score {t2 - t1:.1f}s")
    return cache


def score_boundary_pass(
    methods: Sequence[str],
    ids: Sequence[str],
    data,
    cache_root: Path,
    load: Callable[[str, str], np.ndarray | None],
    log=print,
    workers: int = 1,
) -> None:
    """Boundary benchmark of every method's UCM (``load(method, image_id)``) where it is missing.

    Images are taken in order, all methods of an image together, so the human boundary maps are
    prepared once per image and the first ``n`` images are complete for every method. With
    ``workers > 1`` images are scored in that many processes (forked; ``load`` and ``data`` must be
    picklable, e.g. a :func:`functools.partial` of a module-level function); each image's counts are
    written by the process that scored it, so an interruption loses at most the images in flight.
    """
    from ..metrics.boundary_series import resolve_matcher

    caches = {m: ScoreCache(cache_root, m) for m in methods}
    matcher = resolve_matcher()  # counts from another matcher are scored again, so that one matcher made all
    todo = [i for i in ids if any(c.has(i) and not c.has_boundaries(i, matcher) for c in caches.values())]
    workers = max(1, min(workers, len(todo)))
    log(f"boundary benchmark: {len(todo)} images to score" + (f" in {workers} processes" if workers > 1 else ""))
    if workers == 1:
        for n, image_id in enumerate(todo):
            seconds = _boundary_image(methods, image_id, data, cache_root, load)
            log(f"boundary benchmark: {n + 1}/{len(todo)} {image_id} {seconds:.1f}s")
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork: the workers inherit the imported modules (spawn would re-import torch in each)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        futures = {pool.submit(_boundary_image, methods, i, data, cache_root, load): i for i in todo}
        for n, future in enumerate(as_completed(futures)):
            log(f"boundary benchmark: {n + 1}/{len(todo)} {futures[future]} {future.result():.1f}s")


def _boundary_image(
    methods: Sequence[str], image_id: str, data, cache_root: Path, load: Callable[[str, str], np.ndarray | None]
) -> float:
    """Score one image's missing boundary counts for every method; returns the seconds it took."""
    from ..metrics import HumanBoundaries, evaluate_ucm_boundaries
    from ..metrics.boundary_series import resolve_matcher

    t0 = time.perf_counter()
    human = None
    matcher = resolve_matcher()
    for m in methods:
        c = ScoreCache(cache_root, m)
        if not c.has(image_id) or c.has_boundaries(image_id, matcher):
            continue
        ucm2 = load(m, image_id)
        if ucm2 is None:
            continue
        if human is None:
            human = HumanBoundaries(data[data.ids.index(image_id)]["boundaries"])
        ts = time.perf_counter()
        counts = evaluate_ucm_boundaries(ucm2, human, matcher=matcher)
        c.put_boundaries(image_id, counts, matcher, seconds=np.array(time.perf_counter() - ts))
    return time.perf_counter() - t0


def score_human_row(ids: Sequence[str], data, cache_root: Path, log=print) -> ScoreCache:
    """Leave-one-out human region scores of every image."""
    from ..data.bsds500 import load_ground_truth
    from ..metrics import evaluate_human_regions

    cache = ScoreCache(cache_root, ROW_NAMES["human"])
    todo = cache.missing(ids)
    log(f"human: {len(todo)} to score")
    for image_id in todo:
        segs, _ = load_ground_truth(data.gt_dir / f"{image_id}.mat")
        cache.put(image_id, evaluate_human_regions(segs))
    return cache


def _gpb_loader(root: Path, split: str) -> Callable[[str, dict], np.ndarray]:
    from scipy.io import loadmat

    def load(image_id: str, item: dict) -> np.ndarray:
        path = root / "gpb-owt-ucm" / split / f"{image_id}.mat"
        if not path.is_file():
            raise FileNotFoundError(f"official gPb-owt-ucm UCM not found: {path}")
        return np.asarray(loadmat(str(path))["ucm2"], dtype=np.float64)

    return load


def score_rows(
    rows: Sequence[str],
    data_root: str,
    split: str,
    cache: str,
    limit: int | None = None,
    log=print,
    boundaries: bool = True,
    min_area: int = 0,
) -> dict[str, ScoreCache]:
    """Score the named baseline rows on the first ``limit`` images of ``split`` (regions only when
    ``boundaries`` is False: see :func:`score_boundary_pass`); ``min_area``: see :func:`score_ucm_row`
    (the classic NCuts row only: the official gPb UCMs are scored as they are)."""
    from ..data.bsds500 import BSDS500

    data = BSDS500(data_root, split)
    ids = data.ids[:limit]
    root = Path(cache) / split
    out: dict[str, ScoreCache] = {}
    for row in rows:
        if row == "human":
            out[row] = score_human_row(ids, data, root, log)
        elif row == "gpb":
            out[row] = score_ucm_row(
                ROW_NAMES["gpb"],
                _gpb_loader(Path(data_root), split),
                ids,
                data,
                root,
                keep_ucm=False,
                log=log,
                boundaries=boundaries,
            )
        elif row == "classic":
            out[row] = score_ucm_row(
                ROW_NAMES["classic"],
                lambda i, item: classic_ucm(item["image"], CLASSIC_STRIDE, CLASSIC_K, CLASSIC_SIGMA, CLASSIC_POWER),
                ids,
                data,
                root,
                log=log,
                boundaries=boundaries,
                min_area=min_area,
            )
        else:
            raise ValueError(f"unknown row {row!r}; known: {', '.join(ROW_NAMES)}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", nargs="+", default=["human", "gpb", "classic"], choices=sorted(ROW_NAMES))
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--cache", default=DEFAULT_CACHE)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    score_rows(args.rows, args.data, args.split, args.cache, args.limit, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
