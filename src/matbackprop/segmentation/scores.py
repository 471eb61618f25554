"""Per-image BSDS scores of hierarchical segmentations, cached on disk so long evaluations resume.

One method's scores live in ``<root>/<method>/<image id>.npz``: the region counts at every threshold
(:class:`~matbackprop.metrics.ImageRegionEval`) and, for UCMs, the boundary counts
(:class:`~matbackprop.metrics.ImageBoundaryEval`). The boundary counts, the slow part, may
instead go in ``<id>.bdry.npz`` from a second pass. A file is written atomically (temporary name, then
rename) once an image is scored, so an interrupted run loses at most the image in progress and
a rerun scores only the missing images. Pooling into ODS / OIS / AP is cheap and done from the cached
counts (:func:`matbackprop.metrics.collect_regions`, :func:`~matbackprop.metrics.collect_boundaries`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..metrics import HumanBoundaries, ImageBoundaryEval, ImageRegionEval, evaluate_ucm_boundaries
from ..metrics.boundary_series import resolve_matcher
from ..metrics.hierarchy_regions import evaluate_ucm_regions_nested

__all__ = ["ScoreCache", "score_ucm", "method_slug", "best_thresholds"]

_REGION_FIELDS = ("thresholds", "cnt_r", "sum_r", "cnt_p", "sum_p", "pri", "vi")
_BOUNDARY_FIELDS = ("thresholds", "cnt_r", "sum_r", "cnt_p", "sum_p")
#: The matcher of boundary counts stored before the matcher was recorded.
UNRECORDED_MATCHER = "scipy"
#: File in a method's score folder: the smallest region kept in the UCMs it scored (absent: 0).
MIN_AREA_RECORD = "min_area.txt"


def method_slug(name: str) -> str:
    """File-system name of a method: lower case, runs of other characters as ``-``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise ValueError(f"method name {name!r} has no usable characters")
    return slug


def score_ucm(
    ucm2: np.ndarray,
    segmentations: Sequence[np.ndarray],
    human: HumanBoundaries | None,
    nthresh: int = 99,
) -> tuple[ImageRegionEval, ImageBoundaryEval | None]:
    """Region (and, given ``human``, boundary) counts of one UCM at ``nthresh`` thresholds.

    Regions use the nested-levels path (:func:`~matbackprop.metrics.hierarchy_regions.evaluate_ucm_regions_nested`,
    equal to ``evaluate_ucm_regions`` to rounding); share one ``human`` across methods of an image so
    its neighbourhoods and solved matching components are reused.
    """
    regions = evaluate_ucm_regions_nested(ucm2, segmentations, nthresh)
    boundaries = None if human is None else evaluate_ucm_boundaries(ucm2, human, nthresh)
    return regions, boundaries


class ScoreCache:
    """Per-image score files of one method under ``root / method_slug(method)``.

    Parameters
    ----------
    root : cache folder (e.g. ``runs/bsds_eval/test``); created on first write.
    method : method name as shown in the table.
    """

    def __init__(self, root: str | Path, method: str) -> None:
        self.method = method
        self.dir = Path(root) / method_slug(method)

    def path(self, image_id: str) -> Path:
        return self.dir / f"{image_id}.npz"

    def boundary_path(self, image_id: str) -> Path:
        return self.dir / f"{image_id}.bdry.npz"

    def require_min_area(self, min_area: int, log: Callable[[str], None] = print) -> None:
        """Delete the stored scores if they were computed with another ``min_area`` (the smallest
        region kept, :func:`~matbackprop.segmentation.remove_small_regions`; no record: 0), so that
        they are scored again from the method's cached UCMs; then record ``min_area``."""
        record = self.dir / MIN_AREA_RECORD
        made_with = int(record.read_text()) if record.is_file() else 0
        if made_with != min_area and self.dir.is_dir():
            stale = sorted(self.dir.glob("*.npz"))
            for f in stale:
                f.unlink()
            if stale:
                log(f"{self.method}: scores made with min_area {made_with}, now {min_area}; scoring them again")
        self.dir.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{min_area}\n")

    def has(self, image_id: str) -> bool:
        """Whether the image's region counts are stored."""
        return self.path(image_id).is_file()

    def has_boundaries(self, image_id: str, matcher: str | None = None) -> bool:
        """Whether the image's boundary counts are stored (with the regions or on their own); given
        ``matcher`` (see :func:`~matbackprop.metrics.boundary_series.resolve_matcher`), only counts
        that it produced count."""
        found = self.boundary_matcher(image_id)
        return found is not None and (matcher is None or found == matcher)

    def boundary_matcher(self, image_id: str) -> str | None:
        """The matcher that produced the image's stored boundary counts, or None when there are none."""
        for path in (self.boundary_path(image_id), self.path(image_id)):
            if path.is_file():
                with np.load(path) as z:
                    if "b_thresholds" in z.files:
                        return str(z["b_matcher"]) if "b_matcher" in z.files else UNRECORDED_MATCHER
        return None

    def put_boundaries(
        self, image_id: str, boundaries: ImageBoundaryEval, matcher: str | None = None, **extra: np.ndarray
    ) -> None:
        """Store one image's boundary counts on their own (the slow part, scored in a second pass);
        ``matcher`` names what produced them (default: what ``"auto"`` resolves to)."""
        arrays = self._boundary_arrays(boundaries, matcher)
        arrays.update({f"x_{k}": np.asarray(v) for k, v in extra.items()})
        self._write(self.boundary_path(image_id), arrays)

    @staticmethod
    def _boundary_arrays(boundaries: ImageBoundaryEval, matcher: str | None) -> dict[str, np.ndarray]:
        arrays = {f"b_{f}": np.asarray(getattr(boundaries, f)) for f in _BOUNDARY_FIELDS}
        arrays["b_matcher"] = np.asarray(matcher or resolve_matcher())
        return arrays

    def _write(self, final: Path, arrays: dict[str, np.ndarray]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as bool
        os.replace(tmp, final)

    def put(
        self,
        image_id: str,
        regions: ImageRegionEval | Sequence[ImageRegionEval],
        boundaries: ImageBoundaryEval | None = None,
        matcher: str | None = None,
        **extra: np.ndarray,
    ) -> None:
        """Store one image's counts (a list of region evals for leave-one-out human rows); ``matcher``
        as in :meth:`put_boundaries`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        regs = [regions] if isinstance(regions, ImageRegionEval) else list(regions)
        arrays: dict[str, np.ndarray] = {"n_region": np.array(len(regs))}
        for k, r in enumerate(regs):
            for f in _REGION_FIELDS:
                arrays[f"r{k}_{f}"] = np.asarray(getattr(r, f))
            arrays[f"r{k}_cnt_r_best"] = np.asarray(r.cnt_r_best)
        if boundaries is not None:
            arrays.update(self._boundary_arrays(boundaries, matcher))
        for key, value in extra.items():
            arrays[f"x_{key}"] = np.asarray(value)
        self._write(self.path(image_id), arrays)

    def get(self, image_id: str) -> tuple[list[ImageRegionEval], ImageBoundaryEval | None, dict[str, np.ndarray]]:
        """Region evals (one per stored entry), boundary eval or None, and extra arrays.

        Boundary counts scored on their own (:meth:`put_boundaries`) take precedence over counts
        stored with the regions: a second pass re-scores what an older matcher produced."""
        with np.load(self.path(image_id)) as z:
            n = int(z["n_region"])
            regs = [
                ImageRegionEval(**{f: z[f"r{k}_{f}"] for f in _REGION_FIELDS}, cnt_r_best=float(z[f"r{k}_cnt_r_best"]))
                for k in range(n)
            ]
            bdry = (
                ImageBoundaryEval(**{f: z[f"b_{f}"] for f in _BOUNDARY_FIELDS}) if "b_thresholds" in z.files else None
            )
            extra = {k[2:]: z[k] for k in z.files if k.startswith("x_")}
        if self.boundary_path(image_id).is_file():
            with np.load(self.boundary_path(image_id)) as z:
                bdry = ImageBoundaryEval(**{f: z[f"b_{f}"] for f in _BOUNDARY_FIELDS})
                extra.update({f"bdry_{k[2:]}": z[k] for k in z.files if k.startswith("x_")})
        return regs, bdry, extra

    def missing(self, ids: Sequence[str]) -> list[str]:
        """Images whose region counts are not stored yet."""
        return [i for i in ids if not self.has(i)]


def best_thresholds(region: ImageRegionEval) -> dict[str, float]:
    """One image's best-threshold scores: covering (max), PRI (max), VI (min) and their thresholds."""
    tot = region.sum_r + (region.sum_r == 0)
    cover = region.cnt_r / tot
    kc = int(np.argmax(cover))
    kr = int(np.argmax(region.pri))
    kv = int(np.argmin(region.vi))
    th = region.thresholds
    return {
        "covering": float(cover[kc]),
        "covering_threshold": float(th[kc]),
        "pri": float(region.pri[kr]),
        "pri_threshold": float(th[kr]),
        "vi": float(region.vi[kv]),
        "vi_threshold": float(th[kv]),
    }
