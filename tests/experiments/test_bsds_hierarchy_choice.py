"""Per-group hierarchy settings of the NCuts rows: the UCMs of a grid, the val choice file, the score
cache that follows the settings, and the record `matbackprop segment` reads."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import matbackprop as mb
from matbackprop import metrics, segmentation
from matbackprop.experiments.bsds_ncuts.hierarchy_choice import (
    DEFAULT_HIERARCHY,
    GRID,
    Hierarchy,
    choose,
    load_hierarchies,
    ucms,
)
from matbackprop.experiments.segment_images import read_threshold_record, run_hierarchy, run_min_area, run_stride


def _quadrants(h=8, w=8):
    """An embedding on an h x w grid that separates the four quadrants, the left/right cut strongest."""
    F = torch.full((h * w, 4), 0.02, dtype=torch.float64)
    idx = torch.arange(h * w)
    left, top = idx % w < w // 2, idx // w < h // 2
    F[left & top, 0] += 1.0
    F[left & ~top, 1] += 1.0
    F[~left & top, 2] += 1.0
    F[~left & ~top, 3] += 1.0
    F[left, :2] += 0.3  # the halves are more alike within than across the vertical cut
    F[~left, 2:] += 0.3
    return mb.ncut_embedding(F, 4, return_eigenvalues=True)


def test_grid_ucms_are_the_embedding_ucms_of_each_setting():
    Z, mu = _quadrants()
    settings = [Hierarchy(1.0, 0.5, True), Hierarchy(2.0, 1.0, False), Hierarchy(1.0, 1.0, False)]
    out = ucms(Z, mu, (8, 8), (16, 16), settings)
    assert not any(np.array_equal(out[i], out[j]) for i in range(3) for j in range(i))  # settings matter here
    for s, ucm2 in zip(settings, out):
        expected = segmentation.embedding_ucm(
            Z, mu, (8, 8), (16, 16), sigma=s.sigma, power=s.power, oriented=s.oriented
        )
        np.testing.assert_array_equal(ucm2, expected)
    # the level power re-spaces the levels without changing the hierarchy: the same regions at matched levels
    a, b = ucms(Z, mu, (8, 8), (16, 16), [Hierarchy(1.0, 0.5, True), Hierarchy(1.0, 1.0, True)])
    t = float(np.median(b[b > 0]))
    np.testing.assert_array_equal(metrics.ucm_to_segmentation(b, t), metrics.ucm_to_segmentation(a, t**0.5))
    assert len(GRID) == len(set(GRID)) == 12 and DEFAULT_HIERARCHY in GRID


def test_a_setting_replaces_the_default_only_when_no_region_measure_gets_worse():
    d, s4, s1 = DEFAULT_HIERARCHY, Hierarchy(sigma=4.0), Hierarchy(sigma=1.0)
    base = (0.491, 0.787, 2.117)  # covering, PRI (higher is better), VI (lower is better)
    assert choose({d: base, s4: (0.500, 0.772, 2.149)}) == d  # more covering bought with PRI and VI
    assert choose({d: base, s4: (0.491, 0.787, 2.117)}) == d  # equal: no reason to change
    assert choose({d: base, s4: (0.491, 0.787, 2.110)}) == s4  # lower VI, nothing worse
    assert choose({d: base, s4: (0.495, 0.787, 2.117), s1: (0.499, 0.790, 2.100)}) == s1  # best covering
    assert choose({d: base, s4: (0.49104, 0.787, 2.117)}) == d  # compared at 4 decimals
    with pytest.raises(ValueError, match="default"):
        choose({s4: base})


def test_choice_file_is_per_group_and_must_come_from_val(tmp_path):
    assert load_hierarchies(tmp_path / "absent.json") == {} and load_hierarchies(None) == {}
    path = tmp_path / "h.json"
    chosen = {"sigma": 4.0, "power": 1.0, "oriented": False}
    path.write_text(json.dumps({"split": "val", "groups": {"frozen": {"chosen": chosen}}}))
    assert load_hierarchies(path) == {"frozen": Hierarchy(4.0, 1.0, False)}
    path.write_text(json.dumps({"split": "test", "groups": {"frozen": {"chosen": chosen}}}))
    with pytest.raises(ValueError, match="val split"):
        load_hierarchies(path)
    for broken in ({"split": "val"}, {"split": "val", "groups": {"frozen": {"chosen": {"sigmas": 4.0}}}}):
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match="not a hierarchy choice file"):
            load_hierarchies(path)


def test_choice_made_with_other_runs_is_refused(tmp_path):
    path = tmp_path / "h.json"
    chosen = {"sigma": 4.0, "power": 1.0, "oriented": False}
    entry = {"run": "runs/rank-frozen/seed2", "chosen": chosen}
    path.write_text(json.dumps({"split": "val", "groups": {"frozen": entry}}))
    rank = [Path(f"runs/rank-frozen/seed{s}") for s in range(3)]
    assert load_hierarchies(path, {"frozen": rank, "other": [Path("runs/x")]})["frozen"] == Hierarchy(4.0, 1.0, False)
    with pytest.raises(ValueError, match="not one of this group's runs"):
        load_hierarchies(path, {"frozen": [Path(f"runs/long-frozen/seed{s}") for s in range(3)]})


def test_threshold_record_carries_its_settings(tmp_path):
    path = tmp_path / "ucm_threshold.json"
    path.write_text(json.dumps({"covering_ods_threshold": 0.3, "split": "val"}))
    assert read_threshold_record(path) == (0.3, "val", DEFAULT_HIERARCHY, 4, 0)  # before strides were recorded: 4
    path.write_text(
        json.dumps(
            {
                "covering_ods_threshold": 0.4,
                "split": "val",
                "hierarchy": {"sigma": 1.0, "power": 1.0, "oriented": False},
                "stride": 1,
                "min_area": 200,
            }
        )
    )
    assert read_threshold_record(path) == (0.4, "val", Hierarchy(1.0, 1.0, False), 1, 200)
    assert run_hierarchy(tmp_path) == Hierarchy(1.0, 1.0, False)
    assert run_stride(tmp_path) == 1
    assert run_hierarchy(tmp_path / "elsewhere") == DEFAULT_HIERARCHY
    assert run_stride(tmp_path / "elsewhere") == 4
    assert run_min_area(tmp_path) == 200 and run_min_area(tmp_path / "elsewhere") == 0
