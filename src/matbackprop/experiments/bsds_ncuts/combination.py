"""The combination row of the BSDS500 table: DeepNCuts spectral boundaries mixed with the backbone's edges.

One boundary map per image, ``(1 - a) sPb(embedding) + a HED-edges``, through the same watershed
mean-boundary hierarchy as every other row (oriented by the spectral boundaries or not); the UCM levels
are re-spaced as ``ucm ** power``. The weight ``a`` and the orientation are chosen on the val split
(:func:`tune`, ``matbackprop eval ncuts --tune-combination``), with the end-to-end run of lowest
val loss, and written to a JSON file that the test evaluation reads; test images never enter the choice.
The HED weights saw the val boundaries in their own training, so the val scores here are optimistic.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...segmentation import (
    combine_boundaries,
    edges_ucm,
    embedding_boundaries,
    embedding_ucm,
    respace_ucm,
    sharpened_edges,
    ultrametric_contour_map,
)

__all__ = [
    "Combination",
    "EDGE_SIGNALS",
    "GRID",
    "COMBINED_SUFFIX",
    "DEFAULT_CHOICE",
    "combined_ucms",
    "lowest_val_loss_run",
    "load_choice",
    "tune",
]

#: Name of a combination row: the group it mixes, then this suffix.
COMBINED_SUFFIX = " + HED edges (weight chosen on val)"
#: Where ``--tune-combination`` writes the chosen setting and ``eval ncuts`` reads it.
DEFAULT_CHOICE = "results/bsds500_val_combination.json"


#: The edge signals a combination row (and the edges row) can use. "fused": HED's fused output at the
#: image's scale, arcs read from the mixed map itself (the table's first protocol). "sharp": the mean of
#: HED's edges over :data:`.inference.HED_SCALES`; the watershed runs on the mixed map, the arc strengths
#: are read from the same mix with the edges sharpened (:func:`~matbackprop.segmentation.sharpened_edges`).
EDGE_SIGNALS = ("fused", "sharp")


@dataclass(frozen=True)
class Combination:
    """Weight of the edge map in the mixed boundary map, whether the oriented watershed uses the
    spectral boundaries' orientation, the UCM level power, and the edge signal (:data:`EDGE_SIGNALS`)."""

    edge_weight: float
    oriented: bool = True
    power: float = 1.0
    edges: str = "fused"

    def __post_init__(self) -> None:
        if self.edges not in EDGE_SIGNALS:
            raise ValueError(f"Combination: edges must be one of {EDGE_SIGNALS}, got {self.edges!r}")
        if self.edges == "sharp" and self.oriented:
            raise ValueError("Combination: the sharp edge signal reads its own arc strengths, without orientation")


#: Candidates tried on val: edge weights between the two pure rows (0: NCuts alone, 1: edges alone,
#: both already in the table), with and without the spectral orientation. A first sweep (weights
#: 0.25 / 0.5 / 0.75 x powers 0.5 / 1, 20 val images, an earlier and weaker embedding) rose with the
#: weight at every power and moved by at most 0.001 with the power; the power stays that of the edges
#: row. With the ranking-loss embeddings 0.5, then the lowest weight, won at strides 4 and 1, so 0.25
#: was added.
GRID = tuple(Combination(a, o) for a in (0.25, 0.5, 0.75, 0.9, 0.95) for o in (True, False))


def combined_ucms(
    Z: torch.Tensor | np.ndarray,
    eigenvalues: torch.Tensor | np.ndarray,
    edges: np.ndarray,
    grid: tuple[int, int],
    size: tuple[int, int],
    settings: Sequence[Combination],
    sigma: float = 2.0,
    multiscale: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One UCM ``(2H+1, 2W+1)`` per setting of an embedding ``Z (h*w, k)`` mixed with ``edges (H, W)``
    (HED's fused output) or, for a "sharp" setting, with ``multiscale (H, W)``
    (:func:`.inference.multiscale_edges`), which such a setting needs.

    The spectral boundaries are computed once and shared by every setting.
    """
    boundary, orientation = embedding_boundaries(Z, eigenvalues, grid, size, sigma=sigma)
    e = np.clip(np.asarray(edges, dtype=np.float64), 0.0, 1.0)
    sharp = None
    out = []
    for s in settings:
        weights = [1.0 - s.edge_weight, s.edge_weight]
        if s.edges == "fused":
            mixed = combine_boundaries([boundary, e], weights)
            out.append(respace_ucm(ultrametric_contour_map(mixed, orientation if s.oriented else None), s.power))
            continue
        if multiscale is None:
            raise ValueError("combined_ucms: a 'sharp' setting needs the multi-scale edges")
        if sharp is None:
            ms = np.clip(np.asarray(multiscale, dtype=np.float64), 0.0, 1.0)
            sharp = (ms, sharpened_edges(ms))
        mixed = combine_boundaries([boundary, sharp[0]], weights)
        arcs = combine_boundaries([boundary, sharp[1]], weights)
        out.append(respace_ucm(ultrametric_contour_map(mixed, arc_strength=arcs), s.power))
    return out


def lowest_val_loss_run(runs: Sequence[Path]) -> Path:
    """The run whose last logged val loss (``train_log.csv``) is lowest: the seed chosen on val."""
    best, best_loss = None, float("inf")
    for run in runs:
        log_file = run / "train_log.csv"
        if not log_file.is_file():
            continue
        with log_file.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("val_loss")]
        if rows and float(rows[-1]["val_loss"]) < best_loss:
            best, best_loss = run, float(rows[-1]["val_loss"])
    if best is None:
        raise ValueError(f"no val loss logged in any of {[str(r) for r in runs]}")
    return best


def load_choice(path: str | Path, runs: Sequence[Path] | None = None) -> tuple[Combination, dict] | None:
    """The setting chosen on val and the whole record, or ``None`` when the file does not exist.

    With ``runs`` (the runs the combination row will mix), the record's tuning run must be one of them.
    """
    p = Path(path)
    if not p.is_file():
        return None
    record = json.loads(p.read_text())
    if record.get("split") != "val":
        raise ValueError(f"{p}: a combination must be chosen on the val split, this one says {record.get('split')!r}")
    if runs is not None and "run" in record and Path(record["run"]) not in {Path(r) for r in runs}:
        raise ValueError(
            f"{p}: the combination was chosen with {record['run']}, which is not one of the runs it would mix "
            f"({', '.join(str(r) for r in runs)}); choose it again with --tune-combination"
        )
    return Combination(**record["chosen"]), record


def tune(
    run: Path,
    data_root: str,
    limit: int,
    stride: int,
    sigma: float,
    out: str | Path,
    log: Callable[[str], None] = print,
    ncuts_power: float = 0.5,
    edges_power: float = 1.0,
) -> dict:
    """Covering ODS of every :data:`GRID` setting on the first ``limit`` val images; the best is written
    to ``out`` (JSON: split, images, run, the grid with its scores, the chosen setting, and the covering
    ODS of the NCuts row and the edges row alone on the same images, at their level powers)."""
    from ...data.bsds500 import BSDS500
    from ...metrics import collect_regions
    from ...segmentation.scores import score_ucm
    from .inference import embed_image_many, load_model

    data = BSDS500(data_root, "val")
    ids = data.ids[:limit]
    model = load_model(run)
    regions: dict[Combination, list] = {s: [] for s in GRID}
    # the two pure rows on the same images, for reference: the combination must beat both to add anything
    alone: dict[str, list] = {"NCuts alone": [], "edges alone": []}
    started = time.perf_counter()
    with torch.no_grad():
        for n, image_id in enumerate(ids):
            t0 = time.perf_counter()
            item = data[n]
            per_model, edges = embed_image_many({"run": model}, item["image"], stride=stride)
            if edges is None:
                raise ValueError(f"{run}: the combination needs a backbone with an edge output (VGG-16 / HED)")
            eigenvalues, Z = per_model["run"]
            h, w, k = Z.shape
            H, W = item["image"].shape[:2]
            ucms = combined_ucms(Z.reshape(h * w, k), eigenvalues, edges.double().numpy(), (h, w), (H, W), GRID, sigma)
            for s, ucm2 in zip(GRID, ucms):
                regions[s].append(score_ucm(ucm2, item["segmentations"], None)[0])
            e = np.clip(edges.double().numpy(), 0.0, 1.0)
            pure = {
                "NCuts alone": embedding_ucm(
                    Z.reshape(h * w, k), eigenvalues, (h, w), (H, W), sigma=sigma, power=ncuts_power
                ),
                "edges alone": edges_ucm(e, power=edges_power),
            }
            for name, ucm2 in pure.items():
                alone[name].append(score_ucm(ucm2, item["segmentations"], None)[0])
            log(f"combination on val: {n + 1}/{len(ids)} {image_id} {time.perf_counter() - t0:.1f}s")
    scores = {s: collect_regions(r).cover_ods for s, r in regions.items()}
    references = {name: round(collect_regions(r).cover_ods, 4) for name, r in alone.items()}
    chosen = max(GRID, key=lambda s: (scores[s], -s.edge_weight))  # ties: less weight on the edges
    record = {
        "split": "val",
        "images": len(ids),
        "run": str(run),
        "run_choice": "lowest final val loss among the end-to-end seeds",
        "stride": stride,
        "grid": [{**asdict(s), "covering_ods": round(scores[s], 4)} for s in GRID],
        "chosen": asdict(chosen),
        "alone": references,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    for s in GRID:
        log(f"  edge weight {s.edge_weight:.2f}, oriented {s.oriented}: covering ODS {scores[s]:.3f}")
    for name, value in references.items():
        log(f"  {name} (same images): covering ODS {value:.3f}")
    log(f"chosen: {chosen}; wrote {path}")
    return record
