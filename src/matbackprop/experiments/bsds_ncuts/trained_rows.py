"""The trained rows of the BSDS500 table: each run's UCM of every image, and its region scores.

For every image, the runs of one backbone share the pretrained part of its forward pass
(:func:`.inference.embed_image_many`); each run's embedding, on its group's grid, becomes spectral
boundaries and a UCM with its group's hierarchy settings; the combination rows mix an end-to-end
embedding with the backbone's edges, and the "HED edges -> UCM" row comes with the same pass. The UCMs
and the region counts are cached per image (:class:`~matbackprop.segmentation.scores.ScoreCache`); the
boundary counts are a second pass (:func:`..bsds_baselines.score_boundary_pass`).

Images are independent, so with ``workers > 1`` they are scored in that many processes, each given the
loaded models once when it starts (not with every image); each image's files are written by the process
that scored it, so an interruption loses at most the images in flight and a rerun resumes. The workers
are spawned, not forked: a fork of a process whose OpenMP threads have run (torch with more than one
thread) can hang in the child's first parallel region.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...segmentation.scores import ScoreCache, method_slug, score_ucm
from ..bsds_baselines import load_ucm, save_ucm
from .cache_validity import check_cache, check_edge_signal
from .combination import COMBINED_SUFFIX, Combination, combined_ucms
from .hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy
from .stride_choice import DEFAULT_STRIDE

__all__ = ["EDGES_ROW", "EDGES_POWER", "model_ucms", "run_method_name", "score_trained_rows"]

#: Level spacing of the "edges -> UCM" row (chosen on val images).
EDGES_POWER = 1.0
EDGES_ROW = "HED edges (VGG-16 backbone) -> UCM, no NCuts layer"


def run_method_name(group: str, run: Path, n_runs: int) -> str:
    """A run's row name: its group's, with the seed folder when the group has several runs."""
    return group if n_runs == 1 else f"{group} ({run.name})"


@torch.no_grad()
def model_ucms(
    models: dict,
    image: np.ndarray,
    stride: int | Mapping[str, int],
    hierarchies: dict[str, Hierarchy],
    want_edges: bool,
    combos: dict[str, tuple[str, Combination]] | None = None,
    edge_signal: str = "fused",
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """UCMs of every model's embedding of one image, and the UCM of the backbone's edges.

    ``stride``: the embedding grid of every model, or of each by name. ``hierarchies`` gives each model's
    settings (default :data:`.DEFAULT_HIERARCHY`). ``combos`` maps a combination row's name to ``(model
    name, setting)``: that model's embedding (on its grid) mixed with the edges
    (:func:`.combination.combined_ucms`), returned under the row's name. ``edge_signal``: that of the
    edges row (:data:`.combination.EDGE_SIGNALS`); the multi-scale edges are computed once, when a
    combination or the edges row needs them.
    """
    from ...segmentation import edges_ucm, embedding_ucm
    from .inference import embed_image_many, multiscale_edges

    out: dict[str, np.ndarray] = {}
    edges = multiscale = None
    sharp_combos = any(setting.edges == "sharp" for _, setting in (combos or {}).values())
    H, W = image.shape[:2]
    for backbone in sorted({m.config.backbone for m in models.values()}):
        # models of one backbone share its forward pass
        same = {n: m for n, m in models.items() if m.config.backbone == backbone}
        per_model, e = embed_image_many(
            same, image, stride if isinstance(stride, int) else {n: stride[n] for n in same}
        )
        if e is not None:
            edges = e
            if multiscale is None and (sharp_combos or (want_edges and edge_signal == "sharp")):
                multiscale = multiscale_edges(next(iter(same.values())), image, e)
        for name, (ev, Z) in per_model.items():
            h, w, k = Z.shape
            s = hierarchies.get(name, DEFAULT_HIERARCHY)
            out[name] = embedding_ucm(
                Z.reshape(h * w, k), ev, (h, w), (H, W), sigma=s.sigma, power=s.power, oriented=s.oriented
            )
            mine = {c: setting for c, (source, setting) in (combos or {}).items() if source == name}
            if mine and e is not None:
                ucms = combined_ucms(
                    Z.reshape(h * w, k),
                    ev,
                    e.double().numpy(),
                    (h, w),
                    (H, W),
                    list(mine.values()),
                    DEFAULT_HIERARCHY.sigma,  # the scale the combination's weight was chosen with
                    multiscale,
                )
                out.update(zip(mine, ucms))
    edge_ucm = None
    if want_edges and edges is not None:
        if edge_signal == "sharp" and multiscale is not None:
            edge_ucm = edges_ucm(multiscale, power=EDGES_POWER, sharpen=True)
        else:
            edge_ucm = edges_ucm(np.clip(edges.double().numpy(), 0.0, 1.0), power=EDGES_POWER)
    return out, edge_ucm


@dataclass
class _Rows:
    """What scoring one image needs: the loaded models and each row's settings and cache."""

    runs: dict[str, Path]
    models: dict
    strides: dict[str, int]
    hierarchies: dict[str, Hierarchy]
    combos: dict[str, tuple[str, Combination]]
    want_edges: bool
    data: Any  # a BSDS500 split
    root: Path
    min_area: int = 0
    edge_signal: str = "fused"

    def cache(self, name: str) -> ScoreCache:
        return ScoreCache(self.root, name)

    def ucm_path(self, name: str, image_id: str) -> Path:
        return self.root / "ucm" / method_slug(name) / f"{image_id}.npz"


#: The rows a worker process scores, set once when it starts (:func:`_start_worker`).
_WORKER_ROWS: _Rows | None = None


def _score_image(rows: _Rows, image_id: str) -> tuple[float, float, int]:
    """Make (or load, when cached) and score the UCMs of one image's unscored rows; ``(seconds
    embedding + UCMs, seconds scoring, rows written)``."""
    from ...segmentation import remove_small_regions

    t0 = time.perf_counter()
    data = rows.data
    item = data[data.ids.index(image_id)]
    names = [*rows.runs, *rows.combos] + ([EDGES_ROW] if rows.want_edges else [])
    caches = {n: rows.cache(n) for n in names}
    unscored = [n for n in names if not caches[n].has(image_id)]
    # a UCM made before (e.g. scores deleted for another min_area) is scored again as it is
    ready = {n: load_ucm(rows.ucm_path(n, image_id)) for n in unscored if rows.ucm_path(n, image_id).is_file()}
    need = [n for n in unscored if n not in ready]
    combo_missing = {c: v for c, v in rows.combos.items() if c in need}
    sources = {source for source, _ in combo_missing.values()}
    missing = {n: rows.models[n] for n in rows.runs if n in need or n in sources}
    vgg = [n for n, m in rows.models.items() if m.config.backbone.startswith("vgg")]
    edge_missing = EDGES_ROW in need and bool(vgg)
    if edge_missing and not missing:  # the edges come with an embedding: take the cheapest model
        missing = {vgg[0]: rows.models[vgg[0]]}
    ucms: dict[str, np.ndarray] = {}
    if missing:
        ucms, edge_ucm = model_ucms(
            missing, item["image"], rows.strides, rows.hierarchies, edge_missing, combo_missing, rows.edge_signal
        )
        if edge_ucm is not None:
            ucms[EDGES_ROW] = edge_ucm
    made = {n: u for n, u in ucms.items() if n in need}
    for name, ucm2 in made.items():
        save_ucm(rows.ucm_path(name, image_id), ucm2)
    t1 = time.perf_counter()
    to_score = {**ready, **made}
    for name, ucm2 in to_score.items():
        ts = time.perf_counter()
        # boundaries: second pass
        regions, _ = score_ucm(remove_small_regions(ucm2, rows.min_area), item["segmentations"], None)
        seconds = np.array([(t1 - t0) / max(len(to_score), 1), time.perf_counter() - ts])
        caches[name].put(image_id, regions, seconds=seconds)
    return t1 - t0, time.perf_counter() - t1, len(to_score)


def _start_worker(rows: _Rows, threads: int) -> None:
    global _WORKER_ROWS
    torch.set_num_threads(threads)
    _WORKER_ROWS = rows


def _score_in_worker(image_id: str) -> tuple[float, float, int]:
    assert _WORKER_ROWS is not None, "each worker is given the rows when it starts"
    return _score_image(_WORKER_ROWS, image_id)


def score_trained_rows(
    groups: Mapping[str, list[Path]],
    ids: list[str],
    data,
    root: Path,
    log: Callable[[str], None],
    hierarchies: Mapping[str, Hierarchy],
    group_strides: Mapping[str, int] | None = None,
    combination: tuple[str, Combination] | None = None,
    want_edges: bool = True,
    workers: int = 1,
    min_area: int = 0,
    edge_signal: str = "fused",
) -> list[str]:
    """Score every run (and the edges row) on ``ids``; returns the row names in table order.

    ``hierarchies`` and ``group_strides``: each group's settings (defaults: :data:`.DEFAULT_HIERARCHY`,
    :data:`.stride_choice.DEFAULT_STRIDE`); ``combination``: ``(group, setting)``, the group whose runs
    also get a combination row; ``workers``: processes, one image each; ``min_area``: every UCM is
    scored without its regions of fewer pixels (:func:`~matbackprop.segmentation.remove_small_regions`;
    cached UCMs are kept as made); ``edge_signal``: the edges row's (:data:`.combination.EDGE_SIGNALS`).
    """
    from .inference import load_model

    runs = {run_method_name(g, r, len(rs)): r for g, rs in groups.items() for r in rs}
    settings = {
        run_method_name(g, r, len(rs)): hierarchies.get(g, DEFAULT_HIERARCHY) for g, rs in groups.items() for r in rs
    }
    strides = {
        run_method_name(g, r, len(rs)): (group_strides or {}).get(g, DEFAULT_STRIDE)
        for g, rs in groups.items()
        for r in rs
    }
    combos: dict[str, tuple[str, Combination]] = {}
    if combination is not None and combination[0] in groups:
        g, setting = combination
        rs = groups[g]
        combos = {
            run_method_name(g + COMBINED_SUFFIX, r, len(rs)): (run_method_name(g, r, len(rs)), setting) for r in rs
        }
    names = list(runs) + list(combos) + ([EDGES_ROW] if want_edges and runs else [])
    caches = {n: ScoreCache(root, n) for n in names}
    for n, run in runs.items():
        check_cache(caches[n], root, run, log, settings[n], strides[n])
    for n, (source, setting) in combos.items():
        check_cache(caches[n], root, runs[source], log, setting, strides[source])
    if EDGES_ROW in caches:
        check_edge_signal(caches[EDGES_ROW], root, edge_signal, log)
    for c in caches.values():
        c.require_min_area(min_area, log)
    todo = [i for i in ids if any(not c.has(i) for c in caches.values())]
    workers = max(1, min(workers, len(todo)))
    log(
        f"trained rows: {len(names)} methods, {len(ids) - len(todo)} of {len(ids)} images done, {len(todo)} to score"
        + (f" in {workers} processes" if workers > 1 and todo else "")
    )
    if not todo:
        return names
    rows = _Rows(
        runs=runs,
        models={n: load_model(r) for n, r in runs.items()},
        strides=strides,
        hierarchies=settings,
        combos=combos,
        want_edges=want_edges,
        data=data,
        root=root,
        min_area=min_area,
        edge_signal=edge_signal,
    )

    def report(count: int, image_id: str, result: tuple[float, float, int]) -> None:
        log(
            f"trained rows: {count}/{len(todo)} {image_id}: embed+UCM {result[0]:.1f}s, "
            f"scoring {result[1]:.1f}s for {result[2]} methods"
        )

    if workers == 1:
        for count, image_id in enumerate(todo):
            report(count + 1, image_id, _score_image(rows, image_id))
        return names
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    start = (rows, torch.get_num_threads())
    with ProcessPoolExecutor(workers, mp.get_context("spawn"), initializer=_start_worker, initargs=start) as pool:
        futures = {pool.submit(_score_in_worker, i): i for i in todo}
        for count, future in enumerate(as_completed(futures)):
            report(count + 1, futures[future], future.result())
    return names
