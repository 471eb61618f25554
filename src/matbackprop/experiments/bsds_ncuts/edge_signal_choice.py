"""The edge signal of the table's combination row and edges row, chosen on the val split.

The combination row mixes DeepNCuts' spectral boundaries with HED's edges (:mod:`.combination`). Two
edge signals are candidates (:data:`.combination.EDGE_SIGNALS`): HED's fused output at the image's own
scale, as the table first used it, and the mean over three image scales with sharpened arc strengths
(the watershed still runs on the mixed map; each arc's strength is read from the mix with the edges
pulled towards their crests, :func:`~matbackprop.segmentation.sharpened_edges`). Scored without any
hierarchy, three scales and non-maximum suppression lift HED's boundary F on the test images from 0.726
to 0.754 (``benchmarks/bsds_edges_f.py``); this choice asks whether that survives the hierarchy.

:func:`tune` scores both signals on the first val images with the end-to-end run of lowest val loss, at
the combination's val-chosen weight and the val-chosen smallest region: the combination row and the
edges row, regions and boundaries. The signal is chosen on the combination row by covering ODS, the
criterion its weight was chosen by (ties keep "fused"); the edges row takes the same signal, so that the
"edges -> UCM" ablation sees the edges the combination sees. ``matbackprop eval ncuts
--tune-edge-signal`` writes the choice, the test evaluation reads it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .combination import EDGE_SIGNALS, Combination
from .hierarchy_choice import write_choice
from .val_pool import map_val_images

if TYPE_CHECKING:  # the workers' arguments; imported when scoring starts
    from ...data.bsds500 import BSDS500
    from ...models.ncuts_net import DeepNCutsNet

__all__ = ["DEFAULT_EDGE_SIGNAL_CHOICE", "choose_signal", "load_edge_signal", "tune"]

#: Where ``--tune-edge-signal`` writes the choice and ``eval ncuts`` reads it.
DEFAULT_EDGE_SIGNAL_CHOICE = "results/bsds500_val_edge_signal.json"

_ROWS = ("combination", "edges alone")


def load_edge_signal(path: str | Path) -> str:
    """The signal chosen on val ("fused" when the file does not exist: the table's first protocol)."""
    p = Path(path)
    if not p.is_file():
        return "fused"
    record = json.loads(p.read_text())
    if record.get("split") != "val":
        raise ValueError(f"{p}: the edge signal must be chosen on the val split, this one says {record.get('split')!r}")
    if record.get("chosen") not in EDGE_SIGNALS:
        raise ValueError(f"{p}: chosen edge signal {record.get('chosen')!r} is not one of {EDGE_SIGNALS}")
    return str(record["chosen"])


def choose_signal(covering_ods: Mapping[str, float]) -> str:
    """The signal of highest covering ODS (4 decimals) on the combination row; ties keep "fused".

    >>> choose_signal({"fused": 0.6078, "sharp": 0.6101}), choose_signal({"fused": 0.6078, "sharp": 0.60781})
    ('sharp', 'fused')
    """
    missing = set(EDGE_SIGNALS) - set(covering_ods)
    if missing:
        raise ValueError(f"choose_signal: no score for {sorted(missing)}")
    return max(EDGE_SIGNALS, key=lambda s: (round(covering_ods[s], 4), s == "fused"))


@dataclass
class _Job:
    """What a worker needs to score one val image."""

    run: Path
    data_root: str
    stride: int
    combination: Combination
    edges_power: float
    min_area: int


@torch.no_grad()
def _score(job: _Job, model: DeepNCutsNet, data: BSDS500, index: int) -> dict[tuple[str, str], tuple]:
    """Region and boundary counts of both rows with each signal, for val image ``index``."""
    from ...metrics import HumanBoundaries
    from ...segmentation import edges_ucm, remove_small_regions
    from ...segmentation.scores import score_ucm
    from .combination import combined_ucms
    from .hierarchy_choice import DEFAULT_HIERARCHY
    from .inference import embed_with_edges, multiscale_edges

    item = data[index]
    eigenvalues, Z, edges = embed_with_edges(model, item["image"], job.stride)
    h, w, k = Z.shape
    H, W = item["image"].shape[:2]
    fused = np.clip(edges.double().numpy(), 0.0, 1.0)
    multiscale = multiscale_edges(model, item["image"], edges)
    settings = [
        replace(job.combination, edges=s, oriented=job.combination.oriented and s == "fused") for s in EDGE_SIGNALS
    ]
    combined = combined_ucms(
        Z.reshape(h * w, k), eigenvalues, fused, (h, w), (H, W), settings, DEFAULT_HIERARCHY.sigma, multiscale
    )
    ucms = {("combination", s): u for s, u in zip(EDGE_SIGNALS, combined)}
    ucms["edges alone", "fused"] = edges_ucm(fused, power=job.edges_power)
    ucms["edges alone", "sharp"] = edges_ucm(multiscale, power=job.edges_power, sharpen=True)
    human = HumanBoundaries(item["boundaries"])
    return {
        key: score_ucm(remove_small_regions(u, job.min_area), item["segmentations"], human) for key, u in ucms.items()
    }


def tune(
    run: Path,
    data_root: str,
    limit: int,
    stride: int,
    combination: Combination,
    min_area: int,
    out: str | Path,
    log: Callable[[str], None] = print,
    edges_power: float = 1.0,
    workers: int = 1,
) -> dict:
    """Scores of both edge signals on the first ``limit`` val images (``workers`` processes, one image
    each); the signal chosen on the combination row is written to ``out`` (JSON: split, images, run,
    the combination and smallest region it was scored at, per row and signal the region and boundary
    measures, the chosen signal)."""
    from ...data.bsds500 import BSDS500
    from ...metrics import collect_boundaries, collect_regions

    n_images = len(BSDS500(data_root, "val").ids[:limit])
    job = _Job(run, data_root, stride, combination, edges_power, min_area)
    started = time.perf_counter()
    scores: dict[tuple[str, str], list] = {}
    for result in map_val_images(job, _score, n_images, workers, log, "edge signal"):
        for key, r in result.items():
            scores.setdefault(key, []).append(r)
    measures: dict[str, dict[str, dict[str, float]]] = {row: {} for row in _ROWS}
    for (row, signal), pairs in scores.items():
        r = collect_regions([p[0] for p in pairs])
        b = collect_boundaries([p[1] for p in pairs])
        values = {
            "covering_ods": r.cover_ods,
            "covering_ois": r.cover_ois,
            "pri_ods": r.pri_ods,
            "vi_ods": r.vi_ods,
            "boundary_f_ods": b.ods_f,
            "boundary_f_ois": b.ois_f,
            "boundary_ap": b.ap,
        }
        measures[row][signal] = {m: round(float(v), 4) for m, v in values.items()}
        log(f"  {row}, {signal}: " + ", ".join(f"{m} {v:.4f}" for m, v in measures[row][signal].items()))
    chosen = choose_signal({s: measures["combination"][s]["covering_ods"] for s in EDGE_SIGNALS})
    log(f"chosen on the combination row (covering ODS): {chosen}")
    record = {
        "split": "val",
        "images": n_images,
        "run": str(run),
        "stride": stride,
        "combination": asdict(combination),
        "min_area": min_area,
        "rule": "the signal of higher covering ODS (4 decimals) on the combination row (ties: fused); the edges "
        "row follows it",
        "rows": measures,
        "chosen": chosen,
    }
    return write_choice(record, out, started, log)
