"""The boundary pass of the BSDS evaluation: parallel workers give the serial counts, and resume."""

from functools import partial
from typing import ClassVar

import numpy as np

from matbackprop.experiments.bsds_baselines import score_boundary_pass
from matbackprop.metrics import evaluate_ucm_regions, seg_to_boundaries
from matbackprop.segmentation.scores import ScoreCache


class TinyData:
    """Three 12 x 16 images with two annotators each (a vertical or a horizontal cut)."""

    ids: ClassVar[list[str]] = ["a", "b", "c"]

    def segmentations(self, index: int) -> list[np.ndarray]:
        vertical = np.zeros((12, 16), dtype=int)
        vertical[:, 5 + index :] = 1
        horizontal = np.zeros((12, 16), dtype=int)
        horizontal[4 + index :, :] = 1
        return [vertical, horizontal]

    def __getitem__(self, index: int) -> dict:
        segs = self.segmentations(index)
        return {"segmentations": segs, "boundaries": [seg_to_boundaries(s) for s in segs]}


def tiny_ucm(method: str, image_id: str) -> np.ndarray:
    """A doubled-grid UCM with a strong vertical and a weak horizontal contour (method "weak": halved)."""
    index = TinyData.ids.index(image_id)
    ucm2 = np.zeros((25, 33))
    ucm2[:, 2 * (5 + index)] = 0.8
    ucm2[2 * (4 + index), :] = np.maximum(ucm2[2 * (4 + index), :], 0.3)
    return ucm2 * (0.5 if method == "weak" else 1.0)


def _prepare(root, data, methods):
    for m in methods:
        for n, image_id in enumerate(data.ids):
            ScoreCache(root, m).put(image_id, evaluate_ucm_regions(tiny_ucm(m, image_id), data.segmentations(n), 9))


def _counts(root, methods, ids):
    out = {}
    for m in methods:
        for i in ids:
            _, b, _ = ScoreCache(root, m).get(i)
            out[m, i] = np.stack([b.cnt_r, b.sum_r, b.cnt_p, b.sum_p])
    return out


def test_parallel_boundary_pass_equals_serial_and_resumes(tmp_path):
    data, methods = TinyData(), ["strong", "weak"]
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for root in (serial, parallel):
        _prepare(root, data, methods)
    load = partial(tiny_ucm)  # picklable: the workers are separate processes
    score_boundary_pass(methods, data.ids, data, serial, load, log=lambda m: None, workers=1)
    lines: list[str] = []
    score_boundary_pass(methods, data.ids[:2], data, parallel, load, log=lines.append, workers=2)
    assert lines[0] == "boundary benchmark: 2 images to score in 2 processes"
    score_boundary_pass(methods, data.ids, data, parallel, load, log=lines.append, workers=2)
    assert lines[-2] == "boundary benchmark: 1 images to score"  # resumed: only "c" left, in this process
    a, b = _counts(serial, methods, data.ids), _counts(parallel, methods, data.ids)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["strong", "a"][0].max() > 0  # the contours were matched at all


def test_counts_from_another_matcher_are_scored_again(tmp_path):
    from matbackprop.metrics import HumanBoundaries, evaluate_ucm_boundaries
    from matbackprop.metrics.boundary_series import resolve_matcher

    data, methods = TinyData(), ["strong"]
    _prepare(tmp_path, data, methods)
    cache = ScoreCache(tmp_path, "strong")
    current = resolve_matcher()
    other = "scipy" if current == "incremental" else "incremental"
    human = HumanBoundaries(data[0]["boundaries"])
    stale = evaluate_ucm_boundaries(tiny_ucm("strong", "a"), human, 9, matcher=other)
    stale.cnt_r[:] = -1  # a marker: these counts must not survive the pass
    cache.put_boundaries("a", stale, other)
    assert cache.boundary_matcher("a") == other and cache.boundary_matcher("b") is None
    assert cache.has_boundaries("a") and not cache.has_boundaries("a", current)
    lines: list[str] = []
    score_boundary_pass(methods, data.ids, data, tmp_path, partial(tiny_ucm), log=lines.append)
    assert lines[0] == "boundary benchmark: 3 images to score"
    assert all(cache.boundary_matcher(i) == current for i in data.ids)
    b = cache.get("a")[1]
    assert b is not None and b.cnt_r.min() >= 0 and b.cnt_r.max() > 0


def test_counts_stored_with_the_regions_give_way_to_a_second_pass(tmp_path):
    data = TinyData()
    cache = ScoreCache(tmp_path, "strong")
    u = tiny_ucm("strong", "a")
    from matbackprop.metrics import HumanBoundaries, evaluate_ucm_boundaries

    human = HumanBoundaries(data[0]["boundaries"])
    old = evaluate_ucm_boundaries(u, human, 9, matcher="scipy")
    cache.put("a", evaluate_ucm_regions(u, data.segmentations(0), 9), old, "scipy")
    assert cache.boundary_matcher("a") == "scipy"  # recorded with the counts
    new = evaluate_ucm_boundaries(u, human, 9, matcher="incremental")
    new.cnt_p[:] = 0  # a marker
    cache.put_boundaries("a", new, "incremental")
    assert cache.boundary_matcher("a") == "incremental" and cache.get("a")[1].cnt_p.max() == 0
