"""The smallest region the table's hierarchies keep, chosen on the val split.

A mean-boundary hierarchy can keep a small region with strong contours (a textured blob, a highlight)
up to coarse thresholds, where the benchmark's single best threshold (ODS) then counts it as a region
of its own. :func:`~matbackprop.segmentation.remove_small_regions` merges every region of fewer than
``min_area`` pixels into its neighbours, keeping the levels of the others. The step applies to the UCM
of every row this project computes (not to the official gPb-owt-ucm UCMs), at scoring time: cached UCMs
stay as the hierarchy made them, and the scores record the area they were computed with
(:meth:`~matbackprop.segmentation.scores.ScoreCache.require_min_area`).

:func:`tune` scores each candidate area on the first val images with the end-to-end run of lowest val
loss: its NCuts row and its combination row (at their val-chosen settings), and the HED-edges row. The
area is chosen on the combination row, the table's best, with :func:`.hierarchy_choice.choose` (0 unless
another area is at least as good on covering, PRI and VI at ODS and better on one); the other two rows
are recorded beside it. ``matbackprop eval ncuts --tune-min-area`` writes the choice, the test
evaluation reads it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .combination import Combination
from .hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy, choose, write_choice
from .val_pool import map_val_images

if TYPE_CHECKING:  # the workers' arguments; imported when scoring starts
    from ...data.bsds500 import BSDS500
    from ...models.ncuts_net import DeepNCutsNet

__all__ = ["CANDIDATES", "DEFAULT_MIN_AREA_CHOICE", "tune", "load_min_area"]

#: Areas tried on val, in pixels (a BSDS image has 154,401).
CANDIDATES = (0, 25, 50, 100, 200, 400, 800)
#: Where ``--tune-min-area`` writes the choice and ``eval ncuts`` reads it.
DEFAULT_MIN_AREA_CHOICE = "results/bsds500_val_min_area.json"

_ROWS = ("combination", "NCuts alone", "edges alone")
_MEASURES = ("covering_ods", "covering_ois", "pri_ods", "pri_ois", "vi_ods", "vi_ois")


def load_min_area(path: str | Path) -> int:
    """The area chosen on val (0 when the file does not exist: no regions removed)."""
    p = Path(path)
    if not p.is_file():
        return 0
    record = json.loads(p.read_text())
    if record.get("split") != "val":
        raise ValueError(f"{p}: the area must be chosen on the val split, this one says {record.get('split')!r}")
    return int(record["chosen"])


@dataclass
class _Job:
    """What a worker needs to score one val image."""

    run: Path
    data_root: str
    stride: int
    hierarchy: Hierarchy
    combination: Combination
    edges_power: float
    candidates: tuple[int, ...]


@torch.no_grad()
def _score(job: _Job, model: DeepNCutsNet, data: BSDS500, index: int) -> dict[tuple[str, int], object]:
    """Region counts of the three rows at every candidate area, for val image ``index``."""
    from ...segmentation import edges_ucm, embedding_ucm, remove_small_regions
    from ...segmentation.scores import score_ucm
    from .combination import combined_ucms
    from .inference import embed_with_edges

    item = data[index]
    eigenvalues, Z, edges = embed_with_edges(model, item["image"], job.stride)
    h, w, k = Z.shape
    H, W = item["image"].shape[:2]
    e = np.clip(edges.double().numpy(), 0.0, 1.0)
    s = job.hierarchy
    ucms = {
        # the scale the combination's weight was chosen with, as in the table
        "combination": combined_ucms(
            Z.reshape(h * w, k), eigenvalues, e, (h, w), (H, W), [job.combination], DEFAULT_HIERARCHY.sigma
        )[0],
        "NCuts alone": embedding_ucm(
            Z.reshape(h * w, k), eigenvalues, (h, w), (H, W), sigma=s.sigma, power=s.power, oriented=s.oriented
        ),
        "edges alone": edges_ucm(e, power=job.edges_power),
    }
    return {
        (row, a): score_ucm(remove_small_regions(u, a), item["segmentations"], None)[0]
        for row, u in ucms.items()
        for a in job.candidates
    }


def tune(
    run: Path,
    data_root: str,
    limit: int,
    stride: int,
    hierarchy: Hierarchy,
    combination: Combination,
    out: str | Path,
    log: Callable[[str], None] = print,
    edges_power: float = 1.0,
    workers: int = 1,
    candidates: Sequence[int] = CANDIDATES,
) -> dict:
    """Region scores of every candidate area on the first ``limit`` val images (``workers`` processes,
    one image each); the area chosen on the combination row is written to ``out`` (JSON: split, images,
    run, rule, per row and area the six ODS/OIS measures, the chosen area)."""
    from ...data.bsds500 import BSDS500
    from ...metrics import collect_regions

    if 0 not in candidates:
        raise ValueError(f"the candidates must include 0 (no regions removed), got {list(candidates)}")
    n_images = len(BSDS500(data_root, "val").ids[:limit])
    job = _Job(run, data_root, stride, hierarchy, combination, edges_power, tuple(candidates))
    started = time.perf_counter()
    regions: dict[tuple[str, int], list] = {}
    for result in map_val_images(job, _score, n_images, workers, log, "min_area"):
        for key, r in result.items():
            regions.setdefault(key, []).append(r)
    measures: dict[str, dict[int, dict[str, float]]] = {row: {} for row in _ROWS}
    for (row, a), regs in regions.items():
        r = collect_regions(regs)
        values = (r.cover_ods, r.cover_ois, r.pri_ods, r.pri_ois, r.vi_ods, r.vi_ois)
        measures[row][a] = {m: round(float(v), 4) for m, v in zip(_MEASURES, values)}
    ods: Mapping[int, tuple[float, float, float]] = {
        a: (m["covering_ods"], m["pri_ods"], m["vi_ods"]) for a, m in measures["combination"].items()
    }
    chosen = choose(ods, default=0)
    for row in _ROWS:
        for a in candidates:
            m = measures[row][a]
            log(
                f"  {row}, min_area {a}: covering {m['covering_ods']:.4f} / {m['covering_ois']:.4f}, "
                f"PRI {m['pri_ods']:.4f} / {m['pri_ois']:.4f}, VI {m['vi_ods']:.4f} / {m['vi_ois']:.4f}"
            )
    log(f"chosen on the combination row: min_area {chosen}")
    record = {
        "split": "val",
        "images": n_images,
        "run": str(run),
        "stride": stride,
        "rule": "0 unless an area is at least as good on covering, PRI and VI at ODS (4 decimals) and better "
        "on one, on the combination row; among those the best covering",
        "rows": {row: {str(a): measures[row][a] for a in candidates} for row in _ROWS},
        "chosen": int(chosen),
    }
    return write_choice(record, out, started, log)
