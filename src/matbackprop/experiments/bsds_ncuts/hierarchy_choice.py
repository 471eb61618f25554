"""The hierarchy settings of each NCuts row, chosen on the val split.

An NCuts row turns a run's embedding into a UCM through three settings: the scale ``sigma`` (pixels) of
the Gaussian-derivative filters of the spectral boundaries, whether the oriented watershed uses their
orientation, and the level power (``ucm ** power``, a monotone re-spacing of the levels that decides
which of them the benchmark's fixed thresholds sample). :func:`tune` scores every :data:`GRID` setting
on the first val images with one run per table group (its seed of lowest final val loss) and writes the
choice per group to a JSON file (``matbackprop eval ncuts --tune-hierarchy``); the test evaluation and
``matbackprop segment`` read it. Test images never enter the choice.

The rule (:func:`choose`) is conservative: a group keeps :data:`DEFAULT_HIERARCHY` unless another setting
is at least as good on all three region measures at ODS (covering, PRI, VI) and better on one; among
such settings the best covering wins. The goals are stated on all three measures, and on a few val
images a gain on one measure bought with a loss on another is within the noise between seeds. The HED weights saw the val
boundaries in their own training, so the val scores here are optimistic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ...segmentation import embedding_boundaries, respace_ucm, ultrametric_contour_map
from .combination import lowest_val_loss_run

__all__ = [
    "Hierarchy",
    "DEFAULT_HIERARCHY",
    "GRID",
    "DEFAULT_HIERARCHY_CHOICE",
    "choose",
    "tuning_run",
    "tune",
    "load_hierarchies",
    "ucms",
    "write_choice",
]

S = TypeVar("S")

#: Where ``--tune-hierarchy`` writes the choices and ``eval ncuts`` / ``segment`` read them.
DEFAULT_HIERARCHY_CHOICE = "results/bsds500_val_hierarchy.json"


@dataclass(frozen=True)
class Hierarchy:
    """Derivative scale of the spectral boundaries (pixels), oriented watershed or not, level power."""

    sigma: float = 2.0
    power: float = 0.5
    oriented: bool = True


#: The setting of every NCuts row before per-group choices existed (chosen on 4 val images with the
#: untrained run); used for a group the choice file does not name, and by a cache without a record.
DEFAULT_HIERARCHY = Hierarchy()

#: Candidates tried on val. The spectral boundaries are computed once per sigma and shared by the rest.
GRID = tuple(Hierarchy(s, p, o) for s in (1.0, 2.0, 4.0) for p in (0.5, 1.0) for o in (True, False))


def ucms(
    Z: torch.Tensor,
    eigenvalues: torch.Tensor,
    grid: tuple[int, int],
    size: tuple[int, int],
    settings: Sequence[Hierarchy],
) -> list[np.ndarray]:
    """One UCM ``(2H+1, 2W+1)`` per setting of an embedding ``Z (h*w, k)``; the spectral boundaries and
    the watershed hierarchy are computed once per sigma and orientation flag."""
    out: dict[Hierarchy, np.ndarray] = {}
    for sigma in sorted({s.sigma for s in settings}):
        boundary, orientation = embedding_boundaries(Z, eigenvalues, grid, size, sigma=sigma)
        for oriented in sorted({s.oriented for s in settings if s.sigma == sigma}):
            ucm2 = ultrametric_contour_map(boundary, orientation if oriented else None)
            for s in settings:
                if s.sigma == sigma and s.oriented == oriented:
                    out[s] = respace_ucm(ucm2, s.power)
    return [out[s] for s in settings]


def choose(scores: Mapping[S, tuple[float, float, float]], default: S = DEFAULT_HIERARCHY) -> S:  # type: ignore[assignment]
    """The setting a group uses, from each setting's ``(covering, PRI, VI)`` at ODS (VI: lower is better).

    ``default`` (:data:`DEFAULT_HIERARCHY`, or any other kind of setting, e.g. an embedding stride) unless
    a setting is at least as good on all three and better on one (values compared at 4 decimals); among
    those, the best covering (ties: the earlier setting in ``scores``).

    >>> d, s = DEFAULT_HIERARCHY, Hierarchy(sigma=4.0)
    >>> choose({d: (0.49, 0.787, 2.117), s: (0.50, 0.772, 2.149)}) == d      # more covering, less PRI
    True
    >>> choose({d: (0.49, 0.787, 2.117), s: (0.50, 0.787, 2.100)}) == s      # better or equal on all
    True
    """
    if default not in scores:
        raise ValueError("the default setting must be scored: it is what a change is measured against")
    r = {h: (round(c, 4), round(p, 4), -round(v, 4)) for h, (c, p, v) in scores.items()}
    base = r[default]
    better = [h for h, x in r.items() if all(a >= b for a, b in zip(x, base)) and x != base]
    if not better:
        return default
    order = list(scores)
    return max(better, key=lambda h: (r[h][0], -order.index(h)))


def tuning_run(runs: Sequence[Path]) -> Path:
    """The run a group is tuned with: its only run, or the seed of lowest final val loss."""
    return runs[0] if len(runs) == 1 else lowest_val_loss_run(runs)


def tune(
    groups: Mapping[str, Sequence[Path]],
    data_root: str,
    limit: int,
    stride: int,
    out: str | Path,
    log: Callable[[str], None] = print,
) -> dict:
    """Region scores of every :data:`GRID` setting for one run per group on the first ``limit`` val
    images; each group's choice follows :func:`choose` and is written to ``out`` (JSON: split, images,
    stride, the rule, and per group its run, scored grid, chosen setting and the setting of best
    covering alone, for the record)."""
    from ...data.bsds500 import BSDS500
    from ...metrics import collect_regions
    from ...segmentation.scores import score_ucm
    from .inference import embed_image_many, load_model

    data = BSDS500(data_root, "val")
    ids = data.ids[:limit]
    chosen_runs = {g: tuning_run(list(runs)) for g, runs in groups.items()}
    models = {g: load_model(run) for g, run in chosen_runs.items()}
    regions: dict[str, dict[Hierarchy, list]] = {g: {s: [] for s in GRID} for g in groups}
    started = time.perf_counter()
    with torch.no_grad():
        for n, image_id in enumerate(ids):
            t0 = time.perf_counter()
            item = data[n]
            H, W = item["image"].shape[:2]
            for backbone in sorted({m.config.backbone for m in models.values()}):
                same = {g: m for g, m in models.items() if m.config.backbone == backbone}
                per_model, _ = embed_image_many(same, item["image"], stride=stride)
                for g, (eigenvalues, Z) in per_model.items():
                    h, w, k = Z.shape
                    for s, ucm2 in zip(GRID, ucms(Z.reshape(h * w, k), eigenvalues, (h, w), (H, W), GRID)):
                        regions[g][s].append(score_ucm(ucm2, item["segmentations"], None)[0])
            log(f"hierarchy on val: {n + 1}/{len(ids)} {image_id} {time.perf_counter() - t0:.1f}s")
    record: dict = {
        "split": "val",
        "images": len(ids),
        "stride": stride,
        "rule": "the default unless a setting is at least as good on covering, PRI and VI ODS and better on "
        "one; then the best covering among those",
        "default": asdict(DEFAULT_HIERARCHY),
        "groups": {},
    }
    for g, by_setting in regions.items():
        scored = {s: collect_regions(r) for s, r in by_setting.items()}
        best = choose({s: (x.cover_ods, x.pri_ods, x.vi_ods) for s, x in scored.items()})
        best_covering = max(GRID, key=lambda s: (round(scored[s].cover_ods, 4), -GRID.index(s)))
        record["groups"][g] = {
            "folder": str(chosen_runs[g].parent if len(groups[g]) > 1 else chosen_runs[g]),
            "run": str(chosen_runs[g]),
            "grid": [
                {
                    **asdict(s),
                    "covering_ods": round(scored[s].cover_ods, 4),
                    "pri_ods": round(scored[s].pri_ods, 4),
                    "vi_ods": round(scored[s].vi_ods, 4),
                }
                for s in GRID
            ],
            "chosen": asdict(best),
            "best_covering_alone": asdict(best_covering),
        }
        log(f"{g} ({chosen_runs[g]}):")
        for s in GRID:
            mark = "  <- chosen" if s == best else ""
            log(
                f"  sigma {s.sigma:g}, power {s.power:g}, oriented {s.oriented}: covering ODS "
                f"{scored[s].cover_ods:.3f}, PRI {scored[s].pri_ods:.3f}, VI {scored[s].vi_ods:.3f}{mark}"
            )
    return write_choice(record, out, started, log)


def write_choice(record: dict, out: str | Path, started: float, log: Callable[[str], None] = print) -> dict:
    """Write a val choice ``record`` (with the seconds since ``started``) as JSON to ``out``; return it."""
    record["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {path}")
    return record


def load_hierarchies(
    path: str | Path | None, groups: Mapping[str, Sequence[Path]] | None = None
) -> dict[str, Hierarchy]:
    """Group name -> the setting chosen on val; empty when no file is given or it does not exist.

    With ``groups`` (name -> its runs), a group the file names must have been tuned with one of those
    runs: a choice made for another protocol's runs under the same name is refused, not applied.
    """
    if path is None or not Path(path).is_file():
        return {}
    p = Path(path)
    record = json.loads(p.read_text())
    if record.get("split") != "val":
        raise ValueError(
            f"{p}: hierarchy settings must be chosen on the val split, this one says {record.get('split')!r}"
        )
    try:
        chosen = {g: Hierarchy(**entry["chosen"]) for g, entry in record["groups"].items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(
            f"{p}: not a hierarchy choice file (expected groups -> <name> -> chosen -> sigma, power, oriented): {e!r}"
        ) from e
    for g, runs in (groups or {}).items():
        tuned_with = record["groups"].get(g, {}).get("run")
        if tuned_with is not None and Path(tuned_with) not in {Path(r) for r in runs}:
            raise ValueError(
                f"{p}: the setting of '{g}' was chosen with {tuned_with}, which is not one of this group's runs "
                f"({', '.join(str(r) for r in runs)}); choose it again with --tune-hierarchy, or name another "
                "file with --hierarchy"
            )
    return chosen
