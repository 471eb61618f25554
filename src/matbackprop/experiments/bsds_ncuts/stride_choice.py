"""The embedding stride of each NCuts row at test time, chosen on the val split.

The head is trained on the stride-4 grid of its features, but its weights apply unchanged on any grid,
down to stride 1 where every pixel is a node of the NCuts layer (docs/deepncuts.md). Whether the finer
grid helps depends on the run: a trained head gives smooth per-pixel features, a random one noisy ones.
:func:`tune` scores each candidate stride with one run per table group (its seed of lowest final val
loss, at the group's val-chosen :class:`.hierarchy_choice.Hierarchy`) on the first val images and writes
the choice per group to a JSON file (``matbackprop eval ncuts --tune-stride``); the test evaluation
reads it. The rule is :func:`.hierarchy_choice.choose` with :data:`DEFAULT_STRIDE`, the training grid, as
the default: another stride must be at least as good on covering, PRI and VI at ODS and better on one.
The stride is chosen after the hierarchy settings, which were chosen at the default stride.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .hierarchy_choice import DEFAULT_HIERARCHY, Hierarchy, choose, tuning_run, write_choice

__all__ = ["DEFAULT_STRIDE", "CANDIDATES", "DEFAULT_STRIDE_CHOICE", "tune", "load_strides"]

#: The grid the heads are trained on, and the stride of a group the choice file does not name.
DEFAULT_STRIDE = 4
#: Strides tried on val: the training grid and full resolution.
CANDIDATES = (DEFAULT_STRIDE, 1)
#: Where ``--tune-stride`` writes the choices and ``eval ncuts`` reads them.
DEFAULT_STRIDE_CHOICE = "results/bsds500_val_stride.json"

_MEASURES = ("covering", "pri", "vi")


def tune(
    groups: Mapping[str, Sequence[Path]],
    hierarchies: Mapping[str, Hierarchy],
    data_root: str,
    limit: int,
    out: str | Path,
    log: Callable[[str], None] = print,
    candidates: Sequence[int] = CANDIDATES,
) -> dict:
    """Region scores of every candidate stride for one run per group on the first ``limit`` val images;
    each group's choice follows :func:`.hierarchy_choice.choose` and is written to ``out`` (JSON: split,
    images, the rule, and per group its run, hierarchy, ODS/OIS measures per stride, on how many images
    each stride beats the default at its best threshold, and the chosen stride)."""
    from ...data.bsds500 import BSDS500
    from ...metrics import collect_regions
    from ...segmentation import embedding_ucm
    from ...segmentation.scores import best_thresholds, score_ucm
    from .inference import embed_image_many, load_model

    if DEFAULT_STRIDE not in candidates:
        raise ValueError(f"the candidates must include the default stride {DEFAULT_STRIDE}, got {list(candidates)}")
    data = BSDS500(data_root, "val")
    ids = data.ids[:limit]
    runs = {g: tuning_run(list(rs)) for g, rs in groups.items()}
    models = {g: load_model(run) for g, run in runs.items()}
    settings = {g: hierarchies.get(g, DEFAULT_HIERARCHY) for g in groups}
    regions: dict[str, dict[int, list]] = {g: {s: [] for s in candidates} for g in groups}
    started = time.perf_counter()
    with torch.no_grad():
        for n, image_id in enumerate(ids):
            t0 = time.perf_counter()
            item = data[n]
            H, W = item["image"].shape[:2]
            for backbone in sorted({m.config.backbone for m in models.values()}):
                # every (group, stride) of one backbone shares the backbone's forward pass
                keys = {(g, s): m for g, m in models.items() if m.config.backbone == backbone for s in candidates}
                named = {f"{g}@{s}": m for (g, s), m in keys.items()}
                per_model, _ = embed_image_many(named, item["image"], {f"{g}@{s}": s for g, s in keys})
                for g, s in keys:
                    eigenvalues, Z = per_model[f"{g}@{s}"]
                    h, w, k = Z.shape
                    h_s = settings[g]
                    ucm2 = embedding_ucm(
                        Z.reshape(h * w, k),
                        eigenvalues,
                        (h, w),
                        (H, W),
                        sigma=h_s.sigma,
                        power=h_s.power,
                        oriented=h_s.oriented,
                    )
                    regions[g][s].append(score_ucm(ucm2, item["segmentations"], None)[0])
            log(f"stride on val: {n + 1}/{len(ids)} {image_id} {time.perf_counter() - t0:.1f}s")
    record: dict = {
        "split": "val",
        "images": len(ids),
        "candidates": list(candidates),
        "default": DEFAULT_STRIDE,
        "rule": "the training grid (stride 4) unless a stride is at least as good on covering, PRI and VI ODS "
        "and better on one; then the best covering among those",
        "groups": {},
    }
    for g, by_stride in regions.items():
        scored = {s: collect_regions(r) for s, r in by_stride.items()}
        chosen = choose({s: (x.cover_ods, x.pri_ods, x.vi_ods) for s, x in scored.items()}, default=DEFAULT_STRIDE)
        best = {s: [best_thresholds(r) for r in rs] for s, rs in by_stride.items()}
        record["groups"][g] = {
            "folder": str(runs[g].parent if len(groups[g]) > 1 else runs[g]),
            "run": str(runs[g]),
            "hierarchy": asdict(settings[g]),
            "by_stride": {
                str(s): {
                    "covering_ods": round(x.cover_ods, 4),
                    "covering_ois": round(x.cover_ois, 4),
                    "pri_ods": round(x.pri_ods, 4),
                    "pri_ois": round(x.pri_ois, 4),
                    "vi_ods": round(x.vi_ods, 4),
                    "vi_ois": round(x.vi_ois, 4),
                }
                for s, x in scored.items()
            },
            "images_better_than_default": {
                str(s): _images_better(best[s], best[DEFAULT_STRIDE]) for s in candidates if s != DEFAULT_STRIDE
            },
            "chosen": chosen,
        }
        log(f"{g} ({runs[g]}):")
        for s, x in scored.items():
            mark = "  <- chosen" if s == chosen else ""
            log(
                f"  stride {s}: covering ODS {x.cover_ods:.3f} / OIS {x.cover_ois:.3f}, PRI {x.pri_ods:.3f} / "
                f"{x.pri_ois:.3f}, VI {x.vi_ods:.3f} / {x.vi_ois:.3f}{mark}"
            )
    return write_choice(record, out, started, log)


def _images_better(mine: Sequence[dict], default: Sequence[dict]) -> dict[str, int]:
    """On how many images each measure at its best threshold is better than the default stride's."""
    a = {m: np.array([b[m] for b in mine]) for m in _MEASURES}
    d = {m: np.array([b[m] for b in default]) for m in _MEASURES}
    return {
        "covering": int((a["covering"] > d["covering"]).sum()),
        "pri": int((a["pri"] > d["pri"]).sum()),
        "vi": int((a["vi"] < d["vi"]).sum()),
    }


def load_strides(
    path: str | Path | None,
    groups: Mapping[str, Sequence[Path]] | None = None,
    hierarchies: Mapping[str, Hierarchy] | None = None,
) -> dict[str, int]:
    """Group name -> the stride chosen on val; empty when no file is given or it does not exist.

    With ``groups`` (name -> its runs), a group the file names must have been tuned with one of those
    runs; with ``hierarchies`` (name -> the group's setting now), with that setting: a stride chosen for
    other runs or another hierarchy is refused, not applied.
    """
    if path is None or not Path(path).is_file():
        return {}
    p = Path(path)
    record = json.loads(p.read_text())
    if record.get("split") != "val":
        raise ValueError(f"{p}: strides must be chosen on the val split, this one says {record.get('split')!r}")
    try:
        chosen = {g: int(entry["chosen"]) for g, entry in record["groups"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(
            f"{p}: not a stride choice file (expected groups -> <name> -> chosen -> a stride): {e!r}"
        ) from e
    for g, runs in (groups or {}).items():
        entry = record["groups"].get(g)
        if entry is None:
            continue
        if Path(entry["run"]) not in {Path(r) for r in runs}:
            raise ValueError(
                f"{p}: the stride of '{g}' was chosen with {entry['run']}, which is not one of this group's runs "
                f"({', '.join(str(r) for r in runs)}); choose it again with --tune-stride, or give --stride"
            )
        now = (hierarchies or {}).get(g, DEFAULT_HIERARCHY)
        if hierarchies is not None and Hierarchy(**entry["hierarchy"]) != now:
            raise ValueError(
                f"{p}: the stride of '{g}' was chosen with the hierarchy {entry['hierarchy']}, the group now uses "
                f"{asdict(now)}; choose it again with --tune-stride, or give --stride"
            )
    return chosen
